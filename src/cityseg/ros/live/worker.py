"""Latest-frame-wins hand-off between the subscription callback and one inference thread. No ROS.

A camera callback must never wait for inference and latency must never build up behind a
queue: the callback drops its frame into a one-place :class:`LatestFrameSlot` (replacing, and
counting as dropped, a frame the worker has not taken yet) and :class:`FrameWorker` always
processes the newest frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cityseg.errors import InputError
from cityseg.ros.live.diagnostics import CameraStats

T = TypeVar("T")
log = logging.getLogger(__name__)


class LatestFrameSlot(Generic[T]):
    """Holds at most one pending item; a newer item replaces it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: T | None = None
        self._pending = False
        self._closed = False
        self.dropped = 0
        """Items replaced before the worker took them."""

    def put(self, item: T) -> bool:
        """Offer ``item``; True if it replaced a pending one (which is then dropped)."""
        with self._cond:
            replaced = self._pending
            if replaced:
                self.dropped += 1
            self._item, self._pending = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """Wait for and remove the pending item; None on timeout or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending or self._closed, timeout):
                return None
            if self._closed:
                return None
            item, self._item, self._pending = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting ``take`` (they return None) and refuse to hand out more items."""
        close_condition(self)

    @property
    def closed(self) -> bool:
        return self._closed


def close_condition(holder) -> None:
    """Mark ``holder`` (with ``_cond`` and ``_closed``) closed and wake every thread waiting on it."""
    with holder._cond:
        holder._closed = True
        holder._cond.notify_all()


class WorkerLoop:
    """The inference thread's loop, shared by one camera (:class:`FrameWorker`) and a rig
    (cityseg.ros.live.camera_batcher.BatchWorker): take work from a source, handle it, never stop for a frame.
    ``max_rate_hz`` > 0 spaces starts by at least 1/max_rate_hz seconds. Subclasses give
    :meth:`take` (None on timeout or once closed), :meth:`handle` and :meth:`close_source`."""

    thread_name = "cityseg-inference"

    def __init__(self, max_rate_hz: float = 0.0):
        if max_rate_hz < 0:
            raise ValueError(f"max_rate_hz must be >= 0, got {max_rate_hz}")
        self.min_interval = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self, timeout: float):
        raise NotImplementedError

    def handle(self, work) -> Any:
        raise NotImplementedError

    def close_source(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        last_start = -float("inf")
        while not self._stop.is_set():
            wait = last_start + self.min_interval - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            work = self.take(timeout=0.5)
            if work is None:
                continue
            last_start = time.monotonic()
            self.handle(work)

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop (after the work in progress) and wait for the thread."""
        self._stop.set()
        self.close_source()
        if self._thread is not None:
            self._thread.join(timeout)


class FrameWorker(WorkerLoop):
    """The inference loop: take the newest frame, process it, publish, record statistics.

    ``process(item)`` returns a ProcessedFrame, or None when nobody listens to any output (the
    frame is counted as unwatched); ``publish(messages)`` sends its messages;
    ``on_error(reason, internal)`` reports a frame that failed (the loop goes on): ``internal`` is
    False for malformed input (an InputError), True for anything else (model, backend, bug). ``max_rate_hz`` > 0
    spaces frame starts by at least 1/max_rate_hz seconds; frames arriving meanwhile replace
    each other in the slot and count as dropped.
    """

    def __init__(self, slot: LatestFrameSlot, process: Callable[[Any], Any],
                 publish: Callable[[dict], None], stats: CameraStats,
                 on_error: Callable[[str, bool], None] = lambda reason, internal: None,
                 max_rate_hz: float = 0.0):
        super().__init__(max_rate_hz)
        self.slot, self.process, self.publish = slot, process, publish
        self.stats, self.on_error = stats, on_error

    def take(self, timeout: float):
        return self.slot.take(timeout)

    def close_source(self) -> None:
        self.slot.close()

    def handle(self, item) -> bool:
        """Process and publish one item; False (reported, counted) if it failed."""
        try:
            publish_outputs(self.process(item), self.publish, self.stats)
        except Exception as exc:  # the node must survive anything one frame can cause
            report_failure(exc, self.stats, self.on_error)
            return False
        return True


def publish_outputs(frame, publish: Callable[[dict], None], stats: CameraStats) -> None:
    """Publish a ProcessedFrame (unless its outputs were sent as they were built) and count it
    (timing 'publish'); None counts as unwatched."""
    if frame is None:
        stats.unwatched()
        return
    if not frame.sent:
        t0 = time.perf_counter()
        publish(frame.messages)
        frame.timings["publish"] = (time.perf_counter() - t0) * 1e3
    stats.processed(frame.timings, frame.messages)


def report_failure(exc: BaseException, stats: CameraStats, on_error: Callable[[str, bool], None],
                   what: str = "a frame") -> None:
    """Count and report a failed frame: an InputError is malformed input, anything else internal."""
    if isinstance(exc, InputError):
        stats.failed(str(exc))
        on_error(str(exc), False)
        return
    log.error("segmentation of %s failed", what, exc_info=exc)
    reason = f"internal error: {type(exc).__name__}: {exc}"
    stats.error(reason)
    on_error(reason, True)
