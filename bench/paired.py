"""segflow against a bare loop, timed in pairs (the inference benchmarks share these pieces).

A side's packaged model is built as the ensemble stage builds it (:func:`package`); the two sides
run in alternating ABBA rounds (:func:`alternate`) so a drifting neighbour load hits both alike;
:func:`summary` gives the ratio of the medians and its CPU-time variant; :func:`agreement` checks
that both sides labelled the same pixels.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

MIN_AGREEMENT = 0.999


def package(root: Path, specs: Sequence[tuple[Any, Any]], class_names: list[str], options: Any) -> Path:
    """Save one random-init net per (model spec, preprocess spec) as a fold checkpoint (seed = fold)
    and package them as a local MLflow model folder, as the ensemble stage does."""
    from components.ensembling.packaging import save_ensemble_model
    from components.training.checkpoint import save_checkpoint

    checkpoints = []
    for k, (mspec, pspec) in enumerate(specs):
        torch.manual_seed(k)
        checkpoints.append(root / f"fold_{k}.pt")
        save_checkpoint(checkpoints[-1], mspec.build().eval(), mspec, pspec, {"fold": k})
    save_ensemble_model(root / "model", checkpoints, options, class_names, 1)
    return root / "model"


def alternate(
    sides: dict[str, Callable[[], Any]], units: float, rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Any]]:
    """One warm-up call per side, then ``rounds`` timed calls of each, alternating in ABBA order
    (bare, segflow | segflow, bare | ...) so that a drifting neighbour load hits both alike.

    Returns the per-round wall-clock rates (units / perf_counter seconds), the per-round
    CPU-time rates (units / process_time seconds, all threads) and each side's last output.
    """
    outputs = {name: fn() for name, fn in sides.items()}  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0, c0 = time.perf_counter(), time.process_time()
            outputs[name] = sides[name]()
            wall[name].append(units / (time.perf_counter() - t0))
            cpu[name].append(units / (time.process_time() - c0))
    return wall, cpu, outputs


def agreement(a: np.ndarray, b: np.ndarray, what: str) -> float:
    """Fraction of equal labels; fails below :data:`MIN_AGREEMENT`."""
    if a.shape != b.shape:
        raise RuntimeError(f"{what}: mask shapes differ: segflow {a.shape}, bare {b.shape}")
    frac = float((a == b).mean())
    if frac < MIN_AGREEMENT:
        raise SystemExit(f"{what}: segflow and bare masks agree on only {frac:.6f} of pixels")
    return frac


def summary(wall: dict[str, list[float]], cpu: dict[str, list[float]], digits: int = 3) -> dict[str, Any]:
    """Medians per side, ``ratio`` (segflow / bare of the medians), the median of the per-round
    ratios, and the same from CPU time (less sensitive to a neighbour's load on a shared machine)."""
    med = {k: statistics.median(v) for k, v in wall.items()}
    paired = [s / b for s, b in zip(wall["segflow"], wall["bare"], strict=True)]
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    return {
        "ratio": round(med["segflow"] / med["bare"], 4),
        "median": {k: round(v, digits) for k, v in med.items()},
        "rounds": {k: [round(r, digits) for r in v] for k, v in wall.items()},
        "ratio_per_round_median": round(statistics.median(paired), 4),
        "ratio_cpu_time": round(cpu_med["segflow"] / cpu_med["bare"], 4),
        "per_cpu_second": {k: round(v, digits) for k, v in cpu_med.items()},
    }
