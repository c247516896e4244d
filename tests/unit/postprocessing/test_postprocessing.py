"""Connected-component postprocessing rules and their choice on cross-validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from components.metrics.panel import binary_metrics
from components.postprocessing import DEFAULT_MIN_SIZES, Postprocessing, Rule, apply_rule, candidate_rules
from components.postprocessing.selection import (
    HOLDS_COLUMN,
    SUMMARY_COLUMNS,
    candidate_dice,
    candidate_rows,
    choose_postprocessing,
    reference_holds,
)

NONE, LARGEST = Rule("none"), Rule("largest_component")

# Class 1: an L of 3 voxels (top left) and a diagonal chain of 4 voxels (4-connected: 4 singletons,
# 8-connected: one component of 4). Class 2: a 2-voxel bar and a single voxel.
MAP_2D = np.array(
    [
        [1, 1, 0, 0, 0, 2],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [2, 2, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ]
)
L_SHAPE = np.zeros((6, 6), bool)
L_SHAPE[0, :2] = L_SHAPE[1, 0] = True
DIAGONAL = np.zeros((6, 6), bool)
DIAGONAL[[2, 3, 4, 5], [2, 3, 4, 5]] = True


def _expected(keep_class1: np.ndarray) -> np.ndarray:
    out = MAP_2D.copy()
    out[(MAP_2D == 1) & ~keep_class1] = 0
    return out


def test_rule_names_round_trip() -> None:
    rules = candidate_rules()
    assert [r.name for r in rules] == ["none", "largest_component"] + [
        f"min_size:{n}" for n in DEFAULT_MIN_SIZES
    ]
    assert all(Rule.parse(r.name) == r for r in rules)
    assert Rule.parse(" min_size:050 ") == Rule("min_size", 50)
    assert [r.name for r in candidate_rules((50, 5, 50))] == [
        "none",
        "largest_component",
        "min_size:5",
        "min_size:50",
    ]


@pytest.mark.parametrize(
    "name", ["biggest", "min_size", "min_size:", "min_size:0", "min_size:-3", "min_size:x", ""]
)
def test_rule_parse_rejects(name: str) -> None:
    with pytest.raises(ValueError):
        Rule.parse(name)


def test_rule_rejects_bad_fields() -> None:
    with pytest.raises(ValueError):
        Rule("min_size", 0)
    with pytest.raises(ValueError):
        Rule("largest_component", 5)
    with pytest.raises(ValueError):
        Rule("open", 0)  # type: ignore[arg-type]


def test_apply_rule_2d_connectivity_1_vs_2() -> None:
    np.testing.assert_array_equal(apply_rule(MAP_2D, 1, LARGEST, connectivity=1), _expected(L_SHAPE))
    np.testing.assert_array_equal(apply_rule(MAP_2D, 1, LARGEST, connectivity=2), _expected(DIAGONAL))
    np.testing.assert_array_equal(apply_rule(MAP_2D, 1, Rule("min_size", 2), 1), _expected(L_SHAPE))
    np.testing.assert_array_equal(apply_rule(MAP_2D, 1, Rule("min_size", 2), 2), MAP_2D)
    np.testing.assert_array_equal(apply_rule(MAP_2D, 1, Rule("min_size", 4), 2), _expected(DIAGONAL))
    np.testing.assert_array_equal(apply_rule(MAP_2D, 1, NONE), MAP_2D)


def test_apply_rule_touches_only_its_class_and_copies() -> None:
    before = MAP_2D.copy()
    out = apply_rule(MAP_2D, 2, LARGEST)
    expected = MAP_2D.copy()
    expected[0, 5] = 0  # the single voxel of class 2; its 2-voxel bar stays, class 1 untouched
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(MAP_2D, before)
    assert out is not MAP_2D
    np.testing.assert_array_equal(apply_rule(MAP_2D, 3, LARGEST), MAP_2D)  # absent class


def test_apply_rule_3d() -> None:
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[1:4, 1:4, 1:4] = 1  # 27-voxel cube
    labels[6, 6, 6] = 1  # single voxel
    labels[5, 5, 5] = 1  # touches the single voxel only at a corner
    labels[6:8, 0, 0] = 1  # 2-voxel bar
    labels[0, 7, 7] = 2
    cube = np.zeros_like(labels, bool)
    cube[1:4, 1:4, 1:4] = True
    want = labels.copy()
    want[(labels == 1) & ~cube] = 0
    np.testing.assert_array_equal(apply_rule(labels, 1, LARGEST), want)
    np.testing.assert_array_equal(apply_rule(labels, 1, Rule("min_size", 3)), want)
    corner_pair = labels.copy()
    corner_pair[6:8, 0, 0] = 0  # the corner pair (2 voxels) survives min_size:2 only with connectivity 3
    np.testing.assert_array_equal(apply_rule(labels, 1, Rule("min_size", 2), connectivity=3), labels)
    np.testing.assert_array_equal(apply_rule(labels, 1, Rule("min_size", 3), connectivity=3), want)
    got = apply_rule(labels, 1, Rule("min_size", 2), connectivity=1)
    np.testing.assert_array_equal(got, np.where((labels == 1) & ~cube & (corner_pair == 1), 0, labels))


def test_apply_rule_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="foreground"):
        apply_rule(MAP_2D, 0, LARGEST)
    with pytest.raises(ValueError, match="connectivity"):
        apply_rule(MAP_2D, 1, LARGEST, connectivity=3)
    with pytest.raises(ValueError, match="integer"):
        apply_rule(MAP_2D.astype(float), 1, LARGEST)


def test_postprocessing_apply_and_json_round_trip() -> None:
    pp = Postprocessing({1: LARGEST, 2: Rule("min_size", 2)}, connectivity=2)
    want = _expected(DIAGONAL)
    want[0, 5] = 0
    np.testing.assert_array_equal(pp.apply(MAP_2D), want)
    data = json.loads(json.dumps(pp.to_json()))
    assert data == {"connectivity": 2, "rules": {"1": "largest_component", "2": "min_size:2"}}
    assert Postprocessing.from_json(data) == pp
    np.testing.assert_array_equal(Postprocessing().apply(MAP_2D), MAP_2D)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([], "keys"),
        ({"rules": {}}, "keys"),
        ({"connectivity": 1, "rules": {}, "extra": 1}, "keys"),
        ({"connectivity": 1, "rules": ["largest_component"]}, "rules"),
        ({"connectivity": 1, "rules": {"0": "none"}}, "class key"),
        ({"connectivity": 1, "rules": {"x": "none"}}, "class key"),
        ({"connectivity": 1, "rules": {"1": "biggest"}}, "class 1"),
        ({"connectivity": 1, "rules": {"1": "min_size:0"}}, "class 1"),
        ({"connectivity": 1, "rules": {"1": 5}}, "class 1"),
        ({"connectivity": 0, "rules": {}}, "connectivity"),
        ({"connectivity": "1", "rules": {}}, "connectivity"),
        ({"connectivity": True, "rules": {}}, "connectivity"),
    ],
)
def test_postprocessing_from_json_rejects(data: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Postprocessing.from_json(data)  # type: ignore[arg-type]


def _random_maps(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Blobby 3-class maps: smoothed noise, so there are components of many sizes."""
    noise = ndimage.gaussian_filter(rng.random((2, *shape)), sigma=(0, *([1.2] * len(shape))))
    pred = np.digitize(noise[0], np.quantile(noise[0], [0.6, 0.85]))
    ref = np.digitize(noise[1] * 0.5 + noise[0] * 0.5, np.quantile(noise[0], [0.6, 0.85]))
    return pred.astype(np.int64), ref.astype(np.int64)


@pytest.mark.parametrize(
    ("shape", "connectivity"), [((40, 40), 1), ((40, 40), 2), ((12, 14, 16), 1), ((12, 14, 16), 3)]
)
@pytest.mark.parametrize("use_valid", [False, True])
def test_candidate_dice_matches_apply_rule(
    shape: tuple[int, ...], connectivity: int, use_valid: bool
) -> None:
    rng = np.random.default_rng(len(shape) + connectivity)
    pred, ref = _random_maps(rng, shape)
    valid = rng.random(shape) < 0.7 if use_valid else None
    rules = candidate_rules((3, 10, 50))
    scores = candidate_dice(pred, ref, [1, 2], rules[1:], connectivity, valid)  # 'none' added
    assert set(scores) == {(c, r.name) for c in (1, 2) for r in rules}
    v = np.ones(shape, bool) if valid is None else valid
    for c in (1, 2):
        for rule in rules:
            post = apply_rule(pred, c, rule, connectivity)
            want = binary_metrics((post == c) & v, (ref == c) & v, surface=False)["dice"]
            assert scores[(c, rule.name)] == pytest.approx(want, abs=1e-12), (c, rule.name)


def test_candidate_dice_labels_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = ndimage.label

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ndimage, "label", counting)
    pred, ref = _random_maps(np.random.default_rng(9), (30, 30))
    candidate_dice(pred, ref, [1, 2], candidate_rules())
    assert len(calls) == 2


def test_candidate_dice_empty_policy_and_invalid_garbage() -> None:
    zero = np.zeros((5, 5), np.int64)
    assert candidate_dice(zero, zero, [1], [LARGEST]) == {(1, "none"): 1.0, (1, "largest_component"): 1.0}
    one = zero.copy()
    one[2, 2] = 1
    assert candidate_dice(one, zero, [1], [LARGEST]) == {(1, "none"): 0.0, (1, "largest_component"): 0.0}
    # Garbage in ref outside the valid mask changes nothing.
    valid = np.ones((5, 5), bool)
    valid[0] = False
    dirty = one.copy()
    dirty[0] = 255
    assert candidate_dice(one, dirty, [1], [LARGEST], valid=valid) == candidate_dice(one, one, [1], [LARGEST])


def _case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class 1: one true object; the prediction adds small spurious blobs far from it (so
    largest_component helps). Class 2: the reference has a big and a small object, both predicted
    (so largest_component hurts: it deletes the correct small object)."""
    ref = np.zeros((64, 64), np.int64)
    pred = np.zeros_like(ref)
    y, x = rng.integers(4, 12, 2)
    ref[y : y + 12, x : x + 12] = 1
    pred[y + 1 : y + 13, x : x + 12] = 1  # slightly shifted
    for by, bx in rng.integers(30, 60, (3, 2)):  # 3x3 and larger blobs, bigger than min_size:5
        pred[by : by + 3, bx : bx + 3] = 1
    ref[40:52, 4:16] = 2
    pred[41:52, 4:16] = 2
    ref[4:7, 50:53] = 2  # small true object, predicted exactly
    pred[4:7, 50:53] = 2
    return pred, ref


def _table(n_cases: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for i in range(n_cases):
        pred, ref = _case(rng)
        rows += candidate_rows(f"case{i}", candidate_dice(pred, ref, [1, 2], candidate_rules((5,))))
    return pd.DataFrame(rows)


def test_choose_postprocessing_per_class() -> None:
    decision, summary = choose_postprocessing(_table(), connectivity=1)
    assert decision == Postprocessing({1: LARGEST, 2: NONE}, connectivity=1)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    chosen = summary[summary["chosen"]].set_index("class")["rule"].to_dict()
    assert chosen == {1: "largest_component", 2: "none"}
    s = summary.set_index(["class", "rule"])
    assert s.loc[(1, "largest_component"), "delta_vs_none"] > 0
    assert s.loc[(2, "largest_component"), "delta_vs_none"] < 0
    assert s.loc[(2, "min_size:5"), "delta_vs_none"] == 0.0  # keeps the 9-voxel object: a tie
    assert s.loc[(1, "none"), "delta_vs_none"] == 0.0 and (summary["n_cases"] == 6).all()
    assert list(summary["rule"][summary["class"] == 1]) == ["none", "min_size:5", "largest_component"]


def test_choose_ties_prefer_none_then_simpler() -> None:
    rows = [
        {"case_id": c, "class": 1, "rule": r, "dice": d}
        for c, base in (("a", 0.5), ("b", 0.7))
        for r, d in (("none", base), ("min_size:10", base), ("largest_component", base))
    ]
    rows += [
        {"case_id": c, "class": 2, "rule": r, "dice": d}
        for c in ("a", "b")
        for r, d in (("none", 0.5), ("min_size:200", 0.6), ("min_size:50", 0.6), ("largest_component", 0.6))
    ]
    decision, _ = choose_postprocessing(pd.DataFrame(rows))
    assert decision.rules == {1: NONE, 2: Rule("min_size", 50)}


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda t: t.drop(columns="dice"), "columns"),
        (lambda t: t[t["rule"] != "none"], "none"),
        (lambda t: t.iloc[1:], "same cases"),
        (lambda t: pd.concat([t, t.iloc[:1]]), "duplicate"),
        (lambda t: t.assign(rule=t["rule"].replace("none", "nothing")), "unknown"),
        (lambda t: t.assign(dice=np.nan), "NaN"),
        (lambda t: t.iloc[:0], "empty"),
    ],
)
def test_choose_rejects_bad_tables(mutate, match: str) -> None:
    table = _table(2).sort_values(["class", "rule", "case_id"]).reset_index(drop=True)
    with pytest.raises(ValueError, match=match):
        choose_postprocessing(mutate(table))


def test_a_rule_that_clears_empty_cases_by_deleting_true_findings_is_not_chosen() -> None:
    """Both empty scores 1: min_size:1000 deletes the false positives of both cases with nothing to
    find (0 -> 1 each) and the small true findings of two others (0.4 -> 0 each), and wins on the
    mean over all cases (+0.24) over min_size:10, which clears one empty case only (+0.20). With the
    table saying which cases hold the class, min_size:1000 is not chosen (it costs the cases with
    findings 0.27 of Dice on average); min_size:10, which costs them nothing, is."""
    dice = {  # case: (holds the class, none, min_size:10, min_size:1000)
        "e1": (False, 0.0, 1.0, 1.0),
        "e2": (False, 0.0, 0.0, 1.0),
        "s1": (True, 0.4, 0.4, 0.0),
        "s2": (True, 0.4, 0.4, 0.0),
        "big": (True, 0.9, 0.9, 0.9),
    }
    rows = [
        {"case_id": case, "class": 1, "rule": rule, "dice": d, HOLDS_COLUMN: holds}
        for case, (holds, *values) in dice.items()
        for rule, d in zip(("none", "min_size:10", "min_size:1000"), values, strict=True)
    ]
    table = pd.DataFrame(rows)
    bare, summary = choose_postprocessing(table.drop(columns=HOLDS_COLUMN))
    assert bare.rules == {1: Rule("min_size", 1000)}
    s = summary.set_index("rule")["delta_vs_none"]
    assert s["min_size:1000"] == pytest.approx(0.24) and s["min_size:10"] == pytest.approx(0.2)
    decision, with_holds = choose_postprocessing(table)
    assert decision.rules == {1: Rule("min_size", 10)}
    found = with_holds.set_index("rule")["delta_with_findings"]  # why min_size:1000 lost, in the report
    assert found["min_size:1000"] == pytest.approx(-0.8 / 3) and found["min_size:10"] == 0.0
    assert summary["delta_with_findings"].isna().all()  # unknown without the column
    no_cost = table.assign(dice=table["dice"].where(table["rule"] != "min_size:1000", 1.0))
    assert choose_postprocessing(no_cost)[0].rules == {1: Rule("min_size", 1000)}  # costs nothing now


def test_reference_holds_counts_only_scored_voxels() -> None:
    ref = np.zeros((4, 4), int)
    ref[0, 0] = 2
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    assert reference_holds(ref, [1, 2]) == {1: False, 2: True}
    assert reference_holds(ref, [1, 2], valid) == {1: False, 2: False}
    rows = candidate_rows("a", {(2, "none"): 1.0}, {2: True})
    assert rows == [{"case_id": "a", "class": 2, "rule": "none", "dice": 1.0, HOLDS_COLUMN: True}]
