"""Near-duplicate detection at dataset scale: thumbnails, search, and how well copies are grouped.

Generates ``--n`` (10,000; ``--quick``: 1,000) grayscale images of 256 x 256, deterministically
from ``--seed``: distinct smooth random images (a cubic-upsampled random field, a few blurred
ellipses of random intensity, fine texture) plus ``--copies`` (5%) near-duplicate copies of
randomly chosen originals (some originals get two). Each copy applies, in this order, a random
subset (never empty) of: a symmetry of the square other than the identity; a crop of 1-5% per
side (symmetric, or of one side only) resized back to a random size of 192-320 px per side; a
brightness/contrast change (x0.8-1.25, +-20) or a gamma of 0.8-1.25; JPEG re-encoding at quality
60-90. Case ids are random, so a copy is not next to its original in id order.

Measured (wall seconds, ``perf_counter``): ``image_thumbnail`` over all images (images are
generated one at a time and dropped, so generation is not timed and the set is never held in
memory), ``find_near_duplicates`` on the stacked thumbnails, ``near_duplicate_groups``; the peak
RSS increase of the search (``VmHWM`` after a reset through ``/proc/self/clear_refs``, else
``ru_maxrss``). Recall and precision are over pairs of cases: a true pair is two images of one
original (original and copy, or two copies); a found pair is two cases of one found group.

Writes ``bench/results/near_duplicates-<hostname>.json`` (``--quick``: ``near_duplicates-quick-...``)
and prints a summary. Usage::

    python bench/near_duplicates.py [--n 10000] [--copies 0.05] [--seed 0] [--out PATH]
    python bench/near_duplicates.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import socket
import sys
import time
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info, reset_hwm, vm_status
from components.validation import near_duplicates as nd

SIDE = 256
MB = 1024.0**2


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


SYMMETRIES = {
    "flip_h": lambda a: a[:, ::-1],
    "flip_v": lambda a: a[::-1],
    "rot90": lambda a: np.rot90(a),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "transpose": lambda a: a.T,
    "anti_transpose": lambda a: np.rot90(a, 2).T,
}


def make_copy(rng: np.random.Generator, image: np.ndarray) -> tuple[np.ndarray, str]:
    """A near-duplicate of ``image`` and a description of what was done to it."""
    steps = [s for s in ("symmetry", "crop", "intensity", "jpeg") if rng.random() < 0.5]
    steps = steps or [str(rng.choice(["symmetry", "crop", "intensity", "jpeg"]))]
    out, done = image, []
    for step in steps:
        if step == "symmetry":
            name = str(rng.choice(list(SYMMETRIES)))
            out, label = SYMMETRIES[name](out), name
        elif step == "crop":
            h, w = out.shape
            f = float(rng.uniform(0.01, 0.05))
            one_side = bool(rng.random() < 0.3)
            dy, dx = round(f * h), round(f * w)
            out = out[dy:, dx:] if one_side else out[dy : h - dy, dx : w - dx]
            size = (int(rng.integers(192, 321)), int(rng.integers(192, 321)))
            out = cv2.resize(np.ascontiguousarray(out), size, interpolation=cv2.INTER_LINEAR)
            label = f"crop{'_one_side' if one_side else ''}_{f:.3f}_to_{size[0]}x{size[1]}"
        elif step == "intensity":
            if rng.random() < 0.5:
                alpha, beta = float(rng.uniform(0.8, 1.25)), float(rng.uniform(-20, 20))
                out = np.clip(out.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)
                label = f"contrast_{alpha:.2f}_{beta:+.0f}"
            else:
                gamma = float(rng.uniform(0.8, 1.25))
                out = (255.0 * (out / 255.0) ** gamma).astype(np.uint8)
                label = f"gamma_{gamma:.2f}"
        else:
            quality = int(rng.integers(60, 91))
            buf = cv2.imencode(".jpg", np.ascontiguousarray(out), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
            decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            if decoded is None:
                raise RuntimeError("JPEG round trip failed")
            out, label = decoded, f"jpeg_{quality}"
        done.append(label)
    return np.ascontiguousarray(out), "+".join(done)


def pairs_of(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {(a, b) for members in groups.values() for a, b in combinations(sorted(members), 2)}


def run(n: int, copy_fraction: float, seed: int) -> dict[str, Any]:
    """Generate, thumbnail, search, group and score; returns the result row."""
    rng = np.random.default_rng(seed)
    n_copies = round(n * copy_fraction)
    n_orig = n - n_copies
    sources = np.sort(rng.integers(0, n_orig, n_copies))  # originals drawn with replacement
    ids = [f"case_{k:05d}" for k in rng.permutation(n)]  # random ids: copies not next to originals
    thumbs = np.empty((n, nd.THUMB_SIDE_2D, nd.THUMB_SIDE_2D), np.float32)
    truth: dict[str, list[str]] = {}
    made: dict[str, str] = {}
    seconds_thumbnails, slot, next_copy = 0.0, 0, 0
    for k in range(n_orig):
        image = smooth_image(rng)
        versions = [(image, "")]
        while next_copy < n_copies and sources[next_copy] == k:
            versions.append(make_copy(rng, image))
            next_copy += 1
        for v, (arr, how) in enumerate(versions):
            t0 = time.perf_counter()
            thumbs[slot] = nd.image_thumbnail(arr[None])
            seconds_thumbnails += time.perf_counter() - t0
            if len(versions) > 1:
                truth.setdefault(ids[slot - v], []).append(ids[slot])
                made[ids[slot]] = how
            slot += 1
    rss_before = vm_status("VmRSS")
    hwm_reset = reset_hwm()
    t0 = time.perf_counter()
    pairs = nd.find_near_duplicates(ids, thumbs)
    seconds_search = time.perf_counter() - t0
    hwm = vm_status("VmHWM")
    t0 = time.perf_counter()
    groups = nd.near_duplicate_groups(ids, pairs)
    seconds_groups = time.perf_counter() - t0
    found: dict[str, list[str]] = {}
    for case, group in groups.items():
        found.setdefault(group, []).append(case)
    true_pairs, found_pairs = pairs_of(truth), pairs_of(found)
    hit = true_pairs & found_pairs
    missed = sorted(true_pairs - found_pairs)
    sims = {(p.a, p.b): p.similarity for p in pairs}
    copy_sims = [sims[q] for q in true_pairs if q in sims]
    return {
        "n_images": n,
        "n_originals": n_orig,
        "n_copies": n_copies,
        "true_groups": len(truth),
        "true_pairs": len(true_pairs),
        "seconds_thumbnails": seconds_thumbnails,
        "seconds_search": seconds_search,
        "seconds_groups": seconds_groups,
        "pairs_found": len(pairs),
        "groups_found": len(found),
        "found_group_pairs": len(found_pairs),
        "recall": len(hit) / len(true_pairs) if true_pairs else 1.0,
        "precision": len(hit) / len(found_pairs) if found_pairs else 1.0,
        "min_true_pair_similarity": min(copy_sims) if copy_sims else None,
        "max_false_pair_similarity": max(
            (p.similarity for p in pairs if (p.a, p.b) not in true_pairs), default=None
        ),
        "search_peak_rss_increase_mb": (
            hwm - rss_before if hwm_reset and hwm is not None and rss_before is not None else None
        ),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "thumbnails_mb": thumbs.nbytes / MB,
        "missed_pairs": [
            {"a": a, "b": b, "a_made": made.get(a, ""), "b_made": made.get(b, "")} for a, b in missed[:20]
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help="images in all (default 10000; --quick: 1000)")
    ap.add_argument("--copies", type=float, default=0.05, help="fraction of the images that are copies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="1,000 images")
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/near_duplicates-...)"
    )
    args = ap.parse_args()
    n = args.n or (1000 if args.quick else 10000)
    if n < 2 or not 0.0 <= args.copies < 0.5:
        ap.error("--n must be >= 2 and --copies in [0, 0.5)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None  # other jobs on a shared machine
    row = run(n, args.copies, args.seed)
    result: dict[str, Any] = {
        "benchmark": "near_duplicates: image_thumbnail + find_near_duplicates + near_duplicate_groups, CPU",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {**machine_info(), "load_average_1min_at_start": load},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "opencv": cv2.__version__,
        },
        "settings": {
            "image_side": SIDE,
            "copy_fraction": args.copies,
            "seed": args.seed,
            "threshold": nd.DEFAULT_THRESHOLD,
            "thumb_side": nd.THUMB_SIDE_2D,
            "candidate_threshold": nd.CANDIDATE_THRESHOLD[2],
        },
        "timing": "wall seconds (perf_counter), one process; thumbnails summed over the images",
        "threshold": nd.DEFAULT_THRESHOLD,
        **row,
    }
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())
    out = (
        args.out
        or Path(__file__).resolve().parent
        / "results"
        / f"near_duplicates-{'quick-' if args.quick else ''}{host}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{n} images ({row['n_copies']} copies): thumbnails {row['seconds_thumbnails']:.1f} s, "
        f"search {row['seconds_search']:.1f} s, {row['pairs_found']} pairs, "
        f"recall {row['recall']:.4f}, precision {row['precision']:.4f} -> {out}"
    )


if __name__ == "__main__":
    main()
