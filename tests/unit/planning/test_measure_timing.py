"""Timing a candidate: the median of a few calls, a slow one once (measuring is part of the budget)."""

from __future__ import annotations

import time

import pytest

from components.planning import measure


def test_a_slow_call_is_timed_once_a_fast_one_repeatedly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure, "SLOW_S", 0.01)
    calls: list[int] = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.02)

    assert measure._timed(slow, 3, lambda: None) >= 0.02
    assert len(calls) == 1
    calls.clear()
    assert measure._timed(lambda: calls.append(1), 3, lambda: None) < 0.01
    assert len(calls) == 3


def test_a_step_is_timed_as_the_loop_pays_it_the_median_not_the_fastest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(measure, "SLOW_S", 1.0)
    pauses = iter([0.0, 0.02, 0.02, 0.02, 0.2])

    def step() -> None:
        time.sleep(next(pauses))

    assert 0.02 <= measure._timed(step, 5, lambda: None) < 0.1


def test_one_disturbed_call_of_a_step_under_slow_s_is_outvoted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first timed call of a 0.6 s step once took 1.48 s (a server starting beside the plan) and,
    being over the old 1 s shortcut, became the plan's step: 2.3x the loop's. Below SLOW_S a median
    of MIN_CALLS calls decides; once the calls have taken TIMING_S together, no more are made."""
    monkeypatch.setattr(measure, "SLOW_S", 0.5)
    monkeypatch.setattr(measure, "TIMING_S", 0.15)
    pauses = iter([0.3, 0.06, 0.06, 0.06, 0.06])
    calls: list[float] = []

    def step() -> None:
        calls.append(1)
        time.sleep(next(pauses))

    assert 0.06 <= measure._timed(step, 5, lambda: None) < 0.2
    assert len(calls) == measure.MIN_CALLS  # 0.3 + 0.06 + 0.06 > TIMING_S: three calls


def test_calls_made_follow_the_rule() -> None:
    assert measure.timed_calls(0.2, 5) == 5
    assert measure.timed_calls(0.7, 5) == 5  # 5 x 0.7 = 3.5 s: the fifth passes TIMING_S
    assert measure.timed_calls(1.2, 5) == 3  # 3 x 1.2 > TIMING_S
    assert measure.timed_calls(2.0, 3) == 3
    assert measure.timed_calls(measure.SLOW_S + 1, 5) == 1


def test_measuring_seconds_follow_the_passes_measure_makes() -> None:
    fast = measure.Measurement(0.5, 0.2, 0.0, 0.0, 0.01, 1)
    slow = measure.Measurement(8.0, 4.0, 0.0, 0.0, 0.01, 1)
    aug = (1 + measure.AUG_SAMPLES) * 0.01
    assert measure.measuring_seconds(fast) == pytest.approx(7 * 0.5 + 4 * 0.2 + aug)
    assert measure.measuring_seconds(slow) == pytest.approx(3 * 8.0 + 4 * 4.0 + aug)
