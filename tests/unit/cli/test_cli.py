"""The ``segflow`` command through typer's CliRunner (in process, real files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]
WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}  # rich tables are not truncated or coloured


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    for command in ("run", "generate", "summary", "predict", "metrics", "compare", "list", "augment-preview"):
        assert command in result.output


def test_list_models(runner: CliRunner) -> None:
    from components.models import MODELS

    result = runner.invoke(app, ["list", "models"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "segflow models" in result.output
    for name in ("unet", "unet_resnet18"):
        assert name in MODELS.names() and name in result.output


def test_list_unknown_family_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["list", "modles"], env=WIDE)
    assert result.exit_code == 2
    assert "models, losses, optimizers, schedulers, augmentations" in result.output


def per_case(dice: list[float], hd95: list[float]) -> pd.DataFrame:
    rows = []
    for i, (d, h) in enumerate(zip(dice, hd95, strict=True)):
        rows.append(
            {
                "case_id": f"c{i // 2}",
                "class": 1 + i % 2,
                "class_name": ["organ", "lesion"][i % 2],
                "dice": d,
                "hd95": h,
            }
        )
    return pd.DataFrame(rows)


def test_compare_shows_the_mean_difference(runner: CliRunner, tmp_path: Path) -> None:
    dice_a = [0.5, 0.6, 0.7, 0.8, 0.55, 0.65, 0.75, 0.85]
    diff = [0.1, 0.15, 0.1, 0.15, 0.1, 0.15, 0.1, 0.15]  # B better by 0.125 on average
    hd_a = [4.0, 5.0, 6.0, 7.0, 4.5, 5.5, 6.5, 7.5]
    per_case(dice_a, hd_a).to_csv(tmp_path / "a.csv", index=False)
    per_case(list(np.add(dice_a, diff)), list(np.subtract(hd_a, 1.5))).to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "cmp.json"
    args = ["compare", "--a", str(tmp_path / "a.csv"), "--b", str(tmp_path / "b.csv"), "--out", str(out)]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert "B - A on 8 matched (case, class) rows" in result.output
    rows = [line for line in result.output.splitlines() if " all " in line and " dice " in line]
    assert len(rows) == 1 and "0.125 [" in rows[0]  # mean diff [95% CI]
    assert any(
        " all " in line and " hd95 " in line and "-1.5 [" in line for line in result.output.splitlines()
    )
    saved = json.loads(out.read_text())
    assert saved["n_matched"] == 8
    assert saved["all"]["dice"]["mean_diff"] == pytest.approx(0.125)
    assert saved["all"]["dice"]["ci_low"] > 0  # every difference is positive
    assert saved["per_class"]["organ"]["dice"]["n"] == 4


def test_compare_without_common_cases_fails(runner: CliRunner, tmp_path: Path) -> None:
    per_case([0.5, 0.6], [1.0, 2.0]).to_csv(tmp_path / "a.csv", index=False)
    other = per_case([0.5, 0.6], [1.0, 2.0])
    other["case_id"] = "someone-else"
    other.to_csv(tmp_path / "b.csv", index=False)
    result = runner.invoke(
        app, ["compare", "--a", str(tmp_path / "a.csv"), "--b", str(tmp_path / "b.csv")], env=WIDE
    )
    assert result.exit_code == 1
    assert "no (case_id, class) pairs in common" in result.output


def test_compare_missing_table_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = runner.invoke(app, ["compare", "--a", str(missing), "--b", str(missing)], env={"COLUMNS": "400"})
    assert result.exit_code == 2
    assert f"{missing}: no such file" in result.output


def small_params(tmp_path: Path, **synthetic: object) -> Path:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["data"]["synthetic"] = {"n_cases": 8, "image_size": 32, "seed": 3, "n_patients": 4, **synthetic}
    path = tmp_path / f"params_{len(list(tmp_path.glob('params_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_generate_reads_the_params_file(runner: CliRunner, tmp_path: Path) -> None:
    params = small_params(tmp_path)
    out = tmp_path / "data"
    result = runner.invoke(app, ["generate", "--out", str(out), "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert f"wrote 8 synthetic cases to {out}" in result.output
    assert len(list((out / "images").glob("*.png"))) == 8 and len(list((out / "masks").glob("*.png"))) == 8
    cases = pd.read_csv(out / "cases.csv")
    assert len(cases) == 8 and cases["patient_id"].nunique() == 4
    first = (out / "images" / "case_000.png").read_bytes()

    # An existing dataset is kept unless --overwrite.
    result = runner.invoke(
        app, ["generate", "--out", str(out), "--params", str(small_params(tmp_path, seed=4))]
    )
    assert result.exit_code == 0 and "exists; keeping it" in result.output
    assert (out / "images" / "case_000.png").read_bytes() == first
    result = runner.invoke(app, ["generate", "--out", str(out), "--params", str(params), "--overwrite"])
    assert result.exit_code == 0
    assert (out / "images" / "case_000.png").read_bytes() == first  # same seed, same bytes
    shutil.rmtree(out)
    runner.invoke(app, ["generate", "--out", str(out), "--params", str(small_params(tmp_path, seed=4))])
    assert (out / "images" / "case_000.png").read_bytes() != first


def test_generate_with_an_invalid_params_file(runner: CliRunner, tmp_path: Path) -> None:
    params = small_params(tmp_path, n_cases=2)  # below the minimum of 8
    result = runner.invoke(app, ["generate", "--out", str(tmp_path / "data"), "--params", str(params)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # a clean message, not a traceback
    assert "data.synthetic.n_cases" in result.output
    assert not (tmp_path / "data").exists()


def test_predict_missing_input_folder(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    args = [
        "predict",
        "--model",
        str(tmp_path / "model"),
        "--input",
        str(missing),
        "--output",
        str(tmp_path / "out"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # handled, not a traceback
    assert f"--input {missing}: not a folder" in result.output
    assert not (tmp_path / "out").exists()


NO_PREFECT_API = {**WIDE, "PREFECT_API_URL": None, "PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}


def run_params(tmp_path: Path) -> Path:
    """A copy of the shipped params.yaml in its own workspace (lock and data.dir resolve there)."""
    path = tmp_path / "params.yaml"
    shutil.copy(HANDSET_PARAMS, path)
    return path


def manifest_state() -> tuple[bool, float]:
    manifest = REPO / "data" / "manifest.parquet"
    return manifest.exists(), manifest.stat().st_mtime if manifest.exists() else 0.0


def test_run_with_an_unknown_model_fails_before_anything_is_written(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Preflight refuses the run before params.yaml is written and before the flow (or Prefect) starts:
    with no Prefect API configured, reaching the flow would be a different error."""
    params = run_params(tmp_path)
    before, manifest = params.read_bytes(), manifest_state()
    result = runner.invoke(
        app, ["run", "--params", str(params), "--set", "train.model.name=unetx"], env=NO_PREFECT_API
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a crash
    assert "segflow run: params check failed" in result.output
    assert "train.model.name: unknown model 'unetx'. Did you mean: unet" in result.output
    assert params.read_bytes() == before
    assert not (tmp_path / "data").exists() and manifest_state() == manifest


def test_run_with_a_missing_data_folder_names_data_dir(runner: CliRunner, tmp_path: Path) -> None:
    params = run_params(tmp_path)
    before = params.read_bytes()
    missing = tmp_path / "no_dataset"
    result = runner.invoke(app, ["run", "--params", str(params), "--data", str(missing)], env=NO_PREFECT_API)
    assert result.exit_code == 1, result.output
    assert f"data.dir: {missing} does not exist; expected a dataset folder holding images/ and masks/" in (
        result.output
    )
    assert "Errno" not in result.output and params.read_bytes() == before


def test_run_in_a_busy_workspace_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from components.workspace.lock import lock_path, read_holder

    params = run_params(tmp_path)
    before = params.read_bytes()
    hold = (
        "import sys, time; from pathlib import Path; from components.workspace.lock import workspace_lock\n"
        "with workspace_lock(Path(sys.argv[1])):\n    time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while read_holder(lock_path(tmp_path)).get("pid") != proc.pid:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        result = runner.invoke(
            app, ["run", "--params", str(params), "--set", "train.epochs=2"], env=NO_PREFECT_API
        )
    finally:
        proc.kill()
        proc.wait()
    assert result.exit_code == 1, result.output
    assert f"another segflow run holds this workspace (pid {proc.pid}" in result.output
    assert params.read_bytes() == before  # the refused run's override was never written


def test_warm_status_and_a_wrong_action(runner: CliRunner, tmp_path: Path) -> None:
    env = {**WIDE, "XDG_RUNTIME_DIR": str(tmp_path)}
    result = runner.invoke(app, ["warm", "status"], env=env)
    assert result.exit_code == 0 and "no resident warm stage server is running" in result.output
    result = runner.invoke(app, ["warm", "restart"], env=env)
    assert result.exit_code == 2 and "expected status or stop" in result.output
