"""Synthetic camera bags: RGB frames written as a rosbag2 a camera driver would have recorded.

The one synthetic module that builds on :mod:`cityseg.ros` (it writes camera messages with the
node's own encoders); nothing in ``cityseg.ros`` imports it. No ROS: rosbags writes the bag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from cityseg.errors import CitysegError
from cityseg.ros.bagio import normalize_topic, open_writer, sensor_data_qos, staged_directory
from cityseg.ros.images import encode_compressed, encode_rgb
from cityseg.ros.messages import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, CameraInfoValues, RosbagsMessages


def write_camera_bag(path: Path, frames: Iterable[np.ndarray], *, image_topic: str = "/camera/image_raw",
                     camera_info_topic: str | None = "/camera/camera_info", fps: float = 10.0,
                     encoding: str = "rgb8", storage: str = "sqlite3", frame_id: str = "camera",
                     start_ns: int = 1_700_000_000 * 10**9) -> int:
    """Write RGB uint8 frames as a camera rosbag2 (Image + CameraInfo); return the frame count.

    ``encoding`` is any raw encoding of cityseg.ros.images, or 'jpeg' / 'png' for a
    CompressedImage topic. Frame ``i`` is stamped ``start_ns + i / fps`` (header and bag time).
    """
    path = Path(path)
    if path.exists():
        raise CitysegError(f"{path} already exists; choose another path for the camera bag")
    if fps <= 0:
        raise CitysegError(f"fps must be positive, got {fps}")
    compressed = encoding.lower() in ("jpeg", "png")
    factory = RosbagsMessages()
    count = 0
    with staged_directory(path) as staged:
        with open_writer(staged, storage) as writer:
            image_conn = writer.add_connection(normalize_topic(image_topic),
                                               COMPRESSED_IMAGE if compressed else IMAGE,
                                               typestore=factory.typestore, offered_qos_profiles=sensor_data_qos())
            info_conn = None
            if camera_info_topic:
                info_conn = writer.add_connection(normalize_topic(camera_info_topic), CAMERA_INFO,
                                                  typestore=factory.typestore,
                                                  offered_qos_profiles=sensor_data_qos())
            for rgb in frames:
                stamp = start_ns + round(count * 1e9 / fps)
                header = factory.header(stamp // 10**9, stamp % 10**9, frame_id)
                if compressed:
                    msg = factory.compressed_image(header, *encode_compressed(rgb, encoding.lower()))
                else:
                    msg = factory.image(header, encode_rgb(rgb, encoding))
                writer.write(image_conn, stamp, factory.serialize(msg))
                if info_conn is not None:
                    info = factory.camera_info(header, CameraInfoValues.pinhole(*rgb.shape[:2]))
                    writer.write(info_conn, stamp, factory.serialize(info))
                count += 1
    return count
