"""The packaged (MLflow pyfunc) fold ensemble against a bare PyTorch ensemble loop, same process.

Both sides run the same networks (each side's nets are loaded from the same fold checkpoint
files, and their weights are checked equal), on the same inputs, with the same test-time
augmentation, averaging the softmax probabilities over folds x mirror variants and taking the
argmax. The nets are random-init (speed does not depend on the weights).

2D (Unet-ResNet34, the hand-set params of tests/data/handset_params.yaml otherwise: 1 channel,
4 classes, ``resize`` / ``minmax``; 5 folds x horizontal flip, 512²; ``--quick``: 2 folds, 256²).
Inputs: raw 8-bit gray images at the network size, as float32 ``(N, H, W, 1)`` (what
``segflow predict`` sends), ``--batch`` images per call.

- segflow: ``mlflow.pyfunc.load_model(<local model folder>).predict(x, params={"input_dtype":
  "uint8"})`` as users call it: MLflow's schema/params enforcement, the request checks,
  raw image -> network input (channel matching, minmax to [0, 1], ``fit_to_size``), the networks,
  the restore to the input size, and the labels (argmax) as int64.
- bare: per batch, minmax each image to [0, 1] (the same float64 formula), one tensor
  ``(N, 1, H, W)``; for each net, for each flip: ``softmax(net(x))``; mean; argmax. The image
  already has the network size, so segflow's resize and restore change no values and the bare
  side does not need them.

3D (the project's 3D U-Net, ``dynunet`` with base_filters 8 as in ``bench/inference_3d.py``, on
the synthetic CT volume of that benchmark at ``--volume`` (default 32 x 96 x 96; ``--quick``
32 x 48 x 96), spacing 2.5 x 0.8 x 0.8, ``ct`` intensities from its own foreground statistics,
no resampling, 3 classes, patch ``--patch`` (default 32 x 64 x 64; ``--quick`` 32 x 48 x 48);
5 folds (``--quick``: 2) x mirroring over all 3 axes (8 variants); overlap 0.5, 4 windows per
batch, Gaussian blending: the hand-set params).

- segflow: the pyfunc's ``predict`` on the ``(1, Z, Y, X)`` float32 volume with params
  ``spacing`` and ``input_dtype="int16"`` (what ``segflow predict`` sends): normalisation,
  ``components.windowing`` (MONAI's ``sliding_window_inference`` with the mirrored-softmax
  ensemble predictor), the restore to the input grid, the labels.
- bare: the same clip + z-score in numpy, then MONAI's ``sliding_window_inference`` (the
  reference "bare" sliding window; segflow uses it too, so the ratio is segflow's wrapper) with a
  plain predictor: for each net, for each mirror variant, ``softmax(net(flip(w))).flip``; mean;
  then argmax.

Torch runs on ``--threads`` CPU threads (default 1, as ``bench/serve_load.py``: on a small shared
machine two threads make the timings swing by up to 5x when a neighbour is busy; one thread gives
steady rates, and the ratio is the same work on both sides). Rounds alternate bare / segflow
(ABBA order) after one warm-up call each; each side's rate is the median over
rounds. ``ratio`` = segflow ÷ bare images/s in 2D (higher is better; 1.0 = no overhead);
``ratio_3d`` the same in volumes/s; ``ratio_per_round_median`` (median of the per-round
ratios) and ``ratio_cpu_time`` (from process CPU time) are cross-checks. Timed: the ``predict``
calls only; the model is packaged and loaded once before (as ``segflow serve`` does). The masks
of both sides are compared: ``agreement`` is the fraction of equal pixels (voxels); below 0.999
the script fails.

Usage::

    python bench/infer_throughput.py --quick     # 256², 2 folds, small volume (about 2 min, 1 thread)
    python bench/infer_throughput.py [--size 512] [--folds 5] [--batch 2] [--images 2] [--rounds 4]
        [--threads 1] [--only 2d|3d|predict] [--predict-size 600] [--out FILE]

``--only predict`` (also part of the default run): ``segflow predict`` against the ensemble
stage's scoring of the same packaged 2D DynUNet ensemble on the same RGB images
(bench/predict_scoring.py); ``ratio_predict_vs_scoring`` = predict ÷ scoring images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from components.core.threads import prepare_openmp  # noqa: E402

prepare_openmp()  # before torch loads OpenMP: its wait policy, as every segflow entry point sets it

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.inference_3d import ct_stats, synthetic_ct  # noqa: E402
from bench.machine import device_info, machine_info, result_path, write_result  # noqa: E402
from bench.paired import agreement, alternate, package, summary  # noqa: E402
from bench.project import HANDSET_PARAMS  # noqa: E402

CT_SPACING = (2.5, 0.8, 0.8)
BASE_FILTERS_3D = 8
CLASSES_3D = 3


# ----------------------------------------------------------------------------- packaging


def load_both(model_dir: Path) -> tuple[Any, list[nn.Module], torch.device]:
    """The pyfunc (as users load it), the bare side's nets from the same checkpoint files, and the
    device the pyfunc's predictor chose (the bare nets are put there too)."""
    import mlflow.pyfunc

    from components.training.checkpoint import load_checkpoint

    pyfunc = mlflow.pyfunc.load_model(str(model_dir))
    ckpts = sorted((model_dir / "artifacts").glob("fold_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    nets = [load_checkpoint(p)[0] for p in ckpts]
    predictor = pyfunc.unwrap_python_model().predictor
    inner, device = predictor.models, predictor.device
    if len(inner) != len(nets):
        raise RuntimeError(f"pyfunc holds {len(inner)} nets, the folder {len(nets)} checkpoints")
    for a, b in zip(inner, nets, strict=True):
        sa, sb = a.state_dict(), b.state_dict()
        if sa.keys() != sb.keys() or not all(torch.equal(sa[k], sb[k]) for k in sa):
            raise RuntimeError("the pyfunc's nets and the bare nets differ")
    return pyfunc, [n.to(device).eval() for n in nets], device


# ----------------------------------------------------------------------------- bare loops


@torch.no_grad()
def bare_2d(nets: Sequence[nn.Module], batch: np.ndarray, tta: bool, device: torch.device) -> np.ndarray:
    """Minmax, then mean softmax over nets x (identity, horizontal flip), argmax.

    Shape:
        batch (N, H, W, 1) raw values as float32 -> (N, H, W) int64
    """
    x = batch[..., 0].astype(np.float64)
    lo = x.min(axis=(1, 2), keepdims=True)
    hi = x.max(axis=(1, 2), keepdims=True)
    unit = np.where(hi > lo, (x - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0).astype(np.float32)
    xt = torch.from_numpy(unit[:, None]).to(device)
    flips = [False, True] if tta else [False]
    total = None
    for net in nets:
        for flip in flips:
            p = net(xt.flip(-1) if flip else xt).float().softmax(1)
            p = p.flip(-1) if flip else p
            total = p if total is None else total + p
    assert total is not None
    return (total / (len(nets) * len(flips))).argmax(1).cpu().numpy()


@torch.no_grad()
def bare_3d(
    nets: Sequence[nn.Module],
    volume: np.ndarray,
    stats: dict[str, float],
    patch: tuple[int, ...],
    device: torch.device,
) -> np.ndarray:
    """CT clip + z-score, MONAI sliding window with a mean-softmax-over-nets-x-mirrors predictor, argmax.

    Shape:
        volume (1, Z, Y, X) raw values as float32 -> (Z, Y, X) int64
    """
    from monai.inferers import sliding_window_inference

    y = np.clip(volume.astype(np.float32), stats["p0_5"], stats["p99_5"])
    x = torch.from_numpy(((y - stats["mean"]) / max(stats["sd"], 1e-8)).astype(np.float32))[None]
    variants = [list(c) for r in range(4) for c in combinations((2, 3, 4), r)]

    def predictor(w: torch.Tensor) -> torch.Tensor:
        total = None
        for net in nets:
            for dims in variants:
                p = net(w.flip(dims) if dims else w).float().softmax(1)
                p = p.flip(dims) if dims else p
                total = p if total is None else total + p
        assert total is not None
        return total / (len(nets) * len(variants))

    out = sliding_window_inference(
        x,
        patch,
        4,
        predictor,
        overlap=0.5,
        mode="gaussian",
        sigma_scale=0.125,
        sw_device=device,
        device="cpu",
    )
    assert isinstance(out, torch.Tensor)
    return out[0].argmax(0).numpy()


# ----------------------------------------------------------------------------- timing


# ----------------------------------------------------------------------------- benchmarks


def run_2d(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from components.inference.options import inference_options
    from components.params.config import load_params
    from components.params.edit import merged_params
    from components.preprocessing.pipeline import spec_from_params
    from components.training.checkpoint import model_spec_from_params

    text, _ = merged_params(
        HANDSET_PARAMS,  # every key explicit (the shipped file leaves most to the plan stage)
        {"preprocess.image_size": [args.size, args.size], "train.model.name": args.model},
    )
    (root / "params.yaml").write_text(text)
    p = load_params(root / "params.yaml")
    pspec, mspec = spec_from_params(p), model_spec_from_params(p)
    class_names = sorted(p.data.classes, key=lambda c: p.data.classes[c])
    options = inference_options(p)
    model_dir = package(root / "2d", [(mspec, pspec)] * args.folds, class_names, options)
    pyfunc, nets, device = load_both(model_dir)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 1)).astype(np.float32)
    batches = [images[i : i + args.batch] for i in range(0, args.images, args.batch)]
    params = {"input_dtype": "uint8"}

    def segflow() -> np.ndarray:
        return np.concatenate([np.asarray(pyfunc.predict(b, params=params)) for b in batches])

    def bare() -> np.ndarray:
        return np.concatenate([bare_2d(nets, b, options.tta, device) for b in batches])

    wall, cpu, out = alternate({"bare": bare, "segflow": segflow}, args.images, args.rounds)
    s = summary(wall, cpu)
    return {
        "device": str(device),
        "ratio": s["ratio"],
        "images_per_s": s["median"],
        "rounds_images_per_s": s["rounds"],
        "ratio_per_round_median": s["ratio_per_round_median"],
        "ratio_cpu_time": s["ratio_cpu_time"],
        "images_per_cpu_second": s["per_cpu_second"],
        "agreement": agreement(out["segflow"], out["bare"], "2D"),
        "settings": {
            "model": mspec.name,
            "in_channels": mspec.in_channels,
            "num_classes": mspec.num_classes,
            "image_size": [args.size, args.size],
            "raw_image": f"uint8 values as float32 (N, {args.size}, {args.size}, 1): the network size",
            "preprocess": pspec.to_dict(),
            "folds": args.folds,
            "tta": "horizontal flip" if options.tta else "none",
            "forward_passes_per_image": args.folds * (2 if options.tta else 1),
            "images_per_round": args.images,
            "images_per_predict_call": args.batch,
            "rounds": args.rounds,
            "precision": "fp32",
        },
    }


def run_3d(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from components.inference.options import InferenceOptions
    from components.preprocessing.native import NativeSpec
    from components.training.checkpoint import ModelSpec

    shape, patch = tuple(args.volume), tuple(args.patch)
    raw = synthetic_ct(shape)
    stats = ct_stats(raw)
    pspec = NativeSpec(ndim=3, channels=1, intensity_method="ct", intensity_stats=(stats,), patch_size=patch)
    mspec = ModelSpec(
        "dynunet",
        1,
        CLASSES_3D,
        {"patch_size": list(patch), "spacing": list(CT_SPACING), "base_filters": BASE_FILTERS_3D},
    )
    options = InferenceOptions(tta=True, mode="mean", overlap=0.5, window_batch=4)
    class_names = ["background", "organ", "lesion"]
    model_dir = package(root / "3d", [(mspec, pspec)] * args.folds_3d, class_names, options)
    pyfunc, nets, device = load_both(model_dir)

    volume = raw[None].astype(np.float32)  # (1, Z, Y, X), what `segflow predict` sends
    params = {"spacing": ",".join(str(s) for s in CT_SPACING), "input_dtype": "int16"}

    def segflow() -> np.ndarray:
        return np.asarray(pyfunc.predict(volume, params=params))[0]

    def bare() -> np.ndarray:
        return bare_3d(nets, volume, stats, patch, device)

    from components.windowing import WindowSettings, count_windows

    windows = count_windows(shape, WindowSettings(patch_size=patch))
    wall, cpu, out = alternate({"bare": bare, "segflow": segflow}, 1.0, args.rounds)
    s = summary(wall, cpu, 5)
    voxels = int(np.prod(shape))
    return {
        "device": str(device),
        "ratio": s["ratio"],
        "volumes_per_s": s["median"],
        "voxels_per_s": {k: round(v * voxels) for k, v in s["median"].items()},
        "rounds_volumes_per_s": s["rounds"],
        "ratio_per_round_median": s["ratio_per_round_median"],
        "ratio_cpu_time": s["ratio_cpu_time"],
        "volumes_per_cpu_second": s["per_cpu_second"],
        "agreement": agreement(out["segflow"], out["bare"], "3D"),
        "settings": {
            "model": f"dynunet (base_filters {BASE_FILTERS_3D})",
            "num_classes": CLASSES_3D,
            "volume": list(shape),
            "spacing": list(CT_SPACING),
            "raw_volume": "synthetic CT (bench/inference_3d.py), int16 HU values as float32 (1, Z, Y, X)",
            "patch_size": list(patch),
            "windows": windows,
            "folds": args.folds_3d,
            "mirror_variants": 8,
            "window_passes_per_volume": windows * 8 * args.folds_3d,
            "inference": options.to_json(),
            "bare_sliding_window": "monai.inferers.sliding_window_inference (gaussian, sigma 0.125)",
            "rounds": args.rounds,
            "precision": "fp32",
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=None, help="2D image side (default 512; --quick 256)")
    ap.add_argument("--folds", type=int, default=None, help="2D fold models (default 5; --quick 2)")
    ap.add_argument("--folds-3d", type=int, default=None, help="3D fold models (default 5; --quick 2)")
    ap.add_argument("--batch", type=int, default=2, help="2D images per predict call (default 2)")
    ap.add_argument("--images", type=int, default=None, help="2D images per round (default 2)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds per side (default 4; --quick 3)")
    ap.add_argument(
        "--volume", type=int, nargs=3, default=None, help="3D Z Y X (default 32 96 96; --quick 32 48 96)"
    )
    ap.add_argument(
        "--patch", type=int, nargs=3, default=None, help="3D patch (default 32 64 64; --quick 32 48 48)"
    )
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: steadier on a shared machine)"
    )
    ap.add_argument("--model", default="unet_resnet34", help="2D registered model name")
    ap.add_argument(
        "--only", choices=("2d", "3d", "predict"), default=None, help="run one part (predict: vs scoring)"
    )
    ap.add_argument("--predict-size", type=int, default=None, help="predict vs scoring: image side (600)")
    ap.add_argument("--predict-images", type=int, default=2, help="predict vs scoring: images (default 2)")
    ap.add_argument("--quick", action="store_true", help="256², 2 folds, small volume")
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/infer_throughput-...)"
    )
    args = ap.parse_args()
    args.size = args.size or (256 if args.quick else 512)
    args.rounds = args.rounds or (3 if args.quick else 4)
    args.folds = args.folds or (2 if args.quick else 5)
    args.folds_3d = args.folds_3d or (2 if args.quick else 5)
    args.images = args.images or 2
    args.volume = args.volume or ([32, 48, 96] if args.quick else [32, 96, 96])
    args.patch = args.patch or ([32, 48, 48] if args.quick else [32, 64, 64])
    args.predict_size = args.predict_size or (256 if args.quick else 600)
    import mlflow
    import monai
    import segmentation_models_pytorch as smp

    from components.training.device import resolve_device

    torch.set_num_threads(args.threads)
    os.environ["SEGFLOW_THREADS"] = str(args.threads)  # what the predictor applies (threads rule)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    row: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d2 = run_2d(args, Path(tmp)) if args.only in (None, "2d") else None
        d3 = run_3d(args, Path(tmp)) if args.only in (None, "3d") else None
        from bench.predict_scoring import run_predict

        dp = run_predict(args, Path(tmp)) if args.only in (None, "predict") else None
    used = [d["device"] for d in (d2, d3) if d] or [str(resolve_device("auto"))]
    row["ratio"] = d2["ratio"] if d2 else None
    row["ratio_3d"] = d3["ratio"] if d3 else None
    row["ratio_predict_vs_scoring"] = dp["ratio"] if dp else None
    row["ratio_is"] = (
        "segflow pyfunc predict images/s / bare ensemble loop images/s (2D; ratio_3d: volumes/s), "
        "median over alternating rounds"
    )
    if d2:
        row["images_per_s"] = d2["images_per_s"]
        row["agreement"] = d2["agreement"]
    if d3:
        row["volumes_per_s"] = d3["volumes_per_s"]
        row["agreement_3d"] = d3["agreement"]
    result = {
        "benchmark": "infer_throughput: packaged pyfunc fold ensemble vs a bare ensemble loop, same process",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {**machine_info(), "load_average_1min_at_start": load},
        "device": device_info(torch.device(used[0] if len(set(used)) == 1 else "cpu")),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "mlflow": mlflow.__version__,
            "segmentation_models_pytorch": smp.__version__,
            "monai": monai.__version__,
            "numpy": np.__version__,
        },
        **row,
        "2d": d2,
        "3d": d3,
        "predict_vs_scoring": dp,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    out = args.out or result_path("infer_throughput", args.quick, torch.device(used[0]).type)
    write_result(out, result)
    print(json.dumps({k: result[k] for k in row}, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
