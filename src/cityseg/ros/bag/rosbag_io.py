"""Reading and writing rosbags with rosbags (no ROS): topics, storage and QoS profiles.

Shared by the replay (:mod:`cityseg.ros.bag.replay`) and the synthetic camera bags
(:mod:`cityseg.ros.bag.camera_bag`).
"""

from __future__ import annotations

from pathlib import Path

from cityseg.errors import CitysegError, InputError
from cityseg.ros.core.messages import RosbagsMessages

STORAGES = ("sqlite3", "mcap")
BAG_VERSION = 9
"""rosbag2 metadata version written (ROS 2 Jazzy's)."""


def normalize_topic(topic: str) -> str:
    """'camera/image_raw' or '/camera/image_raw/' -> '/camera/image_raw'."""
    return "/" + topic.strip().strip("/")


def topic_namespace(image_topic: str) -> str:
    """Namespace of a camera image topic: '/cam/image_raw' and '/cam/image_raw/compressed' -> '/cam'."""
    base = normalize_topic(image_topic)
    if base.endswith("/compressed"):
        base = base[: -len("/compressed")]
    return base.rsplit("/", 1)[0]



def open_writer(path: Path, storage: str):
    """A rosbags rosbag2 Writer for ``path`` in ``storage`` (sqlite3 or mcap)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise CitysegError(f"unknown bag storage {storage!r}; use one of {', '.join(STORAGES)}")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    return Writer(path, version=BAG_VERSION, storage_plugin=plugin)


def open_reader(path: Path):
    """An opened AnyReader of a rosbag2 directory or ROS 1 bag; InputError naming the bag if unreadable."""
    from rosbags.highlevel import AnyReader

    if not path.exists():
        raise InputError(f"{path}: no such bag; give a rosbag2 directory or a ROS 1 .bag file")
    try:
        reader = AnyReader([path], default_typestore=RosbagsMessages().typestore)
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for unreadable bags
        raise InputError(f"{path}: cannot read it as a rosbag2 directory (with metadata.yaml) or a "
                         f"ROS 1 .bag file: {exc}") from None
    return reader


def offered_qos(connection) -> list:
    """The QoS profiles a connection's publisher offered when it was recorded."""
    return list(getattr(connection.ext, "offered_qos_profiles", []) or [])


def latched_qos() -> list:
    """QoS of ~/label_info: reliable, transient local, depth 1 (late joiners get the last one)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    infinite = QosTime(2147483647, 4294967295)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                infinite, infinite, QosLiveliness.AUTOMATIC, infinite, False)]


def sensor_data_qos() -> list:
    """QoS of camera topics (rclpy's qos_profile_sensor_data): best effort, volatile, depth 5."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    infinite = QosTime(2147483647, 4294967295)
    return [Qos(QosHistory.KEEP_LAST, 5, QosReliability.BEST_EFFORT, QosDurability.VOLATILE,
                infinite, infinite, QosLiveliness.AUTOMATIC, infinite, False)]
