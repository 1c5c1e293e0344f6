"""The node in a real ROS 2 graph: frames in / out, latency and loss, with and without the DDS profile.

Each scenario runs in a fresh child process (Fast DDS reads its profile once per process): it
starts the real ``segmentation_node`` executable as its own process, publishes rgb8 frames to it
from a probe node (a best-effort camera) at a steady rate, and records every output. Both sides
get the same middleware settings: the shipped ``config/fastdds_large_images.xml`` or Fast DDS'
defaults. The graph stays on this host (a private domain, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).

    python benchmarks/ros_graph.py --model demo_output/bundle --update-doc docs/ROS.md

The last line printed is JSON: one object per scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = [  # (width, height, rate Hz, seconds)
    (256, 128, 10.0, 8.0),
    (1024, 512, 10.0, 8.0),
    (1024, 512, 30.0, 4.0),
    (2048, 1024, 10.0, 8.0),
]
OUTPUTS = ("mask", "color_mask", "overlay", "camera_info")


def run_scenario(model: str, width: int, height: int, rate: float, seconds: float, profile: bool) -> dict:
    """Run one scenario in this process (the child); the measurements as a dict."""
    import numpy as np
    import rclpy

    from cityseg.ros.messages import CameraInfoValues
    from cityseg.ros.images import encode_rgb
    from cityseg.ros.probe import NodeProcess, Probe, diagnostic_totals, percentile

    node = NodeProcess("/bench", {"model": model, "backend": "onnxruntime", "diagnostics_period": 0.5,
                                  "stats_window": 60.0, "log_period": 0.0})
    rclpy.init()
    probe = Probe("/bench")
    try:
        if not probe.wait_connected(30.0):
            raise RuntimeError(f"the node did not connect:\n{node.output}")
        rng = np.random.default_rng(0)
        rgb = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        raw = encode_rgb(rgb, "rgb8")
        info = CameraInfoValues.pinhole(height, width)
        probe.info_pub.publish(probe.msgs.camera_info(probe.msgs.header(0, 0, "cam"), info))
        time.sleep(0.3)
        count, start = int(rate * seconds), time.monotonic()
        for i in range(count):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            stamp = 1_700_000_000 * 10**9 + round(i * 1e9 / rate)
            header = probe.msgs.header(stamp // 10**9, stamp % 10**9, "cam")
            probe.publish(probe.msgs.image(header, raw), probe.msgs.camera_info(header, info))
        diag = probe.wait_settled(count, timeout=10.0)
        totals = diagnostic_totals(diag)
        latency = probe.record.latencies_ms("mask")
        masks = probe.record.outputs["mask"]
        span = (masks[-1].arrived - masks[0].arrived) if len(masks) > 1 else float("nan")
        return {"size": f"{width}x{height}", "rate_hz": rate, "profile": profile, "sent": count,
                "node_received": totals.get("received", 0), "node_processed": totals.get("processed", 0),
                "node_dropped": totals.get("dropped", 0),
                "upstream_lost_percent": float(diag.get("upstream lost (%)", "nan")),
                **{f"out_{s}": len(probe.record.outputs[s]) for s in OUTPUTS},
                "latency_p50_ms": round(percentile(latency, 50), 1),
                "latency_p90_ms": round(percentile(latency, 90), 1),
                "node_rate_hz": round((len(masks) - 1) / span, 1) if len(masks) > 1 else 0.0}
    finally:
        probe.close()
        rclpy.try_shutdown()
        node.stop()


def spawn(args, width: int, height: int, rate: float, seconds: float, profile: bool, domain: int) -> dict:
    """Run one scenario in a child process with its own middleware settings."""
    from cityseg.ros.middleware import PROFILE_FILE
    from cityseg.ros.probe import graph_environment

    env = graph_environment(domain, str(REPO / "config" / PROFILE_FILE) if profile else None)
    command = [sys.executable, __file__, "--child", json.dumps([width, height, rate, seconds, profile]),
               "--model", str(args.model)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"scenario {width}x{height}@{rate:g} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def table(results: list[dict]) -> str:
    """The results as a Markdown table."""
    head = ("| frames | DDS profile | sent | node in | segmented | mask / colour / overlay / info out | "
            "upstream lost | latency p50 / p90 | node rate |")
    rows = [head, "|" + "---|" * 9]
    for r in results:
        outs = " / ".join(str(r[f"out_{s}"]) for s in OUTPUTS)
        rows.append(f"| {r['size']} rgb8 @ {r['rate_hz']:g} Hz | {'shipped' if r['profile'] else 'none'} | "
                    f"{r['sent']} | {r['node_received']} | {r['node_processed']} | {outs} | "
                    f"{r['upstream_lost_percent']:.0f} % | {r['latency_p50_ms']:.0f} / "
                    f"{r['latency_p90_ms']:.0f} ms | {r['node_rate_hz']:.1f} Hz |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "demo_output" / "bundle",
                        help="model bundle the node runs (default: make demo's)")
    parser.add_argument("--update-doc", type=Path, help="write the table into this Markdown file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        width, height, rate, seconds, profile = json.loads(args.child)
        print(json.dumps(run_scenario(str(args.model), width, height, rate, seconds, profile)))
        return 0
    if not (args.model / "model.json").is_file():
        raise SystemExit(f"{args.model}: no model bundle; run `make demo` first or pass --model BUNDLE")
    results = []
    for i, (width, height, rate, seconds) in enumerate(SCENARIOS):
        for profile in (False, True):
            results.append(spawn(args, width, height, rate, seconds, profile, 150 + (os.getpid() + i) % 50))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print(table(results))
    if args.update_doc:
        from cityseg.bench import machine_description, update_doc

        update_doc(args.update_doc, table(results), f"Measured on {machine_description()} with "
                   f"`python benchmarks/ros_graph.py --model {args.model}` ({time.strftime('%Y-%m-%d')}).",
                   marker="ros-graph")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
