"""segflow on real datasets with no params edit: only the data folder and a time budget.

    python bench/planned_runs.py hippocampus --budget 70m
    python bench/planned_runs.py covid --budget 45m
    python bench/planned_runs.py isbi --budget 30m
    python bench/planned_runs.py phantoms3d --budget 20m   # budget adherence on generated volumes

Each run is what a new user types in a fresh workspace (the shipped params.yaml, every plannable key
``auto``): ``segflow run --data DIR --time-budget B``, with real DVC, Prefect and MLflow. The JSON
(``bench/results/planned-<dataset>[-<budget>]-<host>-cpu.json``, the budget named when it is not the
dataset's headline one) holds the machine and its load, the wall time
against the budget, the plan's choices and expected time, each stage's planned and actual time, the
CV and test summaries, and the hand-set run's numbers from docs/benchmarks.md beside them.

``covid`` keeps its source's train/test split (Inf-Net's; ``bench/datasets/stage_covid.py`` writes it as
the ``split`` column of ``cases.csv``, a change of layout, not of params); its headline is the test
set's threshold-averaged Dice as Inf-Net's paper scores its multi-class models (``dice_thrmean_label``:
the label mask through its MATLAB tool), with the stricter ``dice_thrmean`` of the class
probabilities beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_info, result_path, write_result  # noqa: E402
from bench.project import BIN, PROJECT_FILES, project_env  # noqa: E402

SHARED = REPO.parent / "shared" / "datasets"
# The hand-set runs (docs/benchmarks.md): what a person chose for each dataset before the plan stage.
HANDSET: dict[str, dict[str, Any]] = {
    "hippocampus": {
        "params": "bench/datasets/hippocampus_3d.yaml",
        "cv_dice": {"anterior": 0.884, "posterior": 0.869},
        "test_dice": {"anterior": 0.898, "posterior": 0.880},
        "wall_min": 69,
    },
    "covid": {
        "params": "bench/datasets/covid_infnet.yaml",
        "test_dice_thrmean": {"ggo": 0.406, "consolidation": 0.354},
        "cv_dice": {"ggo": 0.474, "consolidation": 0.286},
        "wall_min": 43,
    },
    "isbi": {
        "params": "bench/datasets/isbi_patch.yaml",
        "cv_dice": {"membrane": 0.823},
        "train_wall_min": 40,
    },
}
# The budget each dataset's headline JSON is for; a run with another budget adds it to the file name
# (``planned-isbi-45m-<host>-cpu.json``) and leaves the headline file as it was.
HEADLINE_BUDGET = {"hippocampus": "70m", "covid": "45m", "isbi": "30m", "phantoms3d": "20m"}
GOALS: dict[str, dict[str, float]] = {  # issue 23's done-when
    "hippocampus": {"cv_dice.class_1": 0.88, "cv_dice.class_2": 0.865},
    "covid": {  # Inf-Net's multi-class protocol; the probabilities' threshold mean is stricter
        "test_dice_thrmean_label.class_1": 0.47,
        "test_dice_thrmean_label.class_2": 0.30,
        "test_dice_thrmean.class_1": 0.47,
        "test_dice_thrmean.class_2": 0.30,
    },
    "isbi": {"cv_dice.class_1": 0.82},
}


def _workspace(root: Path) -> dict[str, str]:
    """A fresh git + DVC project with segflow's files and the shipped params.yaml."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, root / name)
    env = project_env(root.parent, root)
    for cmd in (["git", "init", "-q", "-b", "main"], [str(BIN / "dvc"), "init", "-q"]):
        subprocess.run(cmd, cwd=root, env=env, check=True)
    return env


def _data(name: str, root: Path, env: dict[str, str], shared: Path) -> str:
    """The data folder the run names (staged into the workspace where the layout needs it)."""
    if name == "covid":
        subprocess.run(
            [sys.executable, str(REPO / "bench/datasets/stage_covid.py"), "data/raw"],
            cwd=root,
            env=env,
            check=True,
        )
        return "data/raw"
    if name == "phantoms3d":
        subprocess.run(
            [str(BIN / "segflow"), "generate", "--dims", "3", "--out", "data/raw"],
            cwd=root,
            env=env,
            check=True,
        )
        return "data/raw"
    return str(shared / {"hippocampus": "msd_hippocampus", "isbi": "isbi2012_em"}[name])


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _means(summary: dict[str, Any] | None, metric: str = "dice") -> dict[str, float]:
    if not summary:
        return {}
    return {c: v[metric]["mean"] for c, v in summary.items() if isinstance(v, dict) and metric in v}


def _protocol(summary: dict[str, Any] | None, key: str) -> dict[str, float]:
    return {c: v[key] for c, v in ((summary or {}).get("protocol") or {}).items() if key in v}


def _benchmark_name(dataset: str, budget: str) -> str:
    """``planned-<dataset>`` for its headline budget, ``planned-<dataset>-<budget>`` for another."""
    return f"planned-{dataset}" + ("" if budget == HEADLINE_BUDGET[dataset] else f"-{budget}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", choices=["hippocampus", "covid", "isbi", "phantoms3d"])
    ap.add_argument("--budget", required=True, help="plan.time_budget, e.g. 70m")
    ap.add_argument("--workdir", default="/tmp/segflow-planned", help="where the workspace is made")
    ap.add_argument("--datasets", type=Path, default=SHARED, help="the shared datasets folder")
    args = ap.parse_args()

    root = Path(args.workdir) / args.dataset
    env = _workspace(root)
    data = _data(args.dataset, root, env, args.datasets)
    load_start = os.getloadavg()
    start = time.time()
    proc = subprocess.run(
        [str(BIN / "segflow"), "run", "--data", data, "--time-budget", args.budget],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.time() - start
    (root / "run.out").write_text(proc.stdout + proc.stderr)
    plan = _load(root / "plans/plan.json") or {}
    cv, test = _load(root / "reports/cv/summary.json"), _load(root / "reports/test/summary.json")
    classes = sorted(
        (plan.get("values", {}).get("data.classes", {}).get("used") or {}).items(), key=lambda kv: kv[1]
    )
    names = {name: f"class_{value}" for name, value in classes}
    result = {
        "benchmark": f"segflow run --data {data} --time-budget {args.budget} (shipped params, no edit)",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_info(),
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "exit_code": proc.returncode,
        "budget": args.budget,
        "wall_s": round(wall, 1),
        "wall_over_budget": round(wall / plan.get("budget", {}).get("time_budget_s", wall), 3)
        if plan
        else None,
        "plan": {k: v["used"] for k, v in plan.get("values", {}).items()},
        "plan_reasons": {k: v["reason"] for k, v in plan.get("values", {}).items()},
        "plan_network": plan.get("network"),
        "plan_estimate": plan.get("estimate"),
        "stage_times": _load(root / ".segflow/stage_times.json"),
        "classes": dict(classes),
        "cv_dice": _means(cv),
        "test_dice": _means(test),
        "cv_dice_thrmean": _protocol(cv, "dice_thrmean"),
        "test_dice_thrmean": _protocol(test, "dice_thrmean"),
        "cv_dice_thrmean_label": _protocol(cv, "dice_thrmean_label"),
        "test_dice_thrmean_label": _protocol(test, "dice_thrmean_label"),
        "handset": HANDSET.get(args.dataset),
        "goals": GOALS.get(args.dataset),
    }
    result["goals_met"] = {
        goal: (result[group].get(next((n for n, c in names.items() if c == cls), ""), 0.0) >= value)
        for goal, value in (GOALS.get(args.dataset) or {}).items()
        for group, cls in [goal.split(".")]
    }
    out = result_path(_benchmark_name(args.dataset, args.budget), False, "cpu")
    write_result(out, result)
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "exit_code",
                    "wall_s",
                    "wall_over_budget",
                    "cv_dice",
                    "test_dice",
                    "test_dice_thrmean",
                    "test_dice_thrmean_label",
                    "goals_met",
                )
            },
            indent=1,
        )
    )
    print(f"wrote {out}; the workspace is {root}")


if __name__ == "__main__":
    main()
