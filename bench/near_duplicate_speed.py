"""Near-duplicate search speed on 1,000 2D images and 300 volumes, for one implementation.

Run by ``bench/near_duplicates.py`` once for the current tree and once for a baseline revision
(``--tree``: a folder holding that revision's ``components/``, put first on ``sys.path``), in
turns, so both are timed on the same machine under the same load. Both sets are made
deterministically from ``--seed``:

- 2D: 950 distinct smooth random 8-bit images of 256^2 (a random field, blurred ellipses, texture)
  and 50 copies of randomly chosen ones (a symmetry of the square, a crop of 1-5 % resized to
  192-320 px a side, a brightness/contrast or gamma change, JPEG at quality 60-90: a random
  non-empty subset, in that order); each with a mask (the image thresholded at two quantiles);
- 3D: the 260 hippocampus MRI volumes of ``msd_hippocampus`` with their masks, and 40 copies of 40
  of them (flip, in-plane rotation, padding, crop, zoom, intensity, noise, dtype; two each).

Timed (wall seconds, ``perf_counter``): the thumbnails of every image and mask (what validate adds
per case while it decodes), the search (``find_near_duplicates``) and the grouping. The API of
either revision is used as it was: before issue 24 ``image_thumbnail`` returned the thumbnail
alone and masks were one stacked array. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
HIPPOCAMPUS = REPO.parent / "shared" / "datasets" / "msd_hippocampus"
SIDE = 256
N_2D, COPIES_2D, N_COPIES_3D = 1000, 50, 40


def smooth_image(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """A distinct smooth random uint8 image: random field + blurred ellipses + texture."""
    k = int(rng.integers(4, 9))
    img = cv2.resize(rng.normal(0, 1, (k, k)).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    shapes = np.zeros((side, side), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        center = (int(rng.integers(0, side)), int(rng.integers(0, side)))
        axes = (int(rng.integers(side // 20, side // 4)), int(rng.integers(side // 20, side // 4)))
        cv2.ellipse(shapes, center, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-2, 2)), -1)
    img = img + cv2.GaussianBlur(shapes, (0, 0), side / 100)
    img = img + 0.3 * cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), 1.5)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
    return (img * 255).astype(np.uint8)


def image_mask(image: np.ndarray) -> np.ndarray:
    """Two classes from the image's 70th and 92nd percentiles (a mask that moves with the image)."""
    q70, q92 = np.percentile(image, [70, 92])
    return ((image > q70).astype(np.uint8) + (image > q92)).astype(np.uint8)


def make_copy(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A near-duplicate of ``image`` and its mask (moved and cropped like the image)."""
    steps = [s for s in ("symmetry", "crop", "intensity", "jpeg") if rng.random() < 0.5]
    steps = steps or [str(rng.choice(["symmetry", "crop", "intensity", "jpeg"]))]
    out, mask = image, image_mask(image)
    for step in steps:
        if step == "symmetry":
            k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
            out, mask = (np.rot90(a[:, ::-1] if flip else a, k) for a in (out, mask))
        elif step == "crop":
            h, w = out.shape
            f = float(rng.uniform(0.01, 0.05))
            dy, dx = round(f * h), round(f * w)
            size = (int(rng.integers(192, 321)), int(rng.integers(192, 321)))
            out, mask = (
                cv2.resize(np.ascontiguousarray(a[dy : h - dy, dx : w - dx]), size, interpolation=mode)
                for a, mode in ((out, cv2.INTER_LINEAR), (mask, cv2.INTER_NEAREST))
            )
        elif step == "intensity":
            alpha, beta = float(rng.uniform(0.8, 1.25)), float(rng.uniform(-20, 20))
            out = np.clip(out.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
        else:
            buf = cv2.imencode(
                ".jpg", np.ascontiguousarray(out), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 91))]
            )[1]
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(out), np.ascontiguousarray(mask)


Case = tuple[np.ndarray, np.ndarray]  # channels-first image, mask


def set_2d(seed: int) -> tuple[list[str], list[Case], dict[str, str]]:
    """The 1,000 images (ids in random order) and copy id -> original id."""
    rng = np.random.default_rng(seed)
    n_orig = N_2D - COPIES_2D
    sources = set(rng.choice(n_orig, COPIES_2D, replace=False).tolist())
    ids = [f"case_{k:05d}" for k in rng.permutation(N_2D)]
    cases: list[Case] = []
    origin: dict[str, str] = {}
    for k in range(n_orig):
        image = smooth_image(rng)
        cases.append((image[None], image_mask(image)))
        if k in sources:
            origin[ids[len(cases)]] = ids[len(cases) - 1]
            copy, mask = make_copy(rng, image)
            cases.append((copy[None], mask))
    return ids, cases, origin


def set_3d(seed: int) -> tuple[list[str], list[Case], dict[str, str]]:
    """The 260 hippocampus volumes and 40 copies, and copy id -> original id."""
    from components.io.volumes import read_volume
    from tests.data.near_duplicate_sets import COPIES_3D, copy_3d

    rng = np.random.default_rng(seed)
    ids, cases, origin = [], [], {}
    paths = sorted((HIPPOCAMPUS / "images").glob("*.nii.gz"))
    for path in paths:
        ids.append(path.name.split(".")[0])
        image, mask = read_volume(path)[0], read_volume(HIPPOCAMPUS / "masks" / path.name)[0]
        cases.append((image[None], mask))
    for k, src in enumerate(rng.choice(len(paths), N_COPIES_3D, replace=False)):
        image, mask = cases[src][0][0], cases[src][1]
        for kind in (COPIES_3D[k % len(COPIES_3D)], COPIES_3D[int(rng.integers(len(COPIES_3D)))]):
            image, mask = copy_3d(image, mask, kind, rng)
        ids.append(f"copy_{k:02d}")
        cases.append((image[None], mask))
        origin[ids[-1]] = ids[src]
    return ids, cases, origin


def _api() -> tuple[Callable[[np.ndarray, np.ndarray], tuple[Any, Any]], Callable[..., list[Any]], Any]:
    """``thumbnails(image, mask) -> (image thumb, mask thumb)``, ``search(ids, thumbs, masks)`` and
    the groups function of whichever revision is first on ``sys.path``."""
    from components.validation import near_duplicates as nd

    if importlib.util.find_spec("components.validation.content") is None:  # before issue 24

        def old_thumbnails(image: np.ndarray, mask: np.ndarray) -> tuple[Any, Any]:
            return nd.image_thumbnail(image), nd.mask_thumbnail(mask)

        def old_search(ids: list[str], thumbs: np.ndarray, masks: list[Any]) -> list[Any]:
            return nd.find_near_duplicates(ids, thumbs, masks=np.stack(masks))

        return old_thumbnails, old_search, nd.near_duplicate_groups
    from components.validation.content import image_thumbnail, mask_thumbnail

    def thumbnails(image: np.ndarray, mask: np.ndarray) -> tuple[Any, Any]:
        t = image_thumbnail(image)
        frame = None if t.frame is None else (t.frame, mask_thumbnail(mask))
        return t.content, (mask_thumbnail(mask, t.box), frame)

    def search(ids: list[str], thumbs: np.ndarray, masks: list[Any]) -> list[Any]:
        return nd.find_near_duplicates(ids, thumbs, masks=[m[0] for m in masks], frames=[m[1] for m in masks])

    return thumbnails, search, nd.near_duplicate_groups


def time_set(ids: list[str], cases: list[Case], origin: dict[str, str]) -> dict[str, Any]:
    """Thumbnails, search and groups of one set: seconds, and pair recall and precision."""
    thumbnails, search, groups_of = _api()
    t0 = time.perf_counter()
    made = [thumbnails(image, mask) for image, mask in cases]
    t1 = time.perf_counter()
    pairs = search(ids, np.stack([m[0] for m in made]), [m[1] for m in made])
    t2 = time.perf_counter()
    groups = groups_of(ids, pairs)
    t3 = time.perf_counter()
    members: dict[str, list[str]] = {}
    for case, group in groups.items():
        members.setdefault(group, []).append(case)
    found = {p for m in members.values() for p in combinations(sorted(m), 2)}
    true = {tuple(sorted((c, o))) for c, o in origin.items()}
    return {
        "cases": len(ids),
        "seconds_thumbnails": t1 - t0,
        "seconds_search": t2 - t1,
        "seconds_groups": t3 - t2,
        "seconds_total": t3 - t0,
        "true_pairs": len(true),
        "found_pairs": len(found),
        "recall": len(found & true) / len(true) if true else 1.0,
        "precision": len(found & true) / len(found) if found else 1.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, default=None, help="folder holding the components/ to time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default="2d,3d", help="which sets: 2d, 3d or both")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    if args.tree is not None:
        sys.path.insert(0, str(args.tree.resolve()))
    out = {}
    for name in args.sets.split(","):
        ids, cases, origin = (set_2d if name == "2d" else set_3d)(args.seed)
        out[name] = time_set(ids, cases, origin)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
