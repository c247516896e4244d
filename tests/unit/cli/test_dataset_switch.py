"""A run on another dataset does not quietly keep what --set gave the last one (guarded_run, the
check every run and deployment enters before it writes params.yaml)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from components.data.synthetic import generate_phantoms
from components.params.carry import write_record
from components.params.config import load_yaml
from flows.pipeline import guarded_run
from tests.data import HANDSET_PARAMS


def test_set_values_of_one_dataset_are_dropped_for_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b"):
        generate_phantoms(tmp_path / name, n_cases=12, size=32, seed=0, n_patients=12)
    params = tmp_path / "params.yaml"
    shutil.copy(HANDSET_PARAMS, params)
    first = {"train.folds": [0], "evaluate.postprocess": "none"}
    before = load_yaml(params.read_text())
    with guarded_run(str(params), str(tmp_path / "a"), first) as text:
        params.write_text(text)  # what the pipeline writes
    write_record(tmp_path, str(tmp_path / "a"), first, before)  # ... and records after it succeeded
    capsys.readouterr()  # (data.dir moved from the file's data/raw to a: that run said so too)

    with guarded_run(str(params), str(tmp_path / "a"), {}) as text:  # the same dataset: kept
        assert yaml.safe_load(text)["train"]["folds"] == [0]
    assert "another dataset" not in capsys.readouterr().out

    with guarded_run(str(params), str(tmp_path / "b"), {}) as text:
        new = yaml.safe_load(text)
    assert new["train"]["folds"] is None and new["evaluate"]["postprocess"] == "cv"
    out = capsys.readouterr().out
    assert 'dropped what --set gave the last one: evaluate.postprocess="none"' in out
    assert "train.folds=[0] (back to null)" in out
    assert "carried over" in out and "train.model=" in out  # the hand-set values stay, and are said
