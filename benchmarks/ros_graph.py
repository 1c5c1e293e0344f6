"""The node in a real ROS 2 graph: frame cost against a bare rclpy floor, and loss with / without the DDS profile.

Each scenario runs in a fresh child process (Fast DDS reads its profile once per process): it
starts the real ``segmentation_node`` executable (or the echo floor) as its own process,
publishes rgb8 frames to it from a probe node (a best-effort camera) at a steady rate, and records
every output it subscribes to. Both sides get the same middleware settings. The graph stays on
this host (a private domain, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).

* ``frame-cost``: 1024x512 and 2048x1024 at 10 Hz with the shipped profile, a mask-only
  subscriber and a mask + color_mask + overlay subscriber, each against the **echo floor**: a bare
  rclpy node (ordinary, deserialised messages, as any rclpy node) that republishes every frame it
  receives as same-size images on the same topics (mono8 for the mask, the rgb8 frame for colour
  and overlay). *Beyond inference* = p50(node) - p50(echo) - mean infer: what the node costs per
  frame besides transport and the network (preprocess and postprocess included, even where a
  fused graph does them). Latency is the mask's (every consumer of the segmentation reads it);
  the node publishes each output as soon as it is built, so the table also gives the last
  output's (the overlay's) p50.
  The **raw echo** does the same on the node's own transport path (CDR bytes in and out, no
  message objects): the difference to it is the node's own work without any transport saving.
* ``loss``: frames in / out with and without the profile (256x128 to 2048x1024).

    python benchmarks/ros_graph.py --model demo_output/bundle --update-doc docs/ROS.md docs/PERFORMANCE.md

The last line printed is JSON: {"frame_cost": [...], "loss": [...]}, one object per scenario.
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
FRAME_COST_SIZES = [(1024, 512), (2048, 1024)]
FRAME_COST_RATE, FRAME_COST_SECONDS = 10.0, 8.0
SUBSCRIBERS = {"mask only": ("mask",), "mask + colour + overlay": ("mask", "color_mask", "overlay")}
STAGE_KEYS = ("convert", "preprocess", "infer", "postprocess", "publish")


def run_echo(namespace: str, raw: bool) -> None:
    """A floor: a bare rclpy node republishing every received frame as same-size images; ``raw``:
    on the node's own transport path (CDR bytes in and out, cityseg.ros.core.cdr), else with ordinary
    deserialised messages as any rclpy node."""
    import array

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from cityseg.ros.core.cdr import ImageBuffer, read_image
    from cityseg.ros.live.frame_memory import retain_frame_memory

    rclpy.init()
    node = rclpy.create_node("segmentation", namespace=namespace)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    pubs = {s: node.create_publisher(Image, f"~/{s}", QoSProfile(depth=5))
            for s in SUBSCRIBERS["mask + colour + overlay"]}

    def echo(msg: Image) -> None:
        for suffix, pub in pubs.items():
            if pub.get_subscription_count() == 0:
                continue
            if suffix == "mask":
                out = Image(header=msg.header, height=msg.height, width=msg.width, encoding="mono8", step=msg.width)
                out.data = array.array("B", bytes(memoryview(msg.data)[: msg.width * msg.height]))
                pub.publish(out)
            else:
                pub.publish(msg)

    def echo_raw(data: bytes) -> None:
        view = read_image(data)
        for suffix, pub in pubs.items():
            if pub.get_subscription_count() == 0:
                continue
            if suffix == "mask":
                stamp = view.header.stamp
                out = ImageBuffer(stamp.sec, stamp.nanosec, view.header.frame_id, view.height, view.width, "mono8", 1)
                out.pixels.reshape(-1)[:] = view.data[: view.height * view.width]
                pub.publish(out.message())
            else:
                pub.publish(data)

    if raw:
        retain_frame_memory()
    node.create_subscription(Image, "image", echo_raw if raw else echo, qos, raw=raw)
    print("segmenting (echo floor)", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


def run_frame_cost(model: str, width: int, height: int, subscribers: tuple[str, ...], echo: str,
                   backend: str = "onnxruntime", artifact: str = "") -> dict:
    """One frame-cost scenario in this process (the child): the node ('') on ``backend`` (and the
    card's ``artifact``, when given) or an echo floor ('messages' or 'raw'), p50 latency."""
    import signal

    import numpy as np
    import rclpy

    from cityseg.benchmarking.ros_probe import NodeProcess, Probe, diagnostic_totals, percentile
    from cityseg.ros.core.images import encode_rgb
    from cityseg.ros.core.messages import CameraInfoValues

    if echo:
        node = NodeProcess("/bench", {}, command=[sys.executable, __file__, "--echo", echo])
    else:
        node = NodeProcess("/bench", {"model": model, "backend": backend, "diagnostics_period": 0.5,
                                      "stats_window": 60.0, "log_period": 0.0,
                                      **({"artifact": artifact} if artifact else {})})
    node.wait_for_output("segmenting", 60.0)
    runs_on = next((line for line in node.output.splitlines() if " on " in line and "segmenting" in line), "")
    rclpy.init()
    probe = Probe("/bench", outputs=frozenset(subscribers))
    try:
        if not probe.wait_connected(30.0, seen_by_node=not echo):
            raise RuntimeError(f"the node did not connect:\n{node.output}")
        rgb = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
        raw = encode_rgb(rgb, "rgb8")
        info = CameraInfoValues.pinhole(height, width)
        time.sleep(0.5)
        count = probe.stream(raw, int(FRAME_COST_RATE * FRAME_COST_SECONDS), FRAME_COST_RATE, None if echo else info)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and min(probe.count(s) for s in subscribers) < count:
            time.sleep(0.1)
        diag = {} if echo else probe.wait_settled(count, timeout=10.0)
        latency = probe.record.latencies_ms("mask")
        return {"size": f"{width}x{height}", "subscribers": " + ".join(subscribers),
                "target": f"echo floor ({echo})" if echo else "node", "sent": count,
                "out": min(probe.count(s) for s in subscribers),
                "node_dropped": diagnostic_totals(diag).get("dropped", 0) if diag else 0,
                "latency_p50_ms": round(percentile(latency, 50), 1),
                "latency_p90_ms": round(percentile(latency, 90), 1),
                "last_output_p50_ms": round(percentile(probe.record.latencies_ms(subscribers[-1]), 50), 1),
                "stage_ms": {k: round(float(diag[f"{k} mean (ms)"]), 2) for k in STAGE_KEYS
                             if f"{k} mean (ms)" in diag},
                "live_outputs": diag.get("live outputs", ""),
                "runs_on": runs_on.split(" on ", 1)[-1].split(" (ready")[0] if runs_on else ""}
    finally:
        probe.close()
        rclpy.try_shutdown()
        node.stop(signal.SIGINT)


def run_scenario(model: str, width: int, height: int, rate: float, seconds: float, profile: bool) -> dict:
    """Run one scenario in this process (the child); the measurements as a dict."""
    import numpy as np
    import rclpy

    from cityseg.benchmarking.ros_probe import NodeProcess, Probe, diagnostic_totals, percentile
    from cityseg.ros.core.images import encode_rgb
    from cityseg.ros.core.messages import CameraInfoValues

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
        count = probe.stream(raw, int(rate * seconds), rate, info)
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


def run_child(mode: str, spec: list, model, domain: int, profile: bool = True, timeout: float = 180,
              what: str = "scenario") -> dict:
    """One scenario of this script (``--child`` or ``--cost-child`` with ``spec``) in a child process
    with its own DDS domain and middleware settings; the JSON it printed last."""
    from cityseg.benchmarking.ros_probe import graph_environment
    from cityseg.ros.live.dds_profile import PROFILE_FILE

    env = graph_environment(domain, str(REPO / "config" / PROFILE_FILE) if profile else None)
    command = [sys.executable, str(Path(__file__).resolve()), mode, json.dumps(spec), "--model", str(model)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{what} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1])


def spawn(args, width: int, height: int, rate: float, seconds: float, profile: bool, domain: int) -> dict:
    """Run one scenario in a child process with its own middleware settings."""
    return run_child("--child", [width, height, rate, seconds, profile], args.model, domain, profile,
                     seconds + 120, f"scenario {width}x{height}@{rate:g}")


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
    parser.add_argument("--update-doc", type=Path, nargs="+", default=[],
                        help="write the tables into these Markdown files (docs/ROS.md docs/PERFORMANCE.md)")
    parser.add_argument("--only", choices=("frame-cost", "loss"), help="run one part only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cost-child", help=argparse.SUPPRESS)
    parser.add_argument("--echo", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        run_echo("/bench", raw=args.echo == "raw")
        return 0
    if args.child:
        width, height, rate, seconds, profile = json.loads(args.child)
        print(json.dumps(run_scenario(str(args.model), width, height, rate, seconds, profile)))
        return 0
    if args.cost_child:
        width, height, subscribers, echo, *backend = json.loads(args.cost_child)
        print(json.dumps(run_frame_cost(str(args.model), width, height, tuple(subscribers), echo, *backend)))
        return 0
    if not (args.model / "model.json").is_file():
        raise SystemExit(f"{args.model}: no model bundle; run `make demo` first or pass --model BUNDLE")
    cost = frame_cost(args) if args.only != "loss" else []
    loss = loss_runs(args) if args.only != "frame-cost" else []
    if args.update_doc:
        from cityseg.benchmarking.report import machine_description, update_doc

        where = (f"Measured on {machine_description()} with `python benchmarks/ros_graph.py --model "
                 f"{args.model}` ({time.strftime('%Y-%m-%d')}).")
        for doc in args.update_doc:  # each table where the doc has (or, for the first doc, gets) its markers
            text = doc.read_text() if doc.exists() else ""
            for marker, rows, text_table in (("frame-cost", cost, cost_table), ("ros-graph", loss, table)):
                if rows and (f"<!-- {marker}:start -->" in text or doc == args.update_doc[0]):
                    update_doc(doc, text_table(rows), where, marker=marker)
    print(json.dumps({"frame_cost": cost, "loss": loss}))
    return 0


def loss_runs(args) -> list[dict]:
    """Frames in / out with and without the DDS profile, every size."""
    results = []
    for i, (width, height, rate, seconds) in enumerate(SCENARIOS):
        for profile in (False, True):
            results.append(spawn(args, width, height, rate, seconds, profile, 150 + (os.getpid() + i) % 50))
            print(table(results[-1:]).splitlines()[-1], flush=True)
    print(table(results))
    return results


def frame_cost(args) -> list[dict]:
    """The node against the echo floor at both sizes, mask-only and all-image subscribers; the
    node's rows carry ``beyond_inference_ms``."""
    results = []
    for i, (width, height) in enumerate(FRAME_COST_SIZES):
        for j, subscribers in enumerate(SUBSCRIBERS.values()):
            runs = {}
            for k, echo in enumerate(("messages", "raw", "")):
                domain = 100 + (os.getpid() + 6 * i + 3 * j + k) % 50
                runs[echo] = run_child("--cost-child", [width, height, subscribers, echo], args.model, domain,
                                       what=f"frame-cost {width}x{height}")
            node, floor, raw_floor = runs[""], runs["messages"], runs["raw"]
            infer = node["stage_ms"].get("infer", 0.0)
            node.update(echo_p50_ms=floor["latency_p50_ms"], echo_out=floor["out"],
                        raw_echo_p50_ms=raw_floor["latency_p50_ms"], raw_echo_out=raw_floor["out"],
                        beyond_inference_ms=round(node["latency_p50_ms"] - floor["latency_p50_ms"] - infer, 1),
                        beyond_inference_raw_ms=round(node["latency_p50_ms"] - raw_floor["latency_p50_ms"] - infer, 1))
            results.append(node)
            print(cost_table(results[-1:]).splitlines()[-1], flush=True)
    print(cost_table(results))
    return results


def cost_table(results: list[dict]) -> str:
    """Frame-cost results as a Markdown table."""
    head = ("| frames @ 10 Hz | subscribed | out / sent: node, echo, raw echo | p50 echo floor (rclpy messages) "
            "| p50 raw echo (CDR bytes) | p50 node: mask / last output | node stages: convert / preprocess / "
            "infer / postprocess / publish (mean ms) | **beyond inference** (vs echo floor) | "
            "beyond inference vs raw echo |")
    rows = [head, "|" + "---|" * 9]
    for r in results:
        stages = " / ".join(f"{r['stage_ms'].get(k, float('nan')):.1f}" for k in STAGE_KEYS)
        outs = f"{r['out']}, {r['echo_out']}, {r['raw_echo_out']} of {r['sent']}"
        floors = f"{r['echo_p50_ms']:.1f} ms | {r['raw_echo_p50_ms']:.1f} ms"
        node = f"{r['latency_p50_ms']:.1f} / {r['last_output_p50_ms']:.1f} ms"
        rows.append(f"| {r['size']} rgb8 | {r['subscribers']} | {outs} | {floors} | {node} | {stages} | "
                    f"**{r['beyond_inference_ms']:.1f} ms** | {r['beyond_inference_raw_ms']:.1f} ms |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
