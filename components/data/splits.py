"""Held-out test set + k cross-validation folds, stratified by class presence, grouped by patient.

Algorithm (our own, deterministic, no sklearn): every case gets a stratum key, the sorted list
of the foreground labels present in its mask (e.g. ``"1,3"``); strata with fewer cases than there
are bins (folds + test) are merged into one ``"rare"`` stratum so that each can be spread over the bins.
Patients (groups) are the unit of assignment. Groups are ordered by a seeded shuffle of their
sorted ids, then by size (largest first), and each is placed greedily in the bin where it most
reduces the squared deviation of per-stratum and total counts from the bin's target share. The
test set is drawn first (target ``test_fraction``), then the rest is split into ``n_folds`` equal
bins. The result depends only on the inputs as sets and the seed, never on their order.

An official split (the ``split`` column of ``cases.csv``) fixes the test set instead: the folds are
then built from the remaining cases, still grouped and stratified. Near-duplicate groups found by
the validate stage (``dup_group``) are merged with the patients (:func:`merge_groups`), so copies of
one case never land on both sides of a split.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.core.errors import UserError

_RARE = "rare"


class SplitError(UserError, ValueError):
    """The dataset cannot be split as params ask (too few patients, unknown official test cases...);
    the message names the params keys and what would work."""


@dataclass(frozen=True)
class Splits:
    """A held-out test set and k folds of validation cases (sorted case ids).

    Attributes:
        test: Test case ids (may be empty when ``test_fraction`` is 0).
        folds: ``folds[k]`` is fold k's validation set; its training set is the union of the others.
        seed: The seed the splits were made with.
    """

    test: list[str]
    folds: list[list[str]]
    seed: int

    @property
    def n_folds(self) -> int:
        """Number of folds."""
        return len(self.folds)

    def train_cases(self, fold: int) -> list[str]:
        """Training case ids of ``fold`` (all other folds, sorted)."""
        if not 0 <= fold < len(self.folds):
            raise ValueError(f"fold must be in 0..{len(self.folds) - 1}, got {fold}")
        return sorted(c for k, f in enumerate(self.folds) if k != fold for c in f)

    def to_json(self) -> dict:
        """JSON-serialisable dict (the content of ``splits.json``)."""
        return {"seed": self.seed, "test": list(self.test), "folds": [list(f) for f in self.folds]}

    @classmethod
    def from_json(cls, d: Mapping) -> Splits:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: A key is missing or has the wrong type.
        """
        missing = {"seed", "test", "folds"} - set(d)
        if missing:
            raise ValueError(f"splits JSON lacks key(s) {sorted(missing)}; expected seed, test, folds")
        if not isinstance(d["folds"], list) or not all(isinstance(f, list) for f in d["folds"]):
            raise ValueError("splits JSON: 'folds' must be a list of lists of case ids")
        if not isinstance(d["test"], list):
            raise ValueError("splits JSON: 'test' must be a list of case ids")
        return cls(
            test=[str(c) for c in d["test"]],
            folds=[[str(c) for c in f] for f in d["folds"]],
            seed=int(d["seed"]),
        )


def _strata(case_ids: list[str], labels_present: Mapping[str, Sequence[int]], n_bins: int) -> dict:
    """Stratum key per case: foreground labels present; strata rarer than ``n_bins`` merged."""
    missing = [c for c in case_ids if c not in labels_present]
    if missing:
        raise ValueError(f"labels_present has no entry for {len(missing)} case(s), e.g. {missing[:3]}")
    key = {c: ",".join(map(str, sorted({int(v) for v in labels_present[c]} - {0}))) for c in case_ids}
    counts = Counter(key.values())
    return {c: (k if counts[k] >= n_bins else _RARE) for c, k in key.items()}


def _assign(groups: list[tuple[str, np.ndarray]], targets: np.ndarray, n_strata: int) -> list[list[str]]:
    """Greedy placement of groups (in the given order) into bins with target shares ``targets``."""
    total = np.sum([v for _, v in groups], axis=0)  # per stratum, last column = case count
    goal = targets[:, None] * total[None, :]
    counts = np.zeros((len(targets), n_strata + 1))
    weight = np.ones(n_strata + 1)
    weight[-1] = 2.0  # keep bin sizes close to their targets as well as strata
    bins: list[list[str]] = [[] for _ in targets]
    for gid, vec in groups:
        dev = counts - goal  # adding vec to bin b changes the squared error by sum(w * v * (2 dev + v))
        cost = (weight * vec * (2 * dev + vec)).sum(axis=1)
        empty = np.array([not b for b in bins])
        # An empty bin that needs cases wins over any non-empty one, so every bin gets a group.
        remaining = len(groups) - sum(map(len, bins))
        if empty.sum() >= remaining:
            cost = np.where(empty, cost, np.inf)
        b = int(np.argmin(cost))
        counts[b] += vec
        bins[b].append(gid)
    return bins


def merge_groups(patients: Mapping[str, str], linked: Mapping[str, str]) -> dict[str, str]:
    """Patient groups merged through links between cases (e.g. near-duplicate groups).

    Args:
        patients: Case id -> patient id.
        linked: Case id -> link group id (cases of one link group must stay together); cases
            without a link are absent.

    Returns:
        Case id -> merged group id: the smallest patient id of its connected component, so an
        unlinked patient keeps its own id.
    """
    parent: dict[str, str] = {str(p): str(p) for p in patients.values()}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[str, str] = {}
    for case, link in sorted(linked.items()):
        if case not in patients:
            continue
        p = find(str(patients[case]))
        q = find(first.setdefault(str(link), p))
        if p != q:
            parent[max(p, q)] = min(p, q)
    return {c: find(str(p)) for c, p in patients.items()}


def make_splits(
    case_ids: Sequence[str],
    labels_present: Mapping[str, Sequence[int]],
    groups: Mapping[str, str] | None,
    n_folds: int,
    test_fraction: float,
    seed: int,
    fixed_test: Sequence[str] | None = None,
) -> Splits:
    """Split cases into a held-out test set and ``n_folds`` folds.

    Args:
        case_ids: All case ids (order does not matter).
        labels_present: Case id -> class labels present in its mask (0 = background is ignored).
        groups: Case id -> patient id; all cases of a patient land in the same fold or in the test
            set. None: every case is its own patient.
        n_folds: Number of folds (>= 2), params key ``preprocess.splits.n_folds``.
        test_fraction: Share of cases held out for testing, in [0, 1), params key
            ``preprocess.splits.test_fraction``. 0 gives an empty test set.
        seed: Seed of the shuffle that orders equally sized groups.
        fixed_test: An official test set (case ids) to keep as it is; ``test_fraction`` is then
            unused and the folds are built from the other cases. A group with cases on both
            sides keeps them there (the official split wins; see :func:`split_leaks`).

    Returns:
        The splits, with sorted case lists.

    Raises:
        ValueError: Bad parameters, duplicate or unlabelled cases, or too few patients for the
            requested number of folds and test set.
    """
    if n_folds < 2:
        raise SplitError(f"preprocess.splits.n_folds must be >= 2, got {n_folds}")
    if not 0.0 <= test_fraction < 1.0:
        raise SplitError(f"preprocess.splits.test_fraction must be in [0, 1), got {test_fraction}")
    ids = sorted(case_ids)
    dups = sorted(c for c, n in Counter(ids).items() if n > 1)
    if dups:
        raise SplitError(f"duplicate case ids: {dups[:5]}")
    if groups is None:
        groups = {c: c for c in ids}
    no_group = [c for c in ids if c not in groups]
    if no_group:
        raise SplitError(f"no patient id for {len(no_group)} case(s), e.g. {no_group[:3]} (cases.csv)")

    fixed = None if fixed_test is None else sorted(set(map(str, fixed_test)))
    if fixed is not None:
        unknown = sorted(set(fixed) - set(ids))
        if unknown:
            raise SplitError(f"official test cases not in the dataset: {unknown[:5]}")
        ids = sorted(set(ids) - set(fixed))
    members: dict[str, list[str]] = {}
    for c in ids:
        members.setdefault(str(groups[c]), []).append(c)
    with_test = test_fraction > 0 and fixed is None
    n_needed = n_folds + int(with_test)
    if fixed is not None and len(members) < n_folds:
        raise SplitError(
            f"too few patients outside the official test set: {len(ids)} train cases from "
            f"{len(members)} patients, but preprocess.splits.n_folds={n_folds} needs at least {n_folds}"
        )
    if len(members) < n_needed or (with_test and round(test_fraction * len(ids)) < 1):
        raise SplitError(
            f"too few cases/patients to split: {len(ids)} cases from {len(members)} patients, but "
            f"preprocess.splits.n_folds={n_folds} and preprocess.splits.test_fraction={test_fraction} need "
            f"at least {n_needed} patients (one per fold{' + one for the test set' if with_test else ''})"
            + (" and a test set of at least one case" if with_test else "")
            + "; lower n_folds / test_fraction or add data"
        )

    stratum = _strata(ids, labels_present, n_needed)
    keys = sorted(set(stratum.values()))
    col = {k: i for i, k in enumerate(keys)}
    vecs: dict[str, np.ndarray] = {}
    for gid, cs in members.items():
        v = np.zeros(len(keys) + 1)
        for c in cs:
            v[col[stratum[c]]] += 1
        v[-1] = len(cs)
        vecs[gid] = v

    rng = np.random.default_rng(seed)
    order = [sorted(members)[i] for i in rng.permutation(len(members))]
    order.sort(key=lambda g: -len(members[g]))  # stable: shuffled order among equal sizes

    def cases_of(gids: list[str]) -> list[str]:
        return sorted(c for g in gids for c in members[g])

    test: list[str] = fixed or []
    rest = order
    if with_test:
        test_g, rest_g = _assign(
            [(g, vecs[g]) for g in order], np.array([test_fraction, 1 - test_fraction]), len(keys)
        )
        test = cases_of(test_g)
        kept = set(rest_g)
        rest = [g for g in order if g in kept]
    fold_g = _assign([(g, vecs[g]) for g in rest], np.full(n_folds, 1.0 / n_folds), len(keys))
    return Splits(test=test, folds=[cases_of(f) for f in fold_g], seed=seed)


def split_leaks(test: Sequence[str], groups: Mapping[str, str]) -> list[str]:
    """Groups (patients or near-duplicate groups) with cases both in ``test`` and outside it, as
    ``"<group>: <test cases> | <other cases>"`` lines (an official split that leaks)."""
    in_test = set(test)
    members: dict[str, list[str]] = {}
    for c, g in groups.items():
        members.setdefault(str(g), []).append(c)
    out = []
    for g, cs in sorted(members.items()):
        t = sorted(c for c in cs if c in in_test)
        o = sorted(c for c in cs if c not in in_test)
        if t and o:
            out.append(f"{g}: test {', '.join(t[:4])} | train {', '.join(o[:4])}")
    return out


def check_splits(splits: Splits, case_ids: Sequence[str], groups: Mapping[str, str] | None = None) -> None:
    """Check that splits partition ``case_ids`` and keep every patient in one place.

    Raises:
        ValueError: A case appears twice (within or across folds, or in a fold and the test set),
            a case is missing or unknown, or a patient's cases span several folds / the test set.
    """
    where: dict[str, str] = {}
    problems: list[str] = []
    named = [("test", splits.test)] + [(f"fold {k}", f) for k, f in enumerate(splits.folds)]
    for name, cases in named:
        for c in cases:
            if c in where:
                problems.append(f"case {c} is in both {where[c]} and {name}")
            else:
                where[c] = name
    known = set(case_ids)
    unknown = sorted(set(where) - known)
    missing = sorted(known - set(where))
    if unknown:
        problems.append(f"{len(unknown)} unknown case(s) in the splits, e.g. {unknown[:3]}")
    if missing:
        problems.append(f"{len(missing)} case(s) in no fold or test set, e.g. {missing[:3]}")
    if groups is not None:
        places: dict[str, set[str]] = {}
        for c, name in where.items():
            if c in groups:
                places.setdefault(str(groups[c]), set()).add(name)
        spanning = {g: sorted(p) for g, p in sorted(places.items()) if len(p) > 1}
        for g, p in list(spanning.items())[:5]:
            problems.append(f"patient {g} spans {', '.join(p)}")
    if problems:
        raise ValueError("invalid splits: " + "; ".join(problems[:10]))


def split_sha(test_cases: Sequence[str]) -> str:
    """Identity of a test split (sorted case ids), to compare models on the same cases."""
    return hashlib.sha256("\n".join(sorted(test_cases)).encode()).hexdigest()


def write_splits(splits: Splits, path: Path) -> None:
    """Write the splits as JSON (the preprocess stage's ``splits.json``)."""
    Path(path).write_text(json.dumps(splits.to_json(), indent=2))


def read_splits(path: Path) -> Splits:
    """Read the splits written by :func:`write_splits`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the preprocess stage first (dvc repro preprocess)")
    return Splits.from_json(json.loads(path.read_text()))
