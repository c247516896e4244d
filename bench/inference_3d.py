"""3D inference cost: seconds per volume and peak memory, one model vs a 5-fold x mirror-TTA ensemble.

Inputs (``--inputs``, both by default):
  hippocampus  a real MSD Task04 volume (the first file of ``--hippocampus-dir``, ~35 x 51 x 35 at
               1 mm, 3 classes); dynunet patch [32, 48, 32], base_filters 8, z-score intensities
               (what ``bench/datasets/hippocampus_3d.yaml`` trains)
  ct512        a synthetic CT-like volume, (Z, Y, X) = (300, 512, 512) int16 HU, spacing
               (2.5, 0.8, 0.8), 2 classes, generated deterministically (body ellipse, organs,
               spine, lungs, lesions, noise); dynunet patch [64, 128, 128] at that spacing,
               base_filters 8, ``ct`` intensities from the volume's own foreground statistics,
               no resampling (target_spacing None)

Configurations, each in a fresh subprocess of this script (``--one INPUT CONFIG``):
  single    one model, no TTA
  ensemble  ``--folds`` models (default 5; same architecture, different random init: timing
            needs no trained weights) with mirroring TTA over all 3 axes (8 variants),
            ``InferenceOptions(tta=True, mode="mean")``

Measured per configuration, through ``NativePredictor.predict_proba`` (preprocessing, sliding
windows, stitching, restoring to the input grid): wall seconds for one volume (``perf_counter``,
after a warm-up call on a patch-sized crop), the process's peak RSS (``getrusage`` ``ru_maxrss``)
and its increase over the resident set just before the prediction, the number of windows
(``count_windows``), and on CUDA the peak GPU memory. The RSS increase is set against
(K + 2) x one float32 volume + the measured peak of one forward pass of a window batch (the
memory the project promises for the stitched prediction). The ensemble/single ratios come from
the same run. A configuration whose estimated time (per window pass of the single-model run x
windows x variants x models; for the single model itself, a timed call on a patch-sized crop,
which includes per-call overhead and so overestimates small volumes) exceeds ``--max-seconds``
is reported as skipped with its estimate, not run.

Writes ``bench/results/inference_3d-<hostname>-<device>.json`` (``--quick``: ``inference_3d-quick-...``)
and prints a table. Usage::

    python bench/inference_3d.py [--device auto|cpu|cuda] [--threads N] [--max-seconds 1800]
    python bench/inference_3d.py --quick --threads 1      # smoke run: ct 64 x 192 x 192, 1 fold
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from components.preprocessing.native import NativeSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_model, machine_info, reset_hwm, usable_cores, vm_status

INPUTS: tuple[str, ...] = ("hippocampus", "ct512")
CONFIGS: tuple[str, ...] = ("single", "ensemble")
HIPPOCAMPUS_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "msd_hippocampus" / "images"
CT_SHAPE, CT_SHAPE_QUICK = (300, 512, 512), (64, 192, 192)
CT_SPACING = (2.5, 0.8, 0.8)
BASE_FILTERS = 8
MIRROR_VARIANTS = 8  # every subset of the 3 spatial axes
MARKER = "INFERENCE_3D_RESULT "  # prefixes the child's one JSON line on stdout
MB = 1024.0**2


@dataclass(frozen=True)
class Case:
    """One benchmark input and the network that predicts it."""

    name: str
    image: np.ndarray  # (Z, Y, X) raw, as read / generated
    spacing: tuple[float, float, float]
    num_classes: int
    patch: tuple[int, int, int]
    spec: NativeSpec
    source: str


# ----------------------------------------------------------------------------- inputs


def synthetic_ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """CT-like int16 HU volume, built slice by slice (never a float copy of the whole volume).

    Air outside an elliptic body (-1000), subcutaneous fat (-100), soft tissue (40), a liver-like
    organ (60) with hypodense lesions (10), two kidneys (150), a spine (700), lungs (-850) in the
    upper third, Gaussian noise (sd 25 HU).
    """
    z, h, w = shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy = (yy - h / 2) / (h / 2)  # [-1, 1]
    xx = (xx - w / 2) / (w / 2)
    lesions = [
        (rng.uniform(0.35, 0.65), rng.uniform(-0.2, 0.15), rng.uniform(-0.55, -0.15)) for _ in range(4)
    ]
    vol = np.empty(shape, np.int16)
    for k in range(z):
        t = k / max(z - 1, 1)  # 0 = feet end, 1 = head end
        body_a, body_b = 0.86 - 0.08 * abs(t - 0.5), 0.62 - 0.06 * abs(t - 0.5)
        r_body = (xx / body_a) ** 2 + (yy / body_b) ** 2
        sl = np.full((h, w), -1000.0, np.float32)
        sl[r_body < 1.0] = -100.0
        sl[(xx / (body_a - 0.05)) ** 2 + (yy / (body_b - 0.05)) ** 2 < 1.0] = 40.0
        if 0.3 < t < 0.7:  # liver-like organ with lesions
            sl[((xx + 0.35) / 0.35) ** 2 + ((yy + 0.05) / 0.3) ** 2 < 1.0 - 4 * (t - 0.5) ** 2] = 60.0
            for lz, ly, lx in lesions:
                r = 0.06 * max(0.0, 1.0 - ((t - lz) / 0.06) ** 2)
                if r > 0:
                    sl[(xx - lx) ** 2 + (yy - ly) ** 2 < r * r] = 10.0
        if 0.25 < t < 0.5:  # kidneys
            for cx in (-0.3, 0.3):
                sl[((xx - cx) / 0.1) ** 2 + ((yy - 0.3) / 0.14) ** 2 < 1.0] = 150.0
        if t > 0.62:  # lungs
            for cx in (-0.38, 0.38):
                sl[((xx - cx) / 0.3) ** 2 + ((yy + 0.05) / 0.4) ** 2 < min(1.0, (t - 0.62) / 0.1)] = -850.0
        sl[(xx / 0.08) ** 2 + ((yy - 0.45) / 0.08) ** 2 < 1.0] = 700.0  # spine
        sl += rng.normal(0.0, 25.0, size=(h, w)).astype(np.float32)
        vol[k] = np.clip(sl, -1024, 3071).astype(np.int16)
    return vol


def ct_stats(vol: np.ndarray) -> dict[str, float]:
    """Foreground (> -500 HU) 0.5/99.5 percentiles, mean and sd from a strided voxel sample."""
    sample = vol[::2, ::4, ::4]
    fg = sample[sample > -500].astype(np.float64)
    return {
        "p0_5": float(np.percentile(fg, 0.5)),
        "p99_5": float(np.percentile(fg, 99.5)),
        "mean": float(fg.mean()),
        "sd": float(fg.std()),
    }


def hippocampus_file(folder: Path) -> Path:
    """The first volume of the dataset folder (sorted by name)."""
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".nii.gz", ".nii")))
    if not files:
        raise SystemExit(f"no NIfTI volumes in {folder} (--hippocampus-dir)")
    return files[0]


def make_case(name: str, quick: bool, hippocampus_dir: Path) -> Case:
    """Build the input volume and its native spec."""
    from components.io.volumes import read_volume
    from components.preprocessing.native import NativeSpec

    if name == "hippocampus":
        path = hippocampus_file(hippocampus_dir)
        image, geom = read_volume(path)
        sp = tuple(float(s) for s in geom.spacing)
        patch = (32, 48, 32)
        spec = NativeSpec(
            ndim=3,
            channels=1,
            intensity_method="zscore",
            target_spacing=(1.0, 1.0, 1.0),  # the dataset's median spacing, as training resolves it
            patch_size=patch,
        )
        return Case(name, image, (sp[0], sp[1], sp[2]), 3, patch, spec, str(path))
    if name == "ct512":
        shape = CT_SHAPE_QUICK if quick else CT_SHAPE
        image = synthetic_ct(shape)
        patch = (64, 128, 128)
        spec = NativeSpec(
            ndim=3,
            channels=1,
            intensity_method="ct",
            target_spacing=None,
            intensity_stats=(ct_stats(image),),
            patch_size=patch,
        )
        return Case(name, image, CT_SPACING, 2, patch, spec, f"synthetic CT {shape}, seed 0")
    raise SystemExit(f"unknown input {name!r}; choose from {list(INPUTS)}")


# ----------------------------------------------------------------------------- memory


def maxrss_mb() -> float:
    """``ru_maxrss`` of this process in MiB (Linux reports KiB, macOS bytes)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / MB if sys.platform == "darwin" else r / 1024.0


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one (input, config) in this process (``--one``); returns the measurement."""
    import torch

    from components.inference.native_predictor import NativePredictor
    from components.inference.options import InferenceOptions
    from components.models import build_model
    from components.preprocessing.resample import target_shape
    from components.windowing import count_windows

    input_name, config = args.one
    torch.set_num_threads(args.threads)
    os.environ["SEGFLOW_THREADS"] = str(args.threads)  # what the predictor applies (threads rule)
    device = torch.device(args.device)
    t_setup = time.perf_counter()
    case = make_case(input_name, args.quick, args.hippocampus_dir)
    n_models = 1 if config == "single" else args.folds
    options = InferenceOptions(tta=config == "ensemble", mode="mean", window_batch=args.window_batch)
    models: list[torch.nn.Module] = []
    for fold in range(n_models):
        torch.manual_seed(fold)
        models.append(
            build_model(
                "dynunet",
                1,
                case.num_classes,
                patch_size=list(case.patch),
                spacing=list(case.spec.target_spacing or case.spacing),
                base_filters=BASE_FILTERS,
            )
        )
    predictor = NativePredictor(models, case.spec, options, device)
    variants = MIRROR_VARIANTS if options.tta else 1
    target = case.spec.target_spacing

    def network_grid(spatial: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(target_shape(spatial, case.spacing, target)) if target is not None else spatial

    shape = tuple(int(s) for s in case.image.shape)
    grid = network_grid(shape)
    windows = count_windows(grid, predictor.window)
    passes = windows * variants * n_models

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # warm-up on a patch-sized crop (one window per model and variant), then a timed probe of the same
    crop = np.ascontiguousarray(case.image[tuple(slice(0, p) for p in case.patch)])
    crop_windows = count_windows(network_grid(tuple(crop.shape)), predictor.window)
    predictor.predict_proba(crop, case.spacing)
    sync()
    t0 = time.perf_counter()
    predictor.predict_proba(crop, case.spacing)
    sync()
    probe_per_pass = (time.perf_counter() - t0) / (crop_windows * variants * n_models)
    setup_s = time.perf_counter() - t_setup

    row: dict[str, Any] = {
        "input": input_name,
        "config": config,
        "source": case.source,
        "shape": list(shape),
        "spacing": list(case.spacing),
        "network_grid": list(grid),
        "num_classes": case.num_classes,
        "patch_size": list(case.patch),
        "models": n_models,
        "mirror_variants": variants,
        "windows": windows,
        "window_passes": passes,
        "options": options.to_json(),
        "probe_seconds_per_window_pass": probe_per_pass,
        "setup_seconds": setup_s,
    }
    estimate = probe_per_pass * passes
    if config == "single" and estimate > args.max_seconds:
        row.update(status="skipped", estimated_seconds=estimate, estimate_from="one-window probe")
        return row

    gc.collect()
    rss_before, maxrss_before = vm_status("VmRSS"), maxrss_mb()
    hwm_reset = reset_hwm()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    probs = predictor.predict_proba(case.image, case.spacing)
    sync()
    seconds = time.perf_counter() - t0
    maxrss_after, hwm_after = maxrss_mb(), vm_status("VmHWM")

    if probs.shape != (case.num_classes, *shape) or probs.dtype != np.float32:
        raise RuntimeError(f"unexpected output {probs.shape} {probs.dtype}")
    sums = probs[:, ::8, ::8, ::8].sum(0)
    if not np.allclose(sums, 1.0, atol=1e-3):
        raise RuntimeError("probabilities do not sum to 1")
    del probs

    gpu: dict[str, float] = {}
    if device.type == "cuda":
        gpu["gpu_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / MB
        gpu["gpu_peak_reserved_mb"] = torch.cuda.max_memory_reserved(device) / MB

    # what one forward pass of a window batch costs on its own (activations), measured the same way
    gc.collect()
    fwd_before = vm_status("VmRSS")
    fwd_reset = reset_hwm()
    with torch.no_grad():
        batch = torch.zeros(args.window_batch, 1, *case.patch, device=device)
        predictor.models[0](batch).float().softmax(1)
        sync()
    fwd_hwm = vm_status("VmHWM")
    forward_mb = (
        fwd_hwm - fwd_before if fwd_reset and fwd_hwm is not None and fwd_before is not None else None
    )
    del batch

    vol_mb = math.prod(grid) * 4 / MB
    tensors_mb = args.window_batch * (1 + case.num_classes) * math.prod(case.patch) * 4 / MB
    bound_mb = (case.num_classes + 2) * vol_mb + (forward_mb if forward_mb is not None else tensors_mb)
    base = rss_before if rss_before is not None else maxrss_before
    increase = maxrss_after - base
    row.update(
        status="measured",
        seconds=seconds,
        seconds_per_window_pass=seconds / passes,
        rss_before_mb=rss_before,
        maxrss_before_mb=maxrss_before,
        maxrss_after_mb=maxrss_after,
        peak_rss_increase_mb=increase,
        # Linux: clear_refs also resets the high-water mark getrusage reads, so ru_maxrss after is the
        # prediction's own peak; without the reset it is exact only if the prediction raised it
        hwm_reset=hwm_reset,
        peak_exact=hwm_reset or maxrss_after > maxrss_before,
        hwm_increase_mb=(hwm_after - base) if hwm_reset and hwm_after is not None else None,
        volume_float32_mb=vol_mb,
        raw_volume_mb=case.image.nbytes / MB,
        window_batch_forward_mb=forward_mb,
        promised_bound_mb=bound_mb,
        promised_bound_formula=(
            "(K + 2) x grid voxels x 4 B + window_batch_forward_mb (peak RSS increase of one forward of "
            "window_batch windows; window input + output tensors if not measurable)"
        ),
        increase_over_bound=increase / bound_mb,
        increase_beyond_forward_in_volumes=(
            (increase - forward_mb) / vol_mb if forward_mb is not None and vol_mb > 0 else None
        ),
        **gpu,
    )
    return row


# ----------------------------------------------------------------------------- driver


def ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024.0**2, 1)
    except OSError:
        pass
    return None


def child(args: argparse.Namespace, input_name: str, config: str) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter (its own peak RSS); failures are recorded."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one",
        input_name,
        config,
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        "--folds",
        str(args.folds),
        "--window-batch",
        str(args.window_batch),
        "--max-seconds",
        str(args.max_seconds),
        "--hippocampus-dir",
        str(args.hippocampus_dir),
    ]
    if args.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
    return {
        "input": input_name,
        "config": config,
        "status": "failed",
        "returncode": proc.returncode,
        "log": tail,
    }


def fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'input':12s} {'config':9s} {'models x var':>12s} {'windows':>7s} {'seconds':>9s} "
        f"{'s/pass':>7s} {'peak dRSS MB':>12s} {'fwd MB':>7s} {'vol MB':>7s} {'bound MB':>9s} {'x bound':>7s}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        mv = f"{r.get('models', '?')} x {r.get('mirror_variants', '?')}"
        if r["status"] == "measured":
            out.append(
                f"{r['input']:12s} {r['config']:9s} {mv:>12s} {r['windows']:7d} {r['seconds']:9.2f} "
                f"{r['seconds_per_window_pass']:7.3f} {r['peak_rss_increase_mb']:12.1f} "
                f"{fmt(r['window_batch_forward_mb'], '7.1f')} {r['volume_float32_mb']:7.1f} "
                f"{r['promised_bound_mb']:9.1f} {r['increase_over_bound']:7.2f}"
            )
        elif r["status"] == "skipped":
            out.append(
                f"{r['input']:12s} {r['config']:9s} {mv:>12s} {fmt(r.get('windows'), '7d')} "
                f"skipped: estimated {r['estimated_seconds']:.0f} s ({r['estimate_from']})"
            )
        elif r["status"] == "not_run":
            out.append(f"{r['input']:12s} {r['config']:9s} not run: {r['reason']}")
        else:
            last = (r.get("log") or [""])[-1]
            out.append(f"{r['input']:12s} {r['config']:9s} FAILED rc={r.get('returncode')}: {last}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when available"
    )
    ap.add_argument(
        "--threads", type=int, default=usable_cores(), help="torch threads (default: all usable cores)"
    )
    ap.add_argument("--folds", type=int, default=None, help="models in the ensemble (default 5; --quick: 1)")
    ap.add_argument("--window-batch", type=int, default=4, help="windows per forward pass (InferenceOptions)")
    ap.add_argument(
        "--max-seconds",
        type=float,
        default=1800.0,
        help="skip (and report the estimate of) a configuration estimated to take longer (default 1800)",
    )
    ap.add_argument(
        "--inputs", default=",".join(INPUTS), help=f"comma-separated subset of {','.join(INPUTS)}"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: ct volume 64 x 192 x 192, 1 fold")
    ap.add_argument("--hippocampus-dir", type=Path, default=HIPPOCAMPUS_DIR, help="MSD Task04 images folder")
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default bench/results/inference_3d-...)"
    )
    ap.add_argument("--one", nargs=2, metavar=("INPUT", "CONFIG"), help="internal: measure one configuration")
    args = ap.parse_args()
    if args.folds is None:
        args.folds = 1 if args.quick else 5
    if args.threads < 1 or args.folds < 1 or args.window_batch < 1:
        ap.error("--threads, --folds and --window-batch must be >= 1")

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: CUDA is not available")

    if args.one is not None:
        if args.one[0] not in INPUTS or args.one[1] not in CONFIGS:
            ap.error(f"--one INPUT CONFIG: INPUT in {list(INPUTS)}, CONFIG in {list(CONFIGS)}")
        print(MARKER + json.dumps(run_one(args)), flush=True)
        return

    inputs = [s.strip() for s in args.inputs.split(",") if s.strip()]
    if bad := [s for s in inputs if s not in INPUTS]:
        ap.error(f"--inputs: unknown {bad}; choose from {list(INPUTS)}")
    import monai

    rows: list[dict[str, Any]] = []
    comparisons: list[dict[str, Any]] = []
    for name in inputs:
        print(f"[{name}] single ...", flush=True)
        single = child(args, name, "single")
        rows.append(single)
        ens_passes = single.get("windows", 0) * MIRROR_VARIANTS * args.folds
        if single["status"] == "measured":
            per_pass, source = single["seconds_per_window_pass"], "single-model run"
        else:
            per_pass, source = single.get("probe_seconds_per_window_pass"), "one-window probe"
        estimate = per_pass * ens_passes if per_pass is not None else None
        if single["status"] == "failed":
            reason = "the single-model run failed"
            ens = {"input": name, "config": "ensemble", "status": "not_run", "reason": reason}
        elif estimate is not None and estimate > args.max_seconds:
            print(f"[{name}] ensemble skipped: estimated {estimate:.0f} s", flush=True)
            ens = {
                "input": name,
                "config": "ensemble",
                "status": "skipped",
                "models": args.folds,
                "mirror_variants": MIRROR_VARIANTS,
                "windows": single.get("windows"),
                "window_passes": ens_passes,
                "estimated_seconds": estimate,
                "estimate_from": f"{source}: {per_pass:.3f} s/pass x {ens_passes} passes",
            }
        else:
            print(f"[{name}] ensemble ...", flush=True)
            ens = child(args, name, "ensemble")
        rows.append(ens)
        both = single["status"] == ens["status"] == "measured"
        comparisons.append(
            {
                "input": name,
                "seconds_ratio": ens["seconds"] / single["seconds"] if both else None,
                "expected_seconds_ratio": args.folds * MIRROR_VARIANTS,
                "peak_rss_increase_ratio": (
                    ens["peak_rss_increase_mb"] / single["peak_rss_increase_mb"]
                    if both and single["peak_rss_increase_mb"] > 0
                    else None
                ),
                "estimated_seconds_ensemble": None if both else ens.get("estimated_seconds"),
            }
        )

    dev_name = torch.cuda.get_device_name(0) if args.device == "cuda" else cpu_model()
    result: dict[str, Any] = {
        "benchmark": "inference_3d: NativePredictor.predict_proba, one model vs fold ensemble x mirror TTA",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {**machine_info(), "ram_gb": ram_gb()},
        "device": {"type": args.device, "name": dev_name, "torch_threads": args.threads},
        "versions": {"torch": torch.__version__, "monai": monai.__version__, "numpy": np.__version__},
        "settings": {
            "folds": args.folds,
            "mirror_variants_tta": MIRROR_VARIANTS,
            "window_batch": args.window_batch,
            "max_seconds": args.max_seconds,
            "base_filters": BASE_FILTERS,
            "ct_shape": list(CT_SHAPE_QUICK if args.quick else CT_SHAPE),
        },
        "timing": (
            "wall seconds (perf_counter) of one predict_proba call on the whole volume, after a warm-up "
            "call on a patch-sized crop; each configuration in a fresh subprocess"
        ),
        "memory": (
            "peak_rss_increase_mb = ru_maxrss after the prediction - VmRSS just before it (the raw volume "
            "and the models are resident before); hwm_increase_mb is the same from VmHWM reset via "
            "/proc/self/clear_refs just before the prediction (null where not permitted)"
        ),
        "estimated_or_skipped": [f"{r['input']}/{r['config']}" for r in rows if r["status"] == "skipped"],
        "failed": [f"{r['input']}/{r['config']}" for r in rows if r["status"] == "failed"],
        "results": rows,
        "comparisons": comparisons,
    }
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())
    stem = f"inference_3d-{'quick-' if args.quick else ''}{host}-{args.device}.json"
    out = args.out or Path(__file__).resolve().parent / "results" / stem
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(f"device {args.device} ({dev_name}), {args.threads} torch thread(s), torch {torch.__version__}")
    print(table(rows))
    print(
        "peak dRSS: peak RSS during predict_proba over RSS just before; fwd: one forward of a window batch; "
        "vol: one float32 volume; bound: (K + 2) x vol + fwd"
    )
    for c in comparisons:
        if c["seconds_ratio"] is not None:
            mem = fmt(c["peak_rss_increase_ratio"], ".2f")
            print(
                f"{c['input']}: ensemble / single = {c['seconds_ratio']:.1f}x time "
                f"(passes x{c['expected_seconds_ratio']}), {mem}x peak RSS increase"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
