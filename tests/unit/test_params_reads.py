"""The params read recorder reports exactly the keys read, and stays transparent to the reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.params.config import Params, load_params
from components.params.reads import PARAMS_READS_ENV
from tests.data import HANDSET_PARAMS

PARAMS = HANDSET_PARAMS


def keys(log: Path) -> list[str]:
    return [json.loads(line)["key"] for line in log.read_text().splitlines()]


def test_reads_are_recorded_once_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "reads.jsonl"
    monkeypatch.setenv(PARAMS_READS_ENV, str(log))
    monkeypatch.setenv("DVC_STAGE", "train")
    p = load_params(PARAMS)
    plain = Params.model_validate(p.model_dump())  # model_dump on the root reads everything
    assert p.train.epochs == plain.train.epochs
    assert p.train.epochs == plain.train.epochs  # a second read is not logged again
    assert p.data.class_names == plain.data.class_names  # a property reads the field behind it
    assert p.folds == plain.folds  # reads train.folds and preprocess.splits.n_folds
    assert p.train.optimizer.model_dump() == plain.train.optimizer.model_dump()
    assert [t.name for t in p.train.loss] == [t.name for t in plain.train.loss]
    assert keys(log) == [
        "*",
        "train.epochs",
        "data.classes",
        "train.folds",
        "preprocess.splits.n_folds",
        "train.optimizer",
        "train.loss",
    ]
    assert {json.loads(line)["stage"] for line in log.read_text().splitlines()} == {"train"}
    with pytest.raises(AttributeError, match="frozen"):
        p.train = None  # type: ignore[misc]


def test_no_recording_without_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARAMS_READS_ENV, raising=False)
    assert type(load_params(PARAMS)) is Params
