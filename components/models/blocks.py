"""Convolution blocks shared by the own U-Net variants (plain double conv and inception)."""

from __future__ import annotations

import torch
from torch import nn

from components.models.base import conv_bn_relu


class DoubleConv(nn.Module):
    """Two 3x3 conv layers, as in each U-Net level.

    Args:
        cin: Input channels.
        cout: Output channels.
        valid: Unpadded ("valid") convolutions as in the original U-Net (each conv trims 2 px).
        bn: Add BatchNorm (the 2015 paper has none; it trains faster with it).

    Shape:
        (N, cin, H, W) -> (N, cout, H, W), or (N, cout, H-4, W-4) when ``valid``.
    """

    def __init__(self, cin: int, cout: int, valid: bool = False, bn: bool = True) -> None:
        super().__init__()
        pad = 0 if valid else 1
        self.body = nn.Sequential(conv_bn_relu(cin, cout, 3, pad, bn), conv_bn_relu(cout, cout, 3, pad, bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class InceptionBlock(nn.Module):
    """Inception module: parallel 1x1, 3x3, 5x5 (two 3x3) and pool->1x1 branches, concatenated.

    Output channels are split over the four branches (a quarter each, the rest to the 3x3 branch),
    then fused by a 1x1 conv so the block is a drop-in replacement for :class:`DoubleConv`.

    Args:
        cin: Input channels.
        cout: Output channels.
        valid: Not supported (inception branches need 'same' padding); must be False.
        bn: Add BatchNorm.

    Shape:
        (N, cin, H, W) -> (N, cout, H, W).
    """

    def __init__(self, cin: int, cout: int, valid: bool = False, bn: bool = True) -> None:
        super().__init__()
        if valid:
            raise ValueError("inception blocks need padding='same'")
        q = max(cout // 4, 1)
        b3 = cout - 3 * q if cout > 3 * q else q
        self.b1 = conv_bn_relu(cin, q, 1, bn=bn)
        self.b3 = nn.Sequential(conv_bn_relu(cin, b3, 1, bn=bn), conv_bn_relu(b3, b3, 3, bn=bn))
        self.b5 = nn.Sequential(
            conv_bn_relu(cin, q, 1, bn=bn), conv_bn_relu(q, q, 3, bn=bn), conv_bn_relu(q, q, 3, bn=bn)
        )
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_bn_relu(cin, q, 1, bn=bn))
        self.fuse = conv_bn_relu(q * 3 + b3, cout, 1, bn=bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], dim=1))
