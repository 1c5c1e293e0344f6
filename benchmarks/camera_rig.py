"""A camera rig in one process against one process per camera, over real DDS.

Four cameras publish 1024x512 rgb8 frames at 10 Hz each (best effort, shipped Fast DDS profile
on every process, a private loopback-only graph). Setup "one process": one `segmentation_node`
with `cameras:=[cam0..cam3]` (one model, batched). Setup "four processes": four single-camera
nodes in namespaces cam0..cam3. In both, camera c's masks arrive on /c/segmentation/mask (a
mask-only consumer per camera) and are counted with their latency. Measured per setup: frames out
per camera, latency p50 / p90 (publish -> mask), resident memory of the node process(es) after the
run (VmRSS summed), and CPU seconds of the node process(es) per frame out (utime + stime over the
streaming window).

    python benchmarks/camera_rig.py --model demo_output/bundle --update-doc docs/ROS.md

The last line printed is JSON: {"one_process": {...}, "four_processes": {...}, "ratios": {...}}.
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
CAMERAS = ("cam0", "cam1", "cam2", "cam3")
WIDTH, HEIGHT, RATE_HZ, SECONDS = 1024, 512, 10.0, 8.0


def proc_stats(pid: int) -> tuple[float, float]:
    """(resident MiB, CPU seconds) of process ``pid`` and its threads."""
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_setup(model: str, one_process: bool) -> dict:
    """One setup in this process (the child): start the node(s), stream, measure."""
    import numpy as np
    import rclpy

    from cityseg.benchmarking.ros_probe import NodeProcess, Probe, percentile
    from cityseg.ros.core.images import encode_rgb

    common = {"model": model, "backend": "onnxruntime", "diagnostics_period": 0.5, "stats_window": 60.0,
              "log_period": 0.0}
    if one_process:
        nodes = [NodeProcess("/", {**common, "cameras": "[" + ",".join(CAMERAS) + "]",
                                   "camera_image_topic": "/{camera}/image"})]
    else:
        nodes = [NodeProcess(f"/{c}", common) for c in CAMERAS]
    for node in nodes:
        if not node.wait_for_output("segmenting ", 60.0):
            raise RuntimeError(node.output)
    rclpy.init()
    status = (lambda c: f"/segmentation: {c}") if one_process else (lambda c: None)
    probes = {c: Probe(f"/{c}", outputs=frozenset({"mask"}), name=f"probe_{c}", status=status(c)) for c in CAMERAS}
    try:
        if not all(p.wait_connected(30.0) for p in probes.values()):
            raise RuntimeError("the node(s) did not connect:\n" + "\n".join(n.output for n in nodes))
        raw = encode_rgb(np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8), "rgb8")
        time.sleep(0.5)
        before = [proc_stats(n.process.pid) for n in nodes]
        count, start = int(RATE_HZ * SECONDS), time.monotonic()
        for i in range(count):
            time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
            for k, probe in enumerate(probes.values()):
                stamp = 1_700_000_000 * 10**9 + round(i * 1e9 / RATE_HZ) + k * 1000
                probe.publish(probe.msgs.image(probe.msgs.header(stamp // 10**9, stamp % 10**9, "cam"), raw))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and min(p.count("mask") for p in probes.values()) < count:
            time.sleep(0.1)
        after = [proc_stats(n.process.pid) for n in nodes]
        latency = [ms for p in probes.values() for ms in p.record.latencies_ms("mask")]
        out = {c: p.count("mask") for c, p in probes.items()}
        cpu = sum(a[1] - b[1] for a, b in zip(after, before))
        return {"setup": "one process" if one_process else "four processes", "sent_per_camera": count,
                "out_per_camera": out, "latency_p50_ms": round(percentile(latency, 50), 1),
                "latency_p90_ms": round(percentile(latency, 90), 1), "rss_mb": round(sum(a[0] for a in after), 1),
                "cpu_s_per_frame": round(cpu / max(1, sum(out.values())), 4)}
    finally:
        for probe in probes.values():
            probe.close()
        rclpy.try_shutdown()
        for node in nodes:
            node.stop()


def spawn(model: str, one_process: bool, domain: int) -> dict:
    from cityseg.benchmarking.ros_probe import graph_environment
    from cityseg.ros.live.dds_profile import PROFILE_FILE

    env = graph_environment(domain, str(REPO / "config" / PROFILE_FILE))
    command = [sys.executable, __file__, "--child", json.dumps(one_process), "--model", model]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SECONDS + 180)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"setup failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def table(one: dict, four: dict, ratios: dict) -> str:
    rows = ["| setup | frames out per camera (of sent) | latency p50 / p90 | resident memory | CPU s per frame |",
            "|---|---|---|---|---|"]
    for r in (four, one):
        outs = " / ".join(str(v) for v in r["out_per_camera"].values())
        rows.append(f"| {r['setup']} | {outs} (of {r['sent_per_camera']}) | {r['latency_p50_ms']:.0f} / "
                    f"{r['latency_p90_ms']:.0f} ms | {r['rss_mb']:.0f} MB | {r['cpu_s_per_frame'] * 1e3:.1f} ms |")
    rows.append(f"| **one ÷ four** | | p90 ×{ratios['latency_p90']:.2f} | **{ratios['rss'] * 100:.0f} %** | "
                f"×{ratios['cpu_per_frame']:.2f} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REPO / "demo_output" / "bundle"))
    parser.add_argument("--update-doc", type=Path, help="write the table into this Markdown file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_setup(args.model, json.loads(args.child))))
        return 0
    if not (Path(args.model) / "model.json").is_file():
        raise SystemExit(f"{args.model}: no model bundle; run `make demo` first or pass --model BUNDLE")
    four = spawn(args.model, False, 120 + os.getpid() % 40)
    print(json.dumps(four), flush=True)
    one = spawn(args.model, True, 160 + os.getpid() % 40)
    print(json.dumps(one), flush=True)
    ratios = {"rss": one["rss_mb"] / four["rss_mb"], "latency_p90": one["latency_p90_ms"] / four["latency_p90_ms"],
              "cpu_per_frame": one["cpu_s_per_frame"] / four["cpu_s_per_frame"]}
    print(table(one, four, ratios))
    if args.update_doc:
        from cityseg.bench import machine_description, update_doc

        update_doc(args.update_doc, table(one, four, ratios), f"Measured on {machine_description()} with "
                   f"`python benchmarks/camera_rig.py --model {args.model}` ({time.strftime('%Y-%m-%d')}).",
                   marker="camera-rig")
    rounded = {k: round(v, 3) for k, v in ratios.items()}
    print(json.dumps({"one_process": one, "four_processes": four, "ratios": rounded}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
