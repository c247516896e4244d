"""The 3D fault corpus: broken copies of the 3D phantom set, each refused with the file named.

Each row of ``tests.data.broken3d.CORPUS`` (listed in docs/reliability-3d-corpus.md) breaks a copy
of a good phantom set and runs the validate stage's entry point (``flows.runtime.stage.main``: the
real flow on the session's Prefect server, the exit code and the one console message a user
sees) in a fresh project folder. Every refusal happens there, so the rows stay cheap: a non-zero
exit, a message naming the file and what was expected (and no hint for the wrong kind of file),
nothing under ``data/`` or ``models/``, the MLflow registry as it was. Two rows go through the
whole ``segflow run`` (its preflight, ``dvc repro``, the stage processes) in a git + DVC project
with a registered champion: a truncated volume (refused by the validate stage) and a cases.csv
row without files (refused by the preflight before DVC starts); MLflow holds no run afterwards
that is not FAILED. The positive control (split words as datasets write them) must pass.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.data.broken3d import CLASSES, CORPUS, ghost_row, good_volumes, truncated_gz
from tests.integration.conftest import BIN, REPO, copy_project, project_env, run

pytestmark = pytest.mark.slow

MODEL = "segflow-broken3d"
# only what these runs need: every refusal comes before training, so the defaults do for the rest
OVERRIDES: dict[str, Any] = {
    "data.classes": CLASSES,
    "ensemble.registered_model": MODEL,
    "tracking.experiment": MODEL,
}


@dataclass
class Corpus:
    """The good phantom set, a git + DVC project with a champion, and what must stay unchanged."""

    good: Path
    root: Path
    env: dict[str, str]
    uri: str
    registry: tuple[object, ...]
    params: Path  # the repository's params.yaml as the module started (rows edit copies of it)


def registry_state(uri: str) -> tuple[object, ...]:
    """Registered models, their aliases and versions."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    models = sorted((m.name, tuple(sorted(m.aliases.items()))) for m in client.search_registered_models())
    versions = sorted((v.name, v.version, v.source) for v in client.search_model_versions())
    return (tuple(models), tuple(versions))


def unfailed_runs(uri: str) -> list[tuple[str, str]]:
    """(run name, status) of every MLflow run that is not FAILED: a refused run must leave none."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments) if experiments else []
    return [(r.info.run_name, r.info.status) for r in runs if r.info.status != "FAILED"]


@pytest.fixture(scope="module")
def corpus(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    from mlflow.tracking import MlflowClient

    from components.params.edit import apply_overrides

    base = tmp_path_factory.mktemp("broken_volumes")
    good, root = base / "good", base / "proj"
    good_volumes(good)
    root.mkdir()
    copy_project(root)
    env = project_env(root, prefect_api)
    run(["git", "init", "-q", "-b", "main"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)
    apply_overrides(root / "params.yaml", {**OVERRIDES, "data.dir": str(good)})
    uri = env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, source=str(root / "models"))
    client.set_registered_model_alias(MODEL, "champion", version.version)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect binds its console handler to sys.stderr when it sets up logging: import the stage
    # flows here (pytest's stream), and keep one API setting for the module's in-process runs
    import flows.validate  # noqa: F401

    with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
        params = base / "params.yaml"
        shutil.copy2(REPO / "params.yaml", params)
        yield Corpus(good, root, env, uri, registry_state(uri), params)


def _stage(flow: Any, argv: list[str]) -> int:
    """Run a stage's entry point in this process; its exit code (0 when it returned)."""
    root_logger = logging.getLogger()
    handlers = list(root_logger.handlers)
    old_argv = sys.argv
    sys.argv = argv
    try:
        from flows.runtime.stage import main

        main(flow)
        return 0
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old_argv
        for handler in [h for h in root_logger.handlers if h not in handlers]:  # the stage's log file
            root_logger.removeHandler(handler)
            handler.close()


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_broken_volume_set_is_refused_at_validate(
    corpus: Corpus,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from components.params.edit import apply_overrides
    from flows.validate import validate_flow

    row = CORPUS[name]
    data = tmp_path / "data_in"
    shutil.copytree(corpus.good, data)
    row.build(data)
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copy2(corpus.params, project / "params.yaml")
    overrides = {"data.dir": str(data), "data.classes": CLASSES, "data.channels": row.channels}
    apply_overrides(project / "params.yaml", overrides)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", corpus.uri)
    capsys.readouterr()
    code = _stage(validate_flow, ["validate", "--params", "params.yaml"])
    out = capsys.readouterr()
    console = out.out + out.err

    if row.passes:
        assert code == 0, console[-3000:]
        assert (project / "data/manifest.parquet").is_file()
        return
    assert code == 1, console[-3000:]
    assert "segflow validate: " in console, console[-3000:]
    message = console[console.rindex("segflow validate: ") :]
    for text in row.expect:
        assert text in message, (text, message)
    for text in row.absent:
        assert text not in message, (text, message)
    assert "Traceback" not in console
    for written in (
        "data/manifest.parquet",
        "data/prepared",
        "models",
        "reports/validation/fingerprint.json",
    ):
        assert not (project / written).exists(), written
    assert registry_state(corpus.uri) == corpus.registry
    assert unfailed_runs(corpus.uri) == []


PIPELINE_ROWS = {
    # the builder; how the one message starts (which step refused); what it must say
    "truncated_volume_in_a_whole_run": (
        truncated_gz,
        "segflow run: stage validate failed: Dataset validation failed",
        ("images/case_001.nii.gz", "truncated: expected", "copy the volume again from its source"),
    ),
    "cases_csv_ghost_in_a_whole_run": (
        ghost_row,
        "segflow run: params check failed: data.dir: ",
        ("cases.csv: 1 case(s) listed without an image or mask file: ghost_case", "restore the files"),
    ),
}


@pytest.mark.parametrize("name", list(PIPELINE_ROWS))
def test_segflow_run_refuses_a_broken_volume_set_and_leaves_no_trace(
    corpus: Corpus, name: str, tmp_path: Path
) -> None:
    build, start, expect = PIPELINE_ROWS[name]
    data = tmp_path / "data"
    shutil.copytree(corpus.good, data)
    build(data)
    root = corpus.root
    proc = run([str(BIN / "segflow"), "run", "--data", str(data)], root, corpus.env, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    message = output[output.rindex("segflow run: ") :]
    assert message.startswith(start), message
    for text in expect:
        assert text in message, (text, message)
    if "params check" in start:  # the preflight refused before DVC started any stage
        assert "Running stage" not in output, output
    assert "Traceback" not in output and len(output.splitlines()) <= 30, output
    for written in ("data/manifest.parquet", "data/prepared", "models", "dvc.lock"):
        assert not (root / written).exists(), written
    assert registry_state(corpus.uri) == corpus.registry
    assert unfailed_runs(corpus.uri) == []
