"""``SegmentationNode``: the rclpy lifecycle node around FrameProcessor (rclpy imported here; the
``segmentation_node`` entry point is ``ros.live.main``).

Everything that is not ROS plumbing lives in ROS-free modules: the outputs table and per-frame
work in ``ros.core`` (outputs, processor), and here in ``ros.live`` the parameters (params), the
latest-frame-wins inference thread for one camera or a rig (inference_worker), rates and latencies
(diagnostics), frames lost before the node (upstream_loss); one camera's endpoints are camera_io.
"""

from __future__ import annotations

import time

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from cityseg.errors import CitysegError
from cityseg.ros.core.messages import RclpyMessages
from cityseg.ros.core.outputs import NODE_NAME, namesakes
from cityseg.ros.core.processor import FrameProcessor, FrameRequest
from cityseg.ros.live.camera_io import LOG_THROTTLE_S, CameraIO, CameraTopics
from cityseg.ros.live.dds_profile import middleware_advice
from cityseg.ros.live.diagnostics import LOSS_HINT, OK, batch_status, camera_statuses, diagnostic_status, log_line
from cityseg.ros.live.frame_memory import release_freed_memory
from cityseg.ros.live.fusion import NodeFusion
from cityseg.ros.live.inference_worker import CameraBatcher, InferenceWorker, batch_capacity_note
from cityseg.ros.live.params import check_known, load_node_params, parameter_specs

NAME_CHECK_S = 2.0
"""Period of the node's look for another node of its name (from configure on; discovery needs time)."""


class SegmentationNode(LifecycleNode):
    """A managed (lifecycle) node serving one camera, or every camera of its ``cameras`` parameter
    with one model and batched inference.

    unconfigured --configure--> inactive (parameters validated, model loaded and warmed up,
    lifecycle publishers and timers created) --activate--> active (publishers enabled by rclpy,
    subscriptions, inference thread) --deactivate--> inactive (no frame processed, publishers
    disabled, diagnostics say inactive) --cleanup--> unconfigured (model and runtime released).
    ``~/change_state`` (``ros2 lifecycle set``, launch_ros' ``ChangeState``, Nav2's lifecycle manager)
    and autostart run the same ``on_*`` callbacks, as in ros2/demos' ``lifecycle_py``. A
    CitysegError in a callback (a bad parameter, a missing bundle) is FAILURE, logged once: the node
    stays in its state and alive; any other exception is ERROR (then ``on_error`` releases
    everything: unconfigured). With ``autostart`` (the default) the constructor configures and
    activates, raising the CitysegError of a failed configure, so the node behaves as a plain node.
    """

    def __init__(self, **node_kwargs):
        super().__init__(NODE_NAME, **node_kwargs)
        self.msgs = RclpyMessages()
        self.worker = self.processor = self.params = self.batcher = self.diag_pub = None
        self.fusion = None
        """cityseg.ros.live.fusion.NodeFusion when points_topic (or grid_frame: camera-only grid) is set."""
        self.cameras: dict = {}
        """Camera name ('' in single-camera mode) -> its CameraIO."""
        self._own_timers: list = []  # not ``_timers``: rclpy's Node keeps its own list under that name
        self._active = False
        self._state = "unconfigured"
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
        if not self.get_parameter("autostart").value:
            fqn = self.get_fully_qualified_name()
            self.get_logger().info(
                f"waiting for a lifecycle manager (autostart is false): `ros2 lifecycle set {fqn} configure`, "
                f"then `ros2 lifecycle set {fqn} activate`")
            return
        self._autostarting = True  # a failure is raised (main prints it once), not logged
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise self._failure or CitysegError("configure failed")
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise self._failure or CitysegError("activate failed")
        self._autostarting = False

    @property
    def state(self) -> str:
        """The lifecycle state's label: unconfigured, inactive, active, finalized (kept by the callbacks:
        rclpy has no public getter of its state machine's state)."""
        return self._state

    # -- rclpy's transition callbacks ---------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("configure", self.configure, "inactive")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("activate", lambda: self._enable(state), "active")

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("deactivate", lambda: self._disable(state), "inactive")

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("cleanup", self.cleanup, "unconfigured")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("shutdown", self.cleanup, "finalized")

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A callback raised something unexpected: release everything and go back to unconfigured."""
        self.cleanup()
        self._state = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def _transition(self, transition: str, action, reached: str) -> TransitionCallbackReturn:
        try:
            action()
        except CitysegError as exc:
            self.transition_failed(transition, exc)
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # a bug: rclpy would swallow it silently; say what it was, then on_error
            self.transition_failed(transition, RuntimeError(f"internal error: {type(exc).__name__}: {exc}"))
            return TransitionCallbackReturn.ERROR
        self._state = reached
        return TransitionCallbackReturn.SUCCESS

    def _enable(self, state: LifecycleState) -> None:
        """rclpy enables the lifecycle publishers (its default ``on_activate``), then the frames flow."""
        if super().on_activate(state) != TransitionCallbackReturn.SUCCESS:
            raise CitysegError("activate failed: a lifecycle publisher could not be enabled")
        self.activate()

    def _disable(self, state: LifecycleState) -> None:
        """The frames stop (the frame in progress is published), then rclpy disables the publishers."""
        self.deactivate()
        super().on_deactivate(state)

    @property
    def multi_camera(self) -> bool:
        return bool(self.params and self.params.cameras)

    # -- what each transition does ---------------------------------------------------------

    def configure(self) -> None:
        """Validate the parameters, load the model, warm it up, create publishers and timers."""
        started = time.monotonic()
        p = self.params = self._read_parameters()
        self.processor = FrameProcessor.from_bundle(p.model, self.msgs, p.processor_config(), p.backend)
        self._warm_up()
        self._create_cameras()
        if p.points_topic or p.grid_frame:
            self.fusion = NodeFusion(self, self.msgs, p, self.processor, list(self.cameras))
        self.diag_pub = self.create_publisher(self.msgs.DiagnosticArray, "/diagnostics", 10)
        self._own_timers = [self.create_timer(p.diagnostics_period, self._publish_diagnostics)]
        if p.log_period > 0:
            self._own_timers.append(self.create_timer(p.log_period, self._log_stats))
        self._namesakes_warned = 0  # the graph is watched all along: a namesake may be started later
        self._own_timers.append(self.create_timer(NAME_CHECK_S, self._warn_namesakes))
        self._log_startup(time.monotonic() - started)

    def _warn_namesakes(self) -> None:
        """Warn when another node in the graph takes this node's fully qualified name (once per namesake
        that appears: the check runs every NAME_CHECK_S, as discovery and later launches may be slow)."""
        fqn = self.get_fully_qualified_name()
        count = namesakes(fqn, self.get_node_names_and_namespaces())
        warn, self._namesakes_warned = count > self._namesakes_warned, count
        if warn:
            self.get_logger().warning(
                f"another node is also named {fqn}: both publish on the same topics, so every input gives two "
                f"masks; give each its own namespace (namespace:=<camera>) or stop the other one")

    def activate(self) -> None:
        """Subscriptions and the inference thread go live (the publishers are enabled already)."""
        self.worker = self._inference_worker()
        for camera in self.cameras.values():
            camera.subscribe()
        self._active = True
        if self.fusion is not None:
            self.fusion.start()
        self.worker.start()
        self._publish_label_info()
        topics = ", ".join(camera.image_topic for camera in self.cameras.values())
        self.get_logger().info(f"active: segmenting {topics}")

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
        self.get_logger().info("inactive: frames are not processed and nothing is published")

    def cleanup(self) -> None:
        """Release the model and its runtime, publishers and timers (back to unconfigured)."""
        import gc

        if self._active or self.worker is not None:
            self.deactivate()
        for timer in self._own_timers:
            self.destroy_timer(timer)
        for camera in self.cameras.values():
            camera.destroy()
        if self.diag_pub is not None:
            self.destroy_publisher(self.diag_pub)
        if self.fusion is not None:
            self.fusion.destroy()
            self.fusion = None
        self._own_timers, self.cameras, self.processor, self.diag_pub = [], {}, None, None
        gc.collect()
        release_freed_memory()

    def transition_failed(self, transition: str, error: Exception) -> None:
        """Log a failed transition once (the node stays in its previous state)."""
        self._failure = error
        if not self._autostarting:
            self.get_logger().error(f"{transition} failed: {error}")
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

        for spec in parameter_specs():
            self.declare_parameter(spec.name, spec.default, ParameterDescriptor(
                description=spec.description, additional_constraints=spec.constraints,
                read_only=True, dynamic_typing=True))
        self._refuse_undeclared_overrides()

    def _refuse_undeclared_overrides(self) -> None:
        """A misspelled `-p name:=value` or params-file key is an error, not a silent default.

        rclpy has no public getter for the overrides rcl parsed from the command line and params
        files for this node, so this reads ``Node._parameter_overrides`` (filled from both)."""
        overrides = getattr(self, "_parameter_overrides", {}) or {}
        check_known(overrides, f"{self.get_fully_qualified_name()} parameters",
                    "correct or remove the -p override or params-file key")

    def _read_parameters(self):
        node = self
        values = {s.name: node.get_parameter(s.name).value for s in parameter_specs()}
        return load_node_params(values, where=f"{node.get_fully_qualified_name()} parameters")

    def _create_cameras(self) -> None:
        """One CameraIO (single-camera mode) or one per camera, each with its publishers."""
        p, enabled = self.params, self.processor.config.outputs
        if not p.cameras:
            topics = [CameraTopics.single(p.input_compressed)]
        else:
            topics = [CameraTopics.from_patterns(c, p.camera_image_topic, p.camera_info_topic,
                                                 p.camera_output_prefix, p.input_compressed) for c in p.cameras]
        self.cameras = {t.name: CameraIO(self, self.msgs, p, t, enabled, self._hand_to_inference(t.name),
                                         self._error_reporter(t.name)) for t in topics}

    def _hand_to_inference(self, camera: str):
        """How camera ``camera``'s frames reach the inference thread (True: a pending frame was replaced);
        the batcher is made on activate (the camera is subscribed only while active)."""
        return lambda item: self.batcher.put(camera, item)

    def _inference_worker(self):
        """One camera is a rig of one: the same batcher and thread serve both."""
        p = self.params
        self.batcher = CameraBatcher(list(self.cameras))  # one per activation: deactivate closes it
        note = batch_capacity_note(len(self.cameras), self.processor.segmenter.max_batch)
        if note:
            self.get_logger().warning(note)
        return InferenceWorker(self.batcher, self._process_batch,
                               lambda camera, msgs: self.cameras[camera].publish(msgs),
                               {name: camera.stats for name, camera in self.cameras.items()},
                               on_error=lambda camera, reason, internal: self._error_reporter(camera)(reason, internal),
                               max_batch=p.max_batch or None, batch_wait_s=p.batch_wait_ms / 1e3,
                               max_rate_hz=p.max_rate_hz)

    # -- per frame --------------------------------------------------------------------------

    def _process_batch(self, entries):
        """The batch's frames (one per camera) through one backend call, building only the outputs someone
        listens to, each published as soon as it is built (the mask does not wait for the overlay);
        None for a camera nobody listens to (and no fusion needs)."""
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
            log = self.get_logger()
            if internal:
                log.error(f"{where}segmentation failed: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
            else:
                log.warning(f"{where}skipped an image: {reason}", throttle_duration_sec=LOG_THROTTLE_S)
        return report

    # -- reporting --------------------------------------------------------------------------

    def _publish_label_info(self) -> None:
        if self.msgs.LabelInfo is not None:
            sec, nsec = self.get_clock().now().seconds_nanoseconds()
            message = self.processor.label_info(sec, nsec, "")
            for camera in self.cameras.values():
                camera.publish_label_info(message)
        else:
            self.get_logger().info(
                "~/label_info is off: vision_msgs is not installed (install ros-$ROS_DISTRO-vision-msgs "
                "to publish the class names); every other output is unaffected")

    def _log_startup(self, load_s: float) -> None:
        import rclpy

        log = self.get_logger()
        first = next(iter(self.cameras.values()))
        per_frame = [suffix for suffix in first.publishers if suffix != "label_info"]
        topics = ", ".join(camera.image_topic for camera in self.cameras.values())
        where = (self.get_fully_qualified_name() if not self.multi_camera
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

        fqn = self.get_fully_qualified_name()
        snapshots = {name: camera.stats.snapshot() for name, camera in self.cameras.items()}
        statuses = self._camera_statuses(fqn, snapshots)
        state = ("lifecycle state", self.state)
        if self.fusion is not None:
            statuses.append(self.fusion.status(fqn))
        statuses = [replace(s, values=(state, *s.values)) for s in statuses]
        if not self._active:
            statuses = [replace(s, level=OK, message="inactive (lifecycle): frames are not processed; "
                                                     f"`ros2 lifecycle set {fqn} activate`") for s in statuses]
        sec, nsec = self.get_clock().now().seconds_nanoseconds()
        self.diag_pub.publish(self.msgs.diagnostics(self.msgs.header(sec, nsec, ""), statuses))
        if self._active:
            self._warn_upstream_loss(snapshots)

    def _camera_statuses(self, fqn: str, snapshots: dict) -> list:
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
        for name, camera in self.cameras.items():
            lost = snapshots[name].upstream_lost_percent
            if lost > self.params.upstream_loss_warn:
                self.get_logger().warning(
                    f"{lost:.0f} % of the frames on {camera.image_topic} were lost before they reached this "
                    f"node (gaps in their header stamps); {LOSS_HINT}", throttle_duration_sec=LOG_THROTTLE_S)

    def _log_stats(self) -> None:
        for name, camera in self.cameras.items():
            self.get_logger().info((f"{name}: " if name else "") + log_line(camera.stats.snapshot()))

    def close(self) -> None:
        """Stop the inference thread, release the model and destroy the node (from any state)."""
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        if self.fusion is not None:
            self.fusion.stop()
        self._active = False
        self.processor = None
        self.destroy_node()
