"""The node's LiDAR fusion: the ``points_topic`` subscription, ``~/points`` / ``~/grid`` /
``~/grid/labels`` publishers, and one thread that runs a
:class:`~cityseg.ros.core.fusion_runner.FusionRunner` (the bag tool's), so labelling never delays a
camera frame. rclpy is imported by the methods that need it (this module is loaded only when
``points_topic`` is set).
"""

from __future__ import annotations

import array
import logging
import queue
import threading

from cityseg.ros.core.fusion_runner import FusionRunner, LabelledCloud, frame_masks
from cityseg.ros.core.messages import StatusValues, header_fields
from cityseg.ros.core.outputs import GRID, GRID_LABELS, POINTS
from cityseg.ros.live.camera_io import LOG_THROTTLE_S
from cityseg.ros.live.diagnostics import OK, WARN

log = logging.getLogger(__name__)
_QUEUE = 64


class NodeFusion:
    """Masks from the inference thread and clouds from the executor in, labelled clouds out."""

    def __init__(self, node, msgs, params, processor, cameras: list[str]):
        from sensor_msgs.msg import PointCloud2, PointField

        self.node, self.msgs, self.params = node, msgs, params
        self.config = params.fusion_config()
        self.PointCloud2, self.PointField = PointCloud2, PointField
        self.cameras = cameras
        self.runner = FusionRunner(self.config, processor.label_classes(), cameras, self._publish)
        self.publishers = {POINTS: node.create_lifecycle_publisher(PointCloud2, f"~/{POINTS}", 5)}
        self.OccupancyGrid = None
        if self.config.grid is not None:
            try:
                from nav_msgs.msg import OccupancyGrid
            except ImportError:
                node.get_logger().warning("~/grid is off: nav_msgs is not installed (ros-$ROS_DISTRO-nav-msgs); "
                                          "~/grid/labels is published")
            else:
                self.OccupancyGrid = OccupancyGrid
                self.publishers[GRID] = node.create_lifecycle_publisher(OccupancyGrid, f"~/{GRID}", 5)
            self.publishers[GRID_LABELS] = node.create_lifecycle_publisher(msgs.Image, f"~/{GRID_LABELS}", 5)
        self._queue: queue.Queue = queue.Queue(_QUEUE)
        self._thread: threading.Thread | None = None
        self._subscription = None
        self.dropped = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        from rclpy.qos import qos_profile_sensor_data

        self._thread = threading.Thread(target=self._run, name="fusion", daemon=True)
        self._thread.start()
        self._subscription = self.node.create_subscription(self.PointCloud2, self.config.points_topic,
                                                           self._on_cloud, qos_profile_sensor_data)

    def stop(self) -> None:
        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)
            self._subscription = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5.0)
            self._thread = None

    def destroy(self) -> None:
        self.stop()
        for publisher in self.publishers.values():
            self.node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}

    # -- inputs ---------------------------------------------------------------------------

    def feed(self, camera: str, msg, camera_info, result) -> None:
        """A segmented frame of ``camera`` (its name; '' in single-camera mode)."""
        sec, nsec, frame_id = header_fields(msg)
        mask, conf = frame_masks(result)
        self._put(("mask", self.cameras.index(camera), sec * 10**9 + nsec, frame_id.lstrip("/"), mask, conf,
                   camera_info))

    def _on_cloud(self, msg) -> None:
        sec, nsec, frame_id = header_fields(msg)
        self._put(("cloud", sec * 10**9 + nsec, frame_id.lstrip("/"), msg))

    def _put(self, item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self.node.get_logger().warning("fusion is behind: an input was dropped",
                                           throttle_duration_sec=LOG_THROTTLE_S)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                if item[0] == "mask":
                    self.runner.add_mask(*item[1:])
                else:
                    self.runner.add_cloud(*item[1:], tag=item[3].header)
            except Exception as exc:  # a bad input is logged; the node serves on
                self.node.get_logger().error(f"fusion failed: {type(exc).__name__}: {exc}",
                                             throttle_duration_sec=LOG_THROTTLE_S)

    # -- outputs --------------------------------------------------------------------------

    def _publish(self, cloud: LabelledCloud) -> None:
        header = cloud.tag
        layout = cloud.layout
        fields = [self.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                  for f in layout.fields]
        data = array.array("B")
        data.frombytes(cloud.data)
        self.publishers[POINTS].publish(self.PointCloud2(
            header=header, height=layout.height, width=layout.width, fields=fields,
            is_bigendian=layout.is_bigendian, point_step=layout.point_step, row_step=layout.row_step,
            data=data, is_dense=layout.is_dense))
        if cloud.grid is not None:
            self._publish_grid(header, cloud.grid)

    def _publish_grid(self, header, grid) -> None:
        grid_header = self.msgs.header(header.stamp.sec, header.stamp.nanosec, grid.spec.frame)
        if self.OccupancyGrid is not None:
            msg = self.OccupancyGrid(header=grid_header)
            spec = grid.spec
            msg.info.map_load_time = grid_header.stamp
            msg.info.resolution = float(spec.resolution)
            msg.info.width, msg.info.height = spec.width, spec.height
            msg.info.origin.position.x, msg.info.origin.position.y = float(spec.origin_x), float(spec.origin_y)
            msg.info.origin.orientation.w = 1.0
            cost = array.array("b")
            cost.frombytes(grid.cost.tobytes())
            msg.data = cost
            self.publishers[GRID].publish(msg)
        self.publishers[GRID_LABELS].publish(self.msgs.image_from_array(grid_header, grid.label, "mono8"))

    def status(self, fqn: str) -> StatusValues:
        """The fusion's /diagnostics entry: clouds, bad clouds, cameras without masks, missing transforms."""
        c = self.runner.counters
        values = (("points topic", self.config.points_topic), ("clouds labelled", str(c.clouds)),
                  ("bad clouds", str(c.bad_clouds)), ("inputs dropped", str(self.dropped)),
                  *((f"no mask in tolerance: {k or 'camera'}", str(v)) for k, v in c.no_mask.items()),
                  *((f"no transform: {k or 'camera'}", str(v)) for k, v in c.no_transform.items()))
        bad = c.bad_clouds or c.no_transform or self.dropped
        return StatusValues(WARN if bad else OK, f"{fqn}: fusion", "degraded" if bad else "ok", fqn, values)
