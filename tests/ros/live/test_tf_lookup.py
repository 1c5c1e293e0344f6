"""The node's tf2 path: lookups at each sensor's stamp (through a fixed frame) give what the bag
tool's TransformBuffer gives for the same transforms; without tf2_ros and an extrinsics_file the
node refuses at configure, naming both fixes."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.errors import CitysegError, InputError
from cityseg.fusion.extrinsics import Transform, TransformBuffer
from cityseg.ros.core.messages import RosbagsMessages
from cityseg.ros.live import tf_lookup
from cityseg.ros.live.tf_lookup import transform_of


def _yaw(deg: float, x: float = 0.0) -> Transform:
    h = np.radians(deg) / 2
    return Transform.from_quaternion((x, 0.0, 0.0), (0.0, 0.0, np.sin(h), np.cos(h)))


SAMPLES = [(k * 10_000_000, _yaw(2.0 * k, x=0.15 * k)) for k in range(11)]
STATIC = [("base_link", "lidar", Transform(np.eye(3), np.array([0.0, 0.0, 1.9]))),
          ("base_link", "cam", Transform.from_quaternion((1.0, 0.2, 1.5), (-0.5, 0.5, -0.5, 0.5)))]


def test_transform_stamped_becomes_a_transform():
    store = RosbagsMessages().typestore.types
    t = _yaw(30.0, x=2.0)
    qx, qy, qz, qw = t.quaternion()
    msg = store["geometry_msgs/msg/TransformStamped"](
        header=RosbagsMessages().header(0, 0, "odom"), child_frame_id="base_link",
        transform=store["geometry_msgs/msg/Transform"](
            translation=store["geometry_msgs/msg/Vector3"](x=2.0, y=0.0, z=0.0),
            rotation=store["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)))
    out = transform_of(msg)
    np.testing.assert_allclose(out.rotation, t.rotation, atol=1e-12)
    np.testing.assert_allclose(out.translation, t.translation)


def test_without_tf2_or_an_extrinsics_file_the_node_refuses_naming_both(monkeypatch):
    from cityseg.fusion.config import FusionConfig
    from cityseg.ros.live.fusion import node_lookup

    monkeypatch.setattr(tf_lookup, "tf2_available", lambda: False)
    with pytest.raises(CitysegError, match=r"set extrinsics_file .* or install tf2_ros"):
        node_lookup(None, FusionConfig("/lidar/points"))


def test_tf2_lookups_match_the_bag_buffer_through_a_fixed_frame():
    pytest.importorskip("tf2_ros", reason="needs tf2_ros (ros-$ROS_DISTRO-tf2-ros; not on pip): the node's tf2 "
                                          "path is checked where ROS 2 is installed")
    rclpy = pytest.importorskip("rclpy", reason="needs rclpy")
    from geometry_msgs.msg import TransformStamped
    from rclpy.time import Time

    def stamped(parent, child, stamp_ns, t):
        msg = TransformStamped()
        msg.header.frame_id, msg.child_frame_id = parent, child
        msg.header.stamp = Time(nanoseconds=stamp_ns).to_msg()
        (msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z) = \
            (float(v) for v in t.translation)
        q = t.quaternion()
        (msg.transform.rotation.x, msg.transform.rotation.y, msg.transform.rotation.z,
         msg.transform.rotation.w) = q
        return msg

    context = rclpy.Context()  # its own: other modules' tests may hold the default one
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("tf_lookup_test", context=context)
        tf2 = tf_lookup.Tf2Lookup(node, fixed_frame="odom", timeout_s=0.0)
        plain = tf_lookup.Tf2Lookup(node, timeout_s=0.0)
        buf = TransformBuffer("test")
        for parent, child, t in STATIC:
            buf.add(parent, child, t)
            for lookup in (tf2, plain):
                lookup.buffer.set_transform_static(stamped(parent, child, 0, t), "test")
        for stamp, t in SAMPLES:
            buf.add_sample("odom", "base_link", stamp, t)
            for lookup in (tf2, plain):
                lookup.buffer.set_transform(stamped("odom", "base_link", stamp, t), "test")
        got = tf2("cam", 25_000_000, "lidar", 75_000_000)
        want = buf.lookup_full("cam", 25_000_000, "lidar", 75_000_000, "odom")
        np.testing.assert_allclose(got.rotation, want.rotation, atol=1e-9)
        np.testing.assert_allclose(got.translation, want.translation, atol=1e-9)
        got = plain("odom", 0, "cam", 45_000_000)
        want = buf.lookup("odom", "cam", 45_000_000)
        np.testing.assert_allclose(got.translation, want.translation, atol=1e-9)
        with pytest.raises(InputError, match="no tf2 transform from 'lidar' to 'cam' through 'odom'"):
            tf2("cam", 25_000_000, "lidar", 900_000_000)  # past the samples: tf2 does not extrapolate
        tf2.close()
        plain.close()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
