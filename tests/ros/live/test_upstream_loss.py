"""Upstream-loss estimate from header stamp gaps: steady, jittered, skipping and looping cameras."""

from __future__ import annotations

import numpy as np

from cityseg.ros.live.upstream_loss import UpstreamLossEstimator


def lost(stamps) -> int:
    estimator = UpstreamLossEstimator()
    return sum(estimator.observe(float(t)) for t in stamps)


def test_a_steady_camera_loses_nothing():
    assert lost(1_700_000_000 + np.arange(300) / 30.0) == 0


def test_stamp_jitter_is_not_loss():
    rng = np.random.default_rng(0)
    period = 0.1
    for jitter in (0.05, 0.1, 0.2):  # each stamp off by up to +-20 % of the period
        stamps = 1_700_000_000 + np.arange(300) * period + rng.uniform(-jitter, jitter, 300) * period
        assert lost(stamps) == 0, jitter


def test_skipped_frames_are_counted():
    frames = np.arange(400)
    kept = frames[(frames % 7 != 3) & (frames % 11 != 5)]  # ~23 % lost, in ones and twos
    stamps = 1_700_000_000 + kept / 30.0
    expected = len(frames) - len(kept) - (kept[0] - frames[0])
    assert abs(lost(stamps) - expected) <= 2  # the first few gaps come before the period is known


def test_long_gaps_count_every_missing_frame():
    stamps = list(np.arange(20) * 0.1) + [2.5] + list(2.6 + np.arange(10) * 0.1)  # 0.6 s gap: 5 lost
    assert lost(stamps) == 5


def test_duplicates_and_looping_bags_are_not_loss():
    once = list(np.arange(50) * 0.1)
    assert lost(once + once) == 0  # `ros2 bag play --loop`: stamps jump back and start again
    assert lost([t for t in once for _ in (0, 1)]) == 0  # each stamp twice


def test_period_estimate_ignores_gaps():
    estimator = UpstreamLossEstimator()
    for t in [0.0, 0.1, 0.2, 0.5, 0.6, 0.7, 1.0, 1.1, 1.2]:
        estimator.observe(t)
    assert abs(estimator.period() - 0.1) < 1e-9


def test_heavy_loss_is_found_on_the_cameras_frame_grid():
    rng = np.random.default_rng(3)
    frames = np.arange(400)
    kept = np.sort(rng.choice(frames, size=30, replace=False))  # 92 % lost, as large frames without a profile
    stamps = 1_700_000_000 + kept / 10.0
    estimator = UpstreamLossEstimator()
    counted = sum(estimator.observe(float(t)) for t in stamps)
    assert abs(estimator.period() - 0.1) < 1e-6
    assert counted >= 0.6 * (kept[-1] - kept[0] + 1 - len(kept))  # most of the loss, once the grid is found
