"""The real ``segmentation_node`` with ``points_topic`` over DDS: a rig of 3 cameras and a LiDAR
cloud topic at 10 Hz; one ~/points per cloud, with the cloud's header and the labels the bag tool
gives for the same inputs. With ``grid_frame`` alone: the camera-only grid, one per rig frame, as
the bag tool builds it; a camera without a transform said once and counted in /diagnostics."""

from __future__ import annotations

import array
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` (ROS 2 Jazzy wheels) "
                                            "or a sourced ROS 2")

from cityseg.benchmarking.ros_probe import NodeProcess, Probe, wait_until  # noqa: E402
from cityseg.fusion.cloud import CloudLayout  # noqa: E402
from cityseg.fusion.config import FusionConfig  # noqa: E402
from cityseg.labels import class_space  # noqa: E402
from cityseg.ros.bag.lidar_bag import LIDAR_FRAME, street_rig, write_lidar_rig_bag  # noqa: E402
from cityseg.ros.bag.replay import replay_bag  # noqa: E402
from cityseg.ros.core.images import encode_rgb  # noqa: E402
from cityseg.ros.core.processor import ProcessorConfig  # noqa: E402
from cityseg.synthetic.lidar import scan, velodyne_cloud  # noqa: E402
from cityseg.synthetic.scene3d import render_labels  # noqa: E402

T0, FPS, FRAMES, CLOUD_OFFSET = 1_700_000_000 * 10**9, 10.0, 8, 3_000_000


def _extrinsics(rig, path, skip: str = ""):
    """The rig's static transforms as an extrinsics_file (without the camera ``skip``)."""
    lines = ["transforms:"]
    for parent, child, t in rig.transforms():
        if child != skip:
            lines.append(f"  - {{parent: {parent}, child: {child}, translation: {[float(v) for v in t.translation]}, "
                         f"rotation: {list(t.quaternion())}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _start_rig_node(rig, bundle, graph, **fusion):
    """The installed node on the rig's cameras with these fusion parameters, and a mask probe per camera."""
    names = [c.name for c in rig.cameras]
    values = {"model": str(bundle.path), "backend": "onnxruntime", "id_space": "labelid",
              "cameras": "[" + ",".join(names) + "]", "camera_image_topic": "/{camera}/image_raw",
              "diagnostics_period": 0.25, "log_period": 0.0, "batch_wait_ms": 60.0, **fusion}
    node = NodeProcess("/rig", values, env=graph)
    assert node.wait_for_output("segmenting ", 30.0), node.output
    probes = {c: Probe(f"/{c}", name=f"probe_{c}", outputs=frozenset({"mask"}), image_topic="image_raw",
                       status="/rig/segmentation: fusion", live_status=f"/rig/segmentation: {c}") for c in names}
    return node, probes


def _publish_rig(rig, probes, each_frame=lambda i, stamp: None):
    """Every camera's CameraInfo, then FRAMES rendered frames per camera at FPS (``each_frame`` after each)."""
    palette = class_space("labelid").palette
    images = {c.name: palette[render_labels(rig.scene, c.model, c.pose)] for c in rig.cameras}
    for c in rig.cameras:  # a driver publishes its CameraInfo before the first frame
        probe = probes[c.name]
        probe.info_pub.publish(probe.msgs.camera_info(probe.msgs.header(T0 // 10**9, 0, c.name), c.info))
    time.sleep(0.3)
    start = time.monotonic()
    for i in range(FRAMES):
        time.sleep(max(0.0, start + i / FPS - time.monotonic()))
        stamp = T0 + round(i * 1e9 / FPS)
        for c in rig.cameras:
            probe = probes[c.name]
            header = probe.msgs.header(stamp // 10**9, stamp % 10**9, c.name)
            probe.publish(probe.msgs.image(header, encode_rgb(images[c.name], "rgb8")),
                          probe.msgs.camera_info(header, c.info))
        each_frame(i, stamp)


def _bag_messages(out, topic):
    from rosbags.rosbag2 import Reader

    from cityseg.ros.core.messages import RosbagsMessages

    store = RosbagsMessages().typestore
    with Reader(out) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in reader.messages(connections=conns)]


def _stop(node, probes):
    for p in probes.values():
        p.close()
    code, _ = node.stop()
    assert code == 0 and "Traceback" not in node.output, node.output


def _labels(msg):
    layout = CloudLayout.from_message(msg)
    rows = np.asarray(msg.data, np.uint8).reshape(-1, layout.point_step)
    off = {f.name: f.offset for f in layout.fields}
    return rows[:, off["label"]], rows[:, off["camera"]]


def _bag_labels(rig, tmp_path, bundle, extrinsics):
    path = tmp_path / "rig"
    write_lidar_rig_bag(path, rig, frames=FRAMES, layout="velodyne", start_ns=T0, cloud_offset_ns=CLOUD_OFFSET)
    out = tmp_path / "out"
    replay_bag(path, out, bundle, config=ProcessorConfig(id_space="labelid"), progress=False,
               fusion=FusionConfig("/lidar/points", extrinsics))
    return {(m.header.stamp.sec, m.header.stamp.nanosec): _labels(m)
            for m in _bag_messages(out, "/lidar/segmentation/points")}


def test_rig_node_labels_every_cloud_like_the_bag_tool(graph, labelid_bundle, tmp_path):
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import PointCloud2, PointField

    rig = street_rig(seed=3, cameras=3, width=256, height=128)
    extrinsics = _extrinsics(rig, tmp_path / "rig.yaml")
    node, probes = _start_rig_node(rig, labelid_bundle, graph, points_topic="/lidar/points",
                                   extrinsics_file=str(extrinsics), grid_frame="base_link", grid_resolution=0.5,
                                   grid_cells=80)
    lidar = probes[rig.cameras[0].name]
    cloud_pub = lidar.node.create_publisher(PointCloud2, "/lidar/points", 5)
    received = []
    lidar.node.create_subscription(PointCloud2, "/rig/segmentation/points", received.append, 10)
    grids = []
    lidar.node.create_subscription(OccupancyGrid, "/rig/segmentation/grid", grids.append, 10)
    try:
        assert wait_until(lambda: cloud_pub.get_subscription_count() > 0
                          and all(p.wait_connected() for p in probes.values()), 20.0), node.output
        layout, data, _ = velodyne_cloud(scan(rig.scene, rig.lidar_pose, rig.spec))
        payload = array.array("B")
        payload.frombytes(data)
        fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in layout.fields]

        def cloud_after(i, stamp):
            if i < FRAMES - 1:  # the last cloud would wait for masks after it
                cs = stamp + CLOUD_OFFSET
                header = lidar.msgs.header(cs // 10**9, cs % 10**9, LIDAR_FRAME)
                cloud_pub.publish(PointCloud2(header=header, height=layout.height, width=layout.width, fields=fields,
                                              is_bigendian=False, point_step=layout.point_step,
                                              row_step=layout.row_step, data=payload, is_dense=False))

        _publish_rig(rig, probes, cloud_after)
        assert wait_until(lambda: len(received) >= FRAMES - 1, 20.0), node.output
        time.sleep(0.3)
        assert len(received) == FRAMES - 1
        expected = _bag_labels(rig, tmp_path, labelid_bundle, extrinsics)
        for msg in received:
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            assert msg.header.frame_id == LIDAR_FRAME and key in expected
            label, camera = _labels(msg)
            assert (msg.height, msg.width) == (layout.height, layout.width)
            np.testing.assert_array_equal(label, expected[key][0])
            np.testing.assert_array_equal(camera, expected[key][1])
            assert (label != 255).sum() > 1000 and set(np.unique(camera)) == {0, 1, 2, 255}
        assert all(len(p.record.outputs["mask"]) == FRAMES for p in probes.values())  # masks still out at 10 Hz
        assert wait_until(lambda: len(grids) == FRAMES - 1, 5.0)
        grid = grids[0]
        cost = np.asarray(grid.data, np.int8)
        assert (grid.header.frame_id, grid.info.width, grid.info.height) == ("base_link", 80, 80)
        assert grid.info.origin.position.x == -20.0 and (cost == 0).sum() > 50 and (cost == 100).sum() > 20
        assert wait_until(lambda: lidar.record.diagnostics and lidar.record.diagnostics[-1].get("clouds labelled")
                          == str(FRAMES - 1), 5.0), lidar.record.diagnostics[-3:]
        assert lidar.record.diagnostics[-1]["queue depth"] == "64"  # a 64x128 model's frames: the most
    finally:
        _stop(node, probes)


def test_bad_extrinsics_file_stops_the_node_naming_file_and_entry(graph, labelid_bundle, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {parent: base_link, child: lidar, translation: [0, 0, 1.9], rotation: [0, 0, 0.5, 0.5]}\n")
    values = {"model": str(labelid_bundle.path), "backend": "onnxruntime", "log_period": 0.0,
              "points_topic": "/lidar/points", "extrinsics_file": str(bad)}
    node = NodeProcess("/bad", values, env=graph)
    assert node.wait(30.0) == 2, node.output
    assert f"{bad} entry 0 (base_link -> lidar): rotation" in node.output and "Traceback" not in node.output


def test_rig_node_camera_only_grid_like_the_bag_tool_and_a_missing_transform_in_diagnostics(
        graph, labelid_bundle, tmp_path):
    """grid_frame without points_topic: one ~/grid and ~/grid/labels per rig frame from the masks'
    ground classes, equal to `cityseg bag`'s for the same inputs; a camera the extrinsics lack is said
    once through the node's logger and counted in /diagnostics, the others serve on."""
    from nav_msgs.msg import OccupancyGrid
    from sensor_msgs.msg import Image

    from cityseg.fusion.grid import GridSpec

    rig = street_rig(seed=3, cameras=3, width=256, height=128)
    missing = rig.cameras[2].name
    extrinsics = _extrinsics(rig, tmp_path / "rig.yaml", skip=missing)
    node, probes = _start_rig_node(rig, labelid_bundle, graph, extrinsics_file=str(extrinsics),
                                   grid_frame="base_link", grid_resolution=0.5, grid_cells=80, grid_range=20.0)
    first = probes[rig.cameras[0].name]
    grids, grid_labels = [], []
    first.node.create_subscription(OccupancyGrid, "/rig/segmentation/grid", grids.append, 10)
    first.node.create_subscription(Image, "/rig/segmentation/grid/labels", grid_labels.append, 10)
    try:
        assert wait_until(lambda: all(p.wait_connected() for p in probes.values()), 20.0), node.output
        assert node.process.poll() is None, node.output
        _publish_rig(rig, probes)
        assert wait_until(lambda: len(grids) >= FRAMES and len(grid_labels) >= FRAMES, 20.0), node.output
        time.sleep(0.3)
        assert len(grids) == len(grid_labels) == FRAMES
        stamps = [(g.header.stamp.sec, g.header.stamp.nanosec) for g in grids]
        assert stamps == [((T0 + round(i * 1e9 / FPS)) // 10**9, (T0 + round(i * 1e9 / FPS)) % 10**9)
                          for i in range(FRAMES)]
        path = tmp_path / "rig_bag"
        write_lidar_rig_bag(path, rig, frames=FRAMES, start_ns=T0)
        out = tmp_path / "out"
        spec = GridSpec("base_link", 0.5, 80, 80, -20.0, -20.0)
        summary = replay_bag(path, out, labelid_bundle, config=ProcessorConfig(id_space="labelid"), progress=False,
                             fusion=FusionConfig("", extrinsics, grid=spec, grid_range_m=20.0))
        assert summary.fusion["no_transform"] == {f"/{missing}/image_raw": FRAMES}
        expected = [np.asarray(m.data, np.uint8) for m in _bag_messages(out, "/segmentation/grid/labels")]
        for msg, want in zip(grid_labels, expected):
            got = np.asarray(msg.data, np.uint8)
            assert msg.encoding == "mono8" and (msg.height, msg.width) == (80, 80)
            np.testing.assert_array_equal(got, want)
            assert (got != 255).sum() > 300
        cost = np.asarray(grids[0].data, np.int8)
        assert (cost == 0).sum() > 100 and set(np.unique(cost)) <= {-1, 0, 20}
        key = f"no transform: {missing}"
        assert wait_until(lambda: first.record.diagnostics and first.record.diagnostics[-1].get(key) == str(FRAMES),
                          5.0), first.record.diagnostics[-3:]
        assert first.record.diagnostics[-1]["grids built"] == str(FRAMES)
        assert first.record.diagnostics[-1]["queue depth"] == "64"
        said = [line for line in node.output.splitlines() if f"{missing}: no transform" in line]
        assert len(said) == 1 and "adds nothing to the grid" in said[0] and "[WARN]" in said[0], node.output
    finally:
        _stop(node, probes)
