"""Predict and a training step, quiet and beside one busy neighbour process per core, in one run.

What a user of a shared machine sees (a lab server, a CI runner with two jobs, a pod on a busy
node): the same work measured on a quiet machine and with a neighbour that keeps every core busy
(one ``while True: pass`` process per usable core), for two settings, each in its own fresh process
(OpenMP reads its wait policy when torch loads it):

- ``defaults``: ``SEGFLOW_THREADS=off``: torch's own thread count (the host's cores) and OpenMP's
  default wait policy (threads spin while they wait): segflow before components/core/threads.py;
- ``segflow``: the threads rule and the passive wait policy, as every segflow entry point sets them.

Work (as users run it):

- predict: a registered-model style fold ensemble (``--folds`` x horizontal-flip TTA, U-Net
  ResNet-18 at ``--size``², 4 classes, random weights), packaged as the ensemble stage packages it
  and loaded the way a plain MLflow client loads it, ``mlflow.pyfunc.load_model(folder)`` in a
  process that has not imported torch yet; one ``predict`` of ``--images`` raw 8-bit images;
- train: ``--steps`` training steps (forward, Dice + cross-entropy, backward, AdamW step) of
  segflow's U-Net ResNet-18 (its model and loss builders) on a batch of 8 at ``--size``², the
  threads applied as the train stage's fold setup applies them.

Rounds alternate quiet and busy (the neighbours start and stop around each busy measurement),
and each side's figure is the median over ``--rounds`` rounds. ``slowdown`` = busy seconds ÷ quiet
seconds (goal: <= 2); ``quiet_vs_defaults`` = the defaults' quiet seconds ÷ segflow's (goal:
>= 0.95: the rule must not cost speed on a quiet machine). The load average is recorded before
each phase: other work on a shared machine counts as a neighbour too.

Usage::

    python bench/contention.py [--quick] [--rounds 5] [--folds 5] [--size 96] [--images 4] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = {"defaults": {"SEGFLOW_THREADS": "off"}, "segflow": {}}
THREAD_ENV = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SEGFLOW_THREADS", "SEGFLOW_PROCESSES")
BUSY_LOOP = "while True:\n    pass\n"
CLASSES = ["background", "organ_a", "organ_b", "lesion"]


def load1() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


@contextmanager
def neighbours(n: int) -> Iterator[None]:
    """``n`` busy processes (one per core) for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]
    try:
        time.sleep(0.3)  # let the scheduler see them as running
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- child: one mode


def child(args: argparse.Namespace) -> None:
    """Measure both kinds of work quiet and busy in this fresh process; print one JSON line."""
    import mlflow.pyfunc  # a plain MLflow client: torch is not imported yet

    if "torch" in sys.modules:
        raise SystemExit("contention child: torch was imported before the model loaded")
    model = mlflow.pyfunc.load_model(str(args.workdir / "model"))
    import numpy as np
    import torch

    from components.core.threads import apply_threads, usable_cores
    from components.losses import build_loss
    from components.models import build_model

    predict_threads = torch.get_num_threads()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 1)).astype(np.float32)
    apply_threads(loader_workers=0)  # as the train stage's fold setup does (a no-op when off)
    torch.manual_seed(0)
    net = build_model("unet_resnet18", 1, len(CLASSES), encoder_weights=None).train()
    loss_fn = build_loss([{"name": "dice"}, {"name": "ce"}], len(CLASSES))
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randn(8, 1, args.size, args.size)
    y = torch.randint(0, len(CLASSES), (8, args.size, args.size))

    def step() -> None:
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def predict() -> None:
        model.predict(images, params={"input_dtype": "uint8"})

    def train() -> None:
        for _ in range(args.steps):
            step()

    work = {"predict": predict, "train": train}
    for fn in work.values():
        fn()  # warm-up
    cores = usable_cores()
    seconds: dict[str, dict[str, list[float]]] = {w: {"quiet": [], "busy": []} for w in work}
    loads: dict[str, list[float]] = {"quiet": [], "busy": []}
    for r in range(args.rounds):
        print(f"{args.mode}: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        loads["quiet"].append(load1())
        for name, fn in work.items():
            seconds[name]["quiet"].append(timed(fn))
        with neighbours(cores):
            loads["busy"].append(load1())
            for name, fn in work.items():
                seconds[name]["busy"].append(timed(fn))
    print(
        json.dumps(
            {
                "mode": args.mode,
                "torch_threads": {"predict": predict_threads, "train": torch.get_num_threads()},
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "OpenMP default"),
                "neighbours": cores,
                "seconds": seconds,
                "load_average_1min": loads,
            }
        )
    )


# ----------------------------------------------------------------------------- parent


def package_model(workdir: Path, folds: int, size: int) -> None:
    """The fold ensemble as the ensemble stage packages it (random weights, seed = fold): the
    params.yaml defaults of a 2D run (``resize`` to the network size, ``minmax``, 1 channel)."""
    from bench.paired import package
    from components.inference.options import InferenceOptions
    from components.preprocessing.pipeline import PreprocessSpec
    from components.training.checkpoint import ModelSpec

    pspec = PreprocessSpec((size, size), "resize", "minmax", {}, 1)
    specs = [(ModelSpec("unet_resnet18", 1, len(CLASSES), {}), pspec)] * folds
    package(workdir, specs, CLASSES, InferenceOptions(tta=True)).rename(workdir / "model")


def run_mode(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One mode in a fresh process (its environment cleared of thread settings, then the mode's)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV} | MODES[mode]
    cmd = [sys.executable, __file__, "--child", mode, "--workdir", str(workdir)]
    cmd += ["--rounds", str(args.rounds), "--size", str(args.size), "--images", str(args.images)]
    cmd += ["--steps", str(args.steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode}: child failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def summarise(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Medians, slowdowns (busy ÷ quiet) and segflow's quiet speed against the defaults'."""
    out: dict[str, Any] = {}
    for work in ("predict", "train"):
        med = {
            mode: {phase: statistics.median(r["seconds"][work][phase]) for phase in ("quiet", "busy")}
            for mode, r in rows.items()
        }
        out[work] = {
            "median_seconds": {m: {k: round(v, 3) for k, v in d.items()} for m, d in med.items()},
            "slowdown": {m: round(d["busy"] / d["quiet"], 2) for m, d in med.items()},
            "quiet_vs_defaults": round(med["defaults"]["quiet"] / med["segflow"]["quiet"], 3),
            "busy_vs_defaults": round(med["defaults"]["busy"] / med["segflow"]["busy"], 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 rounds, 2 folds, 2 steps")
    ap.add_argument("--rounds", type=int, default=None, help="quiet/busy rounds per mode (default 5)")
    ap.add_argument("--folds", type=int, default=None, help="fold models of the ensemble (default 5)")
    ap.add_argument("--size", type=int, default=96, help="image side (default 96)")
    ap.add_argument("--images", type=int, default=4, help="images per predict (default 4)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per measurement (default 3)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/contention-...)")
    ap.add_argument("--child", choices=sorted(MODES), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.folds = args.folds or (2 if args.quick else 5)
    args.steps = args.steps or (2 if args.quick else 3)
    if args.child:
        args.mode = args.child
        child(args)
        return

    import mlflow
    import torch

    from bench.machine import device_info, machine_info, result_path, write_result

    t0, load_start = time.perf_counter(), load1()
    with tempfile.TemporaryDirectory() as tmp:
        package_model(Path(tmp), args.folds, args.size)
        rows = {mode: run_mode(mode, args, Path(tmp)) for mode in MODES}
    summary = summarise(rows)
    result = {
        "benchmark": "contention: predict and a training step, quiet and with one busy process per core",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {**machine_info(), "load_average_1min_at_start": load_start},
        "device": device_info(torch.device("cpu")),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "mlflow": mlflow.__version__,
        },
        "goal": "slowdown (busy / quiet seconds) <= 2 for segflow; quiet_vs_defaults >= 0.95",
        "predict_slowdown": summary["predict"]["slowdown"]["segflow"],
        "train_slowdown": summary["train"]["slowdown"]["segflow"],
        **summary,
        "modes": rows,
        "settings": {
            "modes": {
                "defaults": "SEGFLOW_THREADS=off (torch and OpenMP defaults)",
                "segflow": "the threads rule",
            },
            "predict": f"pyfunc fold ensemble: {args.folds} x unet_resnet18 x flip TTA, {args.images} images "
            f"of {args.size}² per predict (plain MLflow client load)",
            "train": f"{args.steps} steps (forward, dice+ce, backward, AdamW) of unet_resnet18, batch 8, "
            f"{args.size}²",
            "rounds": args.rounds,
            "neighbour": "one `while True: pass` process per usable core",
        },
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    out = args.out or result_path("contention", args.quick, "cpu")
    write_result(out, result)
    print(json.dumps({k: result[k] for k in ("predict", "train")}, indent=1))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
