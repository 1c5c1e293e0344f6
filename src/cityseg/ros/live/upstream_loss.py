"""Frames lost before they reached the node, estimated from gaps in the input header stamps. No ROS.

A camera stamps its frames at a steady rate. When the middleware drops frames on the way (large
images over a default DDS configuration, a saturated network), the stamps that do arrive show
gaps of two, three ... periods. The node cannot see that loss any other way: its own counters
start at the subscription callback.

The period is the median of the recent *short* intervals (those within 1.5x the 10th percentile),
so jitter around the period and the gaps themselves do not skew it. When most frames are lost,
few intervals are one period long; then the period is the largest fraction 1/k of the shortest
interval of which (nearly) every interval is a whole multiple - the stamps of a camera sit on its
frame grid. A gap of ``dt`` then counts ``round(dt / period) - 1`` lost frames. Stamp jitter up
to about +-20 % of the period (each stamp) is tolerated; the arrival times of messages (a bag
played back, a busy network) play no part. Duplicate stamps count nothing; a stamp that goes back in
time (a bag played in a loop, a camera restarted) starts the estimate afresh. A camera whose
frames are all decimated evenly (every other frame lost) looks like a slower camera and is not
reported.
"""

from __future__ import annotations

from collections import deque

import numpy as np

MIN_INTERVALS = 5
"""Intervals seen before any loss is estimated."""
GRID_MIN_INTERVALS = 8
"""Intervals seen before the frame grid is searched (fewer could fit a grid by chance)."""
GRID_TOLERANCE = 0.1
"""How far (in periods) an interval may be off a whole multiple of the grid period."""
GRID_MAX_DIVISOR = 30


class UpstreamLossEstimator:
    """Feed it each frame's header stamp; it returns the frames estimated lost just before it."""

    def __init__(self, history: int = 64):
        self._intervals: deque[float] = deque(maxlen=history)
        self._last_stamp: float | None = None

    def period(self) -> float | None:
        """The camera's frame period (s) estimated from recent intervals; None before enough."""
        if len(self._intervals) < MIN_INTERVALS:
            return None
        intervals = np.fromiter(self._intervals, float)
        short = intervals[intervals <= 1.5 * np.percentile(intervals, 10)]
        period = float(np.median(short))
        if len(intervals) >= GRID_MIN_INTERVALS:
            grid = _grid_period(intervals)
            if grid is not None and grid < period / 1.5:
                return grid
        return period

    def observe(self, stamp_s: float) -> int:
        """Record one received frame's header stamp (seconds); return the frames lost before it."""
        last, self._last_stamp = self._last_stamp, stamp_s
        if last is None or stamp_s == last:
            return 0
        if stamp_s < last:  # looped bag or restarted camera: the old intervals no longer apply
            self._intervals.clear()
            return 0
        interval = stamp_s - last
        period = self.period()
        self._intervals.append(interval)
        if period is None or period <= 0:
            return 0
        return max(0, round(interval / period) - 1)


def _grid_period(intervals: np.ndarray) -> float | None:
    """The largest shortest-interval/k of which 90 % of ``intervals`` are whole multiples; None if none."""
    shortest = float(intervals.min())
    for k in range(1, GRID_MAX_DIVISOR + 1):
        period = shortest / k
        multiples = intervals / period
        if np.mean(np.abs(multiples - np.round(multiples)) <= GRID_TOLERANCE) >= 0.9:
            return period
    return None


def stamp_seconds(msg) -> float:
    """A message's header stamp in seconds."""
    stamp = msg.header.stamp
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9
