"""Speed of the surface-metric panel (HD, HD95, ASD, ASSD) against medpy 0.5.2, same run, same data.

Cases (generated deterministically, ragged object borders):
  2d_512        512x512 pair, blob radius ~60 px, spacing (0.7, 0.7)
  3d_128_r25    128^3 pair, ellipsoid radius ~25 voxels, spacing (1.0, 0.8, 0.8)
  3d_128_r55    128^3 pair, ellipsoid radius ~55 voxels, spacing (1.0, 0.8, 0.8)
  3d_128_r55_spiky  same with the border displaced by ~6 voxels of noise (stress case)
  ct_512x512x100  (Z, Y, X) = (100, 512, 512) label maps with 3 classes (organ, two kidneys,
                  small lesions), spacing (2.5, 0.7, 0.7); time summed over the 3 classes

Both sides compute the same four numbers per class; results must agree within 1e-9. Times are the
best of ``--repeats`` runs (medpy: fewer on the CT case). Usage::

    python bench/metrics_speed.py [--repeats 5] [--skip-ct] [--out bench/results/metrics_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model
from components.metrics import surface_metrics

FOUR = ("hd", "hd95", "asd", "assd")


def ragged_ellipsoid(
    shape: tuple[int, ...], center: tuple[float, ...], radii: tuple[float, ...], seed: int, amp: float = 2.0
) -> np.ndarray:
    """Ellipsoid whose surface is displaced by smooth noise of about ``amp`` voxels (ragged edge)."""
    rng = np.random.default_rng(seed)
    box = tuple(
        slice(max(int(c - r - 4 * amp - 2), 0), min(int(c + r + 4 * amp + 3), n))
        for c, r, n in zip(center, radii, shape, strict=True)
    )
    sub = tuple(s.stop - s.start for s in box)
    grid = np.ogrid[tuple(slice(s.start, s.stop) for s in box)]
    mean_r = float(np.mean(radii))
    dist = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii, strict=True))) * mean_r
    noise = ndi.gaussian_filter(rng.standard_normal(sub).astype(np.float32), 3.0)
    noise *= amp / max(float(noise.std()), 1e-12)
    out = np.zeros(shape, bool)
    out[box] = dist + noise < mean_r
    return out


def ct_like(shape: tuple[int, int, int], seed: int, jitter: float) -> np.ndarray:
    """Label map: 1 = large organ, 2 = two kidneys, 3 = small lesions inside the organ."""
    z, y, x = shape
    shift = jitter * np.array([0.5, 1.0, 1.0])
    lab = np.zeros(shape, np.uint8)
    organ = ragged_ellipsoid(
        shape, tuple(np.array([z * 0.5, y * 0.45, x * 0.38]) + shift), (30, 95, 80), seed
    )
    lab[organ] = 1
    for k, cx in enumerate((x * 0.3, x * 0.72)):
        c = tuple(np.array([z * 0.55, y * 0.68, cx]) + shift)
        lab[ragged_ellipsoid(shape, c, (14, 24, 18), seed + 1 + k)] = 2
    for k, (cz, cy, cx, r) in enumerate([(45, 210, 180, 7), (60, 250, 230, 5), (38, 190, 250, 9)]):
        c = (cz + shift[0], cy + shift[1], cx + shift[2])
        lab[ragged_ellipsoid(shape, c, (r * 0.6, r, r), seed + 10 + k, amp=1.0)] = 3
    return lab


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def medpy_four(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    from medpy.metric import binary as mb

    return {
        "hd": mb.hd(pred, ref, spacing, 1),
        "hd95": mb.hd95(pred, ref, spacing, 1),
        "asd": mb.asd(pred, ref, spacing, 1),
        "assd": mb.assd(pred, ref, spacing, 1),
    }


def run_case(
    name: str,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    spacing: tuple[float, ...],
    reps: int,
    medpy_reps: int,
) -> dict:
    def ours() -> list[dict[str, float]]:
        return [surface_metrics(p, r, spacing, 1) for p, r in pairs]

    def theirs() -> list[dict[str, float]]:
        return [medpy_four(p, r, spacing) for p, r in pairs]

    t_ours, res_ours = best_time(ours, reps)
    t_medpy, res_medpy = best_time(theirs, medpy_reps)
    diff = max(abs(a[k] - b[k]) for a, b in zip(res_ours, res_medpy, strict=True) for k in FOUR)
    row = {
        "case": name,
        "shape": list(pairs[0][0].shape),
        "spacing": list(spacing),
        "classes": len(pairs),
        "ref_voxels": [int(r.sum()) for _, r in pairs],
        "ours_ms": round(t_ours * 1e3, 2),
        "medpy_ms": round(t_medpy * 1e3, 2),
        "speedup": round(t_medpy / t_ours, 1),
        "max_abs_diff": diff,
        "equal_within_1e-9": bool(diff <= 1e-9),
        "repeats": {"ours": reps, "medpy": medpy_reps},
        "values_ours": [{k: a[k] for k in FOUR} for a in res_ours],
    }
    print(
        f"{name:16s} ours {row['ours_ms']:9.1f} ms  medpy {row['medpy_ms']:10.1f} ms  "
        f"x{row['speedup']:6.1f}  max|diff| {diff:.1e}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-ct", action="store_true", help="skip the 512x512x100 case (medpy takes minutes)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "metrics_speed.json")
    args = ap.parse_args()
    import medpy
    import scipy

    rows = []
    s2 = (512, 512)
    pairs2 = [(ragged_ellipsoid(s2, (258, 252), (62, 57), 1), ragged_ellipsoid(s2, (256, 256), (60, 55), 0))]
    rows.append(run_case("2d_512", pairs2, (0.7, 0.7), args.repeats, args.repeats))
    s3 = (128, 128, 128)
    for r in (25, 55):
        ref = ragged_ellipsoid(s3, (64, 64, 64), (r, r * 0.9, r * 1.1), 2)
        pred = ragged_ellipsoid(s3, (65, 66, 63), (r * 1.04, r * 0.9, r * 1.05), 3)
        rows.append(run_case(f"3d_128_r{r}", [(pred, ref)], (1.0, 0.8, 0.8), args.repeats, 2))
    # stress case: border displaced by ~6 voxels of fine-grained noise (spiky, many far border voxels)
    ref = ragged_ellipsoid(s3, (64, 64, 64), (55, 49.5, 60.5), 4, amp=6.0)
    pred = ragged_ellipsoid(s3, (65, 66, 63), (57, 49.5, 58), 5, amp=6.0)
    rows.append(run_case("3d_128_r55_spiky", [(pred, ref)], (1.0, 0.8, 0.8), args.repeats, 2))
    if not args.skip_ct:
        shape = (100, 512, 512)
        ref_lab, pred_lab = ct_like(shape, 10, 0.0), ct_like(shape, 20, 2.0)
        pairs = [(pred_lab == c, ref_lab == c) for c in (1, 2, 3)]
        rows.append(run_case("ct_512x512x100", pairs, (2.5, 0.7, 0.7), 2, 1))
    result = {
        "benchmark": "surface metrics hd+hd95+asd+assd, segflow vs medpy",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": "cpu",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
        },
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "medpy": medpy.__version__},
        "timing": "best of repeats, single process, wall clock (perf_counter)",
        "cases": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not all(r["equal_within_1e-9"] for r in rows):
        raise SystemExit("results differ from medpy by more than 1e-9")


if __name__ == "__main__":
    main()
