"""The node's transforms from tf2 (``tf2_ros``), when it is importable and no ``extrinsics_file``
is given: a :class:`tf2_ros.Buffer` filled by a :class:`tf2_ros.TransformListener` on the node
(/tf and /tf_static), looked up at each sensor's header stamp, through ``fixed_frame`` when one
is given (``lookup_transform_full``: ego motion between the two stamps compensated).

The lookups run on the fusion thread, never on the executor, so the short wait for a transform
not yet received does not hold up a callback.
"""

from __future__ import annotations

import importlib.util

from cityseg.errors import InputError
from cityseg.fusion.extrinsics import Transform

TF_TIMEOUT_S = 0.05
"""How long one lookup waits for a transform not in the buffer yet."""


def tf2_available() -> bool:
    """Whether tf2_ros can be imported (ros-$ROS_DISTRO-tf2-ros)."""
    return importlib.util.find_spec("tf2_ros") is not None


def transform_of(msg) -> Transform:
    """A geometry_msgs/TransformStamped (or Transform) as a Transform (child -> parent)."""
    t = getattr(msg, "transform", msg)
    v, r = t.translation, t.rotation
    return Transform.from_quaternion((v.x, v.y, v.z), (r.x, r.y, r.z, r.w))


class Tf2Lookup:
    """A :data:`cityseg.fusion.runner.Lookup` over tf2: (target, target stamp ns, source,
    source stamp ns) -> Transform; InputError (the tf2 message) when tf2 cannot give it."""

    def __init__(self, node, fixed_frame: str = "", timeout_s: float = TF_TIMEOUT_S):
        import tf2_ros
        from rclpy.duration import Duration

        self.tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self.fixed_frame = fixed_frame
        self.timeout = Duration(seconds=timeout_s)

    def __call__(self, target: str, target_ns: int, source: str, source_ns: int) -> Transform:
        from rclpy.time import Time

        try:
            if self.fixed_frame:
                msg = self.buffer.lookup_transform_full(target, Time(nanoseconds=target_ns), source,
                                                        Time(nanoseconds=source_ns), self.fixed_frame, self.timeout)
            else:
                msg = self.buffer.lookup_transform(target, source, Time(nanoseconds=source_ns), self.timeout)
        except self.tf2.TransformException as exc:
            via = f" through {self.fixed_frame!r}" if self.fixed_frame else ""
            raise InputError(f"no tf2 transform from {source!r} to {target!r}{via}: {exc}") from None
        return transform_of(msg)

    def close(self) -> None:
        """Stop listening (the node's /tf subscriptions go)."""
        self.listener.unregister()
