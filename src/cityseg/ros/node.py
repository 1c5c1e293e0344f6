"""``segmentation_node``: the thin rclpy adapter around FrameProcessor (rclpy imported in main).

Everything that is not ROS plumbing lives in ROS-free modules: parameters (params), per-frame
work (processor), the latest-frame-wins thread (worker), rates and latencies (diagnostics).
"""

from __future__ import annotations

import sys

from cityseg.errors import CitysegError

NODE_NAME = "segmentation"


class SegmentationNode:
    """One camera: parameters, QoS, subscriptions, publishers, timers and the inference thread."""

    def __init__(self, **node_kwargs):
        import rclpy

        self.node = rclpy.create_node(NODE_NAME, **node_kwargs)
        try:
            self._setup()
        except BaseException:
            self.node.destroy_node()
            raise

    def _setup(self) -> None:
        from rcl_interfaces.msg import ParameterDescriptor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        from cityseg.ros.diagnostics import NodeStats
        from cityseg.ros.messages import RclpyMessages
        from cityseg.ros.params import load_node_params, parameter_specs
        from cityseg.ros.processor import CAMERA_INFO, COLOR_MASK, MASK, OVERLAY, FrameProcessor
        from cityseg.ros.worker import FrameWorker, LatestFrameSlot

        node, log = self.node, self.node.get_logger()
        for spec in parameter_specs():
            node.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description, read_only=True, dynamic_typing=True))
        p = self.params = load_node_params({s.name: node.get_parameter(s.name).value for s in parameter_specs()},
                                           where=f"{node.get_fully_qualified_name()} parameters")
        self.msgs = m = RclpyMessages()
        self.processor = FrameProcessor.from_bundle(p.model, m, p.processor_config(), p.backend)

        policy = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
        sub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth,
                             reliability=policy[p.qos_reliability])
        pub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth,
                             reliability=policy[p.output_reliability])
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)

        outputs = {MASK: (m.Image, p.publish_mask), COLOR_MASK: (m.Image, p.publish_color),
                   OVERLAY: (m.Image, p.publish_overlay), CAMERA_INFO: (m.CameraInfo, p.publish_camera_info)}
        self.publishers = {suffix: node.create_publisher(kind, f"~/{suffix}", pub_qos)
                           for suffix, (kind, enabled) in outputs.items() if enabled}
        self.label_pub = node.create_publisher(m.LabelInfo, "~/label_info", latched)
        self.diag_pub = node.create_publisher(m.DiagnosticArray, "/diagnostics", 10)

        self._camera_info = None
        image_type, image_topic = (m.CompressedImage, "image/compressed") if p.input_compressed else (m.Image, "image")
        node.create_subscription(image_type, image_topic, self._on_image, sub_qos)
        node.create_subscription(m.CameraInfo, "camera_info", self._on_camera_info, sub_qos)

        self.stats = NodeStats(window_s=p.stats_window)
        self.slot = LatestFrameSlot()
        self.worker = FrameWorker(self.slot, lambda item: self.processor.process(*item), self._publish,
                                  self.stats, on_error=self._on_error, max_rate_hz=p.max_rate_hz)
        node.create_timer(p.diagnostics_period, self._publish_diagnostics)
        if p.log_period > 0:
            node.create_timer(p.log_period, self._log_stats)

        sec, nsec = node.get_clock().now().seconds_nanoseconds()
        self.label_pub.publish(self.processor.label_info(sec, nsec, ""))
        self.worker.start()
        log.info(f"segmenting {node.resolve_topic_name(image_topic)} with {p.model} on "
                 f"{self.processor.segmenter.backend.describe()}; publishing "
                 f"{', '.join(sorted(self.publishers))}, label_info under {node.get_fully_qualified_name()}")

    def _on_image(self, msg) -> None:
        self.stats.received()
        if self.slot.put((msg, self._camera_info)):
            self.stats.dropped()

    def _on_camera_info(self, msg) -> None:
        self._camera_info = msg

    def _publish(self, messages: dict) -> None:
        for suffix, msg in messages.items():
            self.publishers[suffix].publish(msg)

    def _on_error(self, reason: str) -> None:
        self.node.get_logger().warning(f"skipped an image: {reason}", throttle_duration_sec=5.0)

    def _publish_diagnostics(self) -> None:
        from cityseg.ros.diagnostics import diagnostic_status

        sec, nsec = self.node.get_clock().now().seconds_nanoseconds()
        status = diagnostic_status(self.stats.snapshot(), self.node.get_fully_qualified_name(),
                                   self.processor.segmenter.bundle.card.name)
        self.diag_pub.publish(self.msgs.diagnostics(self.msgs.header(sec, nsec, ""), [status]))

    def _log_stats(self) -> None:
        from cityseg.ros.diagnostics import log_line

        self.node.get_logger().info(log_line(self.stats.snapshot()))

    def close(self) -> None:
        """Stop the inference thread and destroy the node."""
        self.worker.stop()
        self.node.destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``segmentation_node`` console script; exit code 2 on bad parameters."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    try:
        try:
            segmentation = SegmentationNode()
        except CitysegError as exc:
            print(f"segmentation_node: error: {exc}", file=sys.stderr)
            return 2
        except ImportError as exc:  # a message package (vision_msgs, diagnostic_msgs) is missing
            print(f"segmentation_node: error: {exc}; install the ROS dependencies with `rosdep install "
                  "--from-paths src -y --ignore-src` (e.g. ros-$ROS_DISTRO-vision-msgs)", file=sys.stderr)
            return 2
        try:
            rclpy.spin(segmentation.node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            segmentation.close()
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
