"""Model zoo benchmark: parameters, CPU inference latency and (on CUDA) bf16 training throughput.

For every registered architecture, with its default arguments, 1 input channel and 3 classes:

* ``params``: trainable parameters.
* ``cpu_ms``: eval-mode forward of one 256x256 image (batch 1) on the CPU with ``--threads`` threads,
  median of ``--repeats`` runs after ``--warmup`` runs, under ``torch.inference_mode``.
* ``train_img_s`` (only where CUDA is available): images/s of full training steps (forward, Dice+CE
  loss, backward, AdamW step) at 256x256, batch ``--batch``, bf16 autocast, after warm-up.

Writes ``bench/results/model_zoo.json`` (with machine and device) and ``bench/results/model_zoo.md``
(a markdown table for docs/benchmarks.md). Usage::

    python bench/model_zoo.py [--threads 1] [--repeats 5] [--models unet,fpn] [--out-dir bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.losses import build_loss
from components.models import MODELS, build_model, count_parameters

SIZE, IN_CH, CLASSES = 256, 1, 3


def cpu_latency_ms(model: torch.nn.Module, warmup: int, repeats: int) -> float:
    """Median eval-mode forward time of one SIZE x SIZE image, in ms."""
    model.eval()
    x = torch.randn(1, IN_CH, SIZE, SIZE)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def gpu_train_img_s(name: str, batch: int, warmup: int, steps: int) -> float:
    """Images/s of bf16-autocast training steps on CUDA."""
    model = build_model(name, IN_CH, CLASSES).cuda().train()
    loss_fn = build_loss([{"name": "dice"}, {"name": "ce"}], CLASSES)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, IN_CH, SIZE, SIZE, device="cuda")
    y = torch.randint(0, CLASSES, (batch, SIZE, SIZE), device="cuda")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def machine() -> dict[str, object]:
    """Where the numbers come from."""
    info: dict[str, object] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def markdown(rows: list[dict[str, object]], threads: int, cuda: str | None) -> str:
    """The docs/benchmarks.md table."""
    gpu_col = f"train img/s bf16 ({cuda})" if cuda else "train img/s bf16"
    threads_txt = f"{threads} thread" + ("s" if threads > 1 else "")
    lines = [
        f"| model | params (M) | CPU ms / 256² image ({threads_txt}) | {gpu_col} |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        gpu = f"{r['train_img_s']:.0f}" if r.get("train_img_s") is not None else "n/a (no CUDA)"
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f} | {r['cpu_ms']:.0f} | {gpu} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the CPU timing")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--models", default="", help="comma-separated subset (default: all registered)")
    ap.add_argument("--batch", type=int, default=16, help="CUDA training batch size")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()] or MODELS.names()
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    rows: list[dict[str, object]] = []
    for name in names:
        torch.manual_seed(0)
        model = build_model(name, IN_CH, CLASSES)
        row: dict[str, object] = {
            "model": name,
            "params": count_parameters(model),
            "cpu_ms": cpu_latency_ms(model, args.warmup, args.repeats),
            "train_img_s": gpu_train_img_s(name, args.batch, 3, args.train_steps) if cuda else None,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "model_zoo",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "device": {"cpu_threads": args.threads, "cuda": cuda},
        "settings": {
            "size": SIZE,
            "in_channels": IN_CH,
            "num_classes": CLASSES,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "train_batch": args.batch,
            "train_steps": args.train_steps,
        },
        "results": rows,
    }
    (args.out_dir / "model_zoo.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out_dir / "model_zoo.md").write_text(markdown(rows, args.threads, cuda))
    print(markdown(rows, args.threads, cuda))


if __name__ == "__main__":
    main()
