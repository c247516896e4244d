"""The GPU check (bench/gpu_check.py, ``make bench-gpu``) in its CPU dry-run mode, so that it cannot
rot between the sessions that are lent a GPU; and its wheel list pins what this environment runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PARTS = {"gpu_tests", "train_2d", "train_3d", "ensemble_inference", "ct_sliding_window"}


@pytest.mark.slow
def test_dry_run_runs_every_part_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--dry-run", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["device"]["type"] == "cpu"
    checks = result["checks"]
    assert set(checks) == PARTS
    assert [k for k, v in checks.items() if "error" in v] == []
    for ratio in (
        checks["train_2d"]["2d-32"]["ratio"],
        checks["train_3d"]["ratio"],
        checks["ensemble_inference"]["ratio"],
        checks["ct_sliding_window"]["ratio"],
    ):
        assert 0.2 < ratio < 5.0  # both sides ran the same work
    if not torch.cuda.is_available():
        assert "skipped" in checks["gpu_tests"]["summary"]


def test_the_gpu_wheels_are_the_versions_installed_here() -> None:
    pins = [
        line.split("==")
        for line in (REPO / "bench/gpu_wheels.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(pins) >= 10
    for name, version in pins:
        assert metadata.version(name) == version, name
    make = subprocess.run(["make", "-n", "bench-gpu"], cwd=REPO, capture_output=True, text=True, check=True)
    assert re.search(r"--no-index[^;]*--target", make.stdout, re.S) and "bench/gpu_check.py" in make.stdout
