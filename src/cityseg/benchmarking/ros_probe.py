"""A camera and an output recorder in a real ROS 2 graph, around a real ``segmentation_node`` process.

Integration tests, ``benchmarks/ros_graph.py`` and anyone checking a deployment use it the same
way: :class:`NodeProcess` starts the installed ``segmentation_node`` executable as its own process
(as ``ros2 launch`` does), and :class:`Probe` is one rclpy node in the calling process that
publishes camera frames to it over DDS and records every output it publishes, with arrival times.
rclpy is imported when a Probe is created.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cityseg.ros.core.messages import RclpyMessages
from cityseg.ros.core.outputs import BY_SUFFIX, NODE_EXECUTABLE, NODE_NAME, OUTPUTS, RAW_DEFAULT_OUTPUTS, node_fqn
from cityseg.ros.live.dds_profile import PROFILE_VARIABLES

Stamp = tuple[int, int]


def node_command(namespace: str, params: Mapping[str, Any], remap: Mapping[str, str] | None = None) -> list[str]:
    """The command line of ``segmentation_node`` in ``namespace`` with ``params`` (``-p name:=value``)."""
    exe = shutil.which(NODE_EXECUTABLE, path=str(Path(sys.executable).parent)) or shutil.which(NODE_EXECUTABLE)
    command = [exe] if exe else [sys.executable, "-m", "cityseg.ros.live.main"]
    command += ["--ros-args", "-r", f"__ns:={namespace}"]
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["-p", f"{name}:={text}"]
    for source, target in (remap or {}).items():
        command += ["-r", f"{source}:={target}"]
    return command


class NodeProcess:
    """``segmentation_node`` running as a child process; its output is kept for inspection."""

    def __init__(self, namespace: str, params: Mapping[str, Any], env: Mapping[str, str] | None = None,
                 remap: Mapping[str, str] | None = None, command: list[str] | None = None):
        """Start the node; ``env`` is its whole environment (default: this process's). ``command``
        runs another program in its place (a benchmark's floor node), ``params`` then unused."""
        self.namespace = namespace
        self.command = command or node_command(namespace, params, remap)
        self.process = subprocess.Popen(self.command, env=dict(os.environ if env is None else env),
                                        stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        """Everything the node printed so far (stdout and stderr)."""
        return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float) -> bool:
        """Wait until the node printed ``text`` (or exited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and text not in self.output and self.process.poll() is None:
            time.sleep(0.05)
        return text in self.output

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> tuple[int | None, float]:
        """Send ``sig``; return (exit code or None if it did not exit in ``timeout``, seconds taken)."""
        start = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - start
        if code is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(2.0)
        return code, elapsed

    def wait(self, timeout: float) -> int | None:
        """Wait for the node to exit by itself; its exit code, or None."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(2.0)
        return code


@dataclass
class Received:
    """One output message as the probe recorded it."""

    stamp: Stamp
    frame_id: str
    arrived: float
    """time.monotonic() at the callback."""
    size: tuple[int, int] = (0, 0)
    encoding: str = ""


@dataclass
class ProbeRecord:
    """Everything the probe published and received."""

    published: dict[Stamp, float] = field(default_factory=dict)
    """Header stamp -> time.monotonic() of each published frame."""
    outputs: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    last_message: dict[str, Any] = field(default_factory=dict)
    messages: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    """Every message of the outputs the probe was told to keep in full (``history``)."""
    diagnostics: list[dict[str, str]] = field(default_factory=list)
    """Key -> value of every DiagnosticStatus of the node, plus 'level' and 'message'."""

    def latencies_ms(self, suffix: str = "mask") -> list[float]:
        """Publish -> arrival of ``suffix`` for every frame that came back, in ms."""
        return [(r.arrived - self.published[r.stamp]) * 1e3 for r in self.outputs[suffix] if r.stamp in self.published]


class Probe:
    """A camera publisher and a recorder of every output of the node in ``namespace``.

    Image QoS: ``reliable`` False is a camera driver (best effort), True is ``ros2 bag play``.
    Outputs are recorded with a reliable, deep subscription so that the recorder loses nothing.
    """

    def __init__(self, namespace: str, *, compressed: bool = False, reliable: bool = False,
                 outputs: frozenset[str] = RAW_DEFAULT_OUTPUTS, keep: tuple[str, ...] = (),
                 history: tuple[str, ...] = (), name: str = "cityseg_probe", status: str | None = None,
                 image_topic: str = "image", info_topic: str = "camera_info", live_status: str | None = None):
        """Record the per-frame ``outputs`` (and label_info) of the node in ``namespace``; keep the
        last message of the outputs in ``keep`` and every message of those in ``history``. ``status``:
        the DiagnosticStatus to record (default: the node's own; a multi-camera node reports camera
        c as '<node>: c'); ``live_status``: the one whose 'live outputs' :meth:`wait_connected` reads
        (default: ``status``). Frames go to ``image_topic`` (``<image_topic>/compressed`` when
        ``compressed``) and ``info_topic``, relative names resolving in ``namespace``."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        if not rclpy.ok():
            rclpy.init()
        self.msgs = m = RclpyMessages()
        self.fqn = node_fqn(namespace)
        self.status_name = status or self.fqn
        self.live_status = live_status or self.status_name
        self._live_outputs: set[str] | None = None
        self.node = rclpy.create_node(name, namespace=namespace)
        self.record = ProbeRecord()
        self._keep, self._history = set(keep), set(history)
        self._lock = threading.Lock()
        camera_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if reliable
                                else ReliabilityPolicy.BEST_EFFORT)
        kind, topic = (m.CompressedImage, f"{image_topic}/compressed") if compressed else (m.Image, image_topic)
        self.image_pub = self.node.create_publisher(kind, topic, camera_qos)
        self.info_pub = self.node.create_publisher(m.CameraInfo, info_topic, camera_qos)
        self._deep = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self._latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                   durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subscriptions = {}
        for o in OUTPUTS:
            if o.suffix in outputs or not o.per_frame:
                self.listen(o.suffix)
        self.node.create_subscription(m.DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def listen(self, suffix: str) -> None:
        """Subscribe to (and record) output ``suffix``; the node builds it from its next frame on."""
        output = BY_SUFFIX[suffix]
        kind = self.msgs.message_class(output.message_type)
        if kind is None or suffix in self.subscriptions:
            return
        self.subscriptions[suffix] = self.node.create_subscription(
            kind, f"{NODE_NAME}/{suffix}", self._recorder(suffix), self._deep if output.per_frame else self._latched)

    def forget(self, suffix: str) -> None:
        """Unsubscribe from output ``suffix`` (what was recorded stays); the node stops building it."""
        subscription = self.subscriptions.pop(suffix, None)
        if subscription is not None:
            self.node.destroy_subscription(subscription)

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except (ExternalShutdownException, RuntimeError):  # shut down from close()
            pass

    def _recorder(self, suffix: str):
        def record(msg) -> None:
            now = time.monotonic()
            header = msg.header
            item = Received((header.stamp.sec, header.stamp.nanosec), header.frame_id, now,
                            (getattr(msg, "height", 0), getattr(msg, "width", 0)), getattr(msg, "encoding", ""))
            with self._lock:
                self.record.outputs[suffix].append(item)
                if suffix in self._keep:
                    self.record.last_message[suffix] = msg
                if suffix in self._history:
                    self.record.messages[suffix].append(msg)
        return record

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == self.live_status:
                live = next((kv.value for kv in status.values if kv.key == "live outputs"), None)
                with self._lock:
                    self._live_outputs = None if live is None else set(live.split(", "))
            if status.name == self.status_name:
                values = {kv.key: kv.value for kv in status.values}
                values.update(level=str(status.level[0] if isinstance(status.level, bytes) else status.level),
                              message=status.message)
                with self._lock:
                    self.record.diagnostics.append(values)

    def wait_connected(self, timeout: float = 20.0, *, seen_by_node: bool = True) -> bool:
        """Wait until the node subscribes to our images and publishes every output we listen to and,
        with ``seen_by_node``, until its diagnostics count our per-frame subscriptions as live.

        Discovery is not symmetric: our reader can see the node's writer before that writer has
        matched our reader, and the node builds an output only for frames it sees a subscriber on,
        so without the second check the first frame's output can be skipped. An echo node (no
        diagnostics) needs ``seen_by_node=False``."""
        wanted = {suffix for suffix in self.subscriptions if BY_SUFFIX[suffix].per_frame}

        def connected() -> bool:
            outputs = [s for suffix, s in self.subscriptions.items() if suffix != "label_info"]
            if not (self.image_pub.get_subscription_count() > 0 and all(s.get_publisher_count() for s in outputs)):
                return False
            if not (seen_by_node and wanted):
                return True
            with self._lock:
                return self._live_outputs is not None and wanted <= self._live_outputs
        return wait_until(connected, timeout)

    def publish(self, image_msg, camera_info=None) -> None:
        """Publish a CameraInfo (if given) and then the image; remember when."""
        if camera_info is not None:
            self.info_pub.publish(camera_info)
        stamp = image_msg.header.stamp
        with self._lock:
            self.record.published[(stamp.sec, stamp.nanosec)] = time.monotonic()
        self.image_pub.publish(image_msg)

    def stream(self, raw, count: int, rate_hz: float, info=None, first: int = 0, frame_id: str = "cam") -> int:
        """Publish ``count`` frames of ``raw`` (a cityseg.ros.core.images.RawImage) at a steady ``rate_hz``,
        stamped on the same grid from frame ``first`` on, each after its CameraInfo ``info`` (a
        CameraInfoValues) if given, as a camera driver does; the number published."""
        start = time.monotonic()
        for i in range(first, first + count):
            time.sleep(max(0.0, start + (i - first) / rate_hz - time.monotonic()))
            stamp = 1_700_000_000 * 10**9 + round(i * 1e9 / rate_hz)
            header = self.msgs.header(stamp // 10**9, stamp % 10**9, frame_id)
            self.publish(self.msgs.image(header, raw), None if info is None else self.msgs.camera_info(header, info))
        return count

    def count(self, suffix: str) -> int:
        with self._lock:
            return len(self.record.outputs[suffix])

    def last_diagnostics(self) -> dict[str, str]:
        with self._lock:
            return dict(self.record.diagnostics[-1]) if self.record.diagnostics else {}

    def wait_settled(self, expect_received: int, timeout: float = 20.0) -> dict[str, str]:
        """Wait until the node's diagnostics count ``expect_received`` frames received, every one of
        them is accounted for (processed, dropped, failed) and every processed frame's outputs
        arrived here; return the last diagnostics."""
        def settled() -> bool:
            diag = self.last_diagnostics()
            if not diag:
                return False
            total = diagnostic_totals(diag)
            handled = sum(total.get(k, 0) for k in ("processed", "unwatched", "dropped", "failed", "errors"))
            outputs = [s for s in self.subscriptions if s != "label_info" and self.record.outputs.get(s)]
            return (total["received"] >= expect_received and handled >= total["received"]
                    and all(self.count(s) >= total["processed"] for s in outputs))
        wait_until(settled, timeout)
        return self.last_diagnostics()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._spinner.join(2.0)


def diagnostic_totals(diag: Mapping[str, str]) -> dict[str, int]:
    """The ``<event> total`` values of a recorded DiagnosticStatus, by event name."""
    return {key[: -len(" total")]: int(value) for key, value in diag.items() if key.endswith(" total")}


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``; NaN when empty."""
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def graph_environment(domain_id: int, profile: str | None, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``base`` made into a private, loopback-only ROS 2 graph (tests, benchmarks): a domain of its
    own, discovery limited to this host, Fast DDS with ``profile`` (None: the middleware's defaults)."""
    env = {k: v for k, v in base.items() if k not in PROFILE_VARIABLES and k != "ROS_LOCALHOST_ONLY"}
    env.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               RMW_IMPLEMENTATION="rmw_fastrtps_cpp")
    if profile:
        env.update(dict.fromkeys(PROFILE_VARIABLES, str(profile)))
    return env
