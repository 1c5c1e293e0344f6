"""The fusion's messages as rosbags' ROS 2 classes: PointCloud2 in and out, tf2_msgs/TFMessage
(``/tf_static``) in and out, nav_msgs/OccupancyGrid and the class-id grid image out. The geometry
itself is :mod:`cityseg.fusion` (ROS-free); this module only moves its arrays into messages.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from cityseg.fusion.cloud import CloudLayout
from cityseg.fusion.extrinsics import FrameTree, Transform, check_quaternion
from cityseg.fusion.grid import SemanticGrid

POINT_CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
TF_TYPE = "tf2_msgs/msg/TFMessage"
OCCUPANCY_GRID_TYPE = "nav_msgs/msg/OccupancyGrid"
TF_STATIC_TOPIC = "/tf_static"


def cloud_of(msg) -> tuple[CloudLayout, np.ndarray]:
    """(layout, data bytes as uint8) of a PointCloud2 message."""
    return CloudLayout.from_message(msg), np.asarray(msg.data, np.uint8)


def point_cloud(typestore, header, layout: CloudLayout, data: bytes):
    """A rosbags PointCloud2 of ``layout`` and ``data``."""
    t = typestore.types
    fields = [t["sensor_msgs/msg/PointField"](name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
              for f in layout.fields]
    return t[POINT_CLOUD_TYPE](header=header, height=layout.height, width=layout.width, fields=fields,
                               is_bigendian=layout.is_bigendian, point_step=layout.point_step,
                               row_step=layout.row_step, data=np.frombuffer(data, np.uint8),
                               is_dense=layout.is_dense)


def occupancy_grid(typestore, header, grid: SemanticGrid):
    """The cost grid as nav_msgs/OccupancyGrid (origin at cell (0, 0)'s corner, no rotation)."""
    t = typestore.types
    spec = grid.spec
    origin = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=spec.origin_x, y=spec.origin_y, z=0.0),
        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    info = t["nav_msgs/msg/MapMetaData"](map_load_time=header.stamp, resolution=float(spec.resolution),
                                         width=spec.width, height=spec.height, origin=origin)
    return t[OCCUPANCY_GRID_TYPE](header=header, info=info, data=grid.cost.ravel().astype(np.int8))


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


def add_tf_message(tree: FrameTree, msg, where: str) -> None:
    """Add every transform of a TFMessage to ``tree`` (a non-rotation is refused, naming ``where``)."""
    for i, ts in enumerate(msg.transforms):
        r, v = ts.transform.rotation, ts.transform.translation
        parent, child = str(ts.header.frame_id).lstrip("/"), str(ts.child_frame_id).lstrip("/")
        entry = f"{where} transform {i} ({parent} -> {child})"
        check_quaternion((r.x, r.y, r.z, r.w), entry)
        tree.add(parent, child, Transform.from_quaternion((v.x, v.y, v.z), (r.x, r.y, r.z, r.w)), entry)
