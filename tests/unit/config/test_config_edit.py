"""key=value overrides of params.yaml: comments kept, validated before writing, atomic."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from components.params.config import ConfigError, load_params
from components.params.edit import apply_overrides, parse_assignment
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    shutil.copy(HANDSET_PARAMS, path)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs=3", ("train.epochs", 3)),
        ("train.optimizer.kwargs.lr=1e-4", ("train.optimizer.kwargs.lr", 1e-4)),
        ("train.folds=[0, 2]", ("train.folds", [0, 2])),
        (
            "preprocess.clahe={clip_limit: 2.0, tile_grid: 4}",
            ("preprocess.clahe", {"clip_limit": 2.0, "tile_grid": 4}),
        ),
        ("train.bf16=false", ("train.bf16", False)),
        ("preprocess.clahe=null", ("preprocess.clahe", None)),
        ("preprocess.clahe=", ("preprocess.clahe", None)),
        (" data.dir = my data ", ("data.dir", "my data")),
        ("tracking.experiment=a=b", ("tracking.experiment", "a=b")),  # split at the first '='
    ],
)
def test_parse_assignment(text: str, expected: tuple[str, object]) -> None:
    assert parse_assignment(text) == expected


def test_parse_assignment_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"override 'train\.epochs': expected KEY=VALUE"):
        parse_assignment("train.epochs")


def test_overrides_are_applied_and_comments_kept(params_file: Path) -> None:
    before = params_file.read_text()
    params = apply_overrides(
        params_file,
        {
            "train.epochs": 3,
            "train.optimizer.kwargs.lr": 0.01,
            "preprocess.image_size": [32, 48],
            "train.folds": [1],
            "train.early_stopping.min_delta": 0.01,  # not in the file yet, in an existing section
        },
    )
    assert params.train.epochs == 3 and params.train.optimizer.kwargs["lr"] == 0.01
    assert params.preprocess.image_size == (32, 48) and params.folds == [1]
    assert params.train.early_stopping.min_delta == 0.01
    text = params_file.read_text()
    # What was written is what was returned.
    assert load_params(params_file).model_dump() == params.model_dump()
    # Every comment line of the original survives, and the untouched values too.
    for line in before.splitlines():
        if line.lstrip().startswith("#"):
            assert line in text
    assert "# 0 = off" in text and "# resize | pad | letterbox" in text
    assert yaml.safe_load(text)["train"]["batch_size"] == yaml.safe_load(before)["train"]["batch_size"]
    assert not list(params_file.parent.glob("*.tmp"))


@pytest.mark.parametrize("text", ["train.optimizer.kwargs.lr=1e-4", "train.optimizer.kwargs.lr=1e-05"])
def test_exponent_floats_stay_floats_through_the_file(params_file: Path, text: str) -> None:
    """YAML 1.1 reads ``1e-4`` as a string; ruamel writes 1e-05 in that form (regression)."""
    key, value = parse_assignment(text)
    assert isinstance(value, float)
    params = apply_overrides(params_file, {key: value})
    assert params.train.optimizer.kwargs["lr"] == value
    assert load_params(params_file).train.optimizer.kwargs["lr"] == value


def test_nested_mapping_and_null_values(params_file: Path) -> None:
    params = apply_overrides(
        params_file,
        {
            "train.model": {"name": "unet", "kwargs": {"base_channels": 8}},
            "preprocess.clahe": {"clip_limit": 3.0},
        },
    )
    assert params.train.model.name == "unet" and params.train.model.kwargs == {"base_channels": 8}
    assert params.preprocess.clahe is not None and params.preprocess.clahe.clip_limit == 3.0
    params = apply_overrides(params_file, {"preprocess.clahe": None})
    assert params.preprocess.clahe is None
    assert "clahe: null" in params_file.read_text()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"train.epoch": 3}, r"train\.epoch: unknown key"),  # typo: validated before writing
        ({"train.epochs": 0}, r"train\.epochs: "),
        ({"train.folds": [9]}, r"train\.folds \[9\] out of range"),
        ({"trian.epochs": 3}, r"override 'trian\.epochs': no section 'trian' in params\.yaml"),
        ({"train.optimizer.kwarg.lr": 3}, r"no section 'train\.optimizer\.kwarg' in params\.yaml"),
        ({"train.epochs.value": 3}, r"'train\.epochs' is not a section"),
    ],
)
def test_bad_override_leaves_the_file_untouched(params_file: Path, overrides: dict, match: str) -> None:
    before = params_file.read_bytes()
    with pytest.raises(ConfigError, match=match):
        apply_overrides(params_file, {"train.batch_size": 2, **overrides})  # a good one first
    assert params_file.read_bytes() == before
    assert sorted(p.name for p in params_file.parent.iterdir()) == ["params.yaml"]


def test_error_message_names_the_file_and_the_overrides(params_file: Path) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(params_file, {"train.epochs": -1})
    assert str(params_file) in str(err.value) and "'train.epochs': -1" in str(err.value)


def test_a_name_can_be_set_under_a_planned_key_and_anything_deeper_says_how(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", path)  # the shipped file: train.model and train.optimizer say auto
    params = apply_overrides(path, {"train.model.name": "unet"})
    assert params.train.model.name == "unet" and params.train.model.kwargs == {}
    with pytest.raises(
        ConfigError, match=r"train\.optimizer is auto .* set it whole, e\.g\. --set 'train\.optimizer="
    ):
        apply_overrides(path, {"train.optimizer.kwargs.lr": 0.001})
