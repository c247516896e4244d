"""What each pipeline stage costs around its work: process start, imports, Prefect's flow run.

A throw-away git + DVC project gets segflow's pipeline files and the default dataset (``segflow
generate``: 60 phantoms at 96²); a local Prefect server and an MLflow SQLite store stand in for
``make run``'s services. ``dvc repro`` then runs the whole pipeline with ``SEGFLOW_STAGE_TIMING``
set, so each stage process notes (flows/runtime/stage.py) when it started, when its imports were done, when
its flow body began (its first real work) and when it ended. Per stage:

- ``before_work_s``: process start -> flow body (interpreter, imports, Prefect flow-run creation);
- ``work_s``: the flow body (the stage's component calls);
- ``after_work_s``: flow end -> the next process: Prefect's flow-run teardown
  (``flow_teardown_s``), then the interpreter's exit and DVC's hashing, caching and lock file
  (``exit_and_dvc_s``).

Then ``between_stages_fraction`` = (dvc repro wall time - Σ work) / wall time, and a no-op
``dvc repro`` (nothing changed) is timed three times. The pipeline runs four times (``dvc repro
--force``), each stage of each run noting whether it was served warm (:data:`MODES`): ``cold``
(each stage process imports its libraries itself), ``dvc_repro`` (a user's plain ``dvc repro``
with no warm server yet: the first stage starts a resident one, ``flows/runtime/warm_resident.py``),
``dvc_repro_again`` (the next one, that server still up) and ``segflow_run`` (``segflow run``'s
and ``make run``'s own warm server, ``flows/runtime/warm.py``). ``ratio`` (top level) maps each stage to
its ``before_work_s`` in ``dvc_repro`` (lower is better; target ≤ 3 s); the top-level
``between_stages_fraction`` is ``segflow_run``'s (target ≤ 15 % for ``make run``).

``--quick`` shrinks the training (2 folds, 1 epoch, a small U-Net, 48²) so the whole run takes about
two minutes here; without it, params.yaml's training is kept (5 folds, 15 epochs: long on a CPU).

Usage::

    python bench/stage_overhead.py --quick [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_info, result_path, write_result  # noqa: E402
from bench.project import BIN, make_project, prefect_server, project_env, run_cmd  # noqa: E402
from flows.runtime.warm_resident import IDLE_ENV, servers  # noqa: E402

STAGES = ("validate", "preprocess", "train", "evaluate", "ensemble")
QUICK: dict[str, object] = {
    "preprocess.image_size": [48, 48],
    "preprocess.splits.n_folds": 2,
    "train.epochs": 1,
    "train.model": {"name": "unet", "kwargs": {"base_channels": 8, "depth": 2}},
    "tracking.experiment": "stage-overhead",
    "ensemble.registered_model": "stage-overhead",
}


def _stages(timing: Path, repro_start: float, repro_end: float) -> dict[str, dict[str, Any]]:
    marks: dict[str, dict[str, float]] = {}
    for line in timing.read_text().splitlines():
        row = json.loads(line)
        marks.setdefault(row["stage"], {})[row["event"]] = row["t"]
        if "process_start" in row:
            marks[row["stage"]]["process_start"] = row["process_start"]
        if "warm" in row:
            marks[row["stage"]]["warm"] = float(row["warm"])
    out: dict[str, dict[str, Any]] = {}
    order = [s for s in STAGES if s in marks]
    for i, stage in enumerate(order):
        m = marks[stage]
        nxt = marks[order[i + 1]]["process_start"] if i + 1 < len(order) else repro_end
        out[stage] = {
            "before_work_s": round(m["flow_running"] - m["process_start"], 3),
            "imports_s": round(m["imported"] - m["process_start"], 3),
            "work_s": round(m["flow_ended"] - m["flow_running"], 3),
            "after_work_s": round(nxt - m["flow_ended"], 3),
            "flow_teardown_s": round(m["returned"] - m["flow_ended"], 3),
            "exit_and_dvc_s": round(nxt - m["returned"], 3),
            "served_warm": bool(m.get("warm")),
        }
    first = marks[order[0]]["process_start"]
    out["_dvc_before_first_stage"] = {"seconds": round(first - repro_start, 3)}
    return out


MODES = {
    "cold": "SEGFLOW_WARM_STAGES=0: each stage process imports its libraries itself",
    "dvc_repro": "a plain `dvc repro` with no resident warm server yet: the first stage starts one "
    "(flows/runtime/warm_resident.py) and the later stages are forked from it",
    "dvc_repro_again": "the next plain `dvc repro`, its resident server still up from the last",
    "segflow_run": "as `segflow run` and `make run` run them: their own warm server (flows/runtime/warm.py)",
}


def _pipeline(root: Path, env: dict[str, str], timing: Path, mode: str) -> dict[str, Any]:
    """Every stage once (``dvc repro --force``), run as ``mode`` (:data:`MODES`) runs them."""
    from flows.runtime.warm import ENABLE_ENV, warm_stages

    env = {**env, "SEGFLOW_STAGE_TIMING": str(timing), ENABLE_ENV: "0" if mode == "cold" else "1"}
    with contextlib.ExitStack() as stack:
        if mode == "segflow_run":
            log = stack.enter_context(timing.with_suffix(".server.log").open("a"))
            env = stack.enter_context(warm_stages(env, log, str(root)))
        t0 = time.time()
        wall = run_cmd([str(BIN / "dvc"), "repro", "--force"], root, env)
    stages = _stages(timing, t0, t0 + wall)
    work = sum(v["work_s"] for k, v in stages.items() if not k.startswith("_"))
    return {
        "is": MODES[mode],
        "wall_s": round(wall, 2),
        "work_s": round(work, 2),
        "between_stages_fraction": round((wall - work) / wall, 3),
        "before_work_s": {k: v["before_work_s"] for k, v in stages.items() if not k.startswith("_")},
        "stages": stages,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny training (2 folds, 1 epoch, 48²)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/...)")
    ap.add_argument("--keep", type=Path, default=None, help="build the project here and keep it")
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(args.keep) if args.keep else scratch
        root = Path(tmp) / "proj"
        root.mkdir(parents=True)
        env = project_env(Path(tmp), root)
        make_project(root, env, QUICK if args.quick else {})
        with prefect_server(root, env) as api:
            env |= {"PREFECT_API_URL": api, "XDG_RUNTIME_DIR": tmp}  # its own resident server folder
            env.pop(IDLE_ENV, None)  # resident servers as a user gets them (the default idle time)
            runs = {}
            try:
                for mode in MODES:
                    runs[mode] = _pipeline(root, env, Path(tmp) / f"timing-{mode}.jsonl", mode)
                    if mode == "cold":
                        noop = [run_cmd([str(BIN / "dvc"), "repro"], root, env) for _ in range(3)]
            finally:  # also when a run fails: no resident server is left behind for its idle time
                for pid, _ in servers(env):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
    user, served = runs["dvc_repro"], runs["segflow_run"]
    result = {
        "benchmark": "stage_overhead: each stage's start-up and teardown around its work, dvc repro",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "ratio": user["before_work_s"],
        "ratio_is": "seconds from a stage process's start to its flow body (its first real work), "
        "in a plain `dvc repro` that starts with no warm server (runs.dvc_repro)",
        "pipeline_wall_s": served["wall_s"],
        "work_s": served["work_s"],
        "between_stages_fraction": served["between_stages_fraction"],
        "between_stages_is": "(wall - Σ work) / wall of `segflow run`'s pipeline (what `make run` runs)",
        "runs": runs,
        "noop_dvc_repro_s": {
            "median": round(statistics.median(noop), 3),
            "runs": [round(x, 3) for x in noop],
        },
        "settings": {"overrides": QUICK if args.quick else {}, "dataset": "segflow generate (params.yaml)"},
        "machine": {**machine_info(), "load_average_1min_at_start": load},
        "versions": {"python": platform.python_version()},
        "device": {"type": "cpu"},
    }
    out = args.out or result_path("stage_overhead", args.quick, "cpu")
    write_result(out, result)
    for mode, run in runs.items():
        warm = [k for k, v in run["stages"].items() if v.get("served_warm")]
        print(
            f"{mode}: before work {run['before_work_s']} (warm: {', '.join(warm) or 'none'}); "
            f"wall {run['wall_s']} s, between stages {run['between_stages_fraction']:.1%}"
        )
    print(f"no-op dvc repro {result['noop_dvc_repro_s']['median']} s -> {out}")


if __name__ == "__main__":
    main()
