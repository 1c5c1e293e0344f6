"""median_ms: warm-up calls untimed, the median of the timed calls, an optional time budget."""

import time

import pytest

from cityseg.benchmarking.timing import median_ms


def test_warmup_calls_are_not_timed_and_the_median_is_in_milliseconds():
    durations = iter([0.2] * 2 + [0.01, 0.03, 0.02])  # two slow warm-ups, then 10/30/20 ms
    calls = []

    def fn():
        calls.append(1)
        time.sleep(next(durations))

    ms = median_ms(fn, repeats=3, warmup=2)
    assert len(calls) == 5
    assert 19 <= ms < 30  # the median of 10/30/20 ms: the 200 ms warm-ups are not in it


def test_a_budget_stops_after_three_calls_once_spent():
    calls = []
    ms = median_ms(lambda: calls.append(time.sleep(0.01)), repeats=50, budget_s=0.0)
    assert len(calls) == 3 and ms >= 9
    calls.clear()
    median_ms(lambda: calls.append(1), repeats=7, budget_s=60.0)
    assert len(calls) == 7


def test_no_timed_call_is_an_error():
    with pytest.raises(ValueError, match="repeats=0"):
        median_ms(lambda: None, repeats=0)
