"""The node's mask latency at 10 Hz with LiDAR fusion off and on, over real DDS (needs the `ros` extra).

One ``segmentation_node`` serves a rig of --cameras cameras (--size, default 1024x512) with a model
bundle (default: an ONNX stand-in with random weights at 256x512). A probe per camera publishes
frames at 10 Hz and records ``~/mask`` latency (publish -> arrival). With fusion on, a 117k-point
Velodyne-style cloud of the synthetic street is published at 10 Hz too and ``~/points`` are
counted. Same frames, same run, fusion off first. The last line is machine-readable:
RESULT off_p50_ms=... on_p50_ms=... off_masks=... on_masks=... clouds_out=...
"""

from __future__ import annotations

import argparse
import array
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cityseg.benchmarking.fixtures import make_imported_bundle
from cityseg.benchmarking.report import machine_description, update_doc
from cityseg.benchmarking.ros_probe import NodeProcess, Probe, graph_environment, percentile, wait_until
from cityseg.ros.bag.lidar_bag import LIDAR_FRAME, street_rig
from cityseg.ros.core.images import encode_rgb
from cityseg.ros.live.dds_profile import PROFILE_FILE
from cityseg.synthetic.lidar import LidarSpec, scan, velodyne_cloud

FPS = 10.0
REPO = Path(__file__).resolve().parents[1]


def _extrinsics(rig, path: Path) -> Path:
    lines = ["transforms:"] + [
        f"  - {{parent: {p}, child: {c}, translation: {[float(v) for v in t.translation]}, "
        f"rotation: {list(t.quaternion())}}}" for p, c, t in rig.transforms()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(model: Path, rig, fused: bool, seconds: float, work: Path) -> dict:
    from sensor_msgs.msg import PointCloud2, PointField

    names = [c.name for c in rig.cameras]
    params = {"model": str(model), "backend": "onnxruntime", "cameras": "[" + ",".join(names) + "]",
              "camera_image_topic": "/{camera}/image_raw", "log_period": 0.0, "diagnostics_period": 0.5}
    if fused:
        params.update(points_topic="/lidar/points", extrinsics_file=str(_extrinsics(rig, work / "rig.yaml")))
    node = NodeProcess("/rig", params)
    if not node.wait_for_output("segmenting ", 60.0):
        raise SystemExit(node.output)
    probes = {c: Probe(f"/{c}", name=f"bench_{c}", outputs=frozenset({"mask"}), image_topic="image_raw",
                       live_status=f"/rig/segmentation: {c}") for c in names}
    lidar = next(iter(probes.values()))
    cloud_pub = lidar.node.create_publisher(PointCloud2, "/lidar/points", 5)
    clouds = []
    lidar.node.create_subscription(PointCloud2, "/rig/segmentation/points", clouds.append, 10)
    try:
        wait_until(lambda: all(p.wait_connected() for p in probes.values()), 20.0)
        rng = np.random.default_rng(0)
        w, h = rig.cameras[0].info.width, rig.cameras[0].info.height
        frames = {c: rng.integers(0, 255, (h, w, 3), np.uint8) for c in names}
        layout, data, _ = velodyne_cloud(scan(rig.scene, rig.lidar_pose, rig.spec))
        payload = array.array("B")
        payload.frombytes(data)
        fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in layout.fields]
        count, start = int(seconds * FPS), time.monotonic()
        for i in range(count):
            time.sleep(max(0.0, start + i / FPS - time.monotonic()))
            stamp = 1_700_000_000 * 10**9 + round(i * 1e9 / FPS)
            for c in rig.cameras:
                p = probes[c.name]
                header = p.msgs.header(stamp // 10**9, stamp % 10**9, c.name)
                p.publish(p.msgs.image(header, encode_rgb(frames[c.name], "rgb8")), p.msgs.camera_info(header, c.info))
            if fused:
                cs = stamp + 3_000_000
                cloud_pub.publish(PointCloud2(
                    header=lidar.msgs.header(cs // 10**9, cs % 10**9, LIDAR_FRAME), height=1, width=layout.width,
                    fields=fields, is_bigendian=False, point_step=layout.point_step, row_step=layout.row_step,
                    data=payload, is_dense=False))
        time.sleep(1.0)
        latencies = [ms for p in probes.values() for ms in p.record.latencies_ms("mask")]
        masks = sum(len(p.record.outputs["mask"]) for p in probes.values())
        return {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90), "masks": masks,
                "sent": count * len(names), "clouds_in": count if fused else 0, "clouds_out": len(clouds)}
    finally:
        for p in probes.values():
            p.close()
        node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model bundle (default: an ONNX stand-in, random weights)")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--size", default="1024x512", help="camera WxH")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--update-doc", type=Path)
    args = parser.parse_args()
    os.environ.update(graph_environment(150 + os.getpid() % 50, str(REPO / "config" / PROFILE_FILE)))
    import rclpy

    rclpy.init()
    width, height = (int(v) for v in args.size.split("x"))
    rig = street_rig(0, args.cameras, width, height,
                     LidarSpec(beams=64, lower_deg=-24.0, upper_deg=4.0, azimuth_step_deg=0.192))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model or make_imported_bundle(work, 256, 512)
        results = {mode: run(model, rig, mode == "on", args.seconds, work) for mode in ("off", "on")}
    rclpy.try_shutdown()
    for mode, r in results.items():
        print(f"fusion {mode}: mask p50 {r['p50']:.1f} ms, p90 {r['p90']:.1f} ms, {r['masks']} of {r['sent']} masks, "
              f"{r['clouds_out']} of {r['clouds_in']} clouds labelled")
    off, on = results["off"], results["on"]
    if args.update_doc:
        table = ["| fusion | mask latency p50 | p90 | masks out | clouds labelled |", "|---|---|---|---|---|"]
        table += [f"| {m} | {r['p50']:.1f} ms | {r['p90']:.1f} ms | {r['masks']} / {r['sent']} | "
                  f"{r['clouds_out']} / {r['clouds_in']} |" for m, r in results.items()]
        update_doc(args.update_doc, "\n".join(table),
                   f"Measured on {machine_description()}: {args.cameras} cameras at {width}x{height} @ 10 Hz, "
                   f"{args.seconds:.0f} s each, a 117k-point cloud @ 10 Hz when on "
                   f"(`python benchmarks/fusion_node.py --update-doc docs/PERFORMANCE.md`).", marker="fusion-node")
    print(f"RESULT off_p50_ms={off['p50']:.1f} on_p50_ms={on['p50']:.1f} off_masks={off['masks']} "
          f"on_masks={on['masks']} clouds_out={on['clouds_out']}")


if __name__ == "__main__":
    main()
