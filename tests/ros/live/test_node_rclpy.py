"""The node object inside this process with real rclpy (the ``ros`` extra, or a sourced ROS 2).

tests/ros/live/test_node_graph.py runs the node as its own process; these tests reach inside it.
LabelInfo is checked where vision_msgs is installed (docker/ros-ci.sh); the PyPI wheels lack it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from cityseg.ros.core.images import encode_rgb

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip("rclpy", reason="needs rclpy: `pip install -e .[ros]` or a sourced ROS 2")


@pytest.fixture
def ros():
    rclpy.init()
    yield
    rclpy.try_shutdown()


def overrides(bundle, **extra):
    from rclpy.parameter import Parameter

    values = {"model": str(bundle.path), "backend": "onnxruntime", "id_space": "trainid",
              "qos_reliability": "reliable", **extra}
    return [Parameter(name, value=value) for name, value in values.items()]


def spin_until(executor, condition, timeout=20.0, each=None) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        if each:
            each()
        executor.spin_once(timeout_sec=0.1)
    return condition()


def test_node_segments_images_and_survives_bad_ones(ros, bundle, scene):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from cityseg.ros.core.messages import CameraInfoValues, RclpyMessages
    from cityseg.ros.live.node import SegmentationNode

    segmentation = SegmentationNode(namespace="/test_cam", parameter_overrides=overrides(bundle))
    helper = rclpy.create_node("cityseg_test_helper")
    executor = SingleThreadedExecutor()
    executor.add_node(segmentation)
    executor.add_node(helper)
    masks, infos, labels = [], [], []
    helper.create_subscription(Image, "/test_cam/segmentation/mask", masks.append, 10)
    helper.create_subscription(CameraInfo, "/test_cam/segmentation/camera_info", infos.append, 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    label_info = RclpyMessages().LabelInfo  # None without vision_msgs
    if label_info is not None:
        helper.create_subscription(label_info, "/test_cam/segmentation/label_info", labels.append, latched)
    image_pub = helper.create_publisher(Image, "/test_cam/image", 10)
    info_pub = helper.create_publisher(CameraInfo, "/test_cam/camera_info", 10)
    try:
        m = RclpyMessages()
        rgb, mask = scene
        header = m.header(7, 8, "cam")
        bad = m.image(header, encode_rgb(rgb, "rgb8"))
        bad.step = 10  # < width * 3: must be refused, not crash the node
        image_pub.publish(bad)
        assert spin_until(executor, lambda: segmentation.cameras[""].stats.snapshot().totals["failed"] >= 1,
                          each=lambda: image_pub.publish(bad))
        good = m.image(header, encode_rgb(rgb, "rgb8"))

        def publish_pair():
            info_pub.publish(m.camera_info(header, CameraInfoValues.pinhole(*rgb.shape[:2])))
            image_pub.publish(good)

        assert spin_until(executor, lambda: masks and infos, each=publish_pair)
        out = masks[-1]
        assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (7, 8, "cam")
        assert (out.height, out.width, out.encoding) == (128, 256, "mono8")
        np.testing.assert_array_equal(np.frombuffer(bytes(out.data), np.uint8).reshape(128, 256), mask)
        assert infos[-1].header.stamp.sec == 7 and infos[-1].width == 256
        if label_info is not None:
            assert spin_until(executor, lambda: labels)
            assert labels[0].class_map[0].class_name == "road"
        else:
            assert "label_info" not in segmentation.cameras[""].publishers
    finally:
        executor.shutdown()
        segmentation.close()
        helper.destroy_node()


def test_bad_parameters_raise_a_cityseg_error(ros, bundle):
    from cityseg.config import ConfigError
    from cityseg.ros.live.node import SegmentationNode

    with pytest.raises(ConfigError, match="qos_depth must be >= 1"):
        SegmentationNode(parameter_overrides=overrides(bundle, qos_depth=0))


def test_main_exits_with_code_2_on_bad_parameters(bundle, capsys):
    from cityseg.ros.live.main import main

    code = main(["segmentation_node", "--ros-args", "-p", f"model:={bundle.path}", "-p", "overlay_alpha:=3.0"])
    assert code == 2
    assert "overlay_alpha must be within [0, 1]" in capsys.readouterr().err


def test_outputs_are_lifecycle_publishers_rclpy_enables_on_activate(ros, bundle):
    """The node is an rclpy LifecycleNode subclass: its outputs are lifecycle publishers that rclpy's
    own on_activate / on_deactivate switch, created in on_configure and gone after cleanup."""
    from rclpy.lifecycle import LifecyclePublisher, TransitionCallbackReturn

    from cityseg.ros.live.node import SegmentationNode

    segmentation = SegmentationNode(namespace="/cycle", parameter_overrides=overrides(bundle, autostart=False))
    try:
        baseline = len(list(segmentation.publishers))  # rclpy's own (parameter events, rosout)
        assert segmentation.state == "unconfigured" and not segmentation.cameras
        assert segmentation.trigger_configure() == TransitionCallbackReturn.SUCCESS
        outputs = list(segmentation.cameras[""].publishers.values())
        assert outputs and all(isinstance(p, LifecyclePublisher) for p in outputs)
        assert segmentation.state == "inactive" and not any(p.is_activated for p in outputs)
        assert segmentation.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert segmentation.state == "active" and all(p.is_activated for p in outputs)
        assert segmentation.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert segmentation.state == "inactive" and not any(p.is_activated for p in outputs)
        assert segmentation.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert segmentation.state == "unconfigured"
        assert len(list(segmentation.publishers)) == baseline  # outputs and /diagnostics destroyed
        assert segmentation.trigger_configure() == TransitionCallbackReturn.SUCCESS  # and again
        assert segmentation.state == "inactive"
    finally:
        segmentation.close()
