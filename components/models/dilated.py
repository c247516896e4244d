"""Multi-scale context aggregation by dilated convolutions (Yu & Koltun 2016), on a dilated front end.

The front end is an smp encoder run at output stride 8 (dilated last stages, resnet18 by default, the
role VGG16 plays in the paper); its class scores go through the context module (3x3 convs with
dilations 1, 1, 2, 4, 8, 16, 1 and a final 1x1), identity-initialised as in the paper, then are
upsampled x8. Own module: no library ships the context module.
"""

from __future__ import annotations

from typing import Any, Literal

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from components.models.base import MODELS, PadToStride

_DILATIONS = (1, 1, 2, 4, 8, 16, 1)
_LARGE_WIDTHS = (2, 2, 4, 8, 16, 32, 32)


def _identity_init(conv: nn.Conv2d, noise: float = 1e-3) -> None:
    """Initialise a conv so it (approximately) passes its input through: the paper's scheme.

    Output channel ``o`` reads input channel(s) ``i`` with ``i * cout // cin == o``, averaged.
    """
    cout, cin, kh, kw = conv.weight.shape
    w = torch.zeros_like(conv.weight)
    groups = torch.tensor([i * cout // cin for i in range(cin)]) if cin >= cout else None
    for o in range(cout):
        if groups is None:
            w[o, o * cin // cout, kh // 2, kw // 2] = 1.0
        else:
            members = (groups == o).nonzero().flatten()
            w[o, members, kh // 2, kw // 2] = 1.0 / max(len(members), 1)
    with torch.no_grad():
        conv.weight.copy_(w + noise * torch.randn_like(w))
        if conv.bias is not None:
            conv.bias.zero_()


class ContextModule(nn.Module):
    """Context module over C class-score maps.

    Args:
        channels: C, the number of classes.
        variant: "basic" (C channels throughout) or "large" (widths 2C ... 32C).

    Shape:
        (N, C, h, w) -> (N, C, h, w).
    """

    def __init__(self, channels: int, variant: Literal["basic", "large"] = "basic") -> None:
        super().__init__()
        if variant not in ("basic", "large"):
            raise ValueError(f"context variant must be 'basic' or 'large', got {variant!r}")
        widths = [channels] * 7 if variant == "basic" else [m * channels for m in _LARGE_WIDTHS]
        layers: list[nn.Module] = []
        cin = channels
        for width, d in zip(widths, _DILATIONS, strict=True):
            conv = nn.Conv2d(cin, width, 3, padding=d, dilation=d)
            _identity_init(conv)
            layers += [conv, nn.ReLU(inplace=True)]
            cin = width
        final = nn.Conv2d(cin, channels, 1)
        _identity_init(final)
        self.body = nn.Sequential(*layers, final)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DilatedContextNet(nn.Module):
    """Dilated front end (stride 8) + context module + x8 bilinear upsampling.

    Args:
        in_channels: Input channels.
        num_classes: Output logits channels.
        encoder_name: smp encoder supporting output_stride=8 (ResNet family, etc.).
        encoder_weights: None or a weight tag.
        context: "basic" or "large" context module.
        dropout: Dropout before the front-end classifier.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes, H, W), H and W divisible by 8.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        context: Literal["basic", "large"] = "basic",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = smp.encoders.get_encoder(
            encoder_name, in_channels=in_channels, depth=5, weights=encoder_weights, output_stride=8
        )
        self.classifier = nn.Sequential(
            nn.Dropout2d(dropout), nn.Conv2d(self.encoder.out_channels[-1], num_classes, 1)
        )
        self.context = ContextModule(num_classes, context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.context(self.classifier(self.encoder(x)[-1]))
        return F.interpolate(scores, size=x.shape[-2:], mode="bilinear", align_corners=False)


@MODELS.register("dilated_context", "Dilated front end (stride 8) + Yu & Koltun context module (own)")
def dilated_context(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """Context-aggregation network wrapped to accept any H, W."""
    return PadToStride(DilatedContextNet(in_channels, num_classes, **kwargs), 8)
