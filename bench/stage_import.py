"""Cold start of each stage module and of the ``segflow`` command: wall time of a fresh interpreter.

Per stage, best of ``--repeat`` runs (default 3) of a fresh ``python -c "import flows.<stage>"``
(interpreter start, imports and the interpreter's exit: what a cold ``dvc repro`` stage, a
deployment's worker or a Dask worker pays before the stage's first line), as wall time and as CPU
time (user + system: on a shared machine the steadier estimate of a quiet machine's wall time),
against two baselines measured in the same run, on the same machine:

- ``eager_s``: the same module plus every import it defers to its functions
  (flows/runtime/preload.py), i.e. what importing the stage cost when those imports sat at its top;
- ``floor_s``: ``import prefect`` alone (each stage is a Prefect flow; nothing below it is possible).

``ratio`` (top level) maps each stage to ``import_cpu_s / eager_cpu_s`` (lower is better); the goal
is <= 3 s for every stage on a quiet 2-core machine. ``segflow --help`` and
``segflow predict --help`` are timed too. The 1-minute load average is recorded at the start and
the end (other work shares the machine: compare numbers only from a quiet one).

Usage::

    python bench/stage_import.py [--repeat 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_info, result_path, write_result  # noqa: E402
from flows.runtime.warm import STAGES  # noqa: E402

GOAL_S = 3.0
BIN = Path(sys.executable).parent


def _best_of(cmd: list[str], repeat: int) -> tuple[float, float]:
    """The shortest wall time and the shortest CPU time (user + system, the process and its
    children) of ``repeat`` runs of ``cmd`` (in the repo, output discarded). On a shared machine
    the CPU time is the steadier estimate of what a quiet machine's wall time would be."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return round(min(walls), 3), round(min(cpus), 3)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per command; the best is kept")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/...)")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    floor, floor_cpu = _best_of(_python("import prefect"), args.repeat)
    stages = {}
    for stage in STAGES:
        module = f"flows.{stage}"
        eager = f"import {module}; from flows.runtime.preload import preload; preload(({module!r},))"
        wall, cpu = _best_of(_python(f"import {module}"), args.repeat)
        eager_wall, eager_cpu = _best_of(_python(eager), args.repeat)
        stages[stage] = {
            "import_s": wall,
            "import_cpu_s": cpu,
            "eager_s": eager_wall,
            "eager_cpu_s": eager_cpu,
            "ratio": round(cpu / eager_cpu, 3),
        }
        print(f"{stage}: {stages[stage]}", flush=True)
    cli = {
        "segflow --help": _best_of([str(BIN / "segflow"), "--help"], args.repeat),
        "segflow predict --help": _best_of([str(BIN / "segflow"), "predict", "--help"], args.repeat),
    }
    load_end = os.getloadavg()[0]
    result = {
        "benchmark": "stage_import: cold `python -c 'import flows.<stage>'` wall time, best of N",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "ratio": {s: v["ratio"] for s, v in stages.items()},
        "ratio_is": "import_cpu_s / eager_cpu_s: the stage module's cold import against the same module "
        "with its deferred imports at the top (flows/runtime/preload.py), same run, CPU time",
        "goal_s": GOAL_S,
        "all_within_goal_cpu": all(v["import_cpu_s"] <= GOAL_S for v in stages.values()),
        "all_within_goal_wall": all(v["import_s"] <= GOAL_S for v in stages.values()),
        "stages": stages,
        "floor_s": floor,
        "floor_cpu_s": floor_cpu,
        "floor_is": "`python -c 'import prefect'`: each stage is a Prefect flow",
        "cli_s": cli,
        "cli_is": "(wall, CPU) seconds, best of N",
        "repeat": args.repeat,
        "machine": {
            **machine_info(),
            "load_average_1min_at_start": round(load_start, 2),
            "load_average_1min_at_end": round(load_end, 2),
        },
        "versions": {"python": platform.python_version()},
        "device": {"type": "cpu"},
    }
    out = args.out or result_path("stage_import", False, "cpu")
    write_result(out, result)
    print(f"floor {floor} s; cli {cli}; load {load_start:.2f} -> {load_end:.2f}; -> {out}")


if __name__ == "__main__":
    main()
