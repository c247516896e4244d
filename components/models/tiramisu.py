"""FC-DenseNet / "One Hundred Layers Tiramisu" (Jégou et al. 2017), variants 56, 67 and 103 (own)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from components.models.base import MODELS, PadToStride, drop_encoder_weights


def _dense_layer(cin: int, growth: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, growth, 3, padding=1, bias=False),
        nn.Dropout2d(dropout),
    )


class DenseBlock(nn.Module):
    """``n`` densely connected layers; returns (input + new features, new features only).

    Shape:
        (N, C, H, W) -> ((N, C + n*growth, H, W), (N, n*growth, H, W)).
    """

    def __init__(self, cin: int, n: int, growth: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_dense_layer(cin + i * growth, growth, dropout) for i in range(n))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        new = []
        for layer in self.layers:
            out = layer(x)
            x = torch.cat([x, out], dim=1)
            new.append(out)
        return x, torch.cat(new, dim=1)


class FCDenseNet(nn.Module):
    """Fully convolutional DenseNet.

    Args:
        in_channels: Input channels.
        num_classes: Output logits channels.
        down_layers: Layers per dense block on the way down (mirrored on the way up).
        bottleneck_layers: Layers of the bottleneck block.
        growth: Growth rate k.
        first_channels: Channels of the first 3x3 conv.
        dropout: Dropout after each conv.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes, H, W), H and W divisible by 2**len(down_layers).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        down_layers: Sequence[int] = (4, 4, 4, 4, 4),
        bottleneck_layers: int = 4,
        growth: int = 12,
        first_channels: int = 48,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.first = nn.Conv2d(in_channels, first_channels, 3, padding=1)
        self.down, self.trans_down, skip_ch = nn.ModuleList(), nn.ModuleList(), []
        c = first_channels
        for n in down_layers:
            self.down.append(DenseBlock(c, n, growth, dropout))
            c += n * growth
            skip_ch.append(c)
            self.trans_down.append(
                nn.Sequential(
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(c, c, 1, bias=False),
                    nn.Dropout2d(dropout),
                    nn.MaxPool2d(2),
                )
            )
        self.bottleneck = DenseBlock(c, bottleneck_layers, growth, dropout)
        new = bottleneck_layers * growth
        self.trans_up, self.up = nn.ModuleList(), nn.ModuleList()
        for n, sc in zip(reversed(down_layers), reversed(skip_ch), strict=True):
            self.trans_up.append(nn.ConvTranspose2d(new, new, 3, stride=2, padding=1, output_padding=1))
            self.up.append(DenseBlock(new + sc, n, growth, dropout))
            c, new = new + sc + n * growth, n * growth
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for block, td in zip(self.down, self.trans_down, strict=True):
            x, _ = block(x)
            skips.append(x)
            x = td(x)
        full, new = self.bottleneck(x)
        for tu, block, skip in zip(self.trans_up, self.up, reversed(skips), strict=True):
            full, new = block(torch.cat([tu(new), skip], dim=1))
        return self.head(full)


_VARIANTS: dict[str, dict[str, Any]] = {
    "56": {"down_layers": (4,) * 5, "bottleneck_layers": 4, "growth": 12},
    "67": {"down_layers": (5,) * 5, "bottleneck_layers": 5, "growth": 16},
    "103": {"down_layers": (4, 5, 7, 10, 12), "bottleneck_layers": 15, "growth": 16},
}


def _register(variant: str) -> None:
    def factory(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
        cfg = {**_VARIANTS[variant], **drop_encoder_weights(f"fc_densenet{variant}", kwargs)}
        net = FCDenseNet(in_channels, num_classes, **cfg)
        return PadToStride(net, 2 ** len(net.down))

    desc = f"FC-DenseNet{variant} (Tiramisu; own)"
    factory.__doc__ = desc
    MODELS.add(f"fc_densenet{variant}", factory, desc)


for _v in _VARIANTS:
    _register(_v)
