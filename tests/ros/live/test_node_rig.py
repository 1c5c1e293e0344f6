"""One real ``segmentation_node`` process serving a rig of cameras (``cameras`` parameter) over DDS.

Each camera is a Probe in the camera's namespace: it publishes ``/<camera>/image`` (the node's
``camera_image_topic`` is set to match) and records ``/<camera>/segmentation/*``, exactly the
topics one node per camera in namespace ``<camera>`` would use.
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` (ROS 2 Jazzy wheels) "
                                            "or a sourced ROS 2")

from cityseg.benchmarking.ros_probe import NodeProcess, Probe, wait_until  # noqa: E402
from cityseg.benchmarking.ros_probe import diagnostic_totals as totals
from cityseg.ros.core.images import encode_rgb  # noqa: E402
from cityseg.ros.core.messages import CameraInfoValues, RosbagsMessages  # noqa: E402
from cityseg.ros.core.processor import FrameProcessor, ProcessorConfig  # noqa: E402

from support import Lifecycle, painted_scene  # noqa: E402

SIZES = {"front": (256, 512), "left": (128, 256), "rear": (192, 384)}
"""Camera -> (height, width): three resolutions, one node."""


def start_rig(graph, bundle, cameras, **params) -> NodeProcess:
    values = {"model": str(bundle.path), "backend": "onnxruntime", "id_space": "trainid",
              "cameras": "[" + ",".join(cameras) + "]", "camera_image_topic": "/{camera}/image",
              "diagnostics_period": 0.25, "log_period": 0.0, "batch_wait_ms": 10.0, **params}
    node = NodeProcess("/rig", values, env=graph)
    assert node.wait_for_output("segmenting ", 30.0), node.output
    return node


def probes(cameras, **kw) -> dict[str, Probe]:
    return {c: Probe(f"/{c}", name=f"probe_{c}", status=f"/rig/segmentation: {c}", **kw) for c in cameras}


def frame_of(probe: Probe, rgb, index: int, rate_hz: float, camera_offset_ns: int = 0):
    stamp = 1_700_000_000 * 10**9 + round(index * 1e9 / rate_hz) + camera_offset_ns
    return probe.msgs.image(probe.msgs.header(stamp // 10**9, stamp % 10**9, probe.fqn.split("/")[1]),
                            encode_rgb(rgb, "rgb8"))


def stream(rig: dict[str, Probe], scenes: dict, count: int, rate_hz: float, skip=lambda camera, i: False) -> dict:
    """Every camera publishes ``count`` frames at ``rate_hz``, the cameras a few ms apart, as a rig does."""
    for camera, probe in rig.items():  # a driver publishes its CameraInfo before the first frame, too
        msg = frame_of(probe, scenes[camera], 0, rate_hz)
        probe.info_pub.publish(probe.msgs.camera_info(msg.header, CameraInfoValues.pinhole(*scenes[camera].shape[:2])))
    time.sleep(0.3)
    start, sent = time.monotonic(), dict.fromkeys(rig, 0)
    for i in range(count):
        time.sleep(max(0.0, start + i / rate_hz - time.monotonic()))
        for k, (camera, probe) in enumerate(rig.items()):
            if not skip(camera, i):
                msg = frame_of(probe, scenes[camera], i, rate_hz, k * 1000)
                info = CameraInfoValues.pinhole(*scenes[camera].shape[:2])
                probe.publish(msg, probe.msgs.camera_info(msg.header, info))
                sent[camera] += 1
    return sent


def stop(node: NodeProcess, sig=signal.SIGINT) -> str:
    code, elapsed = node.stop(sig)
    assert code == 0 and elapsed < 5.0 and "Traceback" not in node.output, node.output
    return node.output


def test_three_cameras_of_three_sizes_each_get_every_output_of_their_own_frames(graph, bundle):
    node = start_rig(graph, bundle, list(SIZES))
    rig = probes(SIZES, keep=("mask", "color_mask", "overlay"))
    try:
        assert all(p.wait_connected() for p in rig.values()), node.output
        scenes = {c: painted_scene(*size, space_name="trainid", seed=i)[0] for i, (c, size) in enumerate(SIZES.items())}
        sent = stream(rig, scenes, 15, 10.0)
        reference = FrameProcessor.from_bundle(bundle, RosbagsMessages(), ProcessorConfig(id_space="trainid"),
                                               "onnxruntime")
        for camera, probe in rig.items():
            diag = probe.wait_settled(sent[camera])
            t = totals(diag)
            assert t["received"] == sent[camera] and t["processed"] + t["dropped"] == t["received"], (camera, t)
            assert t["processed"] >= sent[camera] // 2
            for suffix in ("mask", "color_mask", "overlay", "camera_info"):
                arrived = probe.record.outputs[suffix]
                assert len(arrived) == t["processed"], (camera, suffix)
                assert {r.stamp for r in arrived} <= set(probe.record.published)  # its own frames only
                assert {r.frame_id for r in arrived} == {camera}
            assert {r.size for r in probe.record.outputs["mask"]} == {SIZES[camera]}
            # byte-identical to the single-camera path (the FrameProcessor a one-camera node runs)
            alone = reference.process(frame_of(probe, scenes[camera], 0, 10.0)).messages
            for suffix in ("mask", "color_mask", "overlay"):
                got = np.frombuffer(bytes(probe.record.last_message[suffix].data), np.uint8)
                np.testing.assert_array_equal(got, np.asarray(alone[suffix].data).reshape(-1), err_msg=camera)
        batch = next(s for s in rig["front"].record.diagnostics)  # the per-camera statuses exist
        assert "lifecycle state" in batch
    finally:
        for probe in rig.values():
            probe.close()
        stop(node)


def test_a_silent_camera_and_a_camera_sending_malformed_frames_affect_no_other(graph, bundle):
    node = start_rig(graph, bundle, ["front", "left", "rear"])
    rig = probes(["front", "left", "rear"])
    try:
        assert all(p.wait_connected() for p in rig.values()), node.output
        scenes = {c: painted_scene(128, 256, space_name="trainid", seed=2)[0] for c in rig}
        bad = frame_of(rig["left"], scenes["left"], 0, 10.0)
        bad.encoding = "float64"
        for _ in range(3):
            rig["left"].image_pub.publish(bad)  # malformed, every one
            time.sleep(0.05)
        sent = stream(rig, scenes, 12, 10.0, skip=lambda camera, i: camera != "front")  # rear silent
        # every frame is sent: what has not arrived in 2 s never will, and waiting longer would let the
        # node's 5 s stats window run empty (its status then says 'no images', for any camera)
        diag = rig["front"].wait_settled(sent["front"], timeout=2.0)
        front = totals(diag)
        # best effort: a frame Fast DDS loses on a starved CPU is not the node's (nor the other cameras') doing
        assert sent["front"] == 12 and 12 >= front["received"] >= 10, front
        assert front["processed"] + front["dropped"] == front["received"] and front["failed"] == 0, front
        assert diag["level"] == "0" or (front["received"] < 12 and "never arrived" in diag["message"]), diag
        left = rig["left"].last_diagnostics()
        assert 3 >= totals(left)["failed"] == totals(left)["received"] >= 1, left
        assert "float64" in left["message"] and left["level"] == "1"
        assert wait_until(lambda: "no images" in rig["rear"].last_diagnostics().get("message", ""), 10.0)
        assert rig["rear"].last_diagnostics()["level"] == "1"
        assert "float64" in node.output and "camera left" in node.output
    finally:
        for probe in rig.values():
            probe.close()
        stop(node, signal.SIGTERM)


def test_overload_keeps_the_latest_frame_of_each_camera_round_robin(graph, bundle):
    # one frame per batch, at most 6 batches/s, two cameras at 30 Hz: five times too slow
    node = start_rig(graph, bundle, ["front", "left"], max_batch=1, max_rate_hz=6.0)
    rig = probes(["front", "left"])
    try:
        assert all(p.wait_connected() for p in rig.values()), node.output
        scenes = {c: painted_scene(512, 1024, space_name="trainid", seed=4)[0] for c in rig}
        sent = stream(rig, scenes, 60, 30.0)
        processed = {}
        for camera, probe in rig.items():
            t = totals(probe.wait_settled(int(0.9 * sent[camera])))
            # best effort on a starved CPU may lose a few frames in DDS: the node accounts for what it got
            assert t["received"] >= 0.9 * sent[camera] and t["processed"] + t["dropped"] == t["received"], t
            assert t["dropped"] > t["received"] // 2 and probe.count("mask") == t["processed"]
            stamps = [r.stamp for r in probe.record.outputs["mask"]]
            assert stamps == sorted(stamps)  # always that camera's newest frame
            processed[camera] = t["processed"]
        assert min(processed.values()) >= 4 and abs(processed["front"] - processed["left"]) <= 2, processed
    finally:
        for probe in rig.values():
            probe.close()
        stop(node)


def test_one_lifecycle_for_the_whole_rig(graph, bundle):
    pytest.importorskip("lifecycle_msgs.srv", reason="needs lifecycle_msgs (ros-jazzy-lifecycle-msgs)")
    from lifecycle_msgs.msg import Transition

    values = {"model": str(bundle.path), "backend": "onnxruntime", "cameras": "[front,left]",
              "camera_image_topic": "/{camera}/image", "autostart": False, "diagnostics_period": 0.25}
    node = NodeProcess("/rig", values, env=graph)
    assert node.wait_for_output("waiting for a lifecycle manager", 30.0), node.output
    rig = probes(["front", "left"], outputs=frozenset({"mask"}))
    try:
        lifecycle = Lifecycle(rig["front"], "/rig/segmentation")
        assert lifecycle.set(Transition.TRANSITION_CONFIGURE) and lifecycle.set(Transition.TRANSITION_ACTIVATE)
        assert all(p.wait_connected() for p in rig.values()), node.output
        scenes = {c: painted_scene(128, 256, space_name="trainid", seed=5)[0] for c in rig}
        sent = stream(rig, scenes, 5, 10.0)
        assert all(wait_until(lambda p=p: p.count("mask") >= 3, 10.0) for p in rig.values())
        assert lifecycle.set(Transition.TRANSITION_DEACTIVATE) and lifecycle.state() == "inactive"
        counts = {c: p.count("mask") for c, p in rig.items()}
        for probe in rig.values():  # no camera is subscribed any more: nothing comes out
            assert wait_until(lambda p=probe: p.image_pub.get_subscription_count() == 0, 10.0)
        time.sleep(0.3)
        assert {c: p.count("mask") for c, p in rig.items()} == counts and sent["front"] == 5
        assert wait_until(lambda: "inactive" in rig["left"].last_diagnostics().get("message", ""), 10.0)
    finally:
        for probe in rig.values():
            probe.close()
        stop(node)
