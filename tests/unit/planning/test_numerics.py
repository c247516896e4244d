"""The training step's precision and layout rule (components/planning/numerics.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from components.planning.measure import Candidate, Measurement, measure, measuring_seconds
from components.planning.numerics import BF16_GAIN, LAYOUT_GAIN, choose_numerics
from components.planning.planner import make_plan
from tests.unit.planning.conftest import budget, cost_model, facts, user


def _steps(fp32: float, bf16: float, last_gain: float = 1.0) -> dict[tuple[bool, bool], float]:
    """Step seconds per (bf16, channels_last); channels-last is ``last_gain`` times faster."""
    return {
        (False, False): fp32,
        (False, True): fp32 / last_gain,
        (True, False): bf16,
        (True, True): bf16 / last_gain,
    }


class Probe:
    """Records which combinations the rule measured."""

    def __init__(self, times: dict[tuple[bool, bool], float]) -> None:
        self.times, self.asked = times, []

    def __call__(self, bf16: bool, channels_last: bool) -> float:
        self.asked.append((bf16, channels_last))
        return self.times[(bf16, channels_last)]


def test_a_cpu_with_bf16_units_trains_in_bf16() -> None:
    """AMX: 0.45 s against 1.03 s in float32 (measured on a Xeon): bf16, with the numbers in the reason."""
    n = choose_numerics("cpu", Probe(_steps(1.03, 0.45)), "the step")
    assert n.mode == (True, False)
    assert "0.450 s with bf16 autocast against 1.030 s with float32" in str(n.bf16.reason)


def test_a_cpu_that_emulates_bf16_stays_in_float32() -> None:
    n = choose_numerics("cpu", Probe(_steps(0.30, 0.55)), "the step")
    assert n.mode == (False, False)
    assert str(n.bf16.reason).startswith("float32:")


def test_bf16_needs_its_gain_not_just_any_speed_up() -> None:
    """Slightly faster is not worth bf16's rounding: the rule asks for BF16_GAIN."""
    just_under = choose_numerics("cpu", Probe(_steps(1.0, 1.0 / BF16_GAIN * 1.01)), "s")
    at_gain = choose_numerics("cpu", Probe(_steps(1.0, 1.0 / BF16_GAIN * 0.99)), "s")
    assert just_under.mode[0] is False
    assert at_gain.mode[0] is True


def test_channels_last_is_taken_when_faster_in_the_chosen_precision() -> None:
    """The encoder: channels-last 1.3x faster under bf16 -> both; the dynamic U-Net (no gain) -> default."""
    encoder = choose_numerics("cpu", Probe(_steps(1.03, 0.45, last_gain=1.3)), "s")
    dynunet = choose_numerics("cpu", Probe(_steps(0.33, 0.17, last_gain=1.0)), "s")
    slight = choose_numerics("cpu", Probe(_steps(0.33, 0.17, last_gain=LAYOUT_GAIN * 0.99)), "s")
    assert encoder.mode == (True, True)
    assert dynunet.mode == (True, False)
    assert slight.mode == (True, False)


def test_the_layout_is_judged_in_the_precision_that_trains() -> None:
    """Channels-last helps float32 only; bf16 wins: the layout compared is bf16's (default)."""
    times = {(False, False): 1.0, (False, True): 0.6, (True, False): 0.4, (True, True): 0.41}
    n = choose_numerics("cpu", Probe(times), "s")
    assert n.mode == (True, False)


def test_bf16_is_compared_with_float32_at_its_best_layout() -> None:
    """float32 channels-last 0.6 s vs bf16 0.55 s: under the gain, so float32 (channels-last)."""
    times = {(False, False): 1.0, (False, True): 0.6, (True, False): 0.58, (True, True): 0.55}
    n = choose_numerics("cpu", Probe(times), "s")
    assert n.mode == (False, True)


@pytest.mark.parametrize(("yours", "measured"), [((True, None), 2), ((None, False), 2), ((False, True), 0)])
def test_a_value_the_user_set_is_kept_and_not_measured(
    yours: tuple[bool | None, bool | None], measured: int
) -> None:
    probe = Probe(_steps(1.0, 0.3, last_gain=2.0))
    n = choose_numerics("cpu", probe, "s", *yours)
    for value, used, decision in zip(yours, n.mode, (n.bf16, n.channels_last), strict=True):
        if value is not None:
            assert used is value and decision.reason == "yours"
    assert len(probe.asked) == measured
    if yours == (True, None):
        assert all(bf16 for bf16, _ in probe.asked)


def test_cuda_uses_bf16_where_supported_and_measures_nothing() -> None:
    def never(bf16: bool, channels_last: bool) -> float:
        raise AssertionError("CUDA is not measured")

    on = choose_numerics("cuda", never, "s", cuda_bf16=lambda: True)
    off = choose_numerics("cuda", never, "s", cuda_bf16=lambda: False)
    assert on.mode == (True, False)
    assert off.mode == (False, False)
    assert "no bf16 support" in str(off.bf16.reason)


def _bf16_units(speed_up: float) -> Callable[[Candidate, str], Measurement]:
    """The cost model on a CPU whose bf16 step is ``speed_up`` times faster than float32."""

    def measure(c: Candidate, device: str) -> Measurement:
        m = cost_model(c, device)
        return replace(m, step_s=m.step_s / speed_up) if c.bf16 else m

    return measure


def _used(p: Any, key: str) -> Any:
    return p.values[key].used


def test_the_plan_trains_in_bf16_where_the_device_runs_it_faster_and_fits_more_steps() -> None:
    """2D images, 20 minutes, one network: a 2.5x faster bf16 step is planned, and buys context and steps."""
    f = facts((384, 352), (1.0, 1.0), n=50)
    b = budget(hours=1 / 3)
    net = {"name": "dynunet", "kwargs": {"base_filters": 16, "deep_supervision": True}}
    fast = make_plan(user(train__model=net), f, b, None, _bf16_units(2.5))
    plain = make_plan(user(train__model=net), f, b, None, _bf16_units(0.5))  # emulated bf16: slower
    assert _used(fast, "train.bf16") is True
    assert _used(plain, "train.bf16") is False
    assert "bf16 autocast" in fast.values["train.bf16"].reason
    steps = [_used(p, "train.epochs") * _used(p, "train.iterations_per_epoch") for p in (fast, plain)]
    # float32 shrinks the patch for time (288 x 288); bf16 trains the whole image, and more steps
    patches = [math.prod(_used(p, "train.patch_size")) for p in (fast, plain)]
    assert patches[0] > patches[1] and steps[0] > steps[1]
    assert [c["bf16"] for c in fast.network["candidates"]] == [True]


def test_precision_the_user_set_is_kept_in_the_plan() -> None:
    f = facts((384, 352), (1.0, 1.0), n=50)
    p = make_plan(user(train__bf16=False), f, budget(hours=1 / 3), None, _bf16_units(2.5))
    assert _used(p, "train.bf16") is False
    assert p.values["train.bf16"].planned is False  # the rule is not asked: yours, not measured
    assert not any(c["bf16"] for c in p.network["candidates"])


def test_measure_runs_the_step_in_the_candidates_precision_and_layout() -> None:
    """The real measurement (CPU): a probe times the step only; bf16 keeps fewer bytes for backward."""
    base = Candidate(
        model="dynunet",
        model_kwargs=json.dumps({"base_filters": 8, "deep_supervision": True}),
        patch=(32, 32),
        spacing=None,
        batch=2,
        in_channels=1,
        num_classes=3,
        window_batch=2,
        transforms=(),
    )
    fp32 = measure(base, "cpu")
    bf16 = measure(replace(base, bf16=True, channels_last=True), "cpu")
    assert fp32.step_s > 0 and bf16.step_s > 0 and fp32.window_s > 0
    assert bf16.activation_bytes < 0.8 * fp32.activation_bytes
    probe = measure(replace(base, window_batch=0, bf16=True), "cpu")
    assert probe.probe and probe.step_s > 0
    assert (probe.window_s, probe.memory_bytes) == (0.0, 0.0)
    assert measuring_seconds(probe) < measuring_seconds(replace(probe, probe=False))
