"""Training-step time in float32 and under bf16 autocast, default and channels-last layout.

    python bench/precision.py            # the CPU (or --device cuda)

Times the planner's own networks at the patches its plans chose (COVID CT's encoder U-Net on the
whole 384 x 352 slice, the dynamic U-Net in 2D and MSD hippocampus's 3D patch) with the plan's own
timing (``components.planning.measure``: the real loss and AdamW step, the median of at least three
steps after a warm-up), in each of the four combinations, and says what the plan's rule
(``components.planning.numerics``) chooses from them. The baseline of each ratio is float32 in the
default layout, measured in the same run. JSON: ``bench/results/precision-<host>-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import device_info, machine_info, result_path, write_result  # noqa: E402
from components.planning.measure import Candidate, measure  # noqa: E402
from components.planning.numerics import choose_numerics  # noqa: E402

ENCODER = ("unet_resnet18", {"encoder_weights": None})


def _dynunet(width: int) -> tuple[str, dict[str, Any]]:
    return "dynunet", {"base_filters": width, "deep_supervision": True}


CASES: list[tuple[str, tuple[str, dict[str, Any]], tuple[int, ...], tuple[float, ...] | None]] = [
    ("encoder U-Net, COVID slice", ENCODER, (384, 352), None),
    ("dynunet 8, COVID slice", _dynunet(8), (384, 352), None),
    ("dynunet 32, 2D patch", _dynunet(32), (256, 256), None),
    ("encoder U-Net, small 2D patch", ENCODER, (128, 128), None),
    ("dynunet 8, hippocampus 3D patch", _dynunet(8), (40, 56, 40), (1.0, 1.0, 1.0)),
]


def _row(
    label: str, net: tuple[str, dict[str, Any]], patch: tuple[int, ...], spacing: Any, device: str
) -> dict:
    base = Candidate(
        model=net[0],
        model_kwargs=json.dumps(net[1], sort_keys=True),
        patch=patch,
        spacing=spacing,
        batch=2,
        in_channels=1,
        num_classes=3,
        window_batch=0,  # a probe: the training step only, as the plan's rule times it
        transforms=(),
    )
    times = {}
    for bf16 in (False, True):
        for channels_last in (False, True):
            times[(bf16, channels_last)] = measure(
                replace(base, bf16=bf16, channels_last=channels_last), device
            ).step_s
    chosen = choose_numerics(device, lambda b, c: times[(b, c)], label)
    fp32 = times[(False, False)]
    return {
        "case": label,
        "patch": list(patch),
        "batch": 2,
        "step_s": {
            f"{'bf16' if b else 'fp32'}{'+channels_last' if c else ''}": round(t, 4)
            for (b, c), t in times.items()
        },
        "speedup_vs_fp32": {
            f"{'bf16' if b else 'fp32'}{'+channels_last' if c else ''}": round(fp32 / t, 2)
            for (b, c), t in times.items()
        },
        "plan_chooses": {"bf16": chosen.mode[0], "channels_last": chosen.mode[1]},
        "plan_speedup": round(fp32 / times[chosen.mode], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import os

    import torch

    start, load0 = time.time(), os.getloadavg()
    rows = []
    for label, net, patch, spacing in CASES:
        rows.append(_row(label, net, patch, spacing, args.device))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "benchmark": "precision",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(),
        "device": device_info(torch.device(args.device)),
        "torch": torch.__version__,
        "load_avg_start": load0,
        "load_avg_end": os.getloadavg(),
        "wall_s": round(time.time() - start, 1),
        "baseline": "fp32, default layout (same run, same timing)",
        "rows": rows,
    }
    out = args.out or result_path("precision", False, args.device)
    write_result(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
