"""Wall-clock timing for the benchmarks: the median of repeated calls, in milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 0, budget_s: float | None = None) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` timed calls, after ``warmup``
    untimed ones. With ``budget_s``, stop early once three calls are timed and the budget is spent."""
    if repeats < 1:
        raise ValueError(f"median_ms needs at least one timed call, got repeats={repeats}")
    for _ in range(warmup):
        fn()
    times = []
    started = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and len(times) >= 3 and time.perf_counter() - started > budget_s:
            break
    return float(np.median(times) * 1e3)
