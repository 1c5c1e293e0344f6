"""Synthetic camera bags: RGB frames written as a rosbag2 a camera driver would have recorded.

The one synthetic module that builds on :mod:`cityseg.ros` (it writes camera messages with the
node's own encoders); nothing in ``cityseg.ros`` imports it. No ROS: rosbags writes the bag.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cityseg.errors import CitysegError
from cityseg.fileio import staged_output
from cityseg.ros.bag.rosbag_io import normalize_topic, open_writer, sensor_data_qos
from cityseg.ros.core.images import encode_compressed, encode_rgb
from cityseg.ros.core.messages import (
    CAMERA_INFO_TYPE,
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    CameraInfoValues,
    RosbagsMessages,
)


def write_camera_bag(path: Path, frames: Iterable[np.ndarray], *, image_topic: str = "/camera/image_raw",
                     camera_info_topic: str | None = "/camera/camera_info", fps: float = 10.0,
                     encoding: str = "rgb8", storage: str = "sqlite3", frame_id: str = "camera",
                     start_ns: int = 1_700_000_000 * 10**9) -> int:
    """Write RGB uint8 frames as a camera rosbag2 (Image + CameraInfo); return the frame count.

    ``encoding`` is any raw encoding of cityseg.ros.core.images, or 'jpeg' / 'png' for a
    CompressedImage topic. Frame ``i`` is stamped ``start_ns + i / fps`` (header and bag time).
    """
    camera = RigCamera(list(frames), image_topic, camera_info_topic, encoding, frame_id)
    return write_rig_bag(path, [camera], fps=fps, storage=storage, start_ns=start_ns)[0]


@dataclass
class RigCamera:
    """One camera of :func:`write_rig_bag`: its frames (RGB uint8, any size), topics and encoding."""

    frames: Sequence[np.ndarray]
    image_topic: str
    camera_info_topic: str | None = None
    encoding: str = "rgb8"
    frame_id: str = "camera"

    @classmethod
    def named(cls, name: str, frames: Sequence[np.ndarray], encoding: str = "rgb8") -> RigCamera:
        """Camera ``name`` as a driver in namespace /name publishes it: /name/image_raw[/compressed]."""
        suffix = "/compressed" if encoding.lower() in ("jpeg", "png") else ""
        return cls(frames, f"/{name}/image_raw{suffix}", f"/{name}/camera_info", encoding, name)


def write_rig_bag(path: Path, cameras: Sequence[RigCamera], *, fps: float = 10.0, storage: str = "sqlite3",
                  start_ns: int = 1_700_000_000 * 10**9, skew_ns: int = 1_000_000) -> list[int]:
    """Write the frames of several cameras as one rosbag2, as a vehicle's recorder would; return the
    frame count per camera. Frame ``i`` of camera ``k`` is stamped ``start_ns + i / fps + k * skew_ns``."""
    path = Path(path)
    if path.exists():
        raise CitysegError(f"{path} already exists; choose another path for the camera bag")
    if fps <= 0:
        raise CitysegError(f"fps must be positive, got {fps}")
    factory = RosbagsMessages()
    with staged_output(path, "camera-bag") as staged:
        with open_writer(staged, storage) as writer:
            conns = [_connections(writer, factory, camera) for camera in cameras]
            for i in range(max((len(c.frames) for c in cameras), default=0)):
                for k, (camera, (image_conn, info_conn)) in enumerate(zip(cameras, conns)):
                    if i < len(camera.frames):
                        stamp = start_ns + round(i * 1e9 / fps) + k * skew_ns
                        _write_frame(writer, factory, camera, camera.frames[i], stamp, image_conn, info_conn)
    return [len(c.frames) for c in cameras]


def _connections(writer, factory: RosbagsMessages, camera: RigCamera):
    compressed = camera.encoding.lower() in ("jpeg", "png")
    kind = COMPRESSED_IMAGE_TYPE if compressed else IMAGE_TYPE
    image_conn = writer.add_connection(normalize_topic(camera.image_topic), kind,
                                       typestore=factory.typestore, offered_qos_profiles=sensor_data_qos())
    info_conn = None
    if camera.camera_info_topic:
        info_conn = writer.add_connection(normalize_topic(camera.camera_info_topic), CAMERA_INFO_TYPE,
                                          typestore=factory.typestore, offered_qos_profiles=sensor_data_qos())
    return image_conn, info_conn


def _write_frame(writer, factory: RosbagsMessages, camera: RigCamera, rgb: np.ndarray, stamp: int,
                 image_conn, info_conn) -> None:
    header = factory.header(stamp // 10**9, stamp % 10**9, camera.frame_id)
    encoding = camera.encoding.lower()
    if encoding in ("jpeg", "png"):
        msg = factory.compressed_image(header, *encode_compressed(rgb, encoding))
    else:
        msg = factory.image(header, encode_rgb(rgb, camera.encoding))
    writer.write(image_conn, stamp, factory.serialize(msg))
    if info_conn is not None:
        info = factory.camera_info(header, CameraInfoValues.pinhole(*rgb.shape[:2]))
        writer.write(info_conn, stamp, factory.serialize(info))
