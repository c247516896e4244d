"""SegNet (Badrinarayanan et al. 2017): VGG-style encoder, decoder upsampling with max-pool indices.

No maintained library ships SegNet, hence this own module. ``vgg_segnet`` is the paper's network (the
13 conv layers of VGG16-BN as encoder), optionally initialised from torchvision's ImageNet VGG16-BN;
``segnet`` is the same design at half width for CPU training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from components.models.base import MODELS, conv_bn_relu, drop_encoder_weights

_VGG16_CONVS = (2, 2, 3, 3, 3)


class SegNet(nn.Module):
    """Encoder-decoder whose decoder unpools with the encoder's max-pooling indices.

    Args:
        in_channels: Input channels.
        num_classes: Output logits channels.
        widths: Channels of the five encoder stages.
        convs: Conv layers per stage (VGG16: 2, 2, 3, 3, 3).

    Shape:
        (N, in_channels, H, W) -> (N, num_classes, H, W) for any H, W (unpooling restores odd sizes).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int] = (64, 128, 256, 512, 512),
        convs: Sequence[int] = _VGG16_CONVS,
    ) -> None:
        super().__init__()
        if len(widths) != len(convs):
            raise ValueError(f"widths {tuple(widths)} and convs {tuple(convs)} must have the same length")
        self.encoder = nn.ModuleList()
        cin = in_channels
        for w, n in zip(widths, convs, strict=True):
            self.encoder.append(nn.Sequential(*(conv_bn_relu(cin if i == 0 else w, w) for i in range(n))))
            cin = w
        self.decoder = nn.ModuleList()
        for s in reversed(range(len(widths))):
            w, n = widths[s], convs[s]
            out = widths[s - 1] if s > 0 else widths[0]
            layers = [conv_bn_relu(w, w) for _ in range(n - 1)] + [conv_bn_relu(w, out)]
            self.decoder.append(nn.Sequential(*layers))
        self.head = nn.Conv2d(widths[0], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pools = []
        for stage in self.encoder:
            x = stage(x)
            size = x.shape[-2:]
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            pools.append((idx, size))
        for stage, (idx, size) in zip(self.decoder, reversed(pools), strict=True):
            x = stage(F.max_unpool2d(x, idx, (2, 2), (2, 2), output_size=size))
        return self.head(x)


def load_vgg16_bn_weights(net: SegNet) -> None:
    """Copy torchvision's ImageNet VGG16-BN conv/BN weights into the SegNet encoder (needs network).

    For ``in_channels != 3`` the first conv's RGB filters are averaged and repeated.
    """
    from torchvision.models import VGG16_BN_Weights, vgg16_bn

    src = [m for m in vgg16_bn(weights=VGG16_BN_Weights.IMAGENET1K_V1).features if not isinstance(m, nn.ReLU)]
    src = [m for m in src if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
    dst = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)]
    with torch.no_grad():
        for s, d in zip(src, dst, strict=True):
            state = dict(s.state_dict())
            if isinstance(d, nn.Conv2d) and d.in_channels != s.in_channels:
                w = state["weight"].mean(dim=1, keepdim=True)
                state["weight"] = w.repeat(1, d.in_channels, 1, 1) * (3 / d.in_channels)
            if isinstance(d, nn.Conv2d) and d.bias is None:
                state.pop("bias", None)
            d.load_state_dict(state)


@MODELS.register("segnet", "SegNet with pooling-index unpooling, VGG16 layout at half width (own)")
def segnet(in_channels: int, num_classes: int, base_channels: int = 32, **kwargs: Any) -> nn.Module:
    """SegNet, widths (b, 2b, 4b, 8b, 8b) with ``b = base_channels``."""
    b = base_channels
    kwargs = drop_encoder_weights("segnet", kwargs)
    return SegNet(in_channels, num_classes, widths=(b, 2 * b, 4 * b, 8 * b, 8 * b), **kwargs)


@MODELS.register("vgg_segnet", "SegNet with the full VGG16-BN encoder; encoder_weights='imagenet' optional")
def vgg_segnet(in_channels: int, num_classes: int, encoder_weights: str | None = None) -> nn.Module:
    """The paper's SegNet (VGG16-BN encoder, 29M parameters)."""
    net = SegNet(in_channels, num_classes)
    if encoder_weights not in (None, "imagenet"):
        raise ValueError(f"vgg_segnet encoder_weights must be None or 'imagenet', got {encoder_weights!r}")
    if encoder_weights == "imagenet":
        load_vgg16_bn_weights(net)
    return net
