"""The inference thread: latest-frame-wins per camera, batched inference. No ROS.

One camera is a rig of one: every camera's callback (one camera or the rig) drops its frame into
:class:`CameraBatcher` (one pending frame per camera; a newer one replaces it and counts as that
camera's drop), so a callback never waits for inference and latency never builds up behind a
queue. :class:`InferenceWorker` takes the cameras that have a frame, waits at most ``batch_wait_s``
for the others, caps the batch at ``max_batch`` choosing cameras round robin (so none starves),
runs one ``process_batch`` and publishes every camera's result on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from cityseg.errors import InputError
from cityseg.ros.live.diagnostics import CameraStats

log = logging.getLogger(__name__)

Entry = tuple[str, Any]
"""(camera, item) as the camera's callback put it."""


class CameraBatcher:
    """One pending item per camera; :meth:`take_batch` hands out a round-robin batch of them."""

    def __init__(self, cameras: Sequence[str]):
        if not cameras:
            raise ValueError("CameraBatcher needs at least one camera")
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"camera names must be unique, got {list(cameras)}")
        self.cameras = tuple(cameras)
        self._cond = threading.Condition()
        self._pending: dict[str, Any] = {}
        self._next = 0  # index of the camera served first in the next batch
        self._closed = False
        self.dropped: Counter[str] = Counter()
        """Per camera: items replaced before the worker took them."""

    def put(self, camera: str, item: Any) -> bool:
        """Offer ``camera``'s newest ``item``; True if it replaced an untaken one (a drop for that camera)."""
        if camera not in self.cameras:
            raise KeyError(f"unknown camera {camera!r}; the batcher serves {', '.join(self.cameras)}")
        with self._cond:
            replaced = camera in self._pending
            if replaced:
                self.dropped[camera] += 1
            self._pending[camera] = item
            self._cond.notify_all()
            return replaced

    def take_batch(self, max_batch: int, wait_s: float = 0.0, timeout: float | None = None) -> list[Entry]:
        """Wait up to ``timeout`` for a first frame, then up to ``wait_s`` for the cameras that have not
        delivered; remove and return at most ``max_batch`` (camera, item), round robin. [] on
        timeout or once closed."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        with self._cond:
            if not self._cond.wait_for(lambda: self._pending or self._closed, timeout):
                return []
            full = min(max_batch, len(self.cameras))
            if wait_s > 0:
                self._cond.wait_for(lambda: len(self._pending) >= full or self._closed, wait_s)
            if self._closed:
                return []
            return self._choose(max_batch)

    def _choose(self, max_batch: int) -> list[Entry]:
        """The pending cameras from the round-robin position on, at most ``max_batch``; the next
        batch starts after the last camera served."""
        n = len(self.cameras)
        chosen: list[Entry] = []
        for step in range(n):
            index = (self._next + step) % n
            camera = self.cameras[index]
            if camera in self._pending:
                chosen.append((camera, self._pending.pop(camera)))
                if len(chosen) == max_batch:
                    self._next = (index + 1) % n
                    break
        return chosen

    def pending(self) -> list[str]:
        """Cameras with a frame waiting, in camera order."""
        with self._cond:
            return [c for c in self.cameras if c in self._pending]

    def close(self) -> None:
        """Wake every waiting :meth:`take_batch` (they return []) and hand out nothing more."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class BatchSizes:
    """Thread-safe histogram of the batch sizes run (for /diagnostics)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Counter[int] = Counter()

    def record(self, size: int) -> None:
        with self._lock:
            self._counts[size] += 1

    def snapshot(self) -> dict[int, int]:
        """Batch size -> batches run, by size."""
        with self._lock:
            return dict(sorted(self._counts.items()))


class InferenceWorker:
    """The inference loop: take a batch, process it in one call, publish per camera.

    ``process_batch(entries)`` returns one result per entry, in order: a ProcessedFrame, None
    (nobody listens to that camera: counted unwatched), or an exception instance (an InputError is
    that camera's malformed frame, anything else an internal error). If ``process_batch`` raises,
    every camera of the batch gets that internal error. ``publish(camera, messages)`` sends a
    camera's messages; ``on_error(camera, reason, internal)`` reports a failed frame. The loop
    never stops for a frame. ``max_rate_hz`` > 0 spaces batch starts by at least 1/max_rate_hz
    seconds (frames arriving meanwhile replace each other and count as dropped).
    """

    thread_name = "cityseg-inference"

    def __init__(self, batcher: CameraBatcher, process_batch: Callable[[list[Entry]], Sequence[Any]],
                 publish: Callable[[str, dict], None], stats_by_camera: Mapping[str, CameraStats],
                 on_error: Callable[[str, str, bool], None] = lambda camera, reason, internal: None,
                 max_batch: int | None = None, batch_wait_s: float = 0.0, max_rate_hz: float = 0.0):
        missing = [c for c in batcher.cameras if c not in stats_by_camera]
        if missing:
            raise ValueError(f"no CameraStats for camera(s) {', '.join(missing)}")
        if batch_wait_s < 0:
            raise ValueError(f"batch_wait_s must be >= 0, got {batch_wait_s}")
        if max_rate_hz < 0:
            raise ValueError(f"max_rate_hz must be >= 0, got {max_rate_hz}")
        self.max_batch = len(batcher.cameras) if max_batch is None else max_batch
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.batcher, self.process_batch, self.publish = batcher, process_batch, publish
        self.stats, self.on_error, self.batch_wait_s = stats_by_camera, on_error, batch_wait_s
        self.min_interval = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self.batch_sizes = BatchSizes()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        last_start = -float("inf")
        while not self._stop.is_set():
            wait = last_start + self.min_interval - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            entries = self.batcher.take_batch(self.max_batch, self.batch_wait_s, timeout=0.5)
            if not entries:
                continue
            last_start = time.monotonic()
            self.handle_batch(entries)

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop (after the batch in progress) and wait for the thread."""
        self._stop.set()
        self.batcher.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def handle_batch(self, entries: list[Entry]) -> int:
        """Process and publish one batch; returns how many of its frames were published or unwatched."""
        self.batch_sizes.record(len(entries))
        try:
            results = list(self.process_batch(entries))
            if len(results) != len(entries):
                raise RuntimeError(f"process_batch returned {len(results)} results for {len(entries)} frames")
        except Exception as exc:  # the whole batch failed: every camera in it hears about it
            results = [exc] * len(entries)
        return sum(self._finish(camera, result) for (camera, _), result in zip(entries, results))

    def _finish(self, camera: str, result: Any) -> bool:
        """Publish and count one camera's result, or count and report its failure."""
        stats = self.stats[camera]
        report = partial(self.on_error, camera)
        what = f"camera {camera}'s frame" if camera else "a frame"
        if isinstance(result, BaseException):
            report_failure(result, stats, report, what)
            return False
        try:
            publish_outputs(result, lambda messages: self.publish(camera, messages), stats)
        except Exception as exc:  # the node must survive anything one frame can cause
            report_failure(exc, stats, report, what)
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


def batch_capacity_note(cameras: int, engine_max_batch: int | None) -> str | None:
    """A one-line warning when ``cameras`` exceed the engine's max batch (None when they fit or the
    backend has no limit). The batch still runs: the backend splits it into engine-sized chunks."""
    if engine_max_batch is None or cameras <= engine_max_batch:
        return None
    return (f"{cameras} cameras but the engine takes batches of at most {engine_max_batch}: each batch "
            f"runs as {-(-cameras // engine_max_batch)} engine calls; rebuild it for one call with "
            f"`cityseg export BUNDLE --tensorrt --max-batch {cameras} --force`")
