"""Which configurations a volume dataset trains (3D, 2D on slices or both) and the plan of each with
the budget split between them, on the cost model of conftest.py: each test asserts the outcome."""

from __future__ import annotations

from typing import Any

import pytest

from components.planning import recipe
from components.planning.configurations import BOTH_MIN_STEPS, CONFIGURATION_STEP_FACTOR, worth_both
from components.planning.decision import PlanError
from components.planning.measure import Candidate, Measurement
from components.planning.planner import MIN_FOLD_STEPS, make_plan
from tests.unit.planning.conftest import budget, cost_model, facts, user

HIPPOCAMPUS = facts([36, 50, 35], [1.0, 1.0, 1.0], n=260)  # small isotropic MRI volumes


def plan(f, b, measured=None, **keys):  # type: ignore[no-untyped-def]
    def measure(c: Candidate, device: str) -> Measurement:
        if measured is not None:
            measured.append(len(c.patch))
        return cost_model(c, device)

    return make_plan(user(**keys), f, b, None, measure)


def steps(values: dict[str, Any]) -> int:
    return int(values["train.epochs"].used * values["train.iterations_per_epoch"].used)


def test_the_threshold_is_a_long_schedule() -> None:
    assert BOTH_MIN_STEPS == MIN_FOLD_STEPS * CONFIGURATION_STEP_FACTOR == recipe.SGD_MIN_STEPS
    assert worth_both({"3d": BOTH_MIN_STEPS, "2d": BOTH_MIN_STEPS})[0]
    assert not worth_both({"3d": BOTH_MIN_STEPS, "2d": BOTH_MIN_STEPS - 1})[0]
    assert not worth_both({"3d": 50_000})[0]  # 2d not planned: one configuration


def test_an_hour_on_a_cpu_trains_3d_alone_and_says_why_without_measuring_2d() -> None:
    measured: list[int] = []
    p = plan(HIPPOCAMPUS, budget(hours=1), measured)
    alone = plan(HIPPOCAMPUS, budget(hours=1), plan__configurations=["3d"])
    assert p.trained == ["3d"] and p.second is None
    entries = {c["name"]: c for c in p.to_json()["configurations"]}
    assert (
        entries["3d"]["status"] == "planned and trained"
        and entries["2d"]["status"] == "not trained in this run"
    )
    assert "3d only" in entries["2d"]["reason"] and f"< {BOTH_MIN_STEPS}" in entries["2d"]["reason"]
    assert set(measured) == {3}  # the split 3d already falls short: no 2d network is measured
    assert p.values == alone.values and p.estimate == alone.estimate  # 3d alone with the whole budget


def test_a_long_budget_trains_both_each_with_its_own_params_in_half_the_budget() -> None:
    b = budget(hours=8)
    p = plan(HIPPOCAMPUS, b)
    assert p.trained == ["3d", "2d"] and p.second is not None
    first, second = p.values, p.second.values
    assert len(first["train.patch_size"].used) == 3 and len(second["train.patch_size"].used) == 2
    assert steps(first) >= BOTH_MIN_STEPS and steps(second) >= BOTH_MIN_STEPS
    assert first["train.folds"].used == second["train.folds"].used  # the same folds, to compare
    for key in ("preprocess.target_spacing", "preprocess.intensity", "preprocess.slice_axis", "data.classes"):
        assert first[key] == second[key]  # one prepared dataset
    assert second["ensemble.tta_axes"].used != first["ensemble.tta_axes"].used  # each mirrors its axes
    alone = plan(HIPPOCAMPUS, b, plan__configurations=["3d"])
    assert p.estimate["fold_s"] < 0.55 * alone.estimate["fold_s"]  # 3d gave half its training time to 2d
    stages = p.estimate["stages_s"]
    assert stages["train"] > alone.estimate["stages_s"]["train"] * 0.9  # both trainings, in the budget
    assert p.estimate["total_s"] <= b.seconds and p.estimate["total_s"] >= 0.8 * b.seconds
    assert p.second.estimate["steps_per_fold"] == steps(second)


def test_both_are_written_to_the_plan_and_resolve_to_two_params_files() -> None:
    p = plan(HIPPOCAMPUS, budget(hours=8))
    doc = p.to_json()
    entries = {c["name"]: c for c in doc["configurations"]}
    assert (
        entries["3d"]["params"] == "plans/params.yaml" and entries["2d"]["params"] == "plans/params-2d.yaml"
    )
    assert (
        len(entries["2d"]["values"]["train.patch_size"]["used"]) == 2
        and "3d and 2d" in entries["2d"]["reason"]
    )
    assert "# Plan: 3d and 2d configurations" in p.markdown() and "## The 2d configuration" in p.markdown()
    raw = {"train": {"patch_size": "auto"}, "plan": {"configurations": "auto"}}
    assert len(p.resolved(raw)["train"]["patch_size"]) == 3
    assert len(p.resolved(raw, second=True)["train"]["patch_size"]) == 2
    assert plan(HIPPOCAMPUS, budget(hours=8)).dumps() == p.dumps()  # deterministic, byte for byte


def test_both_set_by_the_user_train_both_or_name_the_split_when_it_does_not_fit() -> None:
    p = plan(HIPPOCAMPUS, budget(hours=1), plan__configurations=["2d", "3d"])  # any order: 3d first
    assert p.trained == ["3d", "2d"]
    assert "yours (plan.configurations [3d, 2d])" in p.to_json()["configurations"][1]["reason"]
    with pytest.raises(
        PlanError, match=r"plan\.configurations \[3d, 2d\] \(yours\) splits the budget.*too short"
    ):
        plan(
            facts([128, 128, 128], [1.0, 1.0, 1.0], n=100),
            budget(hours=0.02),
            plan__configurations=["3d", "2d"],
        )


def test_one_configuration_set_by_the_user_or_fixed_by_their_patch() -> None:
    p = plan(HIPPOCAMPUS, budget(hours=8), plan__configurations=["2d"])
    assert p.trained == ["2d"] and len(p.values["train.patch_size"].used) == 2
    fixed = plan(HIPPOCAMPUS, budget(hours=8), train__patch_size=[32, 48, 32])
    assert fixed.trained == ["3d"] and "train.patch_size" in fixed.to_json()["configurations"][1]["reason"]
    with pytest.raises(PlanError, match=r"plan\.configurations \[3d, 2d\] \(yours\) and train\.patch_size"):
        plan(HIPPOCAMPUS, budget(hours=8), plan__configurations=["3d", "2d"], train__patch_size=[32, 48, 32])


def test_2d_images_have_one_configuration() -> None:
    photos = facts([512, 512], [1.0, 1.0], n=100, channels=3, dtype="uint8", intensity=(0.0, 255.0))
    assert plan(photos, budget(hours=24, device="cuda")).trained == ["2d"]
    with pytest.raises(PlanError, match=r"plan\.configurations \[3d\] \(yours\) .* 2D images"):
        plan(photos, budget(hours=1), plan__configurations=["3d"])


def test_a_budget_too_short_to_split_says_so_in_its_own_words() -> None:
    """3 minutes: 3D alone plans; half of it holds no epoch of both, and the reason says that (not a
    too-short error for a budget the user never gave)."""
    p = plan(HIPPOCAMPUS, budget(hours=3 / 60))
    reason = {c["name"]: c for c in p.to_json()["configurations"]}["2d"]["reason"]
    assert reason.startswith("3d only: with the budget split in two (") and "too short" not in reason


def test_the_second_configuration_trains_the_first_ones_folds_so_no_network_counts_on_fewer() -> None:
    """3d and 2d train the same folds (to compare them out of fold), so the 2d plan may not prefer
    the ResNet-18-encoder U-Net for what fewer folds would give it: on thin volumes of 320 x 320
    slices it had been planned with 760 steps per fold (under MIN_FOLD_STEPS) beside a plain
    U-Net's 1,900."""
    f = facts([4, 320, 320], [5.0, 1.0, 1.0], n=100)
    for hours in (0.8, 0.9):
        p = plan(f, budget(hours=hours), plan__configurations=["3d", "2d"])
        assert p.second is not None
        second = p.second.values
        assert second["train.folds"].used == p.values["train.folds"].used
        assert steps(second) >= MIN_FOLD_STEPS
        if second["train.model"].used["name"] == "unet_resnet18":
            assert "with 3 folds instead of" not in second["train.model"].reason
