"""The mirroring rule: every axis, except one along which two classes keep one order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from components.planning.mirroring import MIN_CASES, directional_axes, plan_mirror_axes
from components.planning.planner import make_plan
from tests.unit.planning.conftest import budget, cost_model, facts, user


def layout(before: list[int], after: list[int], cases: int = 100) -> dict[str, Any]:
    return {"pairs": [["c1", "c2"]], "cases": [cases], "before": [before], "after": [after]}


def test_an_order_kept_in_every_case_makes_its_axis_directional() -> None:
    found = directional_axes(layout([100, 50, 0], [0, 50, 100]), 3)
    assert sorted(found) == [0, 2]
    assert (found[0].first, found[0].second, found[0].share) == ("c1", "c2", 1.0)
    assert (found[2].first, found[2].second) == ("c2", "c1")  # c2 before c1 along axis 2


def test_an_order_reversed_in_more_than_a_twentieth_of_the_cases_is_mirrored() -> None:
    assert directional_axes(layout([96, 88, 90], [4, 12, 0]), 3).keys() == {0}  # axis 2: 10 level
    assert directional_axes(layout([94, 0, 0], [6, 0, 0]), 3) == {}


def test_too_few_cases_with_both_classes_are_no_evidence() -> None:
    few = MIN_CASES - 1
    assert directional_axes(layout([few, 0, 0], [0, 0, 0], cases=few), 3) == {}
    assert directional_axes(None, 3) == {} and directional_axes({}, 2) == {}


def test_the_decision_names_the_pair_and_maps_slices_of_volumes_to_their_patch_axes() -> None:
    d = plan_mirror_axes(layout([100, 0, 0], [0, 0, 0]), 3, [0, 1, 2])
    assert d.value == [1, 2] and "not axis 0: c1 lies before c2" in d.reason and "100%" in d.reason
    assert plan_mirror_axes(layout([0, 0, 100], [0, 0, 0]), 3, [0, 1]).value == [0, 1]  # slices along 2
    assert plan_mirror_axes(layout([0, 100, 0], [0, 0, 0]), 3, [1, 2]).value == [1]  # axis 2 -> patch 1
    assert plan_mirror_axes(layout([100, 100], [0, 0]), 2, [0, 1]).value == []


def test_the_planner_mirrors_and_tests_only_along_the_free_axes() -> None:
    f = facts([36, 50, 35], [1.0, 1.0, 1.0], n=260)
    f = replace(f, fingerprint={**f.fingerprint, "class_layout": layout([0, 240, 0], [250, 0, 0], 250)})
    p = make_plan(user(), f, budget(hours=8), None, cost_model)
    flips = [
        t["kwargs"]["spatial_axis"]
        for t in p.values["train.augment.transforms"].used
        if t["name"] == "RandFlip"
    ]
    assert flips == [[2]]
    assert p.values["ensemble.tta_axes"].used == [2]
    assert "not axis 0: c2 lies before c1" in p.values["train.augment.transforms"].reason


def test_2d_images_with_an_order_top_to_bottom_keep_the_horizontal_flip_only() -> None:
    f = facts([600, 600], [1.0, 1.0], channels=3, dtype="uint8", n=80)
    f = replace(f, fingerprint={**f.fingerprint, "class_layout": layout([80, 30], [0, 40], 80)})
    p = make_plan(user(), f, budget(hours=24, device="cuda"), None, cost_model)
    transforms = p.values["train.augment.transforms"].used
    names = [t["name"] for t in transforms]
    assert "HorizontalFlip" in names and "VerticalFlip" not in names
    assert p.values["ensemble.tta_axes"].used == [1]
    free_f = facts([600, 600], [1.0, 1.0], channels=3, dtype="uint8", n=80)
    long = budget(hours=2000, device="cuda")  # nnU-Net's full set: rotation by any angle
    for data, turn in ((f, 30.0), (free_f, 180.0)):
        transforms = make_plan(user(), data, long, None, cost_model).values["train.augment.transforms"].used
        assert "GaussianBlur" in [t["name"] for t in transforms]  # the full set, not the light one
        affine = next(t for t in transforms if t["name"] == "Affine")
        assert max(affine["kwargs"]["rotate"]) == turn  # a half turn would be both mirrors at once
