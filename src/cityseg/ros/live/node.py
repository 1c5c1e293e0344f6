"""``segmentation_node``: the thin rclpy adapter around FrameProcessor (rclpy imported in main).

Everything that is not ROS plumbing lives in ROS-free modules: the outputs table and per-frame
work in ``ros.core`` (outputs, processor), and here in ``ros.live`` the parameters (params), the
latest-frame-wins threads (worker for one camera, camera_batcher for several), rates and latencies
(diagnostics), frames lost before the node (upstream_loss); one camera's endpoints are camera_io,
the lifecycle bridge lifecycle.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from cityseg.errors import CitysegError
from cityseg.ros.core.outputs import NODE_EXECUTABLE, NODE_NAME
from cityseg.ros.live.camera_io import LOG_THROTTLE_S

NAME_CHECK_S = 2.0
"""Period of the node's look for another node of its name (from configure on; discovery needs time)."""


class SegmentationNode:
    """A managed (lifecycle) node serving one camera, or every camera of its ``cameras`` parameter
    with one model and batched inference.

    unconfigured --configure--> inactive (parameters validated, model loaded and warmed up,
    publishers and timers created) --activate--> active (subscriptions, inference thread, outputs
    live) --deactivate--> inactive (no frame processed, nothing published, diagnostics say
    inactive) --cleanup--> unconfigured (model and runtime released). With ``autostart`` (the
    default) the constructor configures and activates, raising the CitysegError of a failed
    configure, so the node behaves as a plain node; without it the node waits for a manager.
    """

    def __init__(self, **node_kwargs):
        from rclpy.lifecycle import LifecycleNode

        from cityseg.ros.core.messages import RclpyMessages
        from cityseg.ros.live.lifecycle import NodeTransitions

        self.node = LifecycleNode(NODE_NAME, **node_kwargs)
        self.node.add_managed_entity(NodeTransitions(self))
        self.msgs = RclpyMessages()
        self.worker = self.processor = self.params = self.slot = self.batcher = self.diag_pub = None
        self.fusion = None
        """cityseg.ros.live.fusion.NodeFusion when points_topic (or grid_frame: camera-only grid) is set."""
        self.cameras: dict = {}
        """Camera name ('' in single-camera mode) -> its CameraIO."""
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

    @property
    def multi_camera(self) -> bool:
        return bool(self.params and self.params.cameras)

    # -- transitions (cityseg.ros.live.lifecycle calls these) ------------------------------------

    def configure(self) -> None:
        """Validate the parameters, load the model, warm it up, create publishers and timers."""
        from cityseg.ros.core.processor import FrameProcessor

        started = time.monotonic()
        p = self.params = self._read_parameters()
        self.processor = FrameProcessor.from_bundle(p.model, self.msgs, p.processor_config(), p.backend)
        self._warm_up()
        self._create_cameras()
        if p.points_topic or p.grid_frame:
            from cityseg.ros.live.fusion import NodeFusion

            self.fusion = NodeFusion(self.node, self.msgs, p, self.processor, list(self.cameras))
        self.diag_pub = self.node.create_publisher(self.msgs.DiagnosticArray, "/diagnostics", 10)
        self._timers = [self.node.create_timer(p.diagnostics_period, self._publish_diagnostics)]
        if p.log_period > 0:
            self._timers.append(self.node.create_timer(p.log_period, self._log_stats))
        self._namesakes_warned = 0  # the graph is watched all along: a namesake may be started later
        self._timers.append(self.node.create_timer(NAME_CHECK_S, self._warn_namesakes))
        self._log_startup(time.monotonic() - started)

    def _warn_namesakes(self) -> None:
        """Warn when another node in the graph takes this node's fully qualified name (once per namesake
        that appears: the check runs every NAME_CHECK_S, as discovery and later launches may be slow)."""
        from cityseg.ros.core.outputs import namesakes

        fqn = self.node.get_fully_qualified_name()
        count = namesakes(fqn, self.node.get_node_names_and_namespaces())
        warn, self._namesakes_warned = count > self._namesakes_warned, count
        if warn:
            self.node.get_logger().warning(
                f"another node is also named {fqn}: both publish on the same topics, so every input gives two "
                f"masks; give each its own namespace (namespace:=<camera>) or stop the other one")

    def activate(self) -> None:
        """Subscriptions and the inference thread go live (only the inference thread publishes frames, so
        the outputs are live exactly while it runs; plain publishers, created on configure: rclpy cannot
        add lifecycle publishers from inside a transition)."""
        self.worker = self._batch_worker() if self.multi_camera else self._frame_worker()
        for camera in self.cameras.values():
            camera.subscribe()
        self._active = True
        if self.fusion is not None:
            self.fusion.start()
        self.worker.start()
        self._publish_label_info()
        topics = ", ".join(camera.image_topic for camera in self.cameras.values())
        self.node.get_logger().info(f"active: segmenting {topics}")

    def deactivate(self) -> None:
        """No more frames: subscriptions go, the inference thread ends after the frame in progress."""
        self._active = False
        for camera in self.cameras.values():
            camera.unsubscribe()
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.fusion is not None:
            self.fusion.stop()
        self.node.get_logger().info("inactive: frames are not processed and nothing is published")

    def cleanup(self) -> None:
        """Release the model and its runtime, publishers and timers (back to unconfigured)."""
        import gc

        from cityseg.ros.live.frame_memory import release_freed_memory

        if self._active or self.worker is not None:
            self.deactivate()
        for timer in self._timers:
            self.node.destroy_timer(timer)
        for camera in self.cameras.values():
            camera.destroy()
        if self.diag_pub is not None:
            self.node.destroy_publisher(self.diag_pub)
        if self.fusion is not None:
            self.fusion.destroy()
            self.fusion = None
        self._timers, self.cameras, self.processor, self.diag_pub = [], {}, None, None
        gc.collect()
        release_freed_memory()

    def transition_failed(self, transition: str, error: Exception) -> None:
        """Log a failed transition once (the node stays in its previous state)."""
        self._failure = error
        if not self._autostarting:
            self.node.get_logger().error(f"{transition} failed: {error}")
        if transition == "configure":
            self.cleanup()

    # -- set-up -----------------------------------------------------------------------------

    def _warm_up(self) -> None:
        """One inference on a blank frame, so the first camera frame does not pay the runtime's set-up."""
        import numpy as np

        segmenter = self.processor.segmenter
        height, width = segmenter.camera_size or segmenter.input_size
        segmenter.segment(np.zeros((height, width, 3), np.uint8))

    def _declare_parameters(self) -> None:
        from rcl_interfaces.msg import ParameterDescriptor

        from cityseg.ros.live.params import parameter_specs

        for spec in parameter_specs():
            self.node.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description, additional_constraints=spec.constraints,
                read_only=True, dynamic_typing=True))
        self._refuse_undeclared_overrides()

    def _refuse_undeclared_overrides(self) -> None:
        """A misspelled `-p name:=value` or params-file key is an error, not a silent default.

        rclpy has no public getter for the overrides rcl parsed from the command line and params
        files for this node, so this reads ``Node._parameter_overrides`` (filled from both)."""
        from cityseg.ros.live.params import check_known

        overrides = getattr(self.node, "_parameter_overrides", {}) or {}
        check_known(overrides, f"{self.node.get_fully_qualified_name()} parameters",
                    "correct or remove the -p override or params-file key")

    def _read_parameters(self):
        from cityseg.ros.live.params import load_node_params, parameter_specs

        node = self.node
        values = {s.name: node.get_parameter(s.name).value for s in parameter_specs()}
        return load_node_params(values, where=f"{node.get_fully_qualified_name()} parameters")

    def _create_cameras(self) -> None:
        """One CameraIO (single-camera mode) or one per camera, each with its publishers."""
        from cityseg.ros.live.camera_io import CameraIO, CameraTopics

        p, enabled = self.params, self.processor.config.outputs
        if not p.cameras:
            topics = [CameraTopics.single(p.input_compressed)]
        else:
            topics = [CameraTopics.from_patterns(c, p.camera_image_topic, p.camera_info_topic,
                                                 p.camera_output_prefix, p.input_compressed) for c in p.cameras]
        self.cameras = {t.name: CameraIO(self.node, self.msgs, p, t, enabled, self._deliver_to(t.name),
                                         self._error_reporter(t.name)) for t in topics}

    def _deliver_to(self, camera: str):
        """How camera ``camera``'s frames reach the inference thread (True: a pending frame was replaced);
        the slot or batcher is made on activate (the camera is subscribed only while active)."""
        if camera == "":
            return lambda item: self.slot.put(item)
        return lambda item: self.batcher.put(camera, item)

    def _frame_worker(self):
        from cityseg.ros.live.worker import FrameWorker, LatestFrameSlot

        camera = self.cameras[""]
        self.slot = LatestFrameSlot()  # one per activation: deactivate closes it
        return FrameWorker(self.slot, lambda item: self._process(camera, item), camera.publish, camera.stats,
                           on_error=self._error_reporter(""), max_rate_hz=self.params.max_rate_hz)

    def _batch_worker(self):
        from cityseg.ros.live.camera_batcher import BatchWorker, CameraBatcher, batch_capacity_note

        p = self.params
        self.batcher = CameraBatcher(p.cameras)  # one per activation: deactivate closes it
        note = batch_capacity_note(len(p.cameras), self.processor.segmenter.max_batch)
        if note:
            self.node.get_logger().warning(note)
        return BatchWorker(self.batcher, self._process_batch, lambda camera, msgs: self.cameras[camera].publish(msgs),
                           {name: camera.stats for name, camera in self.cameras.items()},
                           on_error=lambda camera, reason, internal: self._error_reporter(camera)(reason, internal),
                           max_batch=p.max_batch or None, batch_wait_s=p.batch_wait_ms / 1e3,
                           max_rate_hz=p.max_rate_hz)

    # -- per frame --------------------------------------------------------------------------

    def _process(self, camera, item):
        """One frame through the processor, building only the outputs someone listens to; each is
        published as soon as it is built (the mask does not wait for the overlay)."""
        live = camera.live_outputs()
        if not live and self.fusion is None:
            return None
        msg, camera_info = item
        result = self.processor.process(msg, camera_info, live, sink=camera.publish_one)
        if self.fusion is not None:
            self.fusion.feed("", msg, camera_info, result)
        return result if live else None

    def _process_batch(self, entries):
        """Frames of several cameras through one backend call; None for a camera nobody listens to."""
        from cityseg.ros.core.processor import FrameRequest

        live = {name: self.cameras[name].live_outputs() for name, _ in entries}
        fused = self.fusion is not None
        wanted = [(i, name, item) for i, (name, item) in enumerate(entries) if live[name] or fused]
        results: list = [None] * len(entries)
        if wanted:
            requests = [FrameRequest(item[0], item[1], live[name], self.cameras[name].publish_one)
                        for _, name, item in wanted]
            for (i, name, item), result in zip(wanted, self.processor.process_batch(requests)):
                if fused and not isinstance(result, Exception):
                    self.fusion.feed(name, item[0], item[1], result)
                results[i] = result if live[name] or isinstance(result, Exception) else None
        return results

    def _error_reporter(self, camera: str):
        where = f"camera {camera}: " if camera else ""

        def report(reason: str, internal: bool) -> None:
            log = self.node.get_logger()
            if internal:
                log.error(f"{where}segmentation failed: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
            else:
                log.warning(f"{where}skipped an image: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
        return report

    # -- reporting --------------------------------------------------------------------------

    def _publish_label_info(self) -> None:
        if self.msgs.LabelInfo is not None:
            sec, nsec = self.node.get_clock().now().seconds_nanoseconds()
            message = self.processor.label_info(sec, nsec, "")
            for camera in self.cameras.values():
                camera.publish_label_info(message)
        else:
            self.node.get_logger().info(
                "~/label_info is off: vision_msgs is not installed (install ros-$ROS_DISTRO-vision-msgs "
                "to publish the class names); every other output is unaffected")

    def _log_startup(self, load_s: float) -> None:
        import rclpy

        from cityseg.ros.live.dds_profile import middleware_advice

        log = self.node.get_logger()
        first = next(iter(self.cameras.values()))
        per_frame = [suffix for suffix in first.publishers if suffix != "label_info"]
        topics = ", ".join(camera.image_topic for camera in self.cameras.values())
        where = (self.node.get_fully_qualified_name() if not self.multi_camera
                 else self.params.camera_output_prefix + f" for {len(self.cameras)} cameras")
        log.info(f"segmenting {topics} with {self.params.model} on "
                 f"{self.processor.segmenter.backend.describe()} (ready in {load_s:.1f} s); publishing "
                 f"{', '.join(per_frame)} under {where}")
        for suffix, reason in self.processor.unavailable.items():
            log.warning(f"~/{suffix} is off: {reason}")
        advice = middleware_advice(rclpy.get_rmw_implementation_identifier())
        if advice:
            log.warning(advice)

    def _publish_diagnostics(self) -> None:
        from dataclasses import replace

        from cityseg.ros.live.diagnostics import OK

        fqn = self.node.get_fully_qualified_name()
        snapshots = {name: camera.stats.snapshot() for name, camera in self.cameras.items()}
        statuses = self._camera_statuses(fqn, snapshots)
        state = ("lifecycle state", self.state)
        if self.fusion is not None:
            statuses.append(self.fusion.status(fqn))
        statuses = [replace(s, values=(state, *s.values)) for s in statuses]
        if not self._active:
            statuses = [replace(s, level=OK, message="inactive (lifecycle): frames are not processed; "
                                                     f"`ros2 lifecycle set {fqn} activate`") for s in statuses]
        sec, nsec = self.node.get_clock().now().seconds_nanoseconds()
        self.diag_pub.publish(self.msgs.diagnostics(self.msgs.header(sec, nsec, ""), statuses))
        if self._active:
            self._warn_upstream_loss(snapshots)

    def _camera_statuses(self, fqn: str, snapshots: dict) -> list:
        from cityseg.ros.live.diagnostics import batch_status, camera_statuses, diagnostic_status

        model, warn = self.processor.segmenter.bundle.card.name, self.params.upstream_loss_warn
        live = {}
        for name, camera in self.cameras.items():
            listened = camera.live_outputs()  # one subscription count per publisher, in publishing order
            live[name] = tuple(s for s in camera.publishers if s in listened)
        if not self.multi_camera:
            return [diagnostic_status(snapshots[""], fqn, model, warn, live[""])]
        sizes = self.worker.batch_sizes.snapshot() if self.worker is not None else {}
        return [*camera_statuses(snapshots, fqn, model, warn, live),
                batch_status(sizes, fqn, model, len(self.cameras), self.params.max_batch or len(self.cameras))]

    def _warn_upstream_loss(self, snapshots: dict) -> None:
        from cityseg.ros.live.diagnostics import LOSS_HINT

        for name, camera in self.cameras.items():
            lost = snapshots[name].upstream_lost_percent
            if lost > self.params.upstream_loss_warn:
                self.node.get_logger().warning(
                    f"{lost:.0f} % of the frames on {camera.image_topic} were lost before they reached this "
                    f"node (gaps in their header stamps); {LOSS_HINT}", throttle_duration_sec=LOG_THROTTLE_S)

    def _log_stats(self) -> None:
        from cityseg.ros.live.diagnostics import log_line

        for name, camera in self.cameras.items():
            self.node.get_logger().info((f"{name}: " if name else "") + log_line(camera.stats.snapshot()))

    def close(self) -> None:
        """Stop the inference thread, release the model and destroy the node (from any state)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.fusion is not None:
            self.fusion.stop()
        self._active = False
        self.processor = None
        self.node.destroy_node()


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
    from cityseg.ros.live.frame_memory import retain_frame_memory

    retain_frame_memory()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    from rclpy.impl.implementation_singleton import rclpy_implementation

    from cityseg.ros.live.rcl_args import ros_arguments_problem, stderr_without

    try:
        with stderr_without("Failed to parse global arguments"):  # said below, in one line
            rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except rclpy_implementation.RCLError as exc:  # an unparsable -p rule or params file
        print(f"{NODE_EXECUTABLE}: error: {ros_arguments_problem(str(exc))}", file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        return 2
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
