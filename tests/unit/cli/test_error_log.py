"""A failure prints one short message and the log file's path; the traceback is in the log only."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.core.errors import UserError
from components.core.logfile import FAILURE_FILE_ENV, ConsoleFilter, read_failure
from flows.runtime.stage import main
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


def _record(msg: str, level: int = logging.INFO, name: str = "prefect.flow_runs", exc: bool = False):
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


def test_the_console_filter_keeps_progress_and_drops_failure_records() -> None:
    keep = ConsoleFilter().filter
    assert keep(_record("Beginning flow run 'x' for flow 'validate'"))
    assert keep(_record("warning: data.classes declares mask value 4", level=logging.WARNING, name="root"))
    assert not keep(_record("Task run failed with exception: ValueError('boom')", logging.ERROR, exc=True))
    assert not keep(_record("Finished in state Failed('Flow run encountered an exception')"))
    assert not keep(_record("Encountered exception during execution", logging.ERROR))
    assert not keep(_record("anything", logging.ERROR, name="prefect.task_runs"))
    notice = "Starting temporary server on http://127.0.0.1:8123\nSee https://www.prefect.io/docs/v3/..."
    assert not keep(_record(notice, name="prefect"))  # every cold stage of a plain `dvc repro` said it


@pytest.fixture
def stage_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """cwd at a fresh workspace, argv of a stage command; removes the log handlers main() adds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["flows.fake"])
    monkeypatch.delenv(FAILURE_FILE_ENV, raising=False)
    before = list(logging.getLogger().handlers)
    yield tmp_path
    for handler in logging.getLogger().handlers:
        if handler not in before:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _bad_input(params_path: str) -> None:
    """A stage whose input is bad."""
    raise UserError("masks/case_007.png: values 0,1,9; expected the declared class values {0,1,2}")


def _bug(params_path: str) -> None:
    """A stage with a bug."""
    raise RuntimeError("boom")


def _log_of(text: str, root: Path) -> Path:
    return root / text.split("(log with the traceback: ")[1].split(")")[0]


def test_a_stage_prints_one_message_and_logs_the_traceback(
    stage_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(_bad_input)
    assert info.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0] == (
        "segflow _bad_input: masks/case_007.png: values 0,1,9; expected the declared class values {0,1,2}"
    )
    assert len(lines) == 2 and "Traceback" not in err
    log = _log_of(err, stage_run)
    assert log.parent == stage_run / ".segflow" / "logs" and log.name.endswith("-_bad_input.log")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "masks/case_007.png" in text


def test_an_unexpected_error_shows_its_type_and_message(
    stage_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(_bug)
    err = capsys.readouterr().err
    assert "segflow _bug: RuntimeError: boom" in err and "Traceback" not in err
    assert 'raise RuntimeError("boom")' in _log_of(err, stage_run).read_text()


def test_under_the_pipeline_a_stage_writes_its_message_to_the_failure_file(
    stage_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    failure = stage_run / "failure.json"
    monkeypatch.setenv(FAILURE_FILE_ENV, str(failure))
    with pytest.raises(SystemExit):
        main(_bad_input)
    assert capsys.readouterr().err.strip() == ""  # the pipeline prints it, once
    recorded = read_failure(failure)
    assert recorded is not None and recorded["stage"] == "_bad_input"
    assert recorded["message"].startswith("masks/case_007.png: values 0,1,9")
    assert "Traceback (most recent call last)" in Path(recorded["log"]).read_text()
    failure.write_text(json.dumps({"other": 1}))
    assert read_failure(failure) is None


def test_segflow_run_refused_by_preflight_prints_two_lines(tmp_path: Path) -> None:
    """The real command in its own process: the console shows the message and the log path only."""
    shutil.copy(HANDSET_PARAMS, tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_bytes()
    env = {
        **os.environ,
        "PREFECT_API_URL": "",
        "PREFECT_SERVER_EPHEMERAL_ENABLED": "false",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "segflow"), "run", "--set", "train.epochs=0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    lines = [line for line in out.splitlines() if line.strip()]
    assert proc.returncode == 1, out
    assert lines[0].startswith("segflow run: ") and "train.epochs" in out, out
    assert lines[-1].startswith("(log: .segflow/logs/") and len(lines) <= 4, out
    assert "Traceback" not in out
    log = tmp_path / lines[-1].removeprefix("(log: ").removesuffix(")")
    assert "Traceback (most recent call last)" in log.read_text()
    assert (tmp_path / "params.yaml").read_bytes() == before


def test_old_logs_are_pruned(tmp_path: Path) -> None:
    from components.core.logfile import KEEP_LOGS, LOG_DIR, new_log_path

    folder = tmp_path / LOG_DIR
    folder.mkdir(parents=True)
    for i in range(KEEP_LOGS + 5):
        (folder / f"20260101T0000{i:03d}-1-run.log").write_text("x")
    (folder / "20260101T0000000-1-run").mkdir()  # what a failed stage wrote, kept with its log
    path = new_log_path("validate", tmp_path)
    path.write_text("new")
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == KEEP_LOGS and path.name in left
    assert "20260101T0000000-1-run" not in left and "20260101T0000000-1-run.log" not in left
