"""params.yaml -> typed config: defaults, unknown keys and bad values name the dotted key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from components.params.config import ConfigError, Params, load_params, parse_params
from components.params.user import PLANNABLE, auto_keys, load_user_params
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


def minimal() -> dict[str, Any]:
    """The smallest valid params mapping (every section with defaults left out)."""
    return {
        "data": {"classes": {"background": 0, "organ": 1}},
        "train": {"model": {"name": "unet"}, "loss": [{"name": "dice"}], "optimizer": {"name": "adamw"}},
    }


def with_value(dotted: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(minimal())
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return raw


def test_minimal_params_get_documented_defaults() -> None:
    p = parse_params(minimal())
    assert isinstance(p, Params)
    assert p.data.dir == "data/raw" and p.data.channels == 1
    assert p.preprocess.splits.n_folds == 5
    assert p.train.folds is None
    assert p.folds == [0, 1, 2, 3, 4]  # default: every fold of preprocess.splits.n_folds
    assert p.train.scheduler.name == "none" and p.train.early_stopping.patience == 0
    assert p.preprocess.clahe is None


def test_folds_default_follows_n_folds_and_explicit_folds_are_kept() -> None:
    assert parse_params(with_value("preprocess.splits", {"n_folds": 3})).folds == [0, 1, 2]
    raw = with_value("preprocess.splits", {"n_folds": 3})
    raw["train"]["folds"] = [2, 0]
    assert parse_params(raw).folds == [2, 0]


def test_handset_params_load(tmp_path: Path) -> None:
    p = load_params(HANDSET_PARAMS)
    assert p.data.class_names[0] == "background"
    assert p.data.num_classes == len(p.data.classes)
    # Same result through parse_params on the raw mapping.
    assert parse_params(yaml.safe_load(HANDSET_PARAMS.read_text())) == p


def test_the_shipped_params_leave_every_training_choice_to_the_plan() -> None:
    user = load_user_params(REPO / "params.yaml")
    assert set(auto_keys(user)) >= set(PLANNABLE) - {"data.classes", "data.channels"}
    with pytest.raises(ConfigError, match=r"train\.epochs"):  # the resolved params allow no auto
        load_params(REPO / "params.yaml")


def test_exponent_floats_without_a_dot_are_floats(tmp_path: Path) -> None:
    """``lr: 1e-4`` is a float in YAML 1.2 (DVC, ruamel); PyYAML alone would give a string."""
    text = HANDSET_PARAMS.read_text()
    assert "lr: 0.003" in text
    path = tmp_path / "params.yaml"
    path.write_text(
        text.replace("lr: 0.003", "lr: 1e-4").replace("weight_decay: 0.0001", "weight_decay: 5E-5")
    )
    kwargs = load_params(path).train.optimizer.kwargs
    assert kwargs == {"lr": 1e-4, "weight_decay": 5e-5}
    assert all(isinstance(v, float) for v in kwargs.values())


def test_class_names_ordered_by_value() -> None:
    p = parse_params(with_value("data.classes", {"lesion": 2, "background": 0, "organ": 1}))
    assert p.data.class_names == ["background", "organ", "lesion"]
    assert p.data.num_classes == 3


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        ("train.epoch", 3),  # typo of train.epochs
        ("preprocess.intensity.methd", "zscore"),
        ("train.early_stopping.patiense", 2),
        ("evaluate.worstcases", 3),
        ("datta", {}),
    ],
)
def test_unknown_key_is_an_error_naming_the_dotted_key(dotted: str, value: Any) -> None:
    with pytest.raises(ConfigError) as err:
        parse_params(with_value(dotted, value), source="my_params.yaml")
    msg = str(err.value)
    assert "my_params.yaml" in msg
    assert f"{dotted}: unknown key" in msg


@pytest.mark.parametrize(
    ("dotted", "value", "key"),
    [
        ("train.epochs", 0, "train.epochs"),
        ("train.batch_size", "eight", "train.batch_size"),
        ("preprocess.spatial_mode", "stretch", "preprocess.spatial_mode"),
        ("preprocess.intensity.method", "gamma", "preprocess.intensity.method"),
        ("preprocess.splits.test_fraction", 0.95, "preprocess.splits.test_fraction"),
        ("preprocess.splits.n_folds", 1, "preprocess.splits.n_folds"),
        ("data.channels", 0, "data.channels"),
        ("train.device", "tpu", "train.device"),
        ("train.loss", [], "train.loss"),
        ("train.early_stopping.mode", "up", "train.early_stopping.mode"),
        ("preprocess.clahe", {"clip_limit": 0}, "preprocess.clahe.clip_limit"),
        ("evaluate.connectivity", 4, "evaluate.connectivity"),
    ],
)
def test_bad_value_is_an_error_naming_the_key(dotted: str, value: Any, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"- {key}: "):
        parse_params(with_value(dotted, value))


def test_every_offending_key_is_listed() -> None:
    raw = with_value("train.epochs", 0)
    raw["train"]["batch_size"] = -1
    raw["train"]["epoch"] = 1
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    msg = str(err.value)
    assert "train.epochs" in msg and "train.batch_size" in msg and "train.epoch: unknown key" in msg


def test_missing_required_section_is_named() -> None:
    raw = minimal()
    del raw["train"]
    with pytest.raises(ConfigError, match=r"- train: Field required"):
        parse_params(raw)


@pytest.mark.parametrize(
    "classes",
    [
        {"background": 0},  # a single class
        {"background": 0, "organ": 2},  # gap
        {"background": 1, "organ": 2},  # does not start at 0
        {"background": 0, "organ": 0},  # duplicate value
        {"background": 0, "organ": -1},
    ],
)
def test_class_values_must_be_0_to_k_minus_1(classes: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match=r"data\.classes"):
        parse_params(with_value("data.classes", classes))


def test_train_folds_out_of_range_is_an_error() -> None:
    raw = with_value("preprocess.splits", {"n_folds": 3})
    raw["train"]["folds"] = [0, 3]
    with pytest.raises(
        ConfigError, match=r"train\.folds \[3\] out of range for preprocess\.splits\.n_folds=3"
    ):
        parse_params(raw)
    raw["train"]["folds"] = [-1]
    with pytest.raises(ConfigError, match=r"train\.folds \[-1\]"):
        parse_params(raw)


def test_params_are_frozen() -> None:
    p = parse_params(minimal())
    with pytest.raises(pydantic.ValidationError):
        p.train.epochs = 3  # type: ignore[misc]


def test_load_params_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"empty\.yaml: invalid parameters"):
        load_params(empty)


def test_load_params_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(with_value("train.epochs", -5)))
    with pytest.raises(ConfigError, match=r"exp\.yaml: invalid parameters\n  - train\.epochs: "):
        load_params(path)


def test_config_mirrors_the_constants_of_higher_layers() -> None:
    from components.data.regions import MAX_CLASSES
    from components.params import config
    from components.validation.near_duplicates import DEFAULT_THRESHOLD

    assert config.MAX_CLASSES == MAX_CLASSES
    assert config.NEAR_DUPLICATE_THRESHOLD == DEFAULT_THRESHOLD
