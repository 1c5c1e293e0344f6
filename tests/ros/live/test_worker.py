"""Latest-frame-wins hand-off and the inference loop, with real threads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from cityseg.ros.core.images import ImageError
from cityseg.ros.live.diagnostics import CameraStats
from cityseg.ros.live.worker import FrameWorker, LatestFrameSlot


@dataclass
class Frame:  # the shape of ProcessedFrame the worker relies on
    messages: dict
    timings: dict = field(default_factory=dict)
    sent: bool = False


def test_slot_hands_over_the_latest_item_and_counts_replacements():
    slot = LatestFrameSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True and slot.put(3) is True
    assert slot.dropped == 2
    assert slot.take(timeout=0) == 3
    assert slot.take(timeout=0.01) is None  # empty again
    assert slot.put(4) is False  # nothing pending: not a drop
    assert slot.dropped == 2


def test_close_wakes_a_waiting_taker():
    slot = LatestFrameSlot()
    result = []
    taker = threading.Thread(target=lambda: result.append(slot.take()))
    taker.start()
    time.sleep(0.05)
    slot.close()
    taker.join(2)
    assert not taker.is_alive() and result == [None]
    slot.put(1)
    assert slot.take(timeout=0) is None


def test_frames_arriving_while_busy_replace_each_other():
    """While the worker is busy with frame 0, frames 1..5 arrive: 1..4 are dropped, 5 is next."""
    slot, stats = LatestFrameSlot(), CameraStats()
    busy, release, handled = threading.Event(), threading.Event(), []

    def process(item):
        if item == 0:
            busy.set()
            assert release.wait(5)
        handled.append(item)
        return Frame({"mask": item})

    published = []
    worker = FrameWorker(slot, process, published.append, stats)
    worker.start()
    try:
        slot.put(0)
        assert busy.wait(5)
        for item in range(1, 6):  # the camera callback: put, count drops
            if slot.put(item):
                stats.dropped()
        release.set()
        deadline = time.monotonic() + 5
        while len(handled) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    assert handled == [0, 5]
    assert published == [{"mask": 0}, {"mask": 5}]
    assert slot.dropped == 4
    snap = stats.snapshot()
    assert snap.totals["dropped"] == 4 and snap.totals["processed"] == 2


def test_a_failing_frame_is_reported_and_the_loop_goes_on():
    stats, errors = CameraStats(), []

    def process(item):
        if item == "bad":
            raise ImageError("step 2 is smaller than width*bytes_per_pixel")
        if item == "boom":
            raise RuntimeError("backend exploded")
        return Frame({"mask": item}, {"infer": 1.0})

    published = []
    worker = FrameWorker(LatestFrameSlot(), process, published.append, stats,
                         on_error=lambda reason, internal: errors.append((reason, internal)))
    assert worker.handle("bad") is False
    assert worker.handle("boom") is False
    assert worker.handle("good") is True
    assert errors[0] == ("step 2 is smaller than width*bytes_per_pixel", False)
    assert errors[1] == ("internal error: RuntimeError: backend exploded", True)
    assert published == [{"mask": "good"}]
    snap = stats.snapshot()
    assert snap.totals["failed"] == 1 and snap.totals["errors"] == 1 and snap.totals["processed"] == 1
    assert set(snap.stage_ms) == {"infer", "publish"}


def test_max_rate_limits_the_frames_segmented():
    slot, stats, handled = LatestFrameSlot(), CameraStats(), []
    worker = FrameWorker(slot, lambda item: handled.append(item) or Frame({}), lambda m: None, stats,
                         max_rate_hz=10.0)
    worker.start()
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < 0.6:
        slot.put(i)
        i += 1
        time.sleep(0.002)
    worker.stop()
    assert 2 <= len(handled) <= 8  # ~6 at 10 Hz in 0.6 s; far fewer than the ~hundreds offered
    assert i > 50
    assert handled == sorted(handled)


def test_negative_rate_is_refused():
    with pytest.raises(ValueError, match="max_rate_hz"):
        FrameWorker(LatestFrameSlot(), lambda i: i, lambda m: None, CameraStats(), max_rate_hz=-1)
