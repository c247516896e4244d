"""Self-contained checkpoints: save -> load gives back the same network and specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from components.params.config import parse_params
from components.preprocessing.pipeline import PreprocessSpec
from components.training.checkpoint import (
    CheckpointError,
    ModelSpec,
    load_checkpoint,
    model_spec_from_params,
    save_checkpoint,
)
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]
MSPEC = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 2})
PSPEC = PreprocessSpec((32, 32), "letterbox", "zscore", {}, 1, (2.0, 8))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trained_model() -> torch.nn.Module:
    """A model whose weights and BatchNorm statistics differ from a fresh build."""
    torch.manual_seed(0)
    model = MSPEC.build()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 3, (4, 32, 32))
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = trained_model()
    path = tmp_path / "fold_0" / "best.pt"  # parent folders are created
    save_checkpoint(path, model, MSPEC, PSPEC, {"epoch": 3, "val_dice": 0.5})
    assert path.is_file() and not list(path.parent.glob("*.tmp"))

    loaded, mspec, pspec = load_checkpoint(path)
    assert mspec == MSPEC and pspec == PSPEC
    assert not loaded.training
    x = torch.randn(2, 1, 40, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        fresh = MSPEC.build().eval()
        assert not torch.allclose(fresh(x), model(x))  # the weights, not the architecture, made it equal
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k

    raw = torch.load(path, weights_only=False)
    assert raw["extra"] == {"epoch": 3, "val_dice": 0.5}
    assert raw["preprocess"] == PSPEC.to_dict()


def test_saving_again_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, MSPEC.build(), MSPEC, PSPEC, {"epoch": 0})
    save_checkpoint(path, MSPEC.build(), MSPEC, PSPEC, {"epoch": 1})
    assert torch.load(path, weights_only=False)["extra"] == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_build_never_downloads_encoder_weights() -> None:
    """``encoder_weights`` from params.yaml is ignored when rebuilding: the weights come from the file."""
    spec = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 2, "encoder_weights": "imagenet"})
    assert isinstance(spec.build(), torch.nn.Module)


def test_model_spec_from_params() -> None:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["train"]["model"] = {"name": "unet", "kwargs": {"base_channels": 8}}
    raw["data"]["channels"] = 3
    params = parse_params(raw)
    assert model_spec_from_params(params) == ModelSpec(
        "unet", 3, params.data.num_classes, {"base_channels": 8}
    )


class _Payload:
    """Stands for any pickled object: unpickling it could run arbitrary code."""


def test_a_checkpoint_holding_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "model": {}, "preprocess": {}, "extra": _Payload()}, path)
    with pytest.raises(CheckpointError, match="objects other than tensors"):
        load_checkpoint(path)
