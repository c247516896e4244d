"""preflight builds everything params.yaml names (on the CPU, nothing written) and names the bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.data.synthetic import generate_phantoms
from components.params.config import ConfigError, Params, parse_params
from components.training.preflight import preflight
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_phantoms(tmp_path_factory.mktemp("phantoms") / "raw", n_cases=8, size=32)


def shipped(dataset: Path, **sections: Any) -> dict[str, Any]:
    """The shipped params.yaml with data.dir at the phantoms; ``train={...}`` etc. update a section."""
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["data"]["dir"] = str(dataset)
    for section, values in sections.items():
        raw[section].update(values)
    return raw


def problem(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        preflight(parse_params(raw))
    return str(info.value)


def test_the_shipped_params_pass(dataset: Path) -> None:
    preflight(parse_params(shipped(dataset)))


def test_unknown_model_names_the_key_and_suggests(dataset: Path) -> None:
    msg = problem(shipped(dataset, train={"model": {"name": "unetx"}}))
    assert "train.model.name: unknown model 'unetx'" in msg
    assert "Did you mean: unet" in msg


def test_bad_model_kwarg_names_the_kwargs(dataset: Path) -> None:
    msg = problem(shipped(dataset, train={"model": {"name": "unet", "kwargs": {"depthh": 3}}}))
    assert "train.model.kwargs:" in msg and "depthh" in msg


def test_bad_optimizer_kwarg_names_the_kwargs(dataset: Path) -> None:
    msg = problem(shipped(dataset, train={"optimizer": {"name": "adamw", "kwargs": {"lrr": 0.1}}}))
    assert "train.optimizer.kwargs:" in msg and "optimizer 'adamw' got unknown argument(s) ['lrr']" in msg


def test_unknown_transform_names_its_index(dataset: Path) -> None:
    transforms = [{"name": "HorizontalFlip"}, {"name": "HorizontalFlipp", "kwargs": {}}]
    msg = problem(shipped(dataset, train={"augment": {"seed": 0, "transforms": transforms}}))
    assert "train.augment.transforms[1].name: unknown augmentation 'HorizontalFlipp'" in msg


def test_bad_scheduler_name_and_kwarg(dataset: Path) -> None:
    msg = problem(shipped(dataset, train={"scheduler": {"name": "cosin"}}))
    assert "train.scheduler.name: unknown scheduler 'cosin'" in msg and "Did you mean: cosine" in msg
    msg = problem(shipped(dataset, train={"scheduler": {"name": "cosine", "kwargs": {"warmup": 1}}}))
    assert "train.scheduler.kwargs:" in msg and "scheduler 'cosine' got unknown argument 'warmup'" in msg


def test_unknown_loss_names_its_index(dataset: Path) -> None:
    msg = problem(shipped(dataset, train={"loss": [{"name": "dice"}, {"name": "dicee"}]}))
    assert "train.loss[1].name: unknown loss 'dicee'" in msg


def test_every_problem_is_listed(dataset: Path) -> None:
    raw = shipped(
        dataset, train={"model": {"name": "unetx"}, "optimizer": {"name": "adamw", "kwargs": {"x": 1}}}
    )
    raw["data"]["dir"] = str(dataset / "nowhere")
    msg = problem(raw)
    assert "data.dir:" in msg and "train.model.name:" in msg and "train.optimizer.kwargs:" in msg


@pytest.mark.parametrize("image_size", [[0, 0], [64, 0], [-1, 64]])
def test_image_size_must_be_positive(dataset: Path, image_size: list[int]) -> None:
    with pytest.raises(
        ConfigError, match=r"preprocess\.image_size\.\d: Input should be greater than or equal to 1"
    ):
        parse_params(shipped(dataset, preprocess={"image_size": image_size}))


def test_missing_data_dir_is_named(dataset: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_dataset"
    raw = shipped(dataset)
    raw["data"]["dir"] = str(missing)
    msg = problem(raw)
    assert f"data.dir: {missing} does not exist" in msg and "images/ and masks/" in msg


def test_a_folder_without_masks_is_named(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    raw = shipped(dataset)
    raw["data"]["dir"] = str(tmp_path)
    assert f"data.dir: {tmp_path} has no masks/" in problem(raw)


def test_a_relative_data_dir_is_taken_from_the_root(dataset: Path) -> None:
    raw = shipped(dataset)
    raw["data"]["dir"] = dataset.name
    params: Params = parse_params(raw)
    preflight(params, root=dataset.parent)
    with pytest.raises(ConfigError, match=r"data\.dir"):
        preflight(params, root=dataset.parent / "elsewhere")
