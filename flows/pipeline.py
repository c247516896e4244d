"""The end-to-end flow that deployments run: set params, ``dvc repro``, report.

Running the stages through ``dvc repro`` (rather than calling the stage flows in-process) keeps
one source of truth: DVC decides what is stale, skips what is not, and records in dvc.lock what
ran, so ``dvc status`` is clean after a deployment run. Each stage is itself a Prefect flow run,
tagged with this flow run's id.

A run fails safely (:func:`guarded_run`, entered by the flow itself, so the CLI and a deployment
get the same): it takes the workspace lock before touching params.yaml (a second run is refused
at once), computes the merged params without writing and builds everything they name
(:func:`components.training.preflight.preflight`), and only then writes params.yaml; when
``dvc repro`` fails or is interrupted, params.yaml gets its original bytes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.config_edit import merged_params, params_transaction, write_atomically
from components.evaluation.last_run import last_run_markdown, last_run_results
from components.training.preflight import preflight
from components.workspace_lock import workspace_lock
from flows.stage import PIPELINE_RUN_ENV, current_flow_run_id


@contextmanager
def guarded_run(params_path: str, data_dir: str | None, overrides: dict[str, Any]) -> Iterator[str]:
    """Lock the workspace, merge and preflight the params; yields the params text to write.

    The workspace is the params file's folder (the lock is ``<it>/.segflow/run.lock``; a relative
    ``data.dir`` is taken from it too). Nothing is written before the lock is held and the
    preflight passed. Plain Python (no Prefect API), so the CLI enters it before it starts the
    flow; the flow enters it again, which in the same process re-uses the held lock.

    Raises:
        WorkspaceBusyError: Another process runs the pipeline in this workspace.
        ConfigError: Bad override, invalid params or something params names that cannot be built.
    """
    path = Path(params_path)
    changes = dict(overrides)
    if data_dir:
        changes["data.dir"] = data_dir
    with workspace_lock(path.resolve().parent):
        text, params = merged_params(path, changes)
        preflight(params, root=path.resolve().parent)
        yield text


@task(cache_policy=NO_CACHE)
def set_params(params_path: str, text: str) -> None:
    """Write the checked params text into params.yaml (atomically; untouched when equal)."""
    path = Path(params_path)
    if path.read_text() != text:
        write_atomically(path, text)


@task(cache_policy=NO_CACHE)
def dvc_repro(force: bool, flow_run_id: str | None) -> None:
    """Run ``dvc repro``; the stages inherit the Prefect API and this flow run's id."""
    env = {**os.environ, PIPELINE_RUN_ENV: flow_run_id or ""}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # stages run `python -m flows.<stage>`
    cmd = [str(Path(bindir) / "dvc"), "repro"] + (["--force"] if force else [])
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"`dvc repro` failed (exit {proc.returncode}); the failing stage's message is above"
        )


@task(cache_policy=NO_CACHE)
def report() -> dict[str, Any]:
    """Collect CV/test summaries and the registration into one dict (and a Prefect artifact)."""
    results = last_run_results(Path())
    create_markdown_artifact(key="segflow-run", markdown=last_run_markdown(results))
    return results


@flow(name="segflow-pipeline", log_prints=True)
def pipeline(
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    params_path: str = "params.yaml",
) -> dict[str, Any]:
    """validate -> preprocess -> train -> evaluate -> ensemble/register, through ``dvc repro``.

    Args:
        data_dir: Dataset folder (images/ + masks/); default: params.yaml data.dir.
        overrides: Dotted params keys to set, e.g. ``{"train.epochs": 20}``.
        force: Re-run every stage even if DVC finds it up to date.
        params_path: The params file DVC reads.
    """
    with guarded_run(params_path, data_dir, overrides or {}) as text:
        with params_transaction(Path(params_path)):  # failed/interrupted: original bytes back
            set_params(params_path, text)
            dvc_repro(force, current_flow_run_id())
        results = report()
    print(last_run_markdown(results))
    return results


if __name__ == "__main__":
    pipeline.serve(name="segflow-local", tags=["segflow"])
