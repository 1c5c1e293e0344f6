"""Per-camera latest-frame-wins and batched inference, for a rig and for one camera (a rig of one),
with real threads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from cityseg.ros.core.images import ImageError
from cityseg.ros.live.diagnostics import CameraStats, mean_batch
from cityseg.ros.live.inference_worker import CameraBatcher, InferenceWorker, batch_capacity_note

CAMERAS = ("front", "left", "right", "rear")


@dataclass
class Frame:  # the shape of ProcessedFrame the worker relies on
    messages: dict
    timings: dict = field(default_factory=dict)
    sent: bool = False


def stats_for(cameras=CAMERAS) -> dict[str, CameraStats]:
    return {c: CameraStats() for c in cameras}


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_latest_frame_wins_per_camera_and_drops_are_counted_per_camera():
    batcher = CameraBatcher(CAMERAS)
    assert batcher.put("front", 1) is False
    assert batcher.put("front", 2) is True
    assert batcher.put("rear", 10) is False
    assert batcher.take_batch(4, timeout=0) == [("front", 2), ("rear", 10)]
    assert batcher.dropped == {"front": 1}
    assert batcher.put("front", 3) is False  # nothing pending any more: not a drop
    assert batcher.take_batch(4, timeout=0.01) == [("front", 3)]
    assert batcher.take_batch(4, timeout=0.01) == []


def test_unknown_camera_and_bad_arguments_are_refused():
    batcher = CameraBatcher(CAMERAS)
    with pytest.raises(KeyError, match="unknown camera 'top'; the batcher serves front, left, right, rear"):
        batcher.put("top", 1)
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        batcher.take_batch(0)
    with pytest.raises(ValueError, match="unique"):
        CameraBatcher(["a", "a"])
    with pytest.raises(ValueError, match="no CameraStats for camera"):
        InferenceWorker(batcher, lambda e: [], lambda c, m: None, {"front": CameraStats()})


def test_round_robin_serves_every_camera_when_max_batch_is_smaller():
    batcher = CameraBatcher(CAMERAS)
    served = []
    for round_ in range(4):
        for camera in CAMERAS:  # every camera always has a frame
            batcher.put(camera, round_)
        served.append([c for c, _ in batcher.take_batch(3, timeout=0)])
    assert served == [["front", "left", "right"], ["rear", "front", "left"],
                      ["right", "rear", "front"], ["left", "right", "rear"]]


def test_a_fast_camera_does_not_starve_a_slow_one():
    batcher = CameraBatcher(("fast", "slow"))
    taken = []
    for i in range(6):
        batcher.put("fast", i)
        if i % 3 == 0:
            batcher.put("slow", i)
        taken += [c for c, _ in batcher.take_batch(1, timeout=0)]
        batcher.put("fast", i)
    assert taken.count("slow") == 2 and "slow" in taken[:2]


def test_waits_for_the_other_cameras_at_most_batch_wait():
    batcher = CameraBatcher(CAMERAS)
    batcher.put("front", 1)
    start = time.monotonic()
    assert batcher.take_batch(4, wait_s=0.05, timeout=1) == [("front", 1)]  # the others are silent
    assert 0.04 <= time.monotonic() - start < 0.5


def test_a_late_camera_within_batch_wait_joins_the_batch():
    batcher = CameraBatcher(("front", "rear"))
    batcher.put("front", 1)
    timer = threading.Timer(0.01, batcher.put, ("rear", 2))
    timer.start()
    start = time.monotonic()
    assert batcher.take_batch(2, wait_s=2.0, timeout=1) == [("front", 1), ("rear", 2)]
    assert time.monotonic() - start < 1.0  # returned once every camera had delivered, not at 2 s
    timer.join()


def test_a_full_batch_does_not_wait():
    batcher = CameraBatcher(CAMERAS)
    batcher.put("front", 1)
    batcher.put("rear", 2)
    start = time.monotonic()
    assert len(batcher.take_batch(2, wait_s=5.0, timeout=1)) == 2
    assert time.monotonic() - start < 1.0


def test_close_wakes_a_waiting_taker():
    batcher = CameraBatcher(CAMERAS)
    result = []
    taker = threading.Thread(target=lambda: result.append(batcher.take_batch(4, timeout=5)))
    taker.start()
    time.sleep(0.02)
    batcher.close()
    taker.join(2)
    assert not taker.is_alive() and result == [[]]
    batcher.put("front", 1)
    assert batcher.take_batch(4, timeout=0) == []


def test_one_cameras_errors_do_not_affect_the_others():
    stats, errors, published = stats_for(), [], []

    def process_batch(entries):
        results = []
        for camera, item in entries:
            if camera == "left":
                results.append(ImageError("step 2 is smaller than width*bytes_per_pixel"))
            elif camera == "right":
                results.append(RuntimeError("decoder exploded"))
            elif camera == "rear":
                results.append(None)  # nobody listens to the rear camera
            else:
                results.append(Frame({"mask": item}, {"infer": 2.0}))
        return results

    worker = InferenceWorker(CameraBatcher(CAMERAS), process_batch, lambda c, m: published.append((c, m)), stats,
                         on_error=lambda *args: errors.append(args))
    assert worker.handle_batch([(c, i) for i, c in enumerate(CAMERAS)]) == 2
    assert published == [("front", {"mask": 0})]
    assert errors == [("left", "step 2 is smaller than width*bytes_per_pixel", False),
                      ("right", "internal error: RuntimeError: decoder exploded", True)]
    totals = {c: s.snapshot().totals for c, s in stats.items()}
    assert totals["front"]["processed"] == 1 and set(stats["front"].snapshot().stage_ms) == {"infer", "publish"}
    assert totals["left"]["failed"] == 1 and totals["left"]["processed"] == 0
    assert totals["right"]["errors"] == 1
    assert totals["rear"]["unwatched"] == 1
    assert worker.batch_sizes.snapshot() == {4: 1}


def test_a_failing_batch_reports_every_camera_in_it_and_the_loop_goes_on():
    stats, errors, published = stats_for(), [], []
    calls = []

    def process_batch(entries):
        calls.append(entries)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory")
        return [Frame({"mask": item}) for _, item in entries]

    def publish(camera, messages):
        if camera == "left":
            raise OSError("publisher gone")
        published.append(camera)

    worker = InferenceWorker(CameraBatcher(CAMERAS), process_batch, publish, stats,
                         on_error=lambda *args: errors.append(args))
    worker.handle_batch([("front", 1), ("rear", 1)])
    assert errors == [(c, "internal error: RuntimeError: CUDA out of memory", True) for c in ("front", "rear")]
    worker.handle_batch([("front", 2), ("left", 2), ("rear", 2)])
    assert published == ["front", "rear"]  # left's publisher failed alone
    assert errors[-1] == ("left", "internal error: OSError: publisher gone", True)
    assert worker.handle_batch([("front", 3)]) == 1
    assert worker.batch_sizes.snapshot() == {1: 1, 2: 1, 3: 1}


def test_wrong_result_count_is_an_internal_error_for_the_batch():
    stats, errors = stats_for(), []
    worker = InferenceWorker(CameraBatcher(CAMERAS), lambda entries: [], lambda c, m: None, stats,
                         on_error=lambda *args: errors.append(args))
    worker.handle_batch([("front", 1)])
    assert errors == [("front", "internal error: RuntimeError: process_batch returned 0 results for 1 frames", True)]


def test_worker_batches_busy_cameras_keeps_headers_and_latest_frames():
    """While batch 0 is in progress, every camera sends frames 1..3: the next batch holds each camera's 3."""
    batcher, stats = CameraBatcher(CAMERAS), stats_for()
    busy, release, batches, published = threading.Event(), threading.Event(), [], []

    def process_batch(entries):
        batches.append(list(entries))
        if len(batches) == 1:
            busy.set()
            assert release.wait(5)
        return [Frame({"mask": (camera, item)}) for camera, item in entries]

    worker = InferenceWorker(batcher, process_batch, lambda c, m: published.append((c, m["mask"])), stats,
                         batch_wait_s=0.02)
    worker.start()
    try:
        batcher.put("front", 0)
        assert busy.wait(5)
        for item in (1, 2, 3):
            for camera in CAMERAS:
                if batcher.put(camera, item):
                    stats[camera].dropped()
        release.set()
        assert wait_until(lambda: len(batches) == 2)
    finally:
        worker.stop()
    assert batches[1] == [(c, 3) for c in CAMERAS]
    assert all(camera == mask[0] for camera, mask in published)  # every output keeps its own frame
    assert {c: s.snapshot().totals["dropped"] for c, s in stats.items()} == {c: 2 for c in CAMERAS}
    assert worker.batch_sizes.snapshot() == {1: 1, 4: 1}
    assert mean_batch(worker.batch_sizes.snapshot()) == 2.5


def test_a_silent_camera_delays_the_others_by_at_most_batch_wait():
    batcher, stats, done = CameraBatcher(CAMERAS), stats_for(), []
    worker = InferenceWorker(batcher, lambda entries: [Frame({}) for _ in entries],
                         lambda c, m: done.append(time.monotonic()), stats, batch_wait_s=0.03)
    worker.start()
    try:
        latencies = []
        for i in range(3):  # 'rear' never sends
            start = time.monotonic()
            for camera in CAMERAS[:3]:
                batcher.put(camera, i)
            assert wait_until(lambda n=3 * (i + 1): len(done) == n)
            latencies.append(done[-1] - start)
    finally:
        worker.stop()
    assert max(latencies) < 0.03 + 0.4  # batch_wait plus scheduling slack on a loaded machine
    assert worker.batch_sizes.snapshot() == {3: 3}


def test_stop_is_clean_and_idempotent():
    batcher = CameraBatcher(CAMERAS)
    worker = InferenceWorker(batcher, lambda entries: [Frame({}) for _ in entries], lambda c, m: None, stats_for())
    thread = worker.start()
    time.sleep(0.01)
    start = time.monotonic()
    worker.stop()
    worker.stop()
    assert not thread.is_alive() and time.monotonic() - start < 1.0
    assert batcher.closed


def test_max_rate_spaces_batches():
    batcher, handled = CameraBatcher(("a", "b")), []
    worker = InferenceWorker(batcher, lambda entries: handled.append(entries) or [Frame({}) for _ in entries],
                         lambda c, m: None, stats_for(("a", "b")), max_rate_hz=20.0)
    worker.start()
    start = time.monotonic()
    while time.monotonic() - start < 0.3:
        batcher.put("a", 0)
        batcher.put("b", 0)
        time.sleep(0.002)
    worker.stop()
    assert 2 <= len(handled) <= 9  # ~6 at 20 Hz in 0.3 s


def test_batch_capacity_note():
    assert batch_capacity_note(4, None) is None and batch_capacity_note(4, 4) is None
    note = batch_capacity_note(6, 4)
    assert "6 cameras" in note and "2 engine calls" in note
    assert "cityseg export BUNDLE --tensorrt --max-batch 6 --force" in note


# -- one camera: a rig of one (the node's single-camera mode) -------------------------------------

ONE = ("",)


def test_one_camera_hands_over_the_latest_frame_and_counts_replacements():
    batcher = CameraBatcher(ONE)
    assert batcher.put("", 1) is False
    assert batcher.put("", 2) is True and batcher.put("", 3) is True
    assert batcher.dropped[""] == 2
    assert batcher.take_batch(1, wait_s=0.005, timeout=0) == [("", 3)]  # one camera: nothing to wait for
    assert batcher.take_batch(1, timeout=0.01) == []  # empty again
    assert batcher.put("", 4) is False  # nothing pending: not a drop
    assert batcher.dropped[""] == 2


def test_one_camera_frames_arriving_while_busy_replace_each_other():
    """While the worker is busy with frame 0, frames 1..5 arrive: 1..4 are dropped, 5 is next."""
    batcher, stats = CameraBatcher(ONE), stats_for(ONE)
    busy, release, handled, published = threading.Event(), threading.Event(), [], []

    def process_batch(entries):
        (_, item), = entries
        if item == 0:
            busy.set()
            assert release.wait(5)
        handled.append(item)
        return [Frame({"mask": item})]

    worker = InferenceWorker(batcher, process_batch, lambda camera, m: published.append(m), stats)
    worker.start()
    try:
        batcher.put("", 0)
        assert busy.wait(5)
        for item in range(1, 6):  # the camera callback: put, count drops
            if batcher.put("", item):
                stats[""].dropped()
        release.set()
        assert wait_until(lambda: len(handled) >= 2)
    finally:
        worker.stop()
    assert handled == [0, 5] and published == [{"mask": 0}, {"mask": 5}]
    assert batcher.dropped[""] == 4
    snap = stats[""].snapshot()
    assert snap.totals["dropped"] == 4 and snap.totals["processed"] == 2
    assert worker.batch_sizes.snapshot() == {1: 2}


def test_one_cameras_failing_frame_is_reported_and_the_loop_goes_on():
    stats, errors, published = stats_for(ONE), [], []

    def process_batch(entries):
        (_, item), = entries
        if item == "boom":
            raise RuntimeError("backend exploded")
        if item == "bad":
            return [ImageError("step 2 is smaller than width*bytes_per_pixel")]
        return [Frame({"mask": item}, {"infer": 1.0})]

    worker = InferenceWorker(CameraBatcher(ONE), process_batch, lambda camera, m: published.append(m), stats,
                             on_error=lambda camera, reason, internal: errors.append((camera, reason, internal)))
    assert [worker.handle_batch([("", item)]) for item in ("bad", "boom", "good")] == [0, 0, 1]
    assert errors == [("", "step 2 is smaller than width*bytes_per_pixel", False),
                      ("", "internal error: RuntimeError: backend exploded", True)]
    assert published == [{"mask": "good"}]
    snap = stats[""].snapshot()
    assert snap.totals["failed"] == 1 and snap.totals["errors"] == 1 and snap.totals["processed"] == 1
    assert set(snap.stage_ms) == {"infer", "publish"}


def test_negative_rate_is_refused():
    with pytest.raises(ValueError, match="max_rate_hz"):
        InferenceWorker(CameraBatcher(ONE), lambda e: [], lambda c, m: None, stats_for(ONE), max_rate_hz=-1)
