"""The data loader alone (prepared arrays -> augmented batches) next to the training step rate.

For 2D (phantoms resized to ``--size``, the default augmentation of params.yaml) and 3D (generated
volumes in patch mode, the 3D U-Net's patch and a flip + noise augmentation), the train stage's
own fold setup builds the loader; the benchmark then iterates it with 0, 1, … worker processes
(up to the cores this machine has) and reports images/s (2D) or patches/s (3D) and the rate per
worker process, so the rate on a host with more cores can be read off (a worker's rate times the
workers ``train.num_workers: auto`` starts there). The training step rate is a bare forward,
loss, backward and optimiser step on batches drawn before timing.

``ratio`` (top level, 2D) = loader rate with the worker count ``auto`` picks here ÷ step rate
(higher is better; ≥ 1.5 means the loader keeps ahead of the step). ``ratio_3d`` likewise.

Usage::

    python bench/loader_throughput.py --quick      # about a minute on 2 CPU cores
    python bench/loader_throughput.py [--out FILE]
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

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.fold_setup import fold_setup  # noqa: E402
from bench.machine import device_info, machine_info, result_path, usable_cores, write_result  # noqa: E402
from components.training.device import autocast  # noqa: E402
from components.training.fold_setup import FoldSetup  # noqa: E402
from components.training.optim import build_optimizer  # noqa: E402
from components.training.workers import resolve_num_workers  # noqa: E402


def _loader_rate(s: FoldSetup, workers: int, batches: int, rounds: int) -> tuple[list[float], list[float]]:
    """Steady items per second over ``batches`` batches from the fold's train loader with
    ``workers`` workers (from the first batch on), and the seconds to that first batch (the
    start-up: forking the workers, paid once per epoch)."""
    dl = s.train_loader
    loader = torch.utils.data.DataLoader(
        dl.dataset,
        batch_size=dl.batch_size,
        sampler=dl.sampler,
        num_workers=workers,
        pin_memory=s.device.type == "cuda",
        drop_last=dl.drop_last,
    )
    rates, startup = [], []
    for _ in range(rounds):
        n, busy, got = 0, 0.0, 0
        while got < batches:  # epochs as the train stage runs them (a fresh iterator each)
            t0 = time.perf_counter()
            it = iter(loader)
            first = next(it, None)
            t1 = time.perf_counter()
            startup.append(t1 - t0)
            if first is None:
                raise SystemExit("the loader yields no batch: more cases or a smaller batch")
            got += 1
            for x, _ in it:
                n, got = n + len(x), got + 1
                if got == batches:
                    break
            busy += time.perf_counter() - t1
        rates.append(n / busy if busy > 0 else float("nan"))
    return rates, startup


def _step_rate(s: FoldSetup, steps: int, rounds: int) -> list[float]:
    """Images (patches) per second of bare training steps on batches drawn before timing."""
    pool = []
    for i, batch in enumerate(s.train_loader):
        pool.append(batch)
        if i + 1 == min(steps, 4):
            break
    batches = [pool[i % len(pool)] for i in range(steps)]
    model = copy.deepcopy(s.model).train()
    tc = s.params.train
    opt = build_optimizer(tc.optimizer.name, model.parameters(), **tc.optimizer.kwargs)

    def epoch() -> float:
        t0 = time.perf_counter()
        for x, y in batches:
            x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
            with autocast(s.device, tc.bf16):
                loss = s.criterion(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if s.device.type == "cuda":
            torch.cuda.synchronize()
        return sum(len(x) for x, _ in batches) / (time.perf_counter() - t0)

    epoch()  # warm-up
    return [epoch() for _ in range(rounds)]


def measure(s: FoldSetup, batches: int, steps: int, rounds: int, max_workers: int) -> dict[str, Any]:
    auto = resolve_num_workers("auto", s.device)
    counts = sorted({0, *range(1, max_workers + 1), auto})
    loader: dict[str, Any] = {}
    for w in counts:
        rates, startup = _loader_rate(s, w, batches, rounds)
        rate = statistics.median(rates)
        loader[str(w)] = {
            "items_per_s": round(rate, 2),
            "per_process": round(rate / max(w, 1), 2),
            "first_batch_s": round(statistics.median(startup), 3),
            "rounds": [round(r, 2) for r in rates],
        }
    steps_rates = _step_rate(s, steps, rounds)
    step = statistics.median(steps_rates)
    return {
        "ratio": round(loader[str(auto)]["items_per_s"] / step, 3),
        "auto_workers": auto,
        "loader": loader,
        "step_items_per_s": round(step, 2),
        "step_rounds": [round(r, 2) for r in steps_rates],
        "batch_size": s.params.train.batch_size,
        "model": s.model_spec.name,
        "augmentation": [t.name for t in s.params.train.augment.transforms],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer batches and rounds, smaller 2D size")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/...)")
    args = ap.parse_args()
    size = 128 if args.quick else 256
    batches, steps, rounds = (10, 3, 1) if args.quick else (24, 8, 3)
    patch = [32, 64, 64] if args.quick else [48, 96, 96]
    max_workers = min(usable_cores(), 4)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        s2 = fold_setup(
            Path(tmp) / "2d",
            volumes=False,
            size=[size, size],
            batch=8,
            model=None,
            device=args.device,
            n_cases=96,
        )
        two_d = {"image_size": [size, size], **measure(s2, batches, steps, rounds, max_workers)}
        s3 = fold_setup(
            Path(tmp) / "3d",
            volumes=True,
            size=patch,
            batch=2,
            model=None,
            device=args.device,
            overrides={"train.iterations_per_epoch": batches * 2},
            n_cases=8,
        )
        three_d = {"patch_size": patch, **measure(s3, batches, steps, rounds, max_workers)}
    result = {
        "benchmark": "loader_throughput: prepared arrays -> augmented batches, next to the training step",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "ratio": two_d["ratio"],
        "ratio_3d": three_d["ratio"],
        "ratio_is": "loader items/s with the auto worker count / bare training step items/s",
        "machine": {**machine_info(), "load_average_1min_at_start": load},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "device": device_info(s2.device),
        "2d": two_d,
        "3d": three_d,
    }
    out = args.out or result_path("loader_throughput", args.quick, s2.device.type)
    write_result(out, result)
    for name, r in (("2d", two_d), ("3d", three_d)):
        rates = {w: v["items_per_s"] for w, v in r["loader"].items()}
        print(
            f"{name}: loader items/s by workers {rates}, step {r['step_items_per_s']}/s, "
            f"auto={r['auto_workers']}, ratio {r['ratio']}"
        )
    print(f"-> {out}")


if __name__ == "__main__":
    main()
