"""segflow's training loop against a bare PyTorch loop: training images per second, same process.

Both sides train the same network (identical initial weights), with the same loss, optimiser,
batch size, precision and batches. The batches are drawn once, before timing, from the loader the
train stage builds (``setup_fold``: prepared arrays + augmentation), so **data loading and
augmentation are excluded on both sides** (``bench/loader_throughput.py`` measures the loader).
The bare loop is forward, loss, backward, optimiser step, nothing else. segflow's side is
:func:`components.training.loop.train_one_epoch` as the train stage runs it: the non-finite-loss
guard (losses read back every step on the CPU, every 25 on CUDA), gradient clipping
(``train.grad_clip``), the per-step scheduler, the stop-request check. Validation is not part of
either side (it runs every ``train.val_every`` epochs, counted on the device).

Cases: 2D Unet-ResNet34 on 1-channel phantoms (4 classes) at 256² and 512², and 3D: the project's
3D U-Net (DynUNet) on patches of generated volumes (``--quick``: 128², and a 32×48×32 patch with 8
base filters). On CUDA both sides use bf16 autocast and channels-last (``--compile``: torch.compile
on both sides).

Rounds alternate bare / segflow (after one warm-up epoch each), so a neighbour's load on a shared
machine hits both alike; each side's rate is the median over rounds, and ``ratio`` = segflow ÷
bare (higher is better; 1.0 = no overhead). The top-level ``ratio`` is the lowest of the cases.

Usage::

    python bench/train_throughput.py --quick           # about two minutes on 2 CPU cores
    python bench/train_throughput.py [--steps 10] [--rounds 3] [--compile] [--out FILE]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.core.threads import prepare_openmp  # noqa: E402

prepare_openmp()  # before torch loads OpenMP: its wait policy, as every segflow entry point sets it

import torch  # noqa: E402

from bench.fold_setup import fold_setup  # noqa: E402
from bench.machine import device_info, machine_info, result_path, write_result  # noqa: E402
from components.training.device import autocast  # noqa: E402
from components.training.fold_setup import FoldSetup  # noqa: E402
from components.training.loop import train_one_epoch  # noqa: E402
from components.training.optim import build_optimizer  # noqa: E402


def _bare_epoch(
    model: Any, criterion: Any, opt: Any, batches: list, s: FoldSetup, memory_format: torch.memory_format
) -> float:
    """Forward, loss, backward, step over the batches; returns seconds (device synced)."""
    t0 = time.perf_counter()
    for x, y in batches:
        x = x.to(s.device, non_blocking=True, memory_format=memory_format)
        y = y.to(s.device, non_blocking=True)
        with autocast(s.device, s.params.train.bf16):
            loss = criterion(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if s.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def run_case(case: dict[str, Any], steps: int, rounds: int, device: str, compile_: bool) -> dict[str, Any]:
    """Time both loops on one case; returns the rates, the ratio and the settings."""
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    overrides = {"train.num_workers": 0, "train.channels_last": cuda, "train.compile": compile_}
    with tempfile.TemporaryDirectory() as tmp:
        s = fold_setup(
            Path(tmp),
            volumes=case["volumes"],
            size=case["size"],
            batch=case["batch"],
            model=case["model"],
            device=device,
            overrides=overrides | case.get("overrides", {}),
            n_cases=case.get("n_cases", 24),
        )
        pool = []
        for i, batch in enumerate(s.train_loader):  # loading and augmentation: here, before timing
            pool.append(batch)
            if i + 1 == min(steps, 6):
                break
        batches = [pool[i % len(pool)] for i in range(steps)]
        bare_model = copy.deepcopy(s.model).train()  # same initial weights (and memory format)
        bare_forward = torch.compile(bare_model) if compile_ else bare_model
        tc = s.params.train
        bare_opt = build_optimizer(tc.optimizer.name, bare_model.parameters(), **tc.optimizer.kwargs)
        s.train_loader = batches  # type: ignore[assignment]  # the same batches, in the same order
        images = sum(len(x) for x, _ in batches)

        def bare() -> float:
            return images / _bare_epoch(bare_forward, s.criterion, bare_opt, batches, s, s.memory_format)

        def ours() -> float:
            _, seen, seconds = train_one_epoch(s)
            return seen / seconds

        bare(), ours()  # warm-up (allocator, kernels, compilation)
        bare_rates, segflow_rates = [], []
        for _ in range(rounds):
            bare_rates.append(bare())
            segflow_rates.append(ours())
        b, o = statistics.median(bare_rates), statistics.median(segflow_rates)
        return {
            "case": case["name"],
            "ratio": round(o / b, 4),
            "images_per_s": {"bare": round(b, 3), "segflow": round(o, 3)},
            "rounds": {
                "bare": [round(r, 3) for r in bare_rates],
                "segflow": [round(r, 3) for r in segflow_rates],
            },
            "settings": {
                "model": s.model_spec.name,
                "input": case["size"],
                "unit": "patches" if case["volumes"] else "images",
                "batch_size": case["batch"],
                "steps_per_round": steps,
                "rounds": rounds,
                "loss": [t.model_dump() for t in tc.loss],
                "optimizer": tc.optimizer.name,
                "grad_clip": tc.grad_clip,
                "precision": "bf16 autocast" if tc.bf16 else "fp32",
                "channels_last": tc.channels_last,
                "compile": compile_,
            },
            "device": device_info(s.device),
        }


def cases(quick: bool, cuda: bool) -> list[dict[str, Any]]:
    """The benchmark's cases (bigger batches on a GPU, as the issue's reference figures use)."""
    if quick:
        return [
            {"name": "2d-128", "volumes": False, "size": [128, 128], "batch": 8, "model": "unet_resnet34"},
            {
                "name": "3d-patch",
                "volumes": True,
                "size": [32, 48, 32],
                "batch": 2,
                "model": None,
                "n_cases": 6,
                "overrides": {"train.model.kwargs": {"encoder_weights": None, "base_filters": 8}},
            },
        ]
    return [
        {
            "name": "2d-256",
            "volumes": False,
            "size": [256, 256],
            "batch": 64 if cuda else 8,
            "model": "unet_resnet34",
        },
        {
            "name": "2d-512",
            "volumes": False,
            "size": [512, 512],
            "batch": 16 if cuda else 4,
            "model": "unet_resnet34",
        },
        {
            "name": "3d-patch",
            "volumes": True,
            "size": [64, 128, 128] if cuda else [48, 96, 96],
            "batch": 2,
            "model": None,
            "n_cases": 6,
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--steps", type=int, default=None, help="optimiser steps per round (default 10; --quick 4)"
    )
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per side (default 3; --quick 2)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--compile", action="store_true", help="torch.compile both sides")
    ap.add_argument("--quick", action="store_true", help="128² and a small 3D patch, 4 steps, 2 rounds")
    ap.add_argument("--only", default=None, help="run only the case of this name (e.g. 2d-512)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's; 1 is steadier on a shared CPU)",
    )
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/train_throughput-...)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["SEGFLOW_THREADS"] = str(args.threads)  # what the fold setup applies (threads rule)
    steps = args.steps or (4 if args.quick else 10)
    rounds = args.rounds or (2 if args.quick else 3)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    todo = [c for c in cases(args.quick, cuda) if args.only in (None, c["name"])]
    rows = []
    for case in todo:
        rows.append(run_case(case, steps, rounds, args.device, args.compile))
        r = rows[-1]
        print(
            f"{r['case']}: bare {r['images_per_s']['bare']}/s, segflow {r['images_per_s']['segflow']}/s, "
            f"ratio {r['ratio']}"
        )
    result = {
        "benchmark": "train_throughput: segflow's training loop vs a bare PyTorch loop, same process",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "ratio": min(r["ratio"] for r in rows),
        "ratio_is": "segflow train_one_epoch items/s / bare loop items/s (median over rounds; lowest case)",
        "data": "excluded on both sides: batches drawn once from the train stage's loader",
        "machine": {**machine_info(), "load_average_1min_at_start": load},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "device": rows[0]["device"],
        "cases": rows,
    }
    out = args.out or result_path("train_throughput", args.quick, rows[0]["device"]["type"])
    write_result(out, result)
    print(f"ratio {result['ratio']} -> {out}")


if __name__ == "__main__":
    main()
