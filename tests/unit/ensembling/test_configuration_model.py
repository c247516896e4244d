"""A packaged model of two configurations, a 3D checkpoint (3D windows) and a 2D one (slices along
an axis): the MLflow model averages their probabilities on the input volume's own grid, equal to
the in-process configuration ensemble and to the mean of the two configurations' own predictions."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest
import torch

from components.ensembling.packaging import save_ensemble_model
from components.inference.configurations import ConfigurationEnsemble, Member, predictor_from_members
from components.inference.options import InferenceOptions
from components.inference.predictor import predictor_from_checkpoints
from components.postprocessing import Postprocessing
from components.preprocessing.native import NativeSpec
from components.training.checkpoint import ModelSpec, save_checkpoint

CLASS_NAMES = ["background", "tube", "blob"]
PREPROCESS = {"ndim": 3, "channels": 1, "intensity_method": "zscore", "target_spacing": (2.0, 1.0, 1.0)}


def _checkpoint(path: Path, patch: tuple[int, ...], slice_axis: int | None, seed: int) -> Path:
    torch.manual_seed(seed)
    mspec = ModelSpec("dynunet", 1, 3, {"patch_size": list(patch), "base_filters": 4, "max_levels": 3})
    spec = NativeSpec(**PREPROCESS, slice_axis=slice_axis, patch_size=patch)  # type: ignore[arg-type]
    save_checkpoint(path, mspec.build().eval(), mspec, spec, {})
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Member]:
    root = tmp_path_factory.mktemp("configurations")
    three = [_checkpoint(root / f"3d_{k}.pt", (8, 16, 16), None, k) for k in range(2)]
    two = [_checkpoint(root / f"2d_{k}.pt", (16, 16), 0, 10 + k) for k in range(2)]
    return [
        Member("3d", tuple(three), InferenceOptions(tta=True, tta_axes=(2,))),
        Member("2d", tuple(two), InferenceOptions(tta=True, tta_axes=(1,))),
    ]


VOLUME = np.random.default_rng(3).normal(size=(1, 10, 22, 18)).astype(np.float32)
SPACING = (1.5, 1.0, 0.8)


def test_the_configuration_ensemble_is_the_mean_of_each_configurations_probabilities(
    members: list[Member],
) -> None:
    mixed = predictor_from_members(members)
    assert isinstance(mixed, ConfigurationEnsemble)
    own = [predictor_from_checkpoints(list(m.checkpoints), options=m.options) for m in members]
    assert own[1].spec.slice_axis == 0 and own[0].spec.slice_axis is None  # type: ignore[union-attr]
    probs = [p.predict_proba(VOLUME, SPACING) for p in own]
    assert probs[0].shape == probs[1].shape == (3, 10, 22, 18)  # each on the input's grid
    assert not np.allclose(probs[0], probs[1], atol=1e-3)  # two different models
    np.testing.assert_allclose(mixed.predict_proba(VOLUME, SPACING), (probs[0] + probs[1]) / 2, atol=1e-6)


def test_the_packaged_model_averages_a_3d_and_a_2d_checkpoint(members: list[Member], tmp_path: Path) -> None:
    pp = Postprocessing(connectivity=1)
    opts = InferenceOptions(tta=True, tta_axes=(2,), postprocessing=pp)
    ckpts = [p for m in members for p in m.checkpoints]
    save_ensemble_model(tmp_path / "model", ckpts, opts, CLASS_NAMES, 1, members=members)
    cfg = json.loads((tmp_path / "model" / "artifacts" / "ensemble.json").read_text())
    assert [m["name"] for m in cfg["members"]] == ["3d", "2d"]
    assert cfg["members"][1]["inference"]["tta_axes"] == [1]  # each configuration keeps its mirroring
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    params = {"output": "probabilities", "spacing": ",".join(map(str, SPACING))}
    probs = np.asarray(loaded.predict(VOLUME, params=params))
    assert probs.shape == (1, 3, 10, 22, 18)
    expected = predictor_from_members(members, pp).predict_proba(VOLUME, SPACING)
    np.testing.assert_allclose(probs[0], expected, atol=1e-5)
    labels = np.asarray(loaded.predict(VOLUME, params={"spacing": params["spacing"]}))
    np.testing.assert_array_equal(labels[0], expected.argmax(0))


def test_a_single_configuration_is_the_plain_fold_ensemble(members: list[Member]) -> None:
    one = predictor_from_members(members[:1])
    assert not isinstance(one, ConfigurationEnsemble) and len(one.models) == 2
    with pytest.raises(ValueError, match="at least one"):
        predictor_from_members([])
