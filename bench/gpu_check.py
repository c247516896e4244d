"""The GPU check: one command (``make bench-gpu``) whenever a GPU machine is lent, <= 8 minutes on one H100.

What it runs, each part timed and recorded even when another part fails:

1. ``gpu_tests``: the ``gpu``-marked tests (``pytest -m gpu tests/gpu``);
2. ``train_2d``: segflow's training loop (``train_one_epoch``: loss read-back, gradient clipping,
   scheduler, stop checks) ÷ ``bench/train_throughput.py``'s bare loop (forward, loss, backward,
   step) on the same batches, each side with the same initial weights: U-Net ResNet-34 at 256²
   (batch 64) and 512² (batch 16), bf16 autocast and channels-last (reference on an H100, bare
   loop: 1950 img/s at 256², 485 img/s at 512²); the batches are made in memory (loading is
   excluded on both sides, as in train_throughput; the GPU machine has no room for the whole data
   stack);
3. ``train_3d``: the same for the project's 3D DynUNet (MONAI's) on 128³ patches (batch 2), bf16
   and channels-last-3d;
4. ``ensemble_inference``: the fold-ensemble predictor (``predictor_from_checkpoints``: 5 folds x
   flip TTA, U-Net ResNet-34, 512², batched) ÷ a bare ensemble loop (``bench/infer_throughput.py``'s
   ``bare_2d``); MLflow is not on the GPU machine, so the packaged pyfunc's own thin layer is
   measured on the CPU bench, not here;
5. ``ct_sliding_window``: a 300 x 512 x 512 CT-like volume (``bench/inference_3d.py``'s
   ``synthetic_ct``), one DynUNet, patch 128³, overlap 0.5, Gaussian blending: segflow's
   ``sliding_window_probabilities`` ÷ MONAI's ``sliding_window_inference`` with a plain softmax.

Ratios are segflow ÷ bare rates (1.0 = no overhead). The JSON names the device and the machine
(``bench/results/gpu_check-<host>-<device>.json``). ``--dry-run``: the same code on the CPU at
tiny sizes in under a minute; the test suite runs it, so the check cannot rot.

On the GPU machine (Python 3.12, torch with CUDA; no MLflow, Prefect, DVC): ``make bench-gpu``
installs the wheels carried in ``.whl/`` (``make bench-gpu-wheels`` downloads them here) into a
temporary folder, then runs this script.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.core.threads import prepare_openmp  # noqa: E402

prepare_openmp()  # before torch loads OpenMP (components/core/threads.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.machine import device_info, machine_info, result_path, write_result  # noqa: E402

SIZES = {  # (full, dry run)
    "train_2d": ([(256, 64), (512, 16)], [(32, 2)]),
    "train_3d": ((128, 2), (16, 1)),
    "ensemble": ((512, 16, 5), (32, 2, 2)),
    "ct": ((300, 512, 512), (16, 40, 40)),
    "ct_patch": ((128, 128, 128), (16, 32, 32)),
}


def _size(key: str, dry: bool) -> Any:
    return SIZES[key][1 if dry else 0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rates(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, Any]:
    """Warm-up each side, then ``rounds`` alternating calls; each call returns its units/s."""
    for fn in sides.values():
        fn()
    got: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(rounds):
        for k in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            got[k].append(sides[k]())
    med = {k: statistics.median(v) for k, v in got.items()}
    return {
        "ratio": round(med["segflow"] / med["bare"], 4),
        "per_s": {k: round(v, 3) for k, v in med.items()},
    }


def gpu_tests(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """``pytest -m gpu tests/gpu``: its summary line and exit code (5 = nothing ran)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "tests/gpu"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    lines = [ln for ln in out.stdout.strip().splitlines() if ln.strip()]
    return {"exit_code": out.returncode, "summary": lines[-1] if lines else out.stderr[-500:]}


TRAIN = {
    "bf16": True,
    "grad_accum": 1,
    "grad_clip": 1.0,
    "optimizer": "adamw",
    "lr": 3e-3,
    "scheduler": "cosine",
}


def loop_ratio(
    model: torch.nn.Module, criterion: Any, batches: list, device: torch.device, steps: int, rounds: int
) -> dict[str, Any]:
    """segflow's ``train_one_epoch`` vs ``bench/train_throughput.py``'s bare loop on the same batches,
    each side with its own copy of the same initial weights; bf16 and channels-last on CUDA.

    The batches are made in memory (the benchmark excludes loading on both sides, as
    train_throughput does); the loop's settings are :data:`TRAIN` (params.yaml's 2D defaults)."""
    from types import SimpleNamespace

    from bench.train_throughput import _bare_epoch
    from components.training.fold_setup import FoldSetup
    from components.training.loop import train_one_epoch
    from components.training.optim import build_optimizer
    from components.training.schedulers import build_scheduler

    cuda = device.type == "cuda"
    fmt = (
        (torch.channels_last if batches[0][0].ndim == 4 else torch.channels_last_3d)
        if cuda
        else torch.contiguous_format
    )
    model = model.to(device, memory_format=fmt).train()
    bare_model = copy.deepcopy(model)
    tc = SimpleNamespace(
        bf16=TRAIN["bf16"] and cuda, grad_accum=TRAIN["grad_accum"], grad_clip=TRAIN["grad_clip"]
    )
    opt = build_optimizer(TRAIN["optimizer"], model.parameters(), lr=TRAIN["lr"])
    sched = build_scheduler(TRAIN["scheduler"], opt, epochs=100, steps_per_epoch=steps)
    s = FoldSetup(
        params=SimpleNamespace(train=tc), fold=0, device=device, spec=None, model_spec=None,
        augmentation=None, train_loader=batches, val_loader=None, model=model, criterion=criterion,
        optimizer=opt, scheduler=sched, stopper=None, memory_format=fmt,
    )  # type: ignore[arg-type]  # fmt: skip
    bare_opt = build_optimizer(TRAIN["optimizer"], bare_model.parameters(), lr=TRAIN["lr"])
    units = sum(len(x) for x, _ in batches)

    def segflow() -> float:
        _, seen, seconds = train_one_epoch(s)
        return seen / seconds

    def bare() -> float:
        return units / _bare_epoch(bare_model, criterion, bare_opt, batches, s, fmt)

    row = rates({"bare": bare, "segflow": segflow}, rounds)
    return row | {"precision": "bf16 autocast" if tc.bf16 else "fp32", "channels_last": cuda, "loop": TRAIN}


def _batches(shape: tuple[int, ...], classes: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` batches cycling through up to 4 random ones, on the CPU as a loader yields them.

    Shape:
        each (x (N, 1, *S), y (N, *S))
    """
    gen = torch.Generator().manual_seed(0)
    pool = [
        (torch.randn(*shape, generator=gen), torch.randint(0, classes, (shape[0], *shape[2:]), generator=gen))
        for _ in range(min(steps, 4))
    ]
    return [pool[i % len(pool)] for i in range(steps)]


def train_2d(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """U-Net ResNet-34 at 256² (batch 64) and 512² (batch 16): segflow's loop / a bare loop."""
    from components.losses import build_loss
    from components.models import build_model

    steps, rounds = (2, 1) if args.dry_run else (10, 3)
    out = {}
    for size, batch in _size("train_2d", args.dry_run):
        torch.manual_seed(0)
        model = build_model("unet_resnet34", 1, 4, encoder_weights=None)
        criterion = build_loss([{"name": "dice"}, {"name": "ce"}], 4)
        row = loop_ratio(model, criterion, _batches((batch, 1, size, size), 4, steps), device, steps, rounds)
        out[f"2d-{size}"] = row | {"unit": "images/s", "batch": batch, "steps_per_round": steps}
    return out


def train_3d(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The project's 3D DynUNet on 128³ patches (batch 2): segflow's loop / a bare loop."""
    from components.losses import build_loss
    from components.models import build_model

    side, batch = _size("train_3d", args.dry_run)
    steps, rounds = (2, 1) if args.dry_run else (10, 3)
    patch = [side] * 3
    torch.manual_seed(0)
    model = build_model("dynunet", 1, 3, patch_size=patch, spacing=[1.0, 1.0, 1.0])
    criterion = build_loss([{"name": "dice"}, {"name": "ce"}], 3)
    row = loop_ratio(model, criterion, _batches((batch, 1, *patch), 3, steps), device, steps, rounds)
    return row | {"unit": "patches/s", "patch": patch, "batch": batch, "steps_per_round": steps}


def ensemble_inference(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """predictor_from_checkpoints (fold ensemble x flip TTA, batched) vs infer_throughput's bare_2d."""
    from bench.infer_throughput import bare_2d
    from components.inference.predictor import predictor_from_checkpoints
    from components.preprocessing.pipeline import PreprocessSpec
    from components.training.checkpoint import ModelSpec, save_checkpoint

    size, n, folds = _size("ensemble", args.dry_run)
    spec = PreprocessSpec((size, size), "resize", "minmax", {}, 1)
    mspec = ModelSpec("unet_resnet34", 1, 4, {})
    images = np.random.default_rng(0).integers(0, 256, (n, size, size, 1)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = []
        for k in range(folds):
            torch.manual_seed(k)
            ckpts.append(Path(tmp) / f"fold_{k}.pt")
            save_checkpoint(ckpts[-1], mspec.build().eval(), mspec, spec, {"fold": k})
        predictor = predictor_from_checkpoints(ckpts, tta=True)
    nets = predictor.models
    dev = predictor.device
    raw = images.astype(np.uint8)

    def segflow() -> float:
        t0 = time.perf_counter()
        probs = predictor.predict_proba_batch(list(raw[..., 0]), batch_size=n)  # type: ignore[union-attr]
        np.stack([p.argmax(0) for p in probs])
        return n / (time.perf_counter() - t0)

    def bare() -> float:
        t0 = time.perf_counter()
        bare_2d(nets, images, True, dev)  # its labels come back on the CPU (synchronised)
        return n / (time.perf_counter() - t0)

    row = rates({"bare": bare, "segflow": segflow}, 1 if args.dry_run else 5)
    return row | {
        "unit": "images/s",
        "image": size,
        "batch": n,
        "folds": folds,
        "tta": "flip",
        "precision": "fp32",
    }


def ct_sliding_window(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """segflow's sliding_window_probabilities vs MONAI's sliding_window_inference, one DynUNet."""
    from monai.inferers import sliding_window_inference

    from bench.inference_3d import synthetic_ct
    from components.models import build_model
    from components.windowing import WindowSettings, count_windows, sliding_window_probabilities

    shape, patch = _size("ct", args.dry_run), _size("ct_patch", args.dry_run)
    volume = torch.from_numpy(synthetic_ct(shape).astype(np.float32) / 1000.0)[None]
    torch.manual_seed(0)
    net = build_model("dynunet", 1, 2, patch_size=list(patch), spacing=[2.5, 0.8, 0.8]).to(device).eval()
    settings = WindowSettings(patch_size=patch, overlap=0.5, batch_size=4)
    bf16 = device.type == "cuda"

    def segflow() -> float:
        t0 = time.perf_counter()
        sliding_window_probabilities([net], volume, settings, device, bf16=bf16)
        return 1.0 / (time.perf_counter() - t0)

    @torch.no_grad()
    def bare() -> float:
        t0 = time.perf_counter()

        def predictor(w: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                return net(w).float().softmax(1)

        sliding_window_inference(
            volume[None], patch, 4, predictor, overlap=0.5, mode="gaussian", sigma_scale=0.125,
            sw_device=device, device="cpu",
        )  # fmt: skip
        return 1.0 / (time.perf_counter() - t0)

    row = rates({"bare": bare, "segflow": segflow}, 1 if args.dry_run else 2)
    seconds = {k: round(1.0 / v, 3) for k, v in row["per_s"].items()}
    windows = count_windows(shape, settings)
    return row | {
        "seconds_per_volume": seconds,
        "volume": list(shape),
        "patch": list(patch),
        "windows": windows,
    }


CHECKS = {
    "gpu_tests": gpu_tests,
    "train_2d": train_2d,
    "train_3d": train_3d,
    "ensemble_inference": ensemble_inference,
    "ct_sliding_window": ct_sliding_window,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (the test suite runs this)")
    ap.add_argument("--only", nargs="*", choices=sorted(CHECKS), default=None, help="run only these parts")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/gpu_check-...)")
    args = ap.parse_args()
    device = torch.device("cpu" if args.dry_run or not torch.cuda.is_available() else "cuda")
    if args.dry_run:  # tiny sizes: one thread is faster and steadier on a shared CPU
        os.environ["SEGFLOW_THREADS"] = "1"
        torch.set_num_threads(1)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for name, check in CHECKS.items():
        if args.only and name not in args.only:
            continue
        started = time.perf_counter()
        try:
            results[name] = check(args, device) | {"seconds": round(time.perf_counter() - started, 1)}
        except Exception as exc:  # record and go on: one broken part must not hide the others
            results[name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-3000:],
            }
        print(
            f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'traceback'})}", flush=True
        )
    result = {
        "benchmark": "gpu_check: gpu tests, training and inference ratios segflow / bare",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dry_run": args.dry_run,
        "machine": machine_info(),
        "device": device_info(device),
        "versions": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": sys.version.split()[0],
        },
        "checks": results,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    out = args.out or result_path("gpu_check", args.dry_run, device.type)
    write_result(out, result)
    print(f"-> {out}")
    failed = [k for k, v in results.items() if "error" in v or v.get("exit_code") not in (None, 0, 5)]
    if failed:
        raise SystemExit(f"gpu_check: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
