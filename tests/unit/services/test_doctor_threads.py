"""``segflow doctor``'s CPU threads table: the decision, the rule, its inputs; a bad setting fails it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from components.services.doctor import thread_report
from flows.cli import app


def test_the_report_names_the_count_the_rule_and_its_inputs() -> None:
    rows, error = thread_report({"SEGFLOW_PROCESSES": "2"})
    table = dict(rows)
    assert error is None
    assert "// 2 processes" in table["torch threads"] and "ceil(quota)" in table["rule"]
    assert {"affinity mask", "cgroup CPU quota", "usable cores", "OpenMP wait policy"} <= set(table)
    rows, _ = thread_report({"SEGFLOW_THREADS": "3"})
    assert dict(rows)["torch threads"] == "3 thread(s), as SEGFLOW_THREADS says"


def test_a_bad_setting_fails_doctor_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, error = thread_report({"SEGFLOW_THREADS": "lots"})
    assert error is not None and "SEGFLOW_THREADS='lots'" in error
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "SEGFLOW_DVC_REMOTE", "SEGFLOW_DASK_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SEGFLOW_THREADS", "lots")
    result = CliRunner().invoke(app, ["doctor", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "expected a positive whole number" in result.output
