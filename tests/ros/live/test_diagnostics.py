"""Rolling rates, stage latencies, the log line and the DiagnosticStatus (with a fake clock)."""

from __future__ import annotations

import pytest

from cityseg.ros.core.messages import RosbagsMessages
from cityseg.ros.live.diagnostics import (
    ERROR,
    OK,
    WARN,
    CameraStats,
    batch_status,
    camera_statuses,
    diagnostic_status,
    log_line,
)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_rates_over_the_window_and_totals_since_start():
    clock = Clock()
    stats = CameraStats(window_s=2.0, clock=clock)
    for i in range(20):  # 10 Hz for 2 s, every other frame dropped
        clock.now += 0.1
        stats.received()
        if i % 2:
            stats.dropped()
        else:
            stats.processed({"infer": 10.0 + i, "publish": 1.0})
    snap = stats.snapshot()
    assert snap.rates_hz["received"] == pytest.approx(10.0)
    assert snap.rates_hz["processed"] == pytest.approx(5.0)
    assert snap.rates_hz["dropped"] == pytest.approx(5.0)
    assert snap.stage_ms["infer"] == pytest.approx(sum(10.0 + i for i in range(0, 20, 2)) / 10)
    assert snap.stage_max_ms["infer"] == 28.0
    clock.now += 1.05  # half the window passes without input
    snap = stats.snapshot()
    assert snap.rates_hz["received"] == pytest.approx(10 / 2.0)
    assert snap.totals == {"received": 20, "processed": 10, "unwatched": 0, "dropped": 10, "failed": 0, "errors": 0,
                           "upstream_lost": 0}


def test_rates_before_a_full_window_use_the_elapsed_time():
    clock = Clock()
    stats = CameraStats(window_s=10.0, clock=clock)
    clock.now += 1.0
    for _ in range(4):
        stats.received()
    assert stats.snapshot().rates_hz["received"] == pytest.approx(4.0)


def test_status_levels_and_values():
    clock = Clock()
    stats = CameraStats(window_s=1.0, clock=clock)
    clock.now += 1.0
    status = diagnostic_status(stats.snapshot(), "/front/segmentation", "unet_lite")
    assert status.level == WARN and "no images received" in status.message
    stats.received()
    stats.processed({"convert": 1.0, "infer": 20.0})
    status = diagnostic_status(stats.snapshot(), "/front/segmentation", "unet_lite")
    assert status.level == OK and status.name == "/front/segmentation" and status.hardware_id == "unet_lite"
    values = dict(status.values)
    assert values["infer mean (ms)"] == "20.00" and values["processed total"] == "1"
    stats.received()
    stats.failed("unsupported encoding '32FC1'")
    status = diagnostic_status(stats.snapshot(), "n", "h")
    assert status.level == WARN and "unsupported encoding '32FC1'" in status.message
    array = RosbagsMessages().diagnostics(RosbagsMessages().header(1, 2, ""), [status])
    assert array.status[0].level == WARN and array.status[0].values[0].key == "received rate (Hz)"


def test_internal_errors_are_counted_apart_and_reach_error_when_every_frame_fails():
    clock = Clock()
    stats = CameraStats(window_s=1.0, clock=clock)
    clock.now += 1.0
    for _ in range(3):
        stats.received()
        stats.error("internal error: RuntimeError: CUDA out of memory")
    snap = stats.snapshot()
    assert snap.totals["errors"] == 3 and snap.totals["failed"] == 0
    status = diagnostic_status(snap, "n", "h")
    assert status.level == ERROR and "every frame fails" in status.message and "CUDA" in status.message
    stats.processed({"infer": 5.0})  # one frame got through: degraded, not dead
    status = diagnostic_status(stats.snapshot(), "n", "h")
    assert status.level == WARN and "internal errors on some frames" in status.message
    assert "internal errors 3 total" in log_line(stats.snapshot())


def test_upstream_loss_is_a_percentage_of_the_cameras_frames():
    clock = Clock()
    stats = CameraStats(window_s=2.0, clock=clock)
    for i in range(20):  # 10 frames received, 10 lost on the way
        clock.now += 0.1
        if i % 2:
            stats.received()
        else:
            stats.upstream_lost(1)
        stats.processed({"infer": 1.0})
    snap = stats.snapshot()
    assert snap.upstream_lost_percent == pytest.approx(50.0)
    status = diagnostic_status(snap, "n", "h", loss_warn_percent=1.0)
    assert status.level == WARN and "50 % of the camera's frames never arrived" in status.message
    assert "Large images" in status.message
    assert dict(status.values)["upstream lost (%)"] == "50.00"
    assert diagnostic_status(snap, "n", "h", loss_warn_percent=60.0).level == OK
    clean = CameraStats(window_s=2.0, clock=clock)
    clock.now += 1.0
    clean.received()
    clean.upstream_lost(0)
    assert dict(diagnostic_status(clean.snapshot(), "n", "h").values)["upstream lost (%)"] == "0.00"


def test_log_line():
    clock = Clock()
    stats = CameraStats(window_s=1.0, clock=clock)
    clock.now += 1.0
    stats.received()
    stats.processed({"convert": 1.0, "preprocess": 2.0, "infer": 30.0, "postprocess": 3.0, "publish": 4.0})
    line = log_line(stats.snapshot())
    assert line.startswith("in 1.0 Hz, out 1.0 Hz, dropped 0.0 Hz, failed 0 total")
    assert "infer 30.0 ms" in line and line.endswith("total 40.0 ms")


def test_window_must_be_positive():
    with pytest.raises(ValueError):
        CameraStats(window_s=0)


def test_one_status_per_camera_each_judged_alone():
    clock = Clock()
    stats = {camera: CameraStats(window_s=2.0, clock=clock) for camera in ("front", "left", "rear")}
    for _ in range(10):
        clock.now += 0.1
        stats["front"].received()
        stats["front"].processed({"infer": 5.0})
        stats["left"].received()
        stats["left"].failed("step 2 is smaller than width*bytes_per_pixel")
    # 'rear' is silent
    statuses = camera_statuses({c: s.snapshot() for c, s in stats.items()}, "/segmentation", "unet_lite",
                               live_outputs={"front": ("mask",)})
    assert [s.name for s in statuses] == ["/segmentation: front", "/segmentation: left", "/segmentation: rear"]
    assert [s.level for s in statuses] == [OK, WARN, WARN]
    assert "malformed images" in statuses[1].message and "no images received" in statuses[2].message
    front = dict(statuses[0].values)
    assert front["processed total"] == "10" and front["infer mean (ms)"] == "5.00"
    assert front["live outputs"] == "mask" and dict(statuses[2].values)["live outputs"] == "none"
    assert statuses[0].hardware_id == "unet_lite"


def test_batch_status_reports_the_distribution():
    status = batch_status({4: 6, 1: 2, 3: 2}, "/segmentation", "unet_lite", cameras=4, max_batch=4)
    assert status.name == "/segmentation: batch" and status.level == OK
    values = dict(status.values)
    assert [k for k, _ in status.values][:3] == ["batch size 1", "batch size 3", "batch size 4"]
    assert (values["batch size 4"], values["batches total"], values["mean batch"]) == ("6", "10", "3.20")
    assert (values["cameras"], values["max batch"]) == ("4", "4")
    assert status.message == "mean batch 3.20 of 4 over 10 batches"
    assert batch_status({}, "n", "h", 4, 2).message == "no batch run yet"
