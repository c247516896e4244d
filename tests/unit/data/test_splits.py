"""Tests for the k-fold / test splitting."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from components.data.splits import Splits, check_splits, make_splits, merge_groups, split_leaks


def _dataset(n: int = 60, per_patient: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"case_{i:03d}" for i in range(n)]
    labels = {
        c: [0, 1, *([2] if rng.random() < 0.8 else []), *([3] if rng.random() < 0.5 else [])] for c in ids
    }
    groups = {c: f"p{i // per_patient:02d}" for i, c in enumerate(ids)}
    return ids, labels, groups


def test_partition_and_grouping() -> None:
    ids, labels, groups = _dataset()
    s = make_splits(ids, labels, groups, n_folds=5, test_fraction=0.2, seed=0)
    check_splits(s, ids, groups)
    everything = s.test + [c for f in s.folds for c in f]
    assert sorted(everything) == sorted(ids) and len(everything) == len(set(everything))
    assert len(s.folds) == 5 and all(s.folds)
    assert 9 <= len(s.test) <= 15  # about 20 % of 60, in whole patients of 3
    for part in [s.test, *s.folds]:
        assert part == sorted(part)
    for k in range(5):
        train = s.train_cases(k)
        assert not set(train) & set(s.folds[k])
        assert sorted(train + s.folds[k] + s.test) == sorted(ids)
        assert {groups[c] for c in train}.isdisjoint({groups[c] for c in s.folds[k]})


def test_stratification_roughly_balanced() -> None:
    ids, labels, _ = _dataset(n=100)
    s = make_splits(ids, labels, None, n_folds=4, test_fraction=0.2, seed=1)
    overall = np.mean([3 in labels[c] for c in ids])
    for part in [s.test, *s.folds]:
        assert abs(np.mean([3 in labels[c] for c in part]) - overall) < 0.1
    assert [len(f) for f in s.folds] == [20, 20, 20, 20] and len(s.test) == 20


def test_deterministic_and_independent_of_input_order() -> None:
    ids, labels, groups = _dataset()
    a = make_splits(ids, labels, groups, 5, 0.2, seed=3)
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    b = make_splits(
        shuffled, {c: labels[c][::-1] for c in shuffled}, {c: groups[c] for c in shuffled}, 5, 0.2, seed=3
    )
    assert a == b
    assert make_splits(ids, labels, groups, 5, 0.2, seed=4) != a


def test_json_round_trip() -> None:
    ids, labels, groups = _dataset(n=20, per_patient=1)
    s = make_splits(ids, labels, groups, 3, 0.0, seed=0)
    assert s.test == []
    assert Splits.from_json(json.loads(json.dumps(s.to_json()))) == s
    with pytest.raises(ValueError, match="folds"):
        Splits.from_json({"seed": 0, "test": []})


def test_rare_strata_do_not_break_splitting() -> None:
    ids, labels, _ = _dataset(n=20)
    labels[ids[0]] = [0, 7]  # a stratum of one case
    s = make_splits(ids, labels, None, 3, 0.25, seed=0)
    check_splits(s, ids)


@pytest.mark.parametrize(
    ("n", "per_patient", "n_folds", "test_fraction"), [(4, 1, 5, 0.0), (10, 2, 5, 0.2), (6, 3, 2, 0.2)]
)
def test_too_few_cases_or_patients(n: int, per_patient: int, n_folds: int, test_fraction: float) -> None:
    ids, labels, groups = _dataset(n=n, per_patient=per_patient)
    with pytest.raises(ValueError, match=r"preprocess\.splits\.n_folds.*preprocess\.splits\.test_fraction"):
        make_splits(ids, labels, groups, n_folds, test_fraction, seed=0)


def test_bad_parameters() -> None:
    ids, labels, _ = _dataset(n=10)
    with pytest.raises(ValueError, match="n_folds"):
        make_splits(ids, labels, None, 1, 0.2, seed=0)
    with pytest.raises(ValueError, match="test_fraction"):
        make_splits(ids, labels, None, 3, 1.0, seed=0)
    with pytest.raises(ValueError, match="labels_present"):
        make_splits(ids, {c: labels[c] for c in ids[1:]}, None, 3, 0.2, seed=0)
    with pytest.raises(ValueError, match="patient id"):
        make_splits(ids, labels, {ids[0]: "p"}, 3, 0.2, seed=0)
    with pytest.raises(ValueError, match="duplicate"):
        make_splits([*ids, ids[0]], labels, None, 3, 0.2, seed=0)


def test_check_splits_catches_corruption() -> None:
    ids, labels, groups = _dataset(n=30)
    s = make_splits(ids, labels, groups, 3, 0.2, seed=0)
    f0, f1, f2 = s.folds
    bad = {
        "in both fold 0 and fold 1": Splits(s.test, [f0, [*f1, f0[0]], f2], 0),
        "in both test and fold 0": Splits(s.test, [[*f0, s.test[0]], f1, f2], 0),
        "in both fold 0 and fold 0": Splits(s.test, [[*f0, f0[0]], f1, f2], 0),
        "in no fold": Splits(s.test, [f0[1:], f1, f2], 0),
        "unknown": Splits(s.test, [[*f0, "case_999"], f1, f2], 0),
    }
    for match, splits in bad.items():
        with pytest.raises(ValueError, match=match):
            check_splits(splits, ids, groups)
    moved = Splits(s.test, [[c for c in f0 if c != f0[0]], sorted([*f1, f0[0]]), f2], 0)
    check_splits(moved, ids)  # fine without patient ids...
    with pytest.raises(ValueError, match=f"patient {groups[f0[0]]} spans"):
        check_splits(moved, ids, groups)  # ...but splits a patient


def test_an_official_test_set_is_kept_and_the_folds_are_built_from_the_rest() -> None:
    ids, labels, groups = _dataset()
    official = ids[::4]  # 15 cases, patients split across the official sides on purpose
    s = make_splits(ids, labels, groups, 3, 0.5, 0, fixed_test=official)
    assert s.test == sorted(official)
    assert sorted(c for f in s.folds for c in f) == sorted(set(ids) - set(official))
    train_groups = {c: g for c, g in groups.items() if c not in set(official)}
    check_splits(s, ids, train_groups)  # folds still grouped by patient
    leaks = split_leaks(s.test, groups)
    assert leaks and all("test" in line and "train" in line for line in leaks)


def test_official_test_cases_must_exist() -> None:
    ids, labels, groups = _dataset()
    with pytest.raises(ValueError, match="not in the dataset"):
        make_splits(ids, labels, groups, 3, 0.2, 0, fixed_test=["nope"])


def test_near_duplicate_links_merge_patients_and_never_straddle_a_split() -> None:
    ids, labels, groups = _dataset(n=60, per_patient=1)
    rng = random.Random(3)
    linked = {}
    for g in range(10):  # 10 near-duplicate groups of 3 cases of different patients
        for c in rng.sample(ids, 3):
            linked.setdefault(c, f"dup{g}")
    merged = merge_groups(groups, linked)
    for seed in range(5):
        s = make_splits(ids, labels, merged, 5, 0.2, seed)
        where = {
            c: name
            for name, cs in [("test", s.test), *((f"f{k}", f) for k, f in enumerate(s.folds))]
            for c in cs
        }
        for dup in set(linked.values()):
            members = [c for c, g in linked.items() if g == dup]
            sides = {where[c] for c in members}
            # every member of a near-duplicate group is in one merged group, hence in one place
            assert len({merged[c] for c in members}) == 1 and len(sides) == 1


def test_merge_groups_is_transitive_and_keeps_unlinked_patients() -> None:
    patients = {"a": "p1", "b": "p2", "c": "p3", "d": "p4", "e": "p1"}
    merged = merge_groups(patients, {"a": "g1", "b": "g1", "b2": "g9", "c": "g2", "e": "g2"})
    assert merged["a"] == merged["b"] == merged["c"] == merged["e"] == "p1"  # a~b, c~e, a and e: p1
    assert merged["d"] == "p4"
