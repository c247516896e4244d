"""The end-to-end flow that deployments run: set params, ``dvc repro``, report.

Running the stages through ``dvc repro`` (rather than calling the stage flows in-process) keeps
one source of truth: DVC decides what is stale, skips what is not, and records in dvc.lock what
ran, so ``dvc status`` is clean after a deployment run. Each stage is itself a Prefect flow run,
tagged with this flow run's id.

A run fails safely (:func:`guarded_run`, entered by the flow itself, so the CLI and a deployment
get the same): it takes the workspace lock before touching params.yaml (a second run is refused
at once), computes the merged params without writing and builds everything they name
(:func:`components.training.preflight.preflight`), and only then writes params.yaml; when
``dvc repro`` fails or is interrupted, params.yaml gets its original bytes back, and then the
outputs dvc.lock records (:mod:`components.workspace.outputs_guard`: dvc.lock itself, ``dvc checkout`` of the
stages that ran), so a failed run leaves the workspace as it was. The console gets DVC's and the
stages' progress and, on failure, the failing stage's one message (the stages write it to a
failure file instead of printing it); the run log ``.segflow/logs/<time>-<pid>-run.log`` holds
everything, each stage's own log its traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from components.core.errors import UserError
from components.core.layout import PLAN_JSON
from components.core.logfile import FAILURE_FILE_ENV, new_log_path, read_failure
from components.evaluation.last_run import last_run_markdown, last_run_results
from components.params.carry import reconcile, write_record
from components.params.config import load_yaml
from components.params.edit import merged_params, params_transaction, write_atomically
from components.tracking.plan_log import read_plan
from components.training.preflight import preflight
from components.workspace.lock import workspace_lock
from components.workspace.outputs_guard import OutputsSnapshot, keep_failed_outputs, restore, snapshot
from flows.runtime.stage import PIPELINE_RUN_ENV, current_flow_run_id
from flows.runtime.supervise import run_supervised
from flows.runtime.warm import warm_stages

RUN_LOG_ENV = "SEGFLOW_RUN_LOG"  # set by `segflow run`: the log file the pipeline appends to
_RUNNING_STAGE = re.compile(r"^Running stage '(?P<stage>[^']+)'")
_checked: set[tuple[str, str]] = set()  # (workspace, params text) preflighted under the held lock


@contextmanager
def guarded_run(params_path: str, data_dir: str | None, overrides: dict[str, Any]) -> Iterator[str]:
    """Lock the workspace, merge and preflight the params; yields the params text to write.

    The workspace is the params file's folder (the lock is ``<it>/.segflow/run.lock``; a relative
    ``data.dir`` is taken from it too). Nothing is written before the lock is held and the
    preflight passed. Plain Python (no Prefect API), so the CLI enters it before it starts the
    flow; the flow enters it again, which in the same process re-uses the held lock and skips the
    preflight of params it already checked.

    Raises:
        WorkspaceBusyError: Another process runs the pipeline in this workspace.
        ConfigError: Bad override, invalid params or something params names that cannot be built.
    """
    path = Path(params_path)
    root = path.resolve().parent
    with workspace_lock(root):
        raw = (load_yaml(path.read_text()) if path.is_file() else None) or {}
        changes, notes = reconcile(raw, root, data_dir, overrides)  # another dataset: --set values drop
        if data_dir:
            changes["data.dir"] = data_dir
        text, params = merged_params(path, changes)
        key = (str(root), text)
        outer = key not in _checked  # the CLI checked these exact params under this lock already
        if outer:
            for note in notes:
                print(f"segflow: {note}")
            preflight(params, root=root, raw=load_yaml(text))
            _checked.add(key)
        try:
            yield text
        finally:
            if outer:
                _checked.discard(key)


@task(cache_policy=NO_CACHE)
def set_params(params_path: str, text: str) -> None:
    """Write the checked params text into params.yaml (atomically; untouched when equal)."""
    path = Path(params_path)
    if path.read_text() != text:
        write_atomically(path, text)


class RunFailedError(UserError):
    """``dvc repro`` failed; the message is the failing stage's own (file/key, hint) and its log."""

    def __init__(self, message: str, ran: list[str] | None, failed_stage: str | None) -> None:
        super().__init__(message)
        self.ran = ran
        self.failed_stage = failed_stage


class _Output:
    """Echoes ``dvc repro``'s output to the console and the run log; notes the stages that ran and
    DVC's ``ERROR:`` lines (kept off the console: the pipeline prints the stage's own message)."""

    def __init__(self, log: IO[str]) -> None:
        self.log = log
        self.ran: list[str] = []
        self.errors: list[str] = []

    def __call__(self, line: str) -> None:
        self.log.write(line)
        self.log.flush()
        match = _RUNNING_STAGE.match(line)
        if match:
            self.ran.append(match["stage"])
        if line.startswith("ERROR:"):
            self.errors.append(line.strip())
            return
        sys.stdout.write(line)
        sys.stdout.flush()


def _api_url() -> str | None:
    """The Prefect API this process uses, when it is a server (not a per-process temporary one)."""
    from prefect.settings import PREFECT_API_URL

    return os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value() or None


@task(cache_policy=NO_CACHE)
def dvc_repro(force: bool, flow_run_id: str | None, log: str, target: str | None = None) -> list[str]:
    """Run ``dvc repro``; the stages inherit the Prefect API and this flow run's id, and are served
    warm (:mod:`flows.runtime.warm`; ``SEGFLOW_WARM_STAGES=0`` makes each import cold).

    SIGINT or SIGTERM stops every process of it within 10 s (:mod:`flows.runtime.supervise`), then
    the warm server, and then raises as the pipeline's own handler does for that signal.

    ``target``: reproduce only up to this stage (``plan``: validate and plan), else every stage.

    Returns:
        The stages DVC ran.

    Raises:
        RunFailedError: ``dvc repro`` failed; the message is the failing stage's (or DVC's).
    """
    log_path = Path(log)
    failure = log_path.with_suffix(".failure.json")
    failure.unlink(missing_ok=True)
    env = {**os.environ, PIPELINE_RUN_ENV: flow_run_id or "", FAILURE_FILE_ENV: str(failure.resolve())}
    api = _api_url()
    if api:  # the stages report to the pipeline's server: none starts a temporary one of its own
        env["PREFECT_API_URL"] = api
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # stages run `python -m flows.<stage>`
    cmd = [str(Path(bindir) / "dvc"), "repro"] + (["--force"] if force else []) + ([target] if target else [])
    with log_path.open("a", encoding="utf-8") as fh, warm_stages(env, fh) as stage_env:
        output = _Output(fh)
        try:
            code = run_supervised(cmd, stage_env, output)
        except BaseException as exc:  # stopped: the run's outputs are restored for what ran
            exc.segflow_ran = output.ran  # type: ignore[attr-defined]
            raise
    ran, errors = output.ran, output.errors
    if code == 0:
        return ran
    stage_failure = read_failure(failure)
    failure.unlink(missing_ok=True)
    if stage_failure is not None:
        stage = str(stage_failure.get("stage") or (ran[-1] if ran else "?"))
        message = f"stage {stage} failed: {stage_failure['message']}\n(stage log: {stage_failure.get('log')})"
        raise RunFailedError(message, ran, stage)
    detail = "; ".join(errors) or f"exit {code}"
    raise RunFailedError(f"`dvc repro` failed: {detail}", ran, ran[-1] if ran else None)


def _restore_outputs(snap: OutputsSnapshot, exc: BaseException, log: Path) -> None:
    """After a failed run: keep what the failed stage wrote next to the log, then put the earlier
    outputs back (params.yaml is already restored); adds what was done to ``exc``'s message."""
    failed = exc.failed_stage if isinstance(exc, RunFailedError) else None
    ran = exc.ran if isinstance(exc, RunFailedError) else getattr(exc, "segflow_ran", None)
    moved = keep_failed_outputs(snap, failed, log.with_suffix("")) if failed else {}
    problem = restore(snap, ran, str(Path(sys.executable).parent / "dvc"))
    if isinstance(exc, RunFailedError):
        message = str(exc)
        for old, new in moved.items():
            message = message.replace(old + "/", new + "/").replace(old + " ", new + " ")
        if moved:
            message += f"\n(what {failed} wrote before it failed: {log.with_suffix('')})"
        if problem:
            message += f"\nthe earlier outputs could not all be restored: {problem}"
        exc.args = (message,)


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
    target: str | None = None,
) -> dict[str, Any]:
    """validate -> preprocess -> train -> evaluate -> ensemble/register, through ``dvc repro``.

    Args:
        data_dir: Dataset folder (images/ + masks/, or an MSD / nnU-Net imagesTr/ + labelsTr/);
            default: params.yaml data.dir.
        overrides: Dotted params keys to set, e.g. ``{"train.epochs": 20}``.
        force: Re-run every stage even if DVC finds it up to date.
        params_path: The params file DVC reads.
        target: Run the stages up to this one only (``plan``: validate and plan, no training); the
            result is then the plan (plans/plan.json), not the run's report.
    """
    log = Path(os.environ.get(RUN_LOG_ENV) or new_log_path("run", Path(params_path).parent))
    with guarded_run(params_path, data_dir, overrides or {}) as text:
        root = Path(params_path).resolve().parent
        before = load_yaml(Path(params_path).read_text()) or {}
        snap = snapshot(root)
        try:
            with params_transaction(Path(params_path)):  # failed/interrupted: original bytes back
                set_params(params_path, text)
                dvc_repro(force, current_flow_run_id(), str(log), target)
        except BaseException as exc:  # params.yaml is back: now the outputs dvc.lock records
            _restore_outputs(snap, exc, log)
            raise
        used_dir = data_dir or str((load_yaml(text) or {}).get("data", {}).get("dir", ""))
        write_record(root, used_dir, overrides or {}, before)  # what --set wrote, for this dataset
        if target is not None:
            return {"plan": read_plan(root / PLAN_JSON)}
        results = report()
    print(last_run_markdown(results))
    return results


if __name__ == "__main__":
    pipeline.serve(name="segflow-local", tags=["segflow"])
