"""Segmentation architectures selected by short name (``params.yaml: train.model``).

Importing this package registers every architecture in :data:`MODELS`; :func:`build_model` is the one
entry point the training loop uses. Encoder-decoders come from segmentation-models-pytorch; own modules
(U-Net/Inception U-Net, SegNet, FCN-8s, FC-DenseNet, dilated context module) exist only where no
maintained library has the architecture.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from components.models import dilated, fcn, monai_nets, segnet, smp_models, tiramisu, unet  # noqa: F401  (register)
from components.models.base import MODELS, PadToStride, count_parameters

__all__ = ["MODELS", "PadToStride", "build_model", "count_parameters"]


def build_model(name: str, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Build a registered architecture.

    Args:
        name: Registered name (see ``MODELS.describe()`` / ``segflow list models``).
        in_channels: Image channels (1 gray, 3 RGB).
        num_classes: Number of output logit maps (classes including background).
        **kwargs: Architecture options, e.g. ``encoder_name``, ``encoder_weights`` (default None: random
            init, nothing downloaded), ``deep_supervision`` (unet, inception_unet).

    Returns:
        A module mapping (N, in_channels, H, W) to logits (N, num_classes, H, W) for any H, W; with
        ``deep_supervision=True`` in train mode a list (full-resolution main output first).

    Raises:
        RegistryError: Unknown name.
        ValueError: Bad channel counts or an argument the architecture does not accept.
    """
    if int(in_channels) < 1 or int(num_classes) < 1:
        raise ValueError(f"in_channels and num_classes must be >= 1, got {in_channels} and {num_classes}")
    factory = MODELS.get(name)
    try:
        return factory(int(in_channels), int(num_classes), **kwargs)
    except TypeError as err:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if match:
            raise ValueError(f"model '{name}' got unknown argument '{match.group(1)}'") from err
        raise
