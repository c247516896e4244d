"""The near-duplicate detector's recall and precision on sets of true copies and of look-alikes.

Every set holds distinct originals (different patients or slices: look-alikes of one another) and,
for most, copies of some of them. A copy is made by one transform named in turn (so every kind is
made equally often) and, for half of them, a second one drawn at random:

- 2D: a symmetry of the whole frame (7), a symmetry of the content inside a letterbox frame
  (``inframe_*``: the original is then framed too, the band left where it was), padding, a crop,
  a resize (never under 64 px a side), JPEG, brightness/contrast/gamma, noise, 8 <-> 16 bit;
- 3D: axis flips, in-plane rotations, padding, crops, zooms, intensity, noise, dtype, and flips
  inside a padded frame (``inframe_flip``).

Sets (``tests/data/near_duplicate_sets.py`` makes the synthetic ones): the given datasets (CT slices
of ``covid_ct_infnet`` -- its known copy 010/043 counted as a true pair --, the EM sections of
``isbi2012_em``, the hippocampus MRI volumes of ``msd_hippocampus``), the phantoms of different
patients (2D and 3D), the issue's phantoms in a 128 x 96 frame in 4 in-frame variants, and
imitations of the held-out kinds: wound photos in letterbox frames (4 variants), fundus photographs
of different eyes, brain MRI of different patients (2D slices and volumes; and sets of patients
drawn from one template so their images look alike while their tumours differ).

Recall and precision are over pairs of cases: a true pair is two images of one original; a found
pair is two cases of one found group. Also per set: the lowest similarity and mask agreement of a
true pair found, the highest similarity of two distinct cases, the look-alike pairs kept apart by
their masks and the copies whose masks disagree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from components.data.synthetic import _patient_anatomy, _render_case
from components.data.synthetic3d import _patient_anatomy as _anatomy_3d
from components.data.synthetic3d import _render_case as _render_3d
from components.io import read_image
from components.io.volumes import read_volume
from components.validation.content import image_thumbnail, mask_thumbnail
from components.validation.near_duplicates import find_near_duplicates, near_duplicate_groups
from tests.data import near_duplicate_sets as gen

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
KNOWN_COPIES = {"covid_ct_infnet": [("010", "043")]}  # shipped twice (docs/benchmarks.md): a true pair
Pair = tuple[np.ndarray, np.ndarray]


@dataclass
class Case:
    image: np.ndarray  # channels first
    mask: np.ndarray | None
    origin: str  # the original it was made from (itself for an original)
    made: str = ""


@dataclass
class CaseSet:
    name: str
    cases: dict[str, Case] = field(default_factory=dict)

    def add(self, cid: str, image: np.ndarray, mask: np.ndarray | None, origin: str, made: str = "") -> None:
        rgb = image.ndim == 3 and image.shape[-1] == 3  # (H, W, 3); else (H, W) or (1, Z, Y, X)
        chw = np.moveaxis(image, -1, 0) if rgb else image[None] if image.ndim == 2 else image
        self.cases[cid] = Case(np.ascontiguousarray(chw), mask, origin, made)


FRAME_2D = tuple(f"frame_{k}" for k in gen.SYMMETRIES_2D)
IN_FRAME = ("inframe_flip_h", "inframe_flip_v", "inframe_rot90", "inframe_rot180")
PLAIN_2D = ("pad", "crop", "resize", "jpeg", "intensity", "noise", "bit_depth")
KINDS_2D = FRAME_2D + IN_FRAME + PLAIN_2D
KINDS_3D = (*gen.COPIES_3D, "inframe_flip")


def _frame(a: np.ndarray) -> np.ndarray:
    """Letterbox ``a`` into a square, the band below (or a band below a square image)."""
    h, w = a.shape[:2]
    side = max(h, w) if h != w else h + h // 3
    return gen.letterbox(a, side=side, where="top")


def add_copies_2d(cs: CaseSet, originals: dict[str, Pair], rng: np.random.Generator, every: int = 1) -> None:
    """Every original; a copy of every ``every``-th one (kinds in turn, half with a second kind)."""
    for n, (oid, (image, mask)) in enumerate(originals.items()):
        if n % every:
            cs.add(oid, image, mask, oid)
            continue
        kind = KINDS_2D[(n // every) % len(KINDS_2D)]
        if kind in IN_FRAME:  # the original framed, its content turned inside the same frame
            cs.add(oid, _frame(image), _frame(mask), oid, "framed")
            copy = gen.in_frame((image, mask), _frame, kind.removeprefix("inframe_"))
        else:
            cs.add(oid, image, mask, oid)
            copy = (
                gen.COPIES_2D[kind](image, mask, rng)
                if kind in gen.COPIES_2D
                else gen.symmetry(kind[6:])(image, mask, rng)
            )
        made = kind
        if rng.random() < 0.5:
            second = str(rng.choice(PLAIN_2D))
            copy, made = gen.COPIES_2D[second](*copy, rng), f"{kind}+{second}"
        cs.add(f"{oid}~copy", copy[0], copy[1], oid, made)


def add_copies_3d(cs: CaseSet, originals: dict[str, Pair], rng: np.random.Generator, every: int = 1) -> None:
    for n, (oid, (image, mask)) in enumerate(originals.items()):
        if n % every:
            cs.add(oid, image[None], mask, oid)
            continue
        kind = KINDS_3D[(n // every) % len(KINDS_3D)]
        if kind == "inframe_flip":
            spec = [(2, int(rng.integers(3, 9)))] + [(int(rng.integers(0, 5)), int(rng.integers(3, 9)))] * 2
            axes = (int(rng.integers(3)),)
            cs.add(oid, np.pad(image, spec)[None], np.pad(mask, spec), oid, "framed")
            copy = np.pad(np.flip(image, axes), spec), np.pad(np.flip(mask, axes), spec)
        else:
            cs.add(oid, image[None], mask, oid)
            copy = gen.copy_3d(image, mask, kind, rng)
        made = kind
        if rng.random() < 0.5:
            second = str(rng.choice(gen.COPIES_3D))
            copy, made = gen.copy_3d(*copy, second, rng), f"{kind}+{second}"
        cs.add(f"{oid}~copy", copy[0][None], copy[1], oid, made)


def _real_2d(name: str) -> dict[str, Pair]:
    folder = DATASETS / name
    return {
        p.stem: (read_image(p), read_image(folder / "masks" / p.name))
        for p in sorted((folder / "images").iterdir())
    }


def _hippocampus(limit: int | None = None) -> dict[str, Pair]:
    folder = DATASETS / "msd_hippocampus"
    paths = sorted((folder / "images").glob("*.nii.gz"))[:limit]
    return {
        p.name.split(".")[0]: (read_volume(p)[0], read_volume(folder / "masks" / p.name)[0]) for p in paths
    }


def _phantoms_2d(n: int, seed: int = 11) -> dict[str, Pair]:
    out = {}
    for i in range(n):  # one case per patient: different patients of one modality
        img, mask = _render_case(
            _patient_anatomy(np.random.default_rng([seed, 1, i])), np.random.default_rng([seed, 2, i]), 96
        )
        out[f"ph{i:03d}"] = (np.round(img * 255).astype(np.uint8), mask)
    return out


def _phantoms_3d(n: int, seed: int = 11) -> dict[str, Pair]:
    out = {}
    for i in range(n):
        rng = np.random.default_rng([seed, 2, i])
        shape = tuple(int(s + rng.integers(-2, 3)) for s in (20, 48, 48))
        images, mask = _render_3d(
            _anatomy_3d(np.random.default_rng([seed, 1, i]), 1), rng, shape, np.array([3.0, 0.8, 0.8])
        )
        out[f"pv{i:03d}"] = (np.round(images[0] * 1000).astype(np.int16), mask)
    return out


def build_sets(quick: bool, seed: int = 0) -> Iterator[CaseSet]:
    """The sets, made one at a time (each is dropped once scored)."""
    rng = np.random.default_rng(seed)
    q = 2 if quick else 1  # --quick: fewer cases per set
    for name in ("covid_ct_infnet", "isbi2012_em"):
        cs = CaseSet(name)
        add_copies_2d(cs, _real_2d(name), rng, every=q)
        yield cs
    cs = CaseSet("phantoms_2d")
    add_copies_2d(cs, _phantoms_2d(72 // q), rng)
    yield cs
    cs = CaseSet("phantoms_in_frame")  # the issue's: 12 phantoms atop a 128 x 96 frame, 4 variants
    for oid, (image, mask) in _phantoms_2d(12, seed=12).items():
        frame = lambda a: np.pad(a, ((0, 32), (0, 0)))  # noqa: E731
        for v, turn in enumerate(("none", "flip_h", "flip_v", "rot180")):
            made = (frame(image), frame(mask)) if turn == "none" else gen.in_frame((image, mask), frame, turn)
            cs.add(f"{oid}_{v}", made[0], made[1], oid, f"inframe_{turn}")
    yield cs
    cs = CaseSet("wound_photos_in_frame")  # the issue's: 38 photos x (original, mirror, 2 in-frame flips)
    for k in range(38 // q):
        image, mask = gen.wound_photo(rng)
        framed = (_frame(image), _frame(mask))
        flipped = gen.in_frame((image, mask), _frame, "flip_v")
        cs.add(f"w{k:02d}_a", *framed, f"w{k:02d}")
        cs.add(f"w{k:02d}_b", framed[0][:, ::-1], framed[1][:, ::-1], f"w{k:02d}", "frame_flip_h")
        cs.add(f"w{k:02d}_c", *flipped, f"w{k:02d}", "inframe_flip_v")
        cs.add(f"w{k:02d}_d", *gen.jpeg(*flipped, rng), f"w{k:02d}", "inframe_flip_v+jpeg")
    yield cs
    for contrast in (0.3, 0.1):  # vessels plain, or faint (the eyes then look more alike)
        cs = CaseSet(f"fundus_eyes_contrast{contrast}")
        eyes = {
            f"eye{k:02d}": gen.fundus(rng, right_eye=bool(k % 2), contrast=contrast) for k in range(40 // q)
        }
        add_copies_2d(cs, eyes, rng, every=2)
        yield cs
    cs = CaseSet("brain_mri_2d")
    add_copies_2d(cs, {f"pat{k:02d}": gen.brain(rng, (192, 160)) for k in range(30 // q)}, rng, every=2)
    yield cs
    cs = CaseSet("brain_mri_3d")
    add_copies_3d(cs, {f"pat{k:02d}": gen.brain(rng, (40, 64, 56)) for k in range(24 // q)}, rng, every=2)
    yield cs
    for alike in (0.35, 0.2):  # 6 patients from one template: images alike, tumours their own
        cs = CaseSet(f"brain_mri_3d_template{alike}")
        add_copies_3d(
            cs,
            {f"pat{k}": gen.brain(rng, (40, 64, 56), template=7, individuality=alike) for k in range(6)},
            rng,
            every=3,
        )
        yield cs
        cs = CaseSet(f"brain_mri_2d_template{alike}")
        add_copies_2d(
            cs,
            {f"pat{k}": gen.brain(rng, (192, 160), template=8, individuality=alike) for k in range(6)},
            rng,
            every=3,
        )
        yield cs
    cs = CaseSet("phantoms_3d")
    add_copies_3d(cs, _phantoms_3d(36 // q), rng)
    yield cs
    cs = CaseSet("msd_hippocampus")
    add_copies_3d(cs, _hippocampus(None if not quick else 80), rng, every=3)
    yield cs


def _true_pairs(cs: CaseSet) -> set[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for cid, case in cs.cases.items():
        groups.setdefault(case.origin, []).append(cid)
    for a, b in KNOWN_COPIES.get(cs.name, []):
        if a in groups and b in groups:
            groups[a] += groups.pop(b)
    return {p for members in groups.values() for p in combinations(sorted(members), 2)}


def score_set(cs: CaseSet) -> dict[str, Any]:
    """Thumbnails, search and groups of one set, and how they compare with the truth."""
    ids = sorted(cs.cases)
    t0 = time.perf_counter()
    thumbs, masks, frames = [], [], []
    for cid in ids:
        case = cs.cases[cid]
        t = image_thumbnail(case.image)
        thumbs.append(t.content)
        masks.append(None if case.mask is None else mask_thumbnail(case.mask, t.box))
        frames.append(
            None if t.frame is None else (t.frame, None if case.mask is None else mask_thumbnail(case.mask))
        )
    t1 = time.perf_counter()
    pairs = find_near_duplicates(ids, np.stack(thumbs), masks=masks, frames=frames)
    t2 = time.perf_counter()
    groups = near_duplicate_groups(ids, pairs)
    members: dict[str, list[str]] = {}
    for cid, gid in groups.items():
        members.setdefault(gid, []).append(cid)
    found = {p for m in members.values() for p in combinations(sorted(m), 2)}
    true = _true_pairs(cs)
    by_pair = {(p.a, p.b): p for p in pairs}
    copies = [by_pair[t] for t in true if t in by_pair]
    distinct = [p for p in pairs if (p.a, p.b) not in true]
    made = {cid: c.made for cid, c in cs.cases.items()}
    missed = sorted(true - found)
    return {
        "set": cs.name,
        "cases": len(ids),
        "originals": len({c.origin for c in cs.cases.values()}),
        "true_pairs": len(true),
        "found_pairs": len(found),
        "true_found": len(true & found),
        "recall": len(true & found) / len(true) if true else None,
        "precision": len(true & found) / len(found) if found else None,
        "min_copy_similarity": min((p.similarity for p in copies), default=None),
        "min_copy_mask_agreement": min(
            (p.mask_agreement for p in copies if p.mask_agreement is not None), default=None
        ),
        "max_distinct_similarity": max((p.similarity for p in distinct), default=None),
        "lookalikes_kept_apart": sum(not p.copy for p in distinct),
        "max_lookalike_mask_agreement": max(
            (p.mask_agreement for p in distinct if p.mask_agreement is not None), default=None
        ),
        "copies_with_disagreeing_masks": sum(p.copy and p.masks_disagree for p in copies),
        "seconds_thumbnails": t1 - t0,
        "seconds_search": t2 - t1,
        "missed": [{"a": a, "b": b, "a_made": made[a], "b_made": made[b]} for a, b in missed[:10]],
        "wrongly_grouped": [{"a": a, "b": b} for a, b in sorted(found - true)[:10]],
    }
