"""Near-duplicate detector benchmark: recall and precision on copies and look-alikes, and speed.

Accuracy (``bench/near_duplicate_accuracy.py``): sets of true copies made from the given datasets
and the phantoms with every transform kind, and sets of look-alike distinct cases (CT slices,
hippocampus volumes, phantoms, fundus eyes, brain MRI of different patients); recall and precision
over pairs of cases, per set and pooled over all sets.

Speed (``bench/near_duplicate_speed.py``): thumbnails, search and grouping of 1,000 2D images and
300 volumes, timed for the current tree and for ``--baseline-rev`` (the detector before issue 24),
each in its own process, in turns (baseline, current, baseline, ...) ``--repeats`` times, so both
meet the same load; the ratio is of the medians. The 1-minute load average is recorded before and
after: other work shares this machine.

Writes ``bench/results/near_duplicates-[quick-]<host>.json`` and prints a summary. Usage::

    python bench/near_duplicates.py [--quick] [--part all|accuracy|speed] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import scipy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_info, write_result  # noqa: E402
from components.validation import alignment, candidates, content  # noqa: E402
from components.validation import near_duplicates as nd  # noqa: E402

BASELINE_REV = "5e49995"  # the last revision before issue 24's detector


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def accuracy(quick: bool) -> dict[str, Any]:
    """Per-set rows and the pooled recall and precision."""
    from bench.near_duplicate_accuracy import build_sets, score_set

    rows = []
    for cs in build_sets(quick):
        row = score_set(cs)
        rows.append(row)
        print(
            f"  {row['set']}: {row['cases']} cases, recall {row['recall']}, precision {row['precision']}, "
            f"min copy r {row['min_copy_similarity']}, max distinct r {row['max_distinct_similarity']}, "
            f"kept apart {row['lookalikes_kept_apart']}",
            flush=True,
        )
    true = sum(r["true_pairs"] for r in rows)
    found = sum(r["found_pairs"] for r in rows)
    hit = sum(r["true_found"] for r in rows)
    return {
        "sets": rows,
        "pooled": {
            "true_pairs": true,
            "found_pairs": found,
            "true_found": hit,
            "recall": hit / true if true else None,
            "precision": hit / found if found else None,
            "cases": sum(r["cases"] for r in rows),
            "lookalikes_kept_apart": sum(r["lookalikes_kept_apart"] for r in rows),
        },
    }


def _baseline_tree(rev: str, into: Path) -> Path:
    """``components/`` at ``rev`` extracted into ``into`` (git archive)."""
    data = subprocess.run(
        ["git", "archive", rev, "components"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _timed(tree: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, str(REPO / "bench" / "near_duplicate_speed.py")]
    cmd += ["--tree", str(tree)] if tree is not None else []
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def speed(rev: str, repeats: int) -> dict[str, Any]:
    """Both implementations in turns; per set and implementation the runs, their median and the ratio."""
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        tree = _baseline_tree(rev, Path(tmp))
        for k in range(repeats):
            for impl in ("baseline", "current"):
                runs[impl].append(_timed(tree if impl == "baseline" else None))
                print(f"  speed run {k + 1}/{repeats} {impl}: {runs[impl][-1]}", flush=True)
    out: dict[str, Any] = {"baseline_rev": rev, "repeats": repeats, "runs": runs}
    for name in ("2d", "3d"):
        med = {
            impl: {
                key: statistics.median(r[name][key] for r in runs[impl])
                for key in ("seconds_thumbnails", "seconds_search", "seconds_total")
            }
            for impl in runs
        }
        out[name] = {
            "cases": runs["current"][0][name]["cases"],
            "median_seconds": med,
            "ratio_current_to_baseline_total": med["current"]["seconds_total"]
            / med["baseline"]["seconds_total"],
            "recall": {impl: runs[impl][0][name]["recall"] for impl in runs},
            "precision": {impl: runs[impl][0][name]["precision"] for impl in runs},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer cases per accuracy set")
    ap.add_argument("--part", choices=("all", "accuracy", "speed"), default="all")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision timed as the baseline")
    ap.add_argument("--repeats", type=int, default=3, help="speed runs per implementation")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/...)")
    args = ap.parse_args()
    result: dict[str, Any] = {
        "benchmark": "near_duplicates: copies and look-alikes (recall, precision), search speed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {**machine_info(), "load_average_1min_at_start": _load()},
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "opencv": cv2.__version__,
        },
        "settings": {
            "threshold": nd.DEFAULT_THRESHOLD,
            "mask_agreement": nd.MASK_AGREEMENT,
            "exact_similarity": nd.EXACT_SIMILARITY,
            "candidate_threshold": nd.CANDIDATE_THRESHOLD,
            "min_cases_for_common": candidates.MIN_CASES_FOR_COMMON,
            "thumb_side": {"2d": content.THUMB_SIDE_2D, "3d": content.THUMB_SIDE_3D},
            "mask_sigma": alignment.MASK_SIGMA,
        },
        "timing": "wall seconds (perf_counter), one process per speed run",
    }
    if args.part in ("all", "accuracy"):
        print("accuracy:", flush=True)
        result["accuracy"] = accuracy(args.quick)
    if args.part in ("all", "speed"):
        print("speed:", flush=True)
        result["speed"] = speed(args.baseline_rev, args.repeats)
    result["machine"]["load_average_1min_at_end"] = _load()
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())
    out = (
        args.out
        or REPO / "bench" / "results" / f"near_duplicates-{'quick-' if args.quick else ''}{host}.json"
    )
    write_result(out, result)
    if "accuracy" in result:
        p = result["accuracy"]["pooled"]
        print(f"pooled: {p['cases']} cases, recall {p['recall']:.4f}, precision {p['precision']:.4f}")
    if "speed" in result:
        for name in ("2d", "3d"):
            s = result["speed"][name]
            ratio = s["ratio_current_to_baseline_total"]
            print(
                f"speed {name} ({s['cases']} cases): median seconds {s['median_seconds']}, ratio {ratio:.2f}"
            )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
