"""Wall time of the train stage's folds one after another vs on a 2-worker Dask cluster.

A throw-away git + DVC project gets segflow's pipeline files and the default dataset (``segflow
generate``: 60 phantoms at 96²), preprocessed to 64² (``dvc repro preprocess``); a local Prefect
server and an MLflow SQLite store stand in for ``make run``'s services. Then ``python -m
flows.train`` runs twice on the same prepared data, 5 folds of params.yaml's model
(``unet_resnet18``) for 3 epochs:

- ``sequential``: the folds one after another in the stage process, torch on 2 threads
  (``OMP_NUM_THREADS=2``, every core);
- ``dask``: ``train.executor: dask`` without ``SEGFLOW_DASK_ADDRESS``: a LocalCluster of 2
  single-threaded worker processes (one per core), each fold one thread.

Per run: ``process_wall_s`` (the stage process, imports and the cluster start included) and
``flow_body_s`` (the flow body: runs, folds, publishing). ``ratio`` (top level) = sequential
process wall / dask process wall (above 1: Dask is faster). ``same_history`` says whether the
folds' history.csv agree (they need not here: 2 threads vs 1 change the float reduction order).

``--quick``: 48², a small U-Net, 1 epoch (still 5 folds), about two minutes here.

Usage::

    python bench/dask_folds.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_info, result_path, write_result  # noqa: E402
from bench.project import BIN, make_project, prefect_server, project_env, run_cmd, set_params  # noqa: E402

FULL: dict[str, object] = {
    "preprocess.image_size": [64, 64],
    "preprocess.splits.n_folds": 5,
    "train.epochs": 3,
    "train.device": "cpu",
    "tracking.experiment": "dask-folds",
}
QUICK: dict[str, object] = {
    **FULL,
    "preprocess.image_size": [48, 48],
    "train.epochs": 1,
    "train.model": {"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
}
RUNS = {"sequential": {"OMP_NUM_THREADS": "2"}, "dask": {"OMP_NUM_THREADS": "1"}}


def _project(root: Path, env: dict[str, str], overrides: dict[str, object]) -> None:
    make_project(root, env, overrides)
    run_cmd([str(BIN / "dvc"), "repro", "preprocess"], root, env)


def _flow_body(timing: Path) -> float:
    marks = {}
    for line in timing.read_text().splitlines():
        row = json.loads(line)
        marks[row["event"]] = row["t"]
    return float(marks["flow_ended"] - marks["flow_running"])


def _train(root: Path, executor: str, env: dict[str, str], timing: Path) -> dict[str, Any]:
    shutil.rmtree(root / "models/folds", ignore_errors=True)
    set_params(root, {"train.executor": executor})
    timing.unlink(missing_ok=True)
    run_env = {**env, **RUNS[executor], "SEGFLOW_STAGE_TIMING": str(timing)}
    wall = run_cmd([str(BIN / "python"), "-m", "flows.train"], root, run_env)
    histories = {p.parent.name: p.read_text() for p in sorted((root / "models/folds").glob("*/history.csv"))}
    return {
        "process_wall_s": round(wall, 2),
        "flow_body_s": round(_flow_body(timing), 2),
        "env": RUNS[executor],
        "_histories": histories,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="48², small U-Net, 1 epoch (5 folds)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/...)")
    args = ap.parse_args()
    overrides = QUICK if args.quick else FULL
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        timing = Path(tmp) / "timing.jsonl"
        env = project_env(Path(tmp), root)
        env.pop("SEGFLOW_DASK_ADDRESS", None)  # the LocalCluster of the stage's own
        with prefect_server(Path(tmp), env) as api:
            env["PREFECT_API_URL"] = api
            _project(root, env, overrides)
            runs = {name: _train(root, name, env, timing) for name in RUNS}
    same = runs["sequential"].pop("_histories") == runs["dask"].pop("_histories")
    seq, dsk = runs["sequential"]["process_wall_s"], runs["dask"]["process_wall_s"]
    result = {
        "benchmark": "dask_folds: 5 folds of the train stage, sequential vs a 2-worker Dask LocalCluster",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "ratio": round(seq / dsk, 3),
        "ratio_is": "sequential process wall / dask process wall (train stage; > 1: dask faster)",
        "runs": runs,
        "flow_body_ratio": round(runs["sequential"]["flow_body_s"] / runs["dask"]["flow_body_s"], 3),
        "same_history": same,
        "settings": {"overrides": overrides, "dataset": "segflow generate (60 phantoms, 96²)", "workers": 2},
        "machine": {**machine_info(), "load_average_1min_at_start": load},
        "versions": {"python": platform.python_version()},
        "device": {"type": "cpu"},
    }
    out = args.out or result_path("dask_folds", args.quick, "cpu")
    write_result(out, result)
    print(json.dumps(runs, indent=1))
    print(f"sequential {seq:.1f} s, dask {dsk:.1f} s, ratio {result['ratio']} -> {out}")


if __name__ == "__main__":
    main()
