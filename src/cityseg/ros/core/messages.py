"""Message factories: the one place output messages are built, for rclpy or for rosbags.

:class:`FrameProcessor` never names a message class; it asks a factory. On the vehicle the
factory is :class:`RclpyMessages` (the real ``sensor_msgs`` / ``vision_msgs`` / ``diagnostic_msgs``
classes, imported when it is created); in the bag tool and the tests it is
:class:`RosbagsMessages` (rosbags' ROS 2 Jazzy typestore, which can serialise them to CDR).

Incoming messages are read duck-typed, so ROS 1 messages deserialised by rosbags work too
(their CameraInfo spells the matrices ``D K R P``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from cityseg.errors import InputError
from cityseg.fusion.cloud import CloudLayout
from cityseg.fusion.grid import SemanticGrid
from cityseg.ros.core.cdr import ImageBuffer, compressed_image_bytes
from cityseg.ros.core.images import OutgoingImage, RawImage, raw_image

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
LABEL_INFO_TYPE = "vision_msgs/msg/LabelInfo"
DIAGNOSTIC_ARRAY_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
POINT_CLOUD_TYPE = "sensor_msgs/msg/PointCloud2"
OCCUPANCY_GRID_TYPE = "nav_msgs/msg/OccupancyGrid"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)

VISION_MSGS_DEFINITIONS = {
    # From ros-perception/vision_msgs (ros2 branch); not in rosbags' built-in stores.
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\n"
                                 "float32 threshold\n",
}


def header_fields(msg) -> tuple[int, int, str]:
    """(stamp sec, stamp nanosec, frame_id) of a message's header."""
    header = msg.header
    return int(header.stamp.sec), int(header.stamp.nanosec), str(header.frame_id)


def stamp_ns(stamp) -> int:
    """A builtin_interfaces/Time (a header's ``stamp``) in nanoseconds."""
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


@dataclass(frozen=True)
class CameraInfoValues:
    """The fields of a sensor_msgs/CameraInfo as plain values (ROS 2 spelling)."""

    height: int
    width: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    binning_x: int = 0
    binning_y: int = 0
    roi: tuple[int, int, int, int, bool] = (0, 0, 0, 0, False)
    """(x_offset, y_offset, height, width, do_rectify)."""

    @classmethod
    def from_message(cls, msg) -> CameraInfoValues:
        """Read a CameraInfo message (ROS 2 ``d k r p`` or ROS 1 ``D K R P`` spelling)."""
        def matrix(name: str, size: int | None) -> tuple[float, ...]:
            values = getattr(msg, name, None)
            if values is None:
                values = getattr(msg, name.upper())
            values = tuple(float(v) for v in values)
            if size is not None and len(values) != size:
                raise InputError(f"CameraInfo.{name} has {len(values)} values, expected {size}; "
                                 "fix the camera driver's calibration")
            return values

        roi = msg.roi
        return cls(int(msg.height), int(msg.width), str(msg.distortion_model), matrix("d", None),
                   matrix("k", 9), matrix("r", 9), matrix("p", 12), int(msg.binning_x),
                   int(msg.binning_y), (int(roi.x_offset), int(roi.y_offset), int(roi.height),
                                        int(roi.width), bool(roi.do_rectify)))

    @classmethod
    def pinhole(cls, height: int, width: int, hfov_deg: float = 60.0) -> CameraInfoValues:
        """An ideal pinhole camera (no distortion) with ``hfov_deg`` horizontal field of view."""
        f = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        return cls(height, width, "plumb_bob", (0.0,) * 5, (f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0),
                   (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
                   (f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0))

    def resized(self, image_size: tuple[int, int], output_size: tuple[int, int]) -> CameraInfoValues:
        """This camera info for images resized from ``image_size`` to ``output_size`` ((h, w) each).

        Follows image_proc's resize node: fx, cx (and P's x terms) scale with the width ratio,
        fy, cy with the height ratio; width, height and the ROI scale likewise.
        """
        if tuple(image_size) == tuple(output_size):
            return self
        sy, sx = output_size[0] / image_size[0], output_size[1] / image_size[1]
        k, p = list(self.k), list(self.p)
        for i in (0, 2):
            k[i] *= sx
        for i in (4, 5):
            k[i] *= sy
        for i in (0, 2, 3):
            p[i] *= sx
        for i in (5, 6):
            p[i] *= sy
        x, y, h, w, rect = self.roi
        return CameraInfoValues(round(self.height * sy), round(self.width * sx), self.distortion_model,
                                self.d, tuple(k), self.r, tuple(p), self.binning_x, self.binning_y,
                                (round(x * sx), round(y * sy), round(h * sy), round(w * sx), rect))


@dataclass(frozen=True)
class StatusValues:
    """One diagnostic_msgs/DiagnosticStatus as plain values."""

    level: int
    """0 OK, 1 WARN, 2 ERROR, 3 STALE."""
    name: str
    message: str
    hardware_id: str
    values: tuple[tuple[str, str], ...] = ()


class MessageFactory(abc.ABC):
    """Builds the output messages of the segmentation node from plain values."""

    @abc.abstractmethod
    def header(self, sec: int, nanosec: int, frame_id: str) -> Any:
        """A std_msgs/Header."""

    @abc.abstractmethod
    def image(self, header: Any, raw: RawImage) -> Any:
        """A sensor_msgs/Image holding ``raw``."""

    @abc.abstractmethod
    def compressed_image(self, header: Any, fmt: str, data: np.ndarray) -> Any:
        """A sensor_msgs/CompressedImage holding encoded ``data`` (uint8) in ``fmt``."""

    @abc.abstractmethod
    def camera_info(self, header: Any, info: CameraInfoValues) -> Any:
        """A sensor_msgs/CameraInfo."""

    @abc.abstractmethod
    def label_info(self, header: Any, classes: Sequence[tuple[int, str]], threshold: float) -> Any:
        """A vision_msgs/LabelInfo mapping class ids to names."""

    @abc.abstractmethod
    def diagnostics(self, header: Any, statuses: Sequence[StatusValues]) -> Any:
        """A diagnostic_msgs/DiagnosticArray."""

    @abc.abstractmethod
    def point_cloud(self, header: Any, layout: CloudLayout, data: bytes) -> Any:
        """A sensor_msgs/PointCloud2 of ``layout`` and ``data``."""

    @abc.abstractmethod
    def occupancy_grid(self, header: Any, grid: SemanticGrid) -> Any:
        """The cost grid as nav_msgs/OccupancyGrid (origin at cell (0, 0)'s corner, no rotation)."""

    def image_from_array(self, header: Any, array: np.ndarray, encoding: str) -> Any:
        """A sensor_msgs/Image of an HxW or HxWxC uint8 array already in ``encoding``."""
        return self.image(header, raw_image(array, encoding))

    def image_buffer(self, header: Any, height: int, width: int, encoding: str, channels: int) -> OutgoingImage:
        """An Image of this size to be filled in place: write ``.pixels``, then send ``.message()``."""
        return ArrayImage(self, header, height, width, encoding, channels)

    def compressed_output(self, header: Any, fmt: str, data: np.ndarray) -> Any:
        """An output CompressedImage as the publisher or bag writer takes it (a message by default)."""
        return self.compressed_image(header, fmt, data)


class ArrayImage(OutgoingImage):
    """Pixels in a fresh array, wrapped by the factory's ``image`` (rosbags keeps the array as is)."""

    def __init__(self, factory: MessageFactory, header: Any, height: int, width: int, encoding: str,
                 channels: int):
        self.factory, self.header, self.encoding = factory, header, encoding
        shape = (height, width) if channels == 1 else (height, width, channels)
        self.pixels = np.empty(shape, np.uint8)

    def message(self) -> Any:
        return self.factory.image(self.header, raw_image(self.pixels, self.encoding))


@lru_cache(maxsize=1)
def rosbags_typestore():
    """rosbags' ROS 2 Jazzy typestore with vision_msgs' VisionClass and LabelInfo registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict = {}
    for name, text in VISION_MSGS_DEFINITIONS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


class RosbagsMessages(MessageFactory):
    """Messages as rosbags' ROS 2 classes (numpy arrays for numeric sequences); can serialise them."""

    def __init__(self):
        self.typestore = rosbags_typestore()
        self._t = self.typestore.types

    def header(self, sec: int, nanosec: int, frame_id: str):
        time = self._t["builtin_interfaces/msg/Time"](sec=int(sec), nanosec=int(nanosec))
        return self._t["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)

    def image(self, header, raw: RawImage):
        return self._t[IMAGE_TYPE](header=header, height=raw.height, width=raw.width, encoding=raw.encoding,
                              is_bigendian=raw.is_bigendian, step=raw.step, data=raw.data)

    def compressed_image(self, header, fmt: str, data: np.ndarray):
        return self._t[COMPRESSED_IMAGE_TYPE](header=header, format=fmt, data=np.asarray(data, np.uint8))

    def camera_info(self, header, info: CameraInfoValues):
        x, y, h, w, rect = info.roi
        roi = self._t["sensor_msgs/msg/RegionOfInterest"](x_offset=x, y_offset=y, height=h, width=w,
                                                          do_rectify=rect)
        f64 = lambda values: np.asarray(values, dtype=np.float64)  # noqa: E731
        return self._t[CAMERA_INFO_TYPE](header=header, height=info.height, width=info.width,
                                    distortion_model=info.distortion_model, d=f64(info.d), k=f64(info.k),
                                    r=f64(info.r), p=f64(info.p), binning_x=info.binning_x,
                                    binning_y=info.binning_y, roi=roi)

    def label_info(self, header, classes, threshold):
        vision_class = self._t["vision_msgs/msg/VisionClass"]
        class_map = [vision_class(class_id=int(i), class_name=str(n)) for i, n in classes]
        return self._t[LABEL_INFO_TYPE](header=header, class_map=class_map, threshold=float(threshold))

    def diagnostics(self, header, statuses):
        key_value = self._t["diagnostic_msgs/msg/KeyValue"]
        status = self._t["diagnostic_msgs/msg/DiagnosticStatus"]
        return self._t[DIAGNOSTIC_ARRAY_TYPE](header=header, status=[
            status(level=s.level, name=s.name, message=s.message, hardware_id=s.hardware_id,
                   values=[key_value(key=k, value=v) for k, v in s.values]) for s in statuses])

    def point_cloud(self, header, layout: CloudLayout, data: bytes):
        t = self._t
        fields = [t["sensor_msgs/msg/PointField"](name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in layout.fields]
        return t[POINT_CLOUD_TYPE](header=header, height=layout.height, width=layout.width, fields=fields,
                                   is_bigendian=layout.is_bigendian, point_step=layout.point_step,
                                   row_step=layout.row_step, data=np.frombuffer(data, np.uint8),
                                   is_dense=layout.is_dense)

    def occupancy_grid(self, header, grid: SemanticGrid):
        t = self._t
        spec = grid.spec
        origin = t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=float(spec.origin_x), y=float(spec.origin_y), z=0.0),
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
        info = t["nav_msgs/msg/MapMetaData"](map_load_time=header.stamp, resolution=float(spec.resolution),
                                             width=spec.width, height=spec.height, origin=origin)
        return t[OCCUPANCY_GRID_TYPE](header=header, info=info, data=grid.cost.ravel().astype(np.int8))

    def serialize(self, msg) -> bytes:
        """CDR bytes of ``msg``, as stored in a rosbag2."""
        return bytes(self.typestore.serialize_cdr(msg, msg.__msgtype__))


class RclpyMessages(MessageFactory):
    """Messages as the real ROS 2 Python classes (sensor_msgs, std_msgs, diagnostic_msgs).

    vision_msgs is optional: without it ``LabelInfo`` is None and :meth:`label_info` raises.
    ``uint8[]`` fields are given ``array.array('B')`` filled with ``frombytes``: assigning bytes or
    a numpy array would make rclpy check every element in Python (seconds per megapixel).
    """

    def __init__(self):
        from builtin_interfaces.msg import Time
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField, RegionOfInterest
        from std_msgs.msg import Header

        self.Time, self.Header = Time, Header
        self.Image, self.CompressedImage, self.CameraInfo = Image, CompressedImage, CameraInfo
        self.RegionOfInterest = RegionOfInterest
        self.DiagnosticArray, self.DiagnosticStatus, self.KeyValue = DiagnosticArray, DiagnosticStatus, KeyValue
        try:
            from vision_msgs.msg import LabelInfo, VisionClass
        except ImportError:
            LabelInfo = VisionClass = None
        self.LabelInfo, self.VisionClass = LabelInfo, VisionClass
        self.PointCloud2, self.PointField = PointCloud2, PointField
        try:
            from nav_msgs.msg import OccupancyGrid
        except ImportError:
            OccupancyGrid = None
        self.OccupancyGrid = OccupancyGrid

    def header(self, sec: int, nanosec: int, frame_id: str):
        return self.Header(stamp=self.Time(sec=int(sec), nanosec=int(nanosec)), frame_id=frame_id)

    def image(self, header, raw: RawImage):
        import array

        data = array.array("B")
        data.frombytes(np.ascontiguousarray(raw.data).tobytes())
        msg = self.Image(header=header, height=raw.height, width=raw.width, encoding=raw.encoding,
                         is_bigendian=raw.is_bigendian, step=raw.step)
        msg.data = data
        return msg

    def compressed_image(self, header, fmt: str, data: np.ndarray):
        """A message object (camera simulators, tests); the node's outputs use :meth:`compressed_output`."""
        import array

        msg = self.CompressedImage(header=header, format=fmt)
        msg.data = array.array("B", np.asarray(data, np.uint8).tobytes())
        return msg

    def camera_info(self, header, info: CameraInfoValues):
        import array

        x, y, h, w, rect = info.roi
        msg = self.CameraInfo(header=header, height=info.height, width=info.width,
                              distortion_model=info.distortion_model, binning_x=info.binning_x,
                              binning_y=info.binning_y,
                              roi=self.RegionOfInterest(x_offset=x, y_offset=y, height=h, width=w,
                                                        do_rectify=rect))
        msg.d = array.array("d", info.d)
        msg.k = np.asarray(info.k, dtype=np.float64)
        msg.r = np.asarray(info.r, dtype=np.float64)
        msg.p = np.asarray(info.p, dtype=np.float64)
        return msg

    def image_buffer(self, header, height: int, width: int, encoding: str, channels: int) -> OutgoingImage:
        """CDR bytes laid out once (cityseg.ros.core.cdr): the pixels are written straight into what is
        published, with no array -> bytes -> message -> serialisation copies."""
        stamp = header.stamp
        return ImageBuffer(stamp.sec, stamp.nanosec, header.frame_id, height, width, encoding, channels)

    def compressed_output(self, header, fmt: str, data: np.ndarray) -> bytes:
        """CDR bytes (cityseg.ros.core.cdr), published as they are, like the node's raw images."""
        stamp = header.stamp
        return compressed_image_bytes(stamp.sec, stamp.nanosec, header.frame_id, fmt, data)

    def message_class(self, type_name: str):
        """The rclpy class of ``type_name`` (e.g. 'sensor_msgs/msg/Image'); None when its package
        is not installed (vision_msgs)."""
        return {IMAGE_TYPE: self.Image, COMPRESSED_IMAGE_TYPE: self.CompressedImage, CAMERA_INFO_TYPE: self.CameraInfo,
                LABEL_INFO_TYPE: self.LabelInfo, DIAGNOSTIC_ARRAY_TYPE: self.DiagnosticArray,
                POINT_CLOUD_TYPE: self.PointCloud2, OCCUPANCY_GRID_TYPE: self.OccupancyGrid}[type_name]

    def point_cloud(self, header, layout: CloudLayout, data: bytes):
        import array

        fields = [self.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in layout.fields]
        buffer = array.array("B")
        buffer.frombytes(data)
        return self.PointCloud2(header=header, height=layout.height, width=layout.width, fields=fields,
                                is_bigendian=layout.is_bigendian, point_step=layout.point_step,
                                row_step=layout.row_step, data=buffer, is_dense=layout.is_dense)

    def occupancy_grid(self, header, grid: SemanticGrid):
        """None of nav_msgs (not installed): ImportError naming the package."""
        import array

        if self.OccupancyGrid is None:
            raise ImportError("nav_msgs is not installed; install ros-$ROS_DISTRO-nav-msgs")
        spec = grid.spec
        msg = self.OccupancyGrid(header=header)
        msg.info.map_load_time = header.stamp
        msg.info.resolution = float(spec.resolution)
        msg.info.width, msg.info.height = spec.width, spec.height
        msg.info.origin.position.x, msg.info.origin.position.y = float(spec.origin_x), float(spec.origin_y)
        msg.info.origin.orientation.w = 1.0
        cost = array.array("b")
        cost.frombytes(grid.cost.tobytes())
        msg.data = cost
        return msg

    def label_info(self, header, classes, threshold):
        if self.LabelInfo is None:
            raise ImportError("vision_msgs is not installed; install ros-$ROS_DISTRO-vision-msgs")
        return self.LabelInfo(header=header, threshold=float(threshold), class_map=[
            self.VisionClass(class_id=int(i), class_name=str(n)) for i, n in classes])

    def diagnostics(self, header, statuses):
        return self.DiagnosticArray(header=header, status=[
            self.DiagnosticStatus(level=bytes([s.level]), name=s.name, message=s.message,
                                  hardware_id=s.hardware_id,
                                  values=[self.KeyValue(key=k, value=v) for k, v in s.values])
            for s in statuses])
