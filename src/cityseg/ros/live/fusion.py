"""The node's LiDAR fusion, wiring only: the ``points_topic`` subscription, the ``~/points`` /
``~/grid`` / ``~/grid/labels`` publishers, and a :class:`cityseg.fusion.feed.FusionQueue` that runs
the fusion's runner (:class:`cityseg.fusion.runner.FusionRunner`; without ``points_topic`` but with
``grid_frame``, the camera-only :class:`cityseg.fusion.ground_grid.GroundGridRunner`, one ``~/grid``
per rig frame) on its own thread, so labelling never delays a camera frame. Transforms:
``extrinsics_file``, else tf2 (:mod:`tf_lookup`). Warnings (a missing transform, once per camera) go
through the node's logger; the counters are the ``<node>: fusion`` /diagnostics entry. Its
message classes come from the node's factory (:class:`cityseg.ros.core.messages.RclpyMessages`).
"""

from __future__ import annotations

from cityseg.errors import CitysegError
from cityseg.fusion.config import FusionConfig
from cityseg.fusion.feed import CloudInput, FusionQueue, MaskInput
from cityseg.fusion.ground_grid import GroundGrid, GroundGridRunner
from cityseg.fusion.runner import FusionRunner, LabelledCloud, tree_lookup
from cityseg.ros.core.messages import StatusValues, stamp_ns
from cityseg.ros.core.outputs import GRID, GRID_LABELS, POINTS
from cityseg.ros.live import tf_lookup
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


def node_lookup(node, config: FusionConfig):
    """The transforms of the node's fusion: ``extrinsics_file`` (static, as the config read it), else
    tf2 at each stamp (through ``fixed_frame``); CitysegError naming the fix when neither is there."""
    if config.extrinsics is not None:
        return tree_lookup(config.extrinsics), None
    if not tf_lookup.tf2_available():
        raise CitysegError("points_topic / grid_frame need transforms: set extrinsics_file (a YAML of the static "
                           "transforms, docs/FUSION.md) or install tf2_ros (ros-$ROS_DISTRO-tf2-ros)")
    tf2 = tf_lookup.Tf2Lookup(node, config.fixed_frame)
    return tf2, tf2


class NodeFusion:
    """Masks from the inference thread and clouds from the executor in, labelled clouds out."""

    def __init__(self, node, msgs, params, processor, cameras: list[str]):
        self.node, self.msgs, self.params = node, msgs, params
        self.config = FusionConfig.from_params(params)
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
            self.publishers[POINTS] = node.create_lifecycle_publisher(msgs.PointCloud2, f"~/{POINTS}", 5)
        if self.config.grid is not None:
            if msgs.OccupancyGrid is None:
                node.get_logger().warning("~/grid is off: nav_msgs is not installed (ros-$ROS_DISTRO-nav-msgs); "
                                          "~/grid/labels is published")
            else:
                self.publishers[GRID] = node.create_lifecycle_publisher(msgs.OccupancyGrid, f"~/{GRID}", 5)
            self.publishers[GRID_LABELS] = node.create_lifecycle_publisher(msgs.Image, f"~/{GRID_LABELS}", 5)
        segmenter = processor.segmenter  # a scores head keeps its float32 scores until the confidence is taken
        with_scores = (not self.config.camera_only and segmenter.has_confidence
                       and segmenter.backend.artifact.output != "argmax")
        self.queue_depth = queue_depth(segmenter.input_size, segmenter.bundle.card.num_classes, with_scores)
        logger = node.get_logger()
        self.queue = FusionQueue(
            self.runner, self.queue_depth,
            on_drop=lambda text: logger.warning(text, throttle_duration_sec=LOG_THROTTLE_S),
            on_error=lambda text: logger.error(text, throttle_duration_sec=LOG_THROTTLE_S))
        self._subscription = None

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        from rclpy.qos import qos_profile_sensor_data  # rclpy: the node's own dependency, off the bag's path

        self.queue.start()
        if self.config.points_topic:
            self._subscription = self.node.create_subscription(self.msgs.PointCloud2, self.config.points_topic,
                                                               self._on_cloud, qos_profile_sensor_data)

    def stop(self) -> None:
        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)
            self._subscription = None
        self.queue.stop()

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
        fusion thread, not on the camera path. The camera-only grid reads the class ids alone, so
        only they are queued (the scores are let go)."""
        header = msg.header
        seg = result.segmentation
        self.queue.put(MaskInput(self.cameras.index(camera), stamp_ns(header.stamp), str(header.frame_id).lstrip("/"),
                                 seg.classes if self.config.camera_only else seg, camera_info, header))

    def _on_cloud(self, msg) -> None:
        header = msg.header
        self.queue.put(CloudInput(stamp_ns(header.stamp), str(header.frame_id).lstrip("/"), msg, header))

    # -- outputs --------------------------------------------------------------------------

    def _publish(self, cloud: LabelledCloud) -> None:
        header = cloud.tag
        self.publishers[POINTS].publish(self.msgs.point_cloud(header, cloud.layout, cloud.data))
        if cloud.grid is not None:
            self._publish_grid(header, cloud.grid)

    def _publish_ground(self, out: GroundGrid) -> None:
        """A camera-only grid, stamped as the newest image of its rig frame."""
        self._publish_grid(out.tag, out.grid)

    def _publish_grid(self, header, grid) -> None:
        grid_header = self.msgs.header(header.stamp.sec, header.stamp.nanosec, grid.spec.frame)
        if GRID in self.publishers:
            self.publishers[GRID].publish(self.msgs.occupancy_grid(grid_header, grid))
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
