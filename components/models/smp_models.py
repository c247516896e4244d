"""Encoder-decoder architectures from segmentation-models-pytorch (smp), registered by short name.

Defaults are lightweight (resnet18 encoder, random init) so a model trains on CPU in minutes; pass
``encoder_name`` for another smp / timm (``"tu-<timm name>"``) encoder and ``encoder_weights="imagenet"``
on a machine with network access. With ``encoder_weights=None`` nothing is downloaded.
"""

from __future__ import annotations

import inspect
from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from components.models.base import MODELS, PadToStride, accepted_kwargs, check_kwargs

_SMP_FIXED = ("in_channels", "classes", "activation", "aux_params")


def build_smp(
    name: str,
    arch: type[nn.Module],
    in_channels: int,
    num_classes: int,
    *,
    encoder_name: str,
    encoder_weights: str | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build an smp architecture wrapped so it accepts any H, W.

    smp silently swallows unknown keywords, so they are checked here against the architecture's
    signature. The pad stride is ``2 ** encoder_depth`` (32 by default, 8 for PSPNet).

    Args:
        name: Registered name, for error messages.
        arch: smp model class (e.g. ``smp.Unet``).
        in_channels: Input channels.
        num_classes: Output channels (logits).
        encoder_name: smp encoder name.
        encoder_weights: None (random init) or a weight tag such as "imagenet".
        **kwargs: Further arguments of ``arch``.
    """
    if kwargs.pop("deep_supervision", False):
        raise ValueError(f"model '{name}' does not support deep_supervision; use 'unet' or 'inception_unet'")
    check_kwargs(name, kwargs, accepted_kwargs(arch.__init__, exclude=_SMP_FIXED))
    net = arch(
        encoder_name=encoder_name,
        encoder_weights=encoder_weights,
        in_channels=in_channels,
        classes=num_classes,
        **kwargs,
    )
    depth = kwargs.get("encoder_depth", accepted_default(arch, "encoder_depth", 5))
    return PadToStride(net, 2 ** int(depth))


def accepted_default(arch: type[nn.Module], param: str, fallback: int) -> int:
    """Default value of ``param`` in ``arch.__init__`` (``fallback`` if it has none)."""
    p = inspect.signature(arch.__init__).parameters.get(param)
    return fallback if p is None or p.default is inspect.Parameter.empty else int(p.default)


def _register(name: str, arch: type[nn.Module], encoder: str, description: str, **fixed: Any) -> None:
    named_encoder = name.startswith("unet_")  # the encoder is part of the name: do not let kwargs change it

    def factory(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
        if named_encoder and kwargs.get("encoder_name", encoder) != encoder:
            raise ValueError(
                f"model '{name}' always uses the {encoder} encoder, got "
                f"encoder_name={kwargs['encoder_name']!r}; use name 'unet' with encoder_name to choose one"
            )
        kwargs.setdefault("encoder_name", encoder)
        for key, value in fixed.items():
            kwargs.setdefault(key, value)
        return build_smp(name, arch, in_channels, num_classes, **kwargs)

    factory.__doc__ = description
    MODELS.add(name, factory, description)


_register("deeplabv3", smp.DeepLabV3, "resnet18", "DeepLab v3: dilated encoder + ASPP (smp; resnet18)")
_register(
    "deeplabv3plus", smp.DeepLabV3Plus, "resnet18", "DeepLab v3+: ASPP + low-level decoder (smp; resnet18)"
)
_register("linknet", smp.Linknet, "resnet18", "LinkNet: additive skip decoder (smp; resnet18)")
_register("fpn", smp.FPN, "resnet18", "Feature Pyramid Network decoder (smp; resnet18)")
_register("pspnet", smp.PSPNet, "resnet18", "PSPNet: pyramid pooling at stride 8 (smp; resnet18)")
_register("unetplusplus", smp.UnetPlusPlus, "resnet18", "U-Net++: nested dense skip paths (smp; resnet18)")
_register("unet_resnet18", smp.Unet, "resnet18", "U-Net with ResNet-18 encoder (smp)")
_register("unet_resnet34", smp.Unet, "resnet34", "U-Net with ResNet-34 encoder (smp)")
_register("unet_resnet50", smp.Unet, "resnet50", "U-Net with ResNet-50 encoder (smp)")
_register(
    "unet_se_resnet",
    smp.Unet,
    "se_resnet50",
    "U-Net with SE-ResNet-50 encoder and scSE decoder attention (smp)",
    decoder_attention_type="scse",
)
_register("unet_densenet121", smp.Unet, "densenet121", "U-Net with DenseNet-121 encoder (smp)")
_register(
    "unet_inceptionresnetv2", smp.Unet, "inceptionresnetv2", "U-Net with Inception-ResNet-v2 encoder (smp)"
)
_register("unet_xception", smp.Unet, "xception", "U-Net with Xception encoder (smp)")
_register("unet_efficientnet_b0", smp.Unet, "efficientnet-b0", "U-Net with EfficientNet-B0 encoder (smp)")
