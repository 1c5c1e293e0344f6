"""``segmentation_node``: the thin rclpy adapter around FrameProcessor (rclpy imported in main).

Everything that is not ROS plumbing lives in ROS-free modules: the outputs table (outputs),
parameters (params), per-frame work (processor), the latest-frame-wins thread (worker), rates and
latencies (diagnostics), frames lost before the node (upstream).
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from cityseg.errors import CitysegError
from cityseg.ros.outputs import LABEL_INFO, NODE_EXECUTABLE, NODE_NAME, OUTPUTS
from cityseg.ros.upstream import stamp_seconds

LOG_THROTTLE_S = 5.0
"""At most one log line per this many seconds for each kind of repeated warning."""


class SegmentationNode:
    """One camera as a managed (lifecycle) node: parameters, QoS, subscriptions, publishers, timers
    and the inference thread, brought up and down by lifecycle transitions.

    unconfigured --configure--> inactive (parameters validated, model loaded and warmed up,
    publishers and timers created) --activate--> active (subscriptions, inference thread, outputs
    live) --deactivate--> inactive (no frame processed, nothing published, diagnostics say
    inactive) --cleanup--> unconfigured (model and runtime released). With ``autostart`` (the
    default) the constructor configures and activates, raising the CitysegError of a failed
    configure, so the node behaves as a plain node; without it the node waits for a manager.
    """

    def __init__(self, **node_kwargs):
        from rclpy.lifecycle import LifecycleNode

        from cityseg.ros.lifecycle import NodeTransitions
        from cityseg.ros.messages import RclpyMessages

        self.node = LifecycleNode(NODE_NAME, **node_kwargs)
        self.node.add_managed_entity(NodeTransitions(self))
        self.msgs = RclpyMessages()
        self.worker = self.processor = self.params = None
        self.publishers: dict = {}
        self._subscriptions: list = []
        self._timers: list = []
        self._active = False
        self._failure: Exception | None = None
        self._autostarting = False
        try:
            self._declare_parameters()
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        """Autostart (configure, activate; raise a failed configure's error) or say how to start."""
        if not self.node.get_parameter("autostart").value:
            fqn = self.node.get_fully_qualified_name()
            self.node.get_logger().info(
                f"waiting for a lifecycle manager (autostart is false): `ros2 lifecycle set {fqn} configure`, "
                f"then `ros2 lifecycle set {fqn} activate`")
            return
        from rclpy.lifecycle import TransitionCallbackReturn

        self._autostarting = True  # a failure is raised (main prints it once), not logged
        if self.node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise self._failure or CitysegError("configure failed")
        if self.node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise self._failure or CitysegError("activate failed")
        self._autostarting = False

    @property
    def state(self) -> str:
        """The lifecycle state's label: unconfigured, inactive, active, finalized."""
        return self.node._state_machine.current_state[1]

    # -- transitions (cityseg.ros.lifecycle calls these) ------------------------------------

    def configure(self) -> None:
        """Validate the parameters, load the model, warm it up, create publishers and timers."""
        from cityseg.ros.diagnostics import NodeStats
        from cityseg.ros.processor import FrameProcessor
        from cityseg.ros.upstream import UpstreamLossEstimator

        started = time.monotonic()
        p = self.params = self._read_parameters()
        self.processor = FrameProcessor.from_bundle(p.model, self.msgs, p.processor_config(), p.backend)
        self._warm_up()
        self.stats = NodeStats(window_s=p.stats_window)
        self.upstream = UpstreamLossEstimator()
        self._create_publishers()
        self._timers = [self.node.create_timer(p.diagnostics_period, self._publish_diagnostics)]
        if p.log_period > 0:
            self._timers.append(self.node.create_timer(p.log_period, self._log_stats))
        self._log_startup(time.monotonic() - started)

    def activate(self) -> None:
        """Subscriptions and the inference thread go live (only the inference thread publishes frames, so
        the outputs are live exactly while it runs; plain publishers, created on configure: rclpy cannot
        add lifecycle publishers from inside a transition)."""
        from cityseg.ros.worker import FrameWorker, LatestFrameSlot

        p = self.params
        self.slot = LatestFrameSlot()  # a fresh one: deactivate closed the last
        self.worker = FrameWorker(self.slot, self._process, self._publish, self.stats,
                                  on_error=self._on_error, max_rate_hz=p.max_rate_hz)
        self._create_subscriptions()
        self._active = True
        self.worker.start()
        self._publish_label_info()
        self.node.get_logger().info(f"active: segmenting {self.image_topic}")

    def deactivate(self) -> None:
        """No more frames: subscriptions go, the inference thread ends after the frame in progress."""
        self._active = False
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions = []
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self.node.get_logger().info("inactive: frames are not processed and nothing is published")

    def cleanup(self) -> None:
        """Release the model and its runtime, publishers and timers (back to unconfigured)."""
        import gc

        from cityseg.ros.heap import release_freed_memory

        if self._active or self.worker is not None:
            self.deactivate()
        for timer in self._timers:
            self.node.destroy_timer(timer)
        for publisher in self.publishers.values():
            self.node.destroy_publisher(publisher)
        if getattr(self, "diag_pub", None) is not None:
            self.node.destroy_publisher(self.diag_pub)
            self.diag_pub = None
        self._timers, self.publishers, self.processor = [], {}, None
        gc.collect()
        release_freed_memory()

    def transition_failed(self, transition: str, error: Exception) -> None:
        """Log a failed transition once (the node stays in its previous state)."""
        self._failure = error
        if not self._autostarting:
            self.node.get_logger().error(f"{transition} failed: {error}")
        if transition == "configure":
            self.cleanup()

    def _warm_up(self) -> None:
        """One inference on a blank frame, so the first camera frame does not pay the runtime's set-up."""
        import numpy as np

        segmenter = self.processor.segmenter
        height, width = segmenter.camera_size or segmenter.input_size
        segmenter.segment(np.zeros((height, width, 3), np.uint8))

    def _declare_parameters(self) -> None:
        from rcl_interfaces.msg import ParameterDescriptor

        from cityseg.ros.params import parameter_specs

        for spec in parameter_specs():
            self.node.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description, additional_constraints=spec.constraints,
                read_only=True, dynamic_typing=True))

    def _read_parameters(self):
        from cityseg.ros.params import load_node_params, parameter_specs

        node = self.node
        values = {s.name: node.get_parameter(s.name).value for s in parameter_specs()}
        return load_node_params(values, where=f"{node.get_fully_qualified_name()} parameters")

    def _create_publishers(self) -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        PublisherEventCallbacks = _event_callbacks("PublisherEventCallbacks")
        p, m = self.params, self.msgs
        image_qos = QoSProfile(depth=p.qos_depth, reliability=_reliability(p.output_reliability))
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        enabled = set(self.processor.config.outputs) | {LABEL_INFO}
        self.publishers = {}
        for output in OUTPUTS:
            kind = m.message_class(output.message_type)
            if output.suffix not in enabled or kind is None:
                continue
            qos = image_qos if output.per_frame else latched
            events = PublisherEventCallbacks(incompatible_qos=self._incompatible("publisher", output.suffix, qos))
            self.publishers[output.suffix] = self.node.create_publisher(
                kind, f"~/{output.suffix}", qos, event_callbacks=events)
        self.diag_pub = self.node.create_publisher(m.DiagnosticArray, "/diagnostics", 10)

    def _create_subscriptions(self) -> None:
        from rclpy.qos import QoSProfile

        SubscriptionEventCallbacks = _event_callbacks("SubscriptionEventCallbacks")
        p, m = self.params, self.msgs
        qos = QoSProfile(depth=p.qos_depth, reliability=_reliability(p.qos_reliability))
        self._camera_info = None
        kind, topic = (m.CompressedImage, "image/compressed") if p.input_compressed else (m.Image, "image")
        self.image_topic = self.node.resolve_topic_name(topic)
        # Images arrive as CDR bytes (raw=True) and are read as numpy views (cityseg.ros.cdr):
        # rclpy never builds a Python message of several megabytes under the GIL.
        for msg_type, name, callback, raw in ((kind, topic, self._on_image, True),
                                              (m.CameraInfo, "camera_info", self._on_camera_info, False)):
            events = SubscriptionEventCallbacks(incompatible_qos=self._incompatible("subscription", name, qos))
            self._subscriptions.append(self.node.create_subscription(
                msg_type, name, callback, qos, event_callbacks=events, raw=raw))

    def _incompatible(self, side: str, topic: str, qos):
        """An incompatible-QoS callback that names the topic, the policy and the parameter to change."""
        resolved = self.node.resolve_topic_name(topic if side == "subscription" else f"~/{topic}")
        hint = ("set qos_reliability:=reliable only for reliable publishers; best_effort accepts both"
                if side == "subscription" else
                "the subscriber asks for more than this publisher offers (output_reliability, durability)")

        def report(event) -> None:
            from rclpy.qos import qos_policy_name_from_kind

            policy = qos_policy_name_from_kind(event.last_policy_kind)
            self.node.get_logger().warning(
                f"{resolved}: a {'publisher' if side == 'subscription' else 'subscriber'} with incompatible "
                f"QoS ({policy}) cannot connect to this {side} ({qos.reliability.name.lower()}); {hint}",
                throttle_duration_sec=LOG_THROTTLE_S)
        return report

    def _publish_label_info(self) -> None:
        if LABEL_INFO not in self.publishers:
            self.node.get_logger().info(
                "~/label_info is off: vision_msgs is not installed (install ros-$ROS_DISTRO-vision-msgs "
                "to publish the class names); every other output is unaffected")
            return
        sec, nsec = self.node.get_clock().now().seconds_nanoseconds()
        self.publishers[LABEL_INFO].publish(self.processor.label_info(sec, nsec, ""))

    def _log_startup(self, load_s: float) -> None:
        import rclpy

        from cityseg.ros.middleware import middleware_advice

        log = self.node.get_logger()
        per_frame = [suffix for suffix in self.publishers if suffix != LABEL_INFO]
        topic = self.node.resolve_topic_name("image/compressed" if self.params.input_compressed else "image")
        log.info(f"segmenting {topic} with {self.params.model} on "
                 f"{self.processor.segmenter.backend.describe()} (ready in {load_s:.1f} s); publishing "
                 f"{', '.join(per_frame)} under {self.node.get_fully_qualified_name()}")
        for suffix, reason in self.processor.unavailable.items():
            log.warning(f"~/{suffix} is off: {reason}")
        advice = middleware_advice(rclpy.get_rmw_implementation_identifier())
        if advice:
            log.warning(advice)

    def _on_image(self, data: bytes) -> None:
        from cityseg.ros.cdr import read_compressed_image, read_image
        from cityseg.ros.images import ImageError

        self.stats.received()
        try:
            msg = read_compressed_image(data) if self.params.input_compressed else read_image(data)
        except ImageError as exc:
            self.stats.failed(str(exc))
            self._on_error(str(exc), False)
            return
        self.stats.upstream_lost(self.upstream.observe(stamp_seconds(msg)))
        if self.slot.put((msg, self._camera_info)):
            self.stats.dropped()

    def live_outputs(self) -> frozenset[str]:
        """The per-frame outputs that have a subscriber now (a recorder counts); checked per frame."""
        return frozenset(suffix for suffix, publisher in self.publishers.items()
                         if suffix != LABEL_INFO and publisher.get_subscription_count() > 0)

    def _process(self, item):
        """One frame through the processor, building only the outputs someone listens to."""
        live = self.live_outputs()
        if not live:
            return None
        msg, camera_info = item
        return self.processor.process(msg, camera_info, live)

    def _on_camera_info(self, msg) -> None:
        self._camera_info = msg

    def _publish(self, messages: dict) -> None:
        for suffix, msg in messages.items():
            self.publishers[suffix].publish(msg)

    def _on_error(self, reason: str, internal: bool) -> None:
        log = self.node.get_logger()
        if internal:
            log.error(f"segmentation failed: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
        else:
            log.warning(f"skipped an image: {reason}", throttle_duration_sec=LOG_THROTTLE_S)

    def _publish_diagnostics(self) -> None:
        from dataclasses import replace

        from cityseg.ros.diagnostics import LOSS_HINT, OK, diagnostic_status

        snap = self.stats.snapshot()
        sec, nsec = self.node.get_clock().now().seconds_nanoseconds()
        live = tuple(s for s in self.publishers if s in self.live_outputs())
        fqn = self.node.get_fully_qualified_name()
        status = diagnostic_status(snap, fqn, self.processor.segmenter.bundle.card.name,
                                   self.params.upstream_loss_warn, live)
        status = replace(status, values=(("lifecycle state", self.state), *status.values))
        if not self._active:
            status = replace(status, level=OK, message=f"inactive (lifecycle): frames are not processed; "
                                                        f"`ros2 lifecycle set {fqn} activate`")
        self.diag_pub.publish(self.msgs.diagnostics(self.msgs.header(sec, nsec, ""), [status]))
        if self._active and snap.upstream_lost_percent > self.params.upstream_loss_warn:
            self.node.get_logger().warning(
                f"{snap.upstream_lost_percent:.0f} % of the frames on {self.image_topic} were lost before "
                f"they reached this node (gaps in their header stamps); {LOSS_HINT}",
                throttle_duration_sec=LOG_THROTTLE_S)

    def _log_stats(self) -> None:
        from cityseg.ros.diagnostics import log_line

        self.node.get_logger().info(log_line(self.stats.snapshot()))

    def close(self) -> None:
        """Stop the inference thread, release the model and destroy the node (from any state)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self._active = False
        self.processor = None
        self.node.destroy_node()


def _event_callbacks(name: str):
    """rclpy's Publisher/SubscriptionEventCallbacks (``rclpy.event_handler`` since Iron, ``qos_event`` in Humble)."""
    try:
        from rclpy import event_handler as module
    except ImportError:
        from rclpy import qos_event as module
    return getattr(module, name)


def _reliability(name: str):
    from rclpy.qos import ReliabilityPolicy

    return {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}[name]


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``segmentation_node`` console script: 0 on SIGINT/SIGTERM, 2 on bad setup.

    The node handles SIGINT and SIGTERM itself (rclpy's handlers would shut the context down under
    a frame still being published): the signal ends the spin loop, then the inference thread
    finishes its frame, then the node and the context go.
    """
    try:
        import rclpy
        from rclpy.signals import SignalHandlerOptions
    except ImportError as exc:
        print(f"{NODE_EXECUTABLE}: error: {exc}; source a ROS 2 installation (source "
              "/opt/ros/$ROS_DISTRO/setup.bash) or `pip install cityseg[ros]`", file=sys.stderr)
        return 2
    from cityseg.ros.heap import retain_frame_memory

    retain_frame_memory()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        try:
            segmentation = SegmentationNode()
        except CitysegError as exc:  # autostart: a failed configure ends the process, as before
            print(f"{NODE_EXECUTABLE}: error: {exc}", file=sys.stderr)
            return 2
        except ImportError as exc:  # a message package (sensor_msgs, diagnostic_msgs) is missing
            print(f"{NODE_EXECUTABLE}: error: {exc}; install the ROS dependencies with `rosdep install "
                  "--from-paths src -y --ignore-src`", file=sys.stderr)
            return 2
        try:
            _spin_until(segmentation.node, stop)
        finally:
            segmentation.close()
        return 0
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _spin_until(node, stop: threading.Event) -> None:
    """Serve the node's callbacks until ``stop`` is set or the context shuts down."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)


if __name__ == "__main__":
    sys.exit(main())
