"""FCN-8s (Long et al. 2015) on an smp encoder (VGG16-BN by default). Own module: libraries ship only
FCN-ResNet (torchvision), not the 8s skip architecture."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from components.models.base import MODELS, PadToStride


def _bilinear_kernel(channels: int, kernel: int) -> torch.Tensor:
    """Per-channel bilinear upsampling kernel for a transposed conv (the paper's initialisation)."""
    factor = (kernel + 1) // 2
    center = factor - 1 if kernel % 2 == 1 else factor - 0.5
    og = torch.arange(kernel, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    weight = torch.zeros(channels, channels, kernel, kernel)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight


class FCN8s(nn.Module):
    """Fully convolutional network with stride-16 and stride-8 skip fusions.

    Args:
        in_channels: Input channels.
        num_classes: Output logits channels.
        encoder_name: smp encoder (depth 5).
        encoder_weights: None or a weight tag (e.g. "imagenet").
        fc_channels: Width of the convolutionised fc6/fc7 layers (4096 in the paper).
        fc_kernel: Kernel of fc6 (7 in the paper; 3 keeps the default light).
        dropout: Dropout after fc6 and fc7.

    Shape:
        (N, in_channels, H, W) -> (N, num_classes, H, W), H and W divisible by 32.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        encoder_name: str = "vgg16_bn",
        encoder_weights: str | None = None,
        fc_channels: int = 512,
        fc_kernel: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.encoder = smp.encoders.get_encoder(
            encoder_name, in_channels=in_channels, depth=5, weights=encoder_weights
        )
        ch = self.encoder.out_channels
        self.fc = nn.Sequential(
            nn.Conv2d(ch[5], fc_channels, fc_kernel, padding=fc_kernel // 2),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(fc_channels, fc_channels, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.score32 = nn.Conv2d(fc_channels, num_classes, 1)
        self.score16 = nn.Conv2d(ch[4], num_classes, 1)
        self.score8 = nn.Conv2d(ch[3], num_classes, 1)
        for score in (self.score16, self.score8):  # skips start as no-ops, as in the paper
            nn.init.zeros_(score.weight)
            assert score.bias is not None  # nn.Conv2d's default bias=True
            nn.init.zeros_(score.bias)
        self.up32 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.up16 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            self.up32.weight.copy_(_bilinear_kernel(num_classes, 4))
            self.up16.weight.copy_(_bilinear_kernel(num_classes, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        s = self.up32(self.score32(self.fc(feats[5]))) + self.score16(feats[4])
        s = self.up16(s) + self.score8(feats[3])
        return F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)


@MODELS.register("fcn8s", "FCN-8s: VGG16-BN encoder, stride-16/8 skip fusion (own head)")
def fcn8s(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """FCN-8s wrapped to accept any H, W."""
    return PadToStride(FCN8s(in_channels, num_classes, **kwargs), 32)
