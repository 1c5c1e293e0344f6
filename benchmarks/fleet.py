"""`cityseg fleet` throughput: 8 synthetic camera bags segmented with 1 and with 2 Ray workers.

Writes the bags (sqlite3 rosbag2, rgb8 frames) to a temporary directory, starts one local Ray
with as many CPUs as this machine has, and runs the fleet once per worker count into a fresh
output directory. Reports frames/s over the whole run (Ray start-up and model loading included)
and once every worker is up (the steady state a long run approaches). The default model is the
test suite's palette classifier (a per-pixel 1x1 model: the numbers measure replay, encoding and
Ray, not a network); pass --model for a real bundle.

    PYTHONPATH=src python benchmarks/fleet.py [--model BUNDLE] [--frames 30] [--size 512x256]

The last line printed is JSON: one object per worker count.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BAGS = 8


def write_bags(root: Path, count: int, frames: int, width: int, height: int) -> list[Path]:
    """``count`` camera bags of ``frames`` painted frames each."""
    sys.path.insert(0, str(REPO / "tests"))
    from cityseg.ros.bag.camera_bag import write_camera_bag

    from support import painted_scene

    bags = []
    for i in range(count):
        images = [painted_scene(height, width, "trainid", seed=i * frames + j)[0] for j in range(frames)]
        write_camera_bag(root / f"drive_{i:02d}", images)
        bags.append(root / f"drive_{i:02d}")
    return bags


def palette_bundle(root: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from support import make_palette_bundle

    return make_palette_bundle(root / "palette", "trainid", 128, 256).path


def measure(bags: list[Path], model: Path, out: Path, workers: int) -> dict:
    """One fleet run; its totals."""
    from cityseg.fleet.plan import ReplayOptions
    from cityseg.fleet.run import FleetConfig, run_fleet
    from cityseg.ros.core.processor import ProcessorConfig

    options = ReplayOptions(str(model), "onnxruntime", ProcessorConfig(id_space="trainid"))
    started = time.perf_counter()
    summary = run_fleet(bags, options, FleetConfig(out, workers=workers, progress=False))
    totals = summary["totals"]
    assert totals["done"] == len(bags), summary
    return {"workers": workers, "bags": len(bags), "frames": totals["frames"],
            "seconds": round(time.perf_counter() - started, 2), "frames_per_s": totals["frames_per_second"],
            "segment_seconds": totals["segment_seconds"],
            "segment_frames_per_s": totals["segment_frames_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model bundle (default: the palette classifier)")
    parser.add_argument("--frames", type=int, default=30, help="frames per bag (default 30)")
    parser.add_argument("--size", default="512x256", help="frame WIDTHxHEIGHT (default 512x256)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    from cityseg.fleet.run import import_ray

    ray = import_ray()  # a local Ray on the loopback interface

    with tempfile.TemporaryDirectory(prefix="cityseg-fleet-bench-") as tmp:
        root = Path(tmp)
        model = args.model or palette_bundle(root)
        bags = write_bags(root / "bags", BAGS, args.frames, width, height)
        ray.init(address="local", num_cpus=os.cpu_count(),
                 include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        try:
            results = []
            for workers in (1, 2):
                results.append(measure(bags, model, root / f"out_{workers}", workers))
                print(f"{workers} worker(s): {results[-1]['frames']} frames in {results[-1]['seconds']} s "
                      f"= {results[-1]['frames_per_s']} frames/s; once up: {results[-1]['segment_frames_per_s']} "
                      "frames/s", flush=True)
        finally:
            ray.shutdown()
    print(json.dumps({"machine_cpus": os.cpu_count(), "frame_size": args.size, "frames_per_bag": args.frames,
                      "model": str(args.model or "palette classifier"), "results": results}))


if __name__ == "__main__":
    main()
