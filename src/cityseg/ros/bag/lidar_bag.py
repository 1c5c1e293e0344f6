"""Synthetic rig bags with a LiDAR: camera images (the true labelId mask painted in the label
palette, so a palette classifier segments them exactly), CameraInfo with each camera's own
calibration, PointCloud2 scans of the same 3-D street and ``/tf_static`` with every sensor's pose.
With a speed, the vehicle drives along the street: ``/tf`` carries ``odom -> base_link`` and each
image and scan is taken from the pose at its own stamp. Written with rosbags (no ROS); test and
benchmark data with ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cityseg.errors import CitysegError
from cityseg.fileio import staged_output
from cityseg.fusion.camera import CameraModel
from cityseg.fusion.extrinsics import Transform
from cityseg.labels import class_space
from cityseg.ros.bag.rosbag_io import latched_qos, open_writer, sensor_data_qos
from cityseg.ros.core.images import encode_rgb
from cityseg.ros.core.messages import CAMERA_INFO_TYPE, IMAGE_TYPE, POINT_CLOUD_TYPE, CameraInfoValues, RosbagsMessages
from cityseg.ros.core.tf_messages import TF_STATIC_TOPIC, TF_TOPIC, TF_TYPE, tf_message
from cityseg.synthetic.lidar import LidarSpec, ouster_cloud, scan, velodyne_cloud
from cityseg.synthetic.scene3d import Scene, camera_pose, make_street, render_labels

BASE_FRAME = "base_link"
LIDAR_FRAME = "lidar"
ODOM_FRAME = "odom"


@dataclass
class RigSensorCamera:
    """A camera of the rig: its name (namespace and optical frame), calibration and pose in base_link."""

    name: str
    info: CameraInfoValues
    pose: Transform

    @property
    def model(self) -> CameraModel:
        return CameraModel.from_camera_info(self.info)


@dataclass
class LidarRig:
    """The street, the cameras, and the LiDAR's pose in base_link."""

    scene: Scene
    cameras: list[RigSensorCamera]
    lidar_pose: Transform
    spec: LidarSpec = field(default_factory=LidarSpec)

    def transforms(self) -> list[tuple[str, str, Transform]]:
        return [(BASE_FRAME, LIDAR_FRAME, self.lidar_pose)] + [(BASE_FRAME, c.name, c.pose) for c in self.cameras]


def street_rig(seed: int = 0, cameras: int = 3, width: int = 512, height: int = 256,
               spec: LidarSpec | None = None) -> LidarRig:
    """A random street with ``cameras`` (1..6) 90-degree cameras around the roof and a LiDAR above them."""
    if not 1 <= cameras <= 6:
        raise ValueError(f"cameras must be 1..6, got {cameras}")
    yaws = [0, 70, -70, 180, 130, -130][:cameras]
    info = CameraInfoValues.pinhole(height, width, hfov_deg=90.0)
    rig = [RigSensorCamera(f"cam{i}", info, camera_pose(1.2 * np.cos(np.radians(y)), 0.6 * np.sin(np.radians(y)),
                                                         1.6, y)) for i, y in enumerate(yaws)]
    return LidarRig(make_street(np.random.default_rng(seed)), rig, Transform(np.eye(3), np.array([0.0, 0.0, 1.9])),
                    spec or LidarSpec(beams=48, lower_deg=-22.0, upper_deg=3.0, azimuth_step_deg=0.3))


@dataclass
class LidarBagTruth:
    """What was written: per scan the cloud's true labelId per point (255: no return)."""

    labels: list[np.ndarray]
    cloud_stamps: list[int]


def vehicle_pose(speed_mps: float, t_s: float) -> Transform:
    """odom -> base_link after ``t_s`` seconds along +x at ``speed_mps`` (base_link = odom at t = 0)."""
    return Transform(np.eye(3), np.array([speed_mps * t_s, 0.0, 0.0]))


def write_lidar_rig_bag(path: Path, rig: LidarRig, frames: int = 2, fps: float = 10.0, layout: str = "velodyne",
                        storage: str = "sqlite3", start_ns: int = 1_700_000_000 * 10**9,
                        cloud_offset_ns: int = 3_000_000, points_topic: str = "/lidar/points",
                        speed_mps: float = 0.0, tf_rate_hz: float = 50.0) -> LidarBagTruth:
    """Write ``frames`` camera frames per camera and one scan per frame (stamped ``cloud_offset_ns``
    after the images) plus ``/tf_static``. ``speed_mps`` 0: the vehicle stands, every frame shows the
    same street; else it drives along +x and ``/tf`` has ``odom -> base_link`` at ``tf_rate_hz`` from
    a period before the first stamp to one after the last (the whole scan taken at its stamp)."""
    path = Path(path)
    if path.exists():
        raise CitysegError(f"{path} already exists; choose another path for the rig bag")
    if layout not in ("velodyne", "ouster"):
        raise ValueError(f"layout must be velodyne or ouster, got {layout!r}")
    factory = RosbagsMessages()
    palette = class_space("labelid").palette
    pack = velodyne_cloud if layout == "velodyne" else ouster_cloud

    def at(stamp: int) -> Transform:
        return vehicle_pose(speed_mps, (stamp - start_ns) / 1e9)

    def sensors(stamp: int):
        images = [palette[render_labels(rig.scene, c.model, at(stamp) @ c.pose)] for c in rig.cameras]
        s = scan(rig.scene, at(stamp + cloud_offset_ns) @ rig.lidar_pose, rig.spec)
        return images, s, pack(s)

    still = None if speed_mps else sensors(start_ns)
    truth = LidarBagTruth([], [])
    with staged_output(path, "lidar-bag") as staged, open_writer(staged, storage) as writer:
        qos = sensor_data_qos()
        tf_conn = writer.add_connection(TF_STATIC_TOPIC, TF_TYPE, typestore=factory.typestore,
                                        offered_qos_profiles=latched_qos())
        cams = [(writer.add_connection(f"/{c.name}/image_raw", IMAGE_TYPE, typestore=factory.typestore,
                                       offered_qos_profiles=qos),
                 writer.add_connection(f"/{c.name}/camera_info", CAMERA_INFO_TYPE, typestore=factory.typestore,
                                       offered_qos_profiles=qos)) for c in rig.cameras]
        cloud_conn = writer.add_connection(points_topic, POINT_CLOUD_TYPE, typestore=factory.typestore,
                                           offered_qos_profiles=qos)
        tf = tf_message(factory.typestore, lambda frame: factory.header(start_ns // 10**9, start_ns % 10**9, frame),
                        rig.transforms())
        writer.write(tf_conn, start_ns, factory.serialize(tf))
        if speed_mps:
            _write_odometry(writer, factory, speed_mps, start_ns, start_ns + round(frames * 1e9 / fps), tf_rate_hz)
        for i in range(frames):
            stamp = start_ns + round(i * 1e9 / fps)
            images, s, (cloud_layout, cloud_data, idx) = still or sensors(stamp)
            for camera, image, (image_conn, info_conn) in zip(rig.cameras, images, cams):
                header = factory.header(stamp // 10**9, stamp % 10**9, camera.name)
                writer.write(image_conn, stamp, factory.serialize(factory.image(header, encode_rgb(image, "rgb8"))))
                writer.write(info_conn, stamp, factory.serialize(factory.camera_info(header, camera.info)))
            cloud_stamp = stamp + cloud_offset_ns
            header = factory.header(cloud_stamp // 10**9, cloud_stamp % 10**9, LIDAR_FRAME)
            msg = factory.point_cloud(header, cloud_layout, cloud_data)
            writer.write(cloud_conn, cloud_stamp, factory.serialize(msg))
            truth.labels.append(s.label[idx])
            truth.cloud_stamps.append(cloud_stamp)
    return truth




def _write_odometry(writer, factory: RosbagsMessages, speed_mps: float, start_ns: int, end_ns: int,
                    rate_hz: float) -> None:
    """/tf odom -> base_link samples from a period before ``start_ns`` to ``end_ns``, each written at its stamp."""
    conn = writer.add_connection(TF_TOPIC, TF_TYPE, typestore=factory.typestore)
    step = round(1e9 / rate_hz)
    for stamp in range(start_ns - step, end_ns + step, step):
        msg = tf_message(factory.typestore, lambda frame, s=stamp: factory.header(s // 10**9, s % 10**9, frame),
                         [(ODOM_FRAME, BASE_FRAME, vehicle_pose(speed_mps, (stamp - start_ns) / 1e9))])
        writer.write(conn, max(stamp, start_ns), factory.serialize(msg))
