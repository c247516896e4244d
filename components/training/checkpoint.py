"""Self-contained checkpoints: weights plus everything needed to rebuild the model."""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from components.core.errors import UserError
from components.models import build_model
from components.preprocessing.specs import AnySpec, spec_from_dict

if TYPE_CHECKING:
    from components.params.config import Params


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is not a segflow checkpoint of tensors and plain data."""


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild a model: registry name, kwargs, channels, classes."""

    name: str
    in_channels: int
    num_classes: int
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """Instantiate the architecture (random weights)."""
        kwargs = {k: v for k, v in self.kwargs.items() if k != "encoder_weights"}
        return build_model(self.name, self.in_channels, self.num_classes, encoder_weights=None, **kwargs)


def model_spec_from_params(params: Params) -> ModelSpec:
    """The model spec that params.yaml describes."""
    m = params.train.model
    return ModelSpec(m.name, params.data.channels, params.data.num_classes, dict(m.kwargs))


def save_checkpoint(
    path: Path, model: nn.Module, model_spec: ModelSpec, preprocess: AnySpec, extra: dict[str, Any]
) -> None:
    """Write a checkpoint atomically (temp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            "model": asdict(model_spec),
            "preprocess": preprocess.to_dict(),
            "extra": extra,
        },
        tmp,
    )
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec, AnySpec]:
    """Rebuild the model from a checkpoint, in eval mode on ``device``."""
    try:  # weights_only: tensors and plain data only, so a checkpoint from anywhere cannot run code
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: holds objects other than tensors and plain data; refusing to load it "
            f"(segflow checkpoints never need code to load): {str(exc).splitlines()[0]}"
        ) from None
    spec = ModelSpec(**ckpt["model"])
    model = spec.build()
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), spec, spec_from_dict(ckpt["preprocess"])
