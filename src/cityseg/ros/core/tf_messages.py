"""The transforms of the fusion as messages: tf2_msgs/TFMessage (``/tf_static``, ``/tf``) read
into a :class:`cityseg.fusion.extrinsics.FrameTree` / ``TransformBuffer``, and written (rosbags'
classes, for recorded rigs). PointCloud2 and OccupancyGrid are built by the message factories
(:mod:`cityseg.ros.core.messages`); the geometry itself is :mod:`cityseg.fusion` (ROS-free).
"""

from __future__ import annotations

from collections.abc import Iterable

from cityseg.fusion.extrinsics import FrameTree, Transform, TransformBuffer, check_quaternion
from cityseg.ros.core.messages import stamp_ns

TF_TYPE = "tf2_msgs/msg/TFMessage"
TF_STATIC_TOPIC = "/tf_static"
TF_TOPIC = "/tf"


def tf_message(typestore, header_of, transforms: Iterable[tuple[str, str, Transform]]):
    """A TFMessage of (parent, child, transform); ``header_of(frame_id)`` makes each header."""
    t = typestore.types
    out = []
    for parent, child, transform in transforms:
        x, y, z, w = transform.quaternion()
        tx, ty, tz = (float(v) for v in transform.translation)
        out.append(t["geometry_msgs/msg/TransformStamped"](
            header=header_of(parent), child_frame_id=child,
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](x=tx, y=ty, z=tz),
                rotation=t["geometry_msgs/msg/Quaternion"](x=x, y=y, z=z, w=w))))
    return t[TF_TYPE](transforms=out)


def _transforms_of(msg, where: str):
    """(parent, child, header stamp ns, Transform, entry name) of each transform of a TFMessage; a
    non-rotation is refused, naming ``where``."""
    for i, ts in enumerate(msg.transforms):
        r, v = ts.transform.rotation, ts.transform.translation
        parent, child = str(ts.header.frame_id).lstrip("/"), str(ts.child_frame_id).lstrip("/")
        entry = f"{where} transform {i} ({parent} -> {child})"
        check_quaternion((r.x, r.y, r.z, r.w), entry)
        yield parent, child, stamp_ns(ts.header.stamp), Transform.from_quaternion((v.x, v.y, v.z),
                                                                                 (r.x, r.y, r.z, r.w)), entry


def add_tf_message(tree: FrameTree, msg, where: str) -> None:
    """Add every transform of a /tf_static TFMessage to ``tree``."""
    for parent, child, _, transform, entry in _transforms_of(msg, where):
        tree.add(parent, child, transform, entry)


def add_tf_samples(tree: TransformBuffer, msg, where: str) -> None:
    """Add every transform of a /tf TFMessage to ``tree`` as a sample at its header stamp."""
    for parent, child, stamp, transform, entry in _transforms_of(msg, where):
        tree.add_sample(parent, child, stamp, transform, entry)


def add_tf(tree, kind: str, msg, where: str) -> None:
    """A /tf_static ('static') or /tf ('dynamic') message into the transform buffer."""
    (add_tf_message if kind == "static" else add_tf_samples)(tree, msg, where)
