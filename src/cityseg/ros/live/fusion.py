"""The node's LiDAR fusion: the ``points_topic`` subscription, ``~/points`` / ``~/grid`` /
``~/grid/labels`` publishers, and one thread that runs the bag tool's runner
(:class:`~cityseg.ros.core.fusion_runner.FusionRunner`), so labelling never delays a
camera frame. Without ``points_topic`` but with ``grid_frame``: the camera-only grid
(:class:`~cityseg.ros.core.stamped_fusion.GroundGridRunner`), one ``~/grid`` per rig frame (when
every camera's mask for it is in). Transforms: ``extrinsics_file``, else tf2 (:mod:`tf_lookup`).
Warnings (a missing transform, once per camera) go through the node's logger; the counters are
the ``<node>: fusion`` /diagnostics entry. rclpy is imported by the methods that need it (this
module is loaded only when points_topic or grid_frame is set).
"""

from __future__ import annotations

import array
import queue
import threading

from cityseg.errors import CitysegError
from cityseg.fusion.extrinsics import load_extrinsics
from cityseg.ros.core.fusion_runner import FusionRunner, LabelledCloud, frame_masks, tree_lookup
from cityseg.ros.core.messages import StatusValues, header_fields
from cityseg.ros.core.outputs import GRID, GRID_LABELS, POINTS
from cityseg.ros.core.stamped_fusion import GroundGrid, GroundGridRunner
from cityseg.ros.live.camera_io import LOG_THROTTLE_S
from cityseg.ros.live.diagnostics import OK, WARN

QUEUE_DEPTH = (8, 64)
"""Inputs (masks and clouds) the fusion thread may fall behind by, at the least and the most."""
QUEUE_BYTES = 512 * 2**20
"""What the queued frames may hold, roughly: a frame waiting for the labelling keeps its model's
float32 scores (the confidence is worked out from them on the fusion thread), so the depth is cut to
fit: 53 for a 256x512 19-class scores model (10 MB a frame), 13 at 512x1024, 8 at 1024x2048 (the
least, 1.3 GB); 64 for an argmax head or the camera-only grid (class ids alone are queued)."""


def queue_depth(input_size: tuple[int, int], classes: int, with_scores: bool) -> int:
    """How many inputs the fusion queue holds for a model of ``input_size`` (H, W) and ``classes``:
    :data:`QUEUE_BYTES` over one frame's class ids (and float32 scores), within :data:`QUEUE_DEPTH`."""
    height, width = input_size
    frame_bytes = height * width * (1 + (4 * classes if with_scores else 0))
    return max(QUEUE_DEPTH[0], min(QUEUE_DEPTH[1], QUEUE_BYTES // max(frame_bytes, 1)))


def node_lookup(node, config):
    """The transforms of the node's fusion: ``extrinsics_file`` (static), else tf2 at each stamp
    (through ``fixed_frame``); CitysegError naming the fix when neither is there."""
    from cityseg.ros.live.tf_lookup import Tf2Lookup, tf2_available

    if config.extrinsics_file:
        return tree_lookup(load_extrinsics(config.extrinsics_file)), None
    if not tf2_available():
        raise CitysegError("points_topic / grid_frame need transforms: set extrinsics_file (a YAML of the static "
                           "transforms, docs/FUSION.md) or install tf2_ros (ros-$ROS_DISTRO-tf2-ros)")
    tf2 = Tf2Lookup(node, config.fixed_frame)
    return tf2, tf2


class NodeFusion:
    """Masks from the inference thread and clouds from the executor in, labelled clouds out."""

    def __init__(self, node, msgs, params, processor, cameras: list[str]):
        from sensor_msgs.msg import PointCloud2, PointField

        self.node, self.msgs, self.params = node, msgs, params
        self.config = params.fusion_config()
        self.PointCloud2, self.PointField = PointCloud2, PointField
        self.cameras = cameras
        lookup, self._tf2 = node_lookup(node, self.config)
        say = node.get_logger().warning
        self.publishers = {}
        if self.config.camera_only:
            self.runner = GroundGridRunner(self.config, processor.label_classes(), cameras, self._publish_ground,
                                           lookup, say)
        else:
            self.runner = FusionRunner(self.config, processor.label_classes(), cameras, self._publish,
                                       lookup=lookup, say=say)
            self.publishers[POINTS] = node.create_lifecycle_publisher(PointCloud2, f"~/{POINTS}", 5)
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
        segmenter = processor.segmenter  # a scores head keeps its float32 scores until the confidence is taken
        with_scores = (not self.config.camera_only and segmenter.has_confidence
                       and segmenter.backend.artifact.output != "argmax")
        self.queue_depth = queue_depth(segmenter.input_size, segmenter.bundle.card.num_classes, with_scores)
        self._queue: queue.Queue = queue.Queue(self.queue_depth)
        self._thread: threading.Thread | None = None
        self._subscription = None
        self.dropped = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        from rclpy.qos import qos_profile_sensor_data

        self._thread = threading.Thread(target=self._run, name="fusion", daemon=True)
        self._thread.start()
        if self.config.points_topic:
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
        if self._tf2 is not None:
            self._tf2.close()
            self._tf2 = None

    # -- inputs ---------------------------------------------------------------------------

    def feed(self, camera: str, msg, camera_info, result) -> None:
        """A segmented frame of ``camera`` (its name; '' in single-camera mode). For the points, its
        Segmentation is queued (not the frame's output messages): the confidence is worked out on the
        fusion thread (:meth:`_run`), not on the camera path. The camera-only grid reads the class ids
        alone, so only they are queued (the scores are let go)."""
        sec, nsec, frame_id = header_fields(msg)
        camera_only = self.config.camera_only
        frame = frame_masks(result.segmentation, with_confidence=False) if camera_only else result.segmentation
        self._put(("mask", self.cameras.index(camera), sec * 10**9 + nsec, frame_id.lstrip("/"), frame, camera_info,
                   *(((sec, nsec),) if camera_only else ())))

    def _on_cloud(self, msg) -> None:
        sec, nsec, frame_id = header_fields(msg)
        self._put(("cloud", sec * 10**9 + nsec, frame_id.lstrip("/"), msg))

    def _put(self, item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            self.node.get_logger().warning(f"fusion is {self.queue_depth} inputs behind: an input was dropped",
                                           throttle_duration_sec=LOG_THROTTLE_S)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                if item[0] == "mask":
                    camera, stamp_ns, frame_id, frame, *rest = item[1:]
                    masks = frame if self.config.camera_only else frame_masks(frame)
                    self.runner.add_mask(camera, stamp_ns, frame_id, *masks, *rest)
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
            self._publish_grid(header.stamp.sec, header.stamp.nanosec, cloud.grid)

    def _publish_ground(self, out: GroundGrid) -> None:
        """A camera-only grid, stamped as the newest image of its rig frame."""
        self._publish_grid(*out.tag, out.grid)

    def _publish_grid(self, sec: int, nanosec: int, grid) -> None:
        grid_header = self.msgs.header(sec, nanosec, grid.spec.frame)
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
        """The fusion's /diagnostics entry: clouds (or camera-only grids), bad clouds, cameras without
        masks, missing transforms per camera."""
        c = self.runner.counters
        done = (("points topic", self.config.points_topic), ("clouds labelled", str(c.clouds)),
                ("bad clouds", str(c.bad_clouds))) if not self.config.camera_only else \
            (("camera-only grid", self.config.grid.frame), ("grids built", str(self.runner.grids)))
        values = (*done, ("queue depth", str(self.queue_depth)), ("inputs dropped", str(self.dropped)),
                  *((f"no mask in tolerance: {k or 'camera'}", str(v)) for k, v in c.no_mask.items()),
                  *((f"no transform: {k or 'camera'}", str(v)) for k, v in c.no_transform.items()))
        bad = c.bad_clouds or c.no_transform or self.dropped
        return StatusValues(WARN if bad else OK, f"{fqn}: fusion", "degraded" if bad else "ok", fqn, values)
