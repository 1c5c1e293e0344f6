"""Rolling rates and per-stage latencies of the node, as a log line and a DiagnosticStatus. No ROS."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from cityseg.ros.core.messages import StatusValues
from cityseg.ros.core.processor import STAGES

OK, WARN, ERROR = 0, 1, 2
EVENTS = ("received", "processed", "unwatched", "dropped", "failed", "errors", "upstream_lost")
"""received: frames that reached the subscription; processed: segmented and published; unwatched:
not segmented because no output had a subscriber at the time (no work for nobody); dropped:
replaced in the latest-frame slot before the worker took them; failed: malformed input refused;
errors: internal errors (model, backend, bug); upstream_lost: frames the camera sent that never
arrived (estimated from header stamp gaps, cityseg.ros.live.upstream_loss)."""
LOSS_HINT = "see 'Large images' in docs/ROS.md: the camera driver and this node need the same DDS profile"


@dataclass(frozen=True)
class StatsSnapshot:
    """Rates over the last window and totals since start."""

    window_s: float
    rates_hz: dict[str, float]
    """Events (EVENTS) per second over the window."""
    totals: dict[str, int]
    stage_ms: dict[str, float]
    """Mean milliseconds per stage over the frames processed in the window."""
    stage_max_ms: dict[str, float]
    last_failure: str | None
    last_error: str | None = None
    published: dict[str, int] = field(default_factory=dict)
    """Output suffix -> messages published since start (only outputs someone listened to are built)."""

    @property
    def upstream_lost_percent(self) -> float:
        """Share of the camera's frames in the window that never reached the node, in %."""
        lost, received = self.rates_hz["upstream_lost"], self.rates_hz["received"]
        return 100.0 * lost / (lost + received) if lost > 0 else 0.0


class CameraStats:
    """Thread-safe counters of one camera: its subscription thread counts input, the worker counts output."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        if window_s <= 0:
            raise ValueError(f"the statistics window must be positive, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._events: dict[str, deque[float]] = {name: deque() for name in EVENTS}
        self._totals = dict.fromkeys(EVENTS, 0)
        self._timings: deque[tuple[float, dict[str, float]]] = deque()
        self._last_failure: str | None = None
        self._last_error: str | None = None
        self._published: Counter[str] = Counter()

    def _count(self, name: str, n: int = 1) -> None:
        now = self._clock()
        with self._lock:
            self._events[name].extend([now] * n)
            self._totals[name] += n

    def received(self) -> None:
        self._count("received")

    def dropped(self, n: int = 1) -> None:
        self._count("dropped", n)

    def failed(self, reason: str) -> None:
        """A malformed input frame was refused."""
        self._count("failed")
        with self._lock:
            self._last_failure = reason

    def error(self, reason: str) -> None:
        """A frame failed inside the node (model, backend or a bug), not because of its input."""
        self._count("errors")
        with self._lock:
            self._last_error = reason

    def unwatched(self) -> None:
        """A frame was taken but not segmented: none of the outputs had a subscriber."""
        self._count("unwatched")

    def upstream_lost(self, n: int) -> None:
        """``n`` frames were lost before reaching the node."""
        if n > 0:
            self._count("upstream_lost", n)

    def processed(self, timings: dict[str, float], outputs: Iterable[str] = ()) -> None:
        """A frame was segmented in ``timings`` (ms per stage) and ``outputs`` were published."""
        now = self._clock()
        with self._lock:
            self._events["processed"].append(now)
            self._totals["processed"] += 1
            self._timings.append((now, dict(timings)))
            self._published.update(tuple(outputs))  # the names (a mapping would add its values)

    def snapshot(self) -> StatsSnapshot:
        """Rates and latencies over the last ``window_s`` seconds (or since start, if shorter)."""
        now = self._clock()
        horizon = now - self.window_s
        span = max(min(self.window_s, now - self._start), 1e-9)
        with self._lock:
            for times in self._events.values():
                while times and times[0] < horizon:
                    times.popleft()
            while self._timings and self._timings[0][0] < horizon:
                self._timings.popleft()
            rates = {name: len(times) / span for name, times in self._events.items()}
            recent = [t for _, t in self._timings]
            totals, last, error = dict(self._totals), self._last_failure, self._last_error
            published = dict(self._published)
        stage_ms, stage_max = {}, {}
        for stage in STAGES:
            values = [t[stage] for t in recent if stage in t]
            if values:
                stage_ms[stage] = sum(values) / len(values)
                stage_max[stage] = max(values)
        return StatsSnapshot(self.window_s, rates, totals, stage_ms, stage_max, last, error, published)


def log_line(snap: StatsSnapshot) -> str:
    """One human line: rates, then mean stage latencies."""
    r = snap.rates_hz
    line = (f"in {r['received']:.1f} Hz, out {r['processed']:.1f} Hz, dropped {r['dropped']:.1f} Hz, "
            f"failed {snap.totals['failed']} total")
    if snap.totals["errors"]:
        line += f", internal errors {snap.totals['errors']} total"
    if snap.upstream_lost_percent:
        line += f", upstream lost {snap.upstream_lost_percent:.1f} %"
    if snap.stage_ms:
        line += " | " + ", ".join(f"{k} {v:.1f} ms" for k, v in snap.stage_ms.items())
        line += f" | total {sum(snap.stage_ms.values()):.1f} ms"
    return line


def diagnostic_status(snap: StatsSnapshot, name: str, hardware_id: str,
                      loss_warn_percent: float = 1.0, live_outputs: tuple[str, ...] | None = None) -> StatusValues:
    """The node's DiagnosticStatus.

    ERROR: internal errors and no frame segmented in the window (the backend fails on every frame).
    WARN: no input in the window, internal errors on some frames, malformed input, or more than
    ``loss_warn_percent`` of the camera's frames lost upstream. OK otherwise. ``live_outputs``: the
    per-frame outputs that have subscribers now (reported as 'live outputs', 'none' when empty).
    """
    level, message = _level(snap, loss_warn_percent)
    r = snap.rates_hz
    values = [(f"{k} rate (Hz)", f"{v:.2f}") for k, v in r.items()]
    values += [(f"{k} total", str(v)) for k, v in snap.totals.items()]
    values.append(("upstream lost (%)", f"{snap.upstream_lost_percent:.2f}"))
    values += [(f"{k} mean (ms)", f"{v:.2f}") for k, v in snap.stage_ms.items()]
    values += [(f"{k} max (ms)", f"{v:.2f}") for k, v in snap.stage_max_ms.items()]
    if live_outputs is not None:
        values.append(("live outputs", ", ".join(live_outputs) or "none"))
    values += [(f"{suffix} published", str(n)) for suffix, n in snap.published.items()]
    return StatusValues(level, name, message, hardware_id, tuple(values))


def _level(snap: StatsSnapshot, loss_warn_percent: float) -> tuple[int, str]:
    r = snap.rates_hz
    if r["errors"] > 0 and r["processed"] == 0:
        return ERROR, f"every frame fails inside the node ({r['errors']:.1f}/s): {snap.last_error}"
    if r["received"] == 0:
        return WARN, f"no images received in the last {snap.window_s:g} s"
    if r["errors"] > 0:
        return WARN, f"internal errors on some frames ({r['errors']:.1f}/s): {snap.last_error}"
    if r["failed"] > 0:
        return WARN, f"malformed images ({r['failed']:.1f}/s): {snap.last_failure}"
    if snap.upstream_lost_percent > loss_warn_percent:
        return WARN, f"{snap.upstream_lost_percent:.0f} % of the camera's frames never arrived; {LOSS_HINT}"
    if r["processed"] == 0 and r["unwatched"] > 0:
        return OK, "idle: no subscriber on any output, frames are not segmented"
    return OK, f"segmenting at {r['processed']:.1f} Hz"


# ------------------------------------------------------------------------------------------
# Several cameras in one node
# ------------------------------------------------------------------------------------------

def camera_statuses(snapshots: Mapping[str, StatsSnapshot], node_name: str, hardware_id: str,
                    loss_warn_percent: float = 1.0,
                    live_outputs: Mapping[str, tuple[str, ...]] | None = None) -> list[StatusValues]:
    """One DiagnosticStatus per camera, named ``<node_name>: <camera>``, each judged on its own
    counters (:func:`diagnostic_status`); ``live_outputs``: camera -> its outputs with subscribers."""
    return [diagnostic_status(snap, f"{node_name}: {camera}", hardware_id, loss_warn_percent,
                              None if live_outputs is None else live_outputs.get(camera, ()))
            for camera, snap in snapshots.items()]


def mean_batch(histogram: Mapping[int, int]) -> float:
    """Mean batch size of a {batch size: batches} histogram (0.0 when empty)."""
    batches = sum(histogram.values())
    return sum(size * n for size, n in histogram.items()) / batches if batches else 0.0


def batch_status(histogram: Mapping[int, int], node_name: str, hardware_id: str, cameras: int,
                 max_batch: int) -> StatusValues:
    """The batcher's DiagnosticStatus ``<node_name>: batch``: the batch-size distribution since start
    (``batch size k``: batches of k frames), their mean, the camera count and the batch cap. Always
    OK: a small mean only says the cameras' frames rarely arrive within batch_wait_ms of each other."""
    total = sum(histogram.values())
    mean = mean_batch(histogram)
    values = [(f"batch size {size}", str(n)) for size, n in sorted(histogram.items())]
    values += [("batches total", str(total)), ("mean batch", f"{mean:.2f}"), ("cameras", str(cameras)),
               ("max batch", str(max_batch))]
    message = (f"mean batch {mean:.2f} of {min(cameras, max_batch)} over {total} batches" if total
               else "no batch run yet")
    return StatusValues(OK, f"{node_name}: batch", message, hardware_id, tuple(values))
