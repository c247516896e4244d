"""The original U-Net (Ronneberger et al. 2015) and the Inception U-Net, as one configurable module.

``build_model("unet", ...)`` gives this own U-Net; with ``encoder_name=...`` it gives smp's U-Net with a
pretrained-capable encoder instead (e.g. ``encoder_name="resnet18"``, the pipeline default).
The paper's exact network is ``base_channels=64, batch_norm=False, padding="valid"``; the defaults here
(32 channels, BatchNorm, same padding) are lighter and train faster on CPU.
"""

from __future__ import annotations

from typing import Any, Literal

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from components.models.base import MODELS, PadToStride, drop_encoder_weights
from components.models.blocks import DoubleConv, InceptionBlock
from components.models.smp_models import build_smp

_BLOCKS = {"double_conv": DoubleConv, "inception": InceptionBlock}


def _center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


def valid_output_size(size: int, depth: int) -> int:
    """Output size of a valid-padding U-Net for input ``size`` (0 if the size does not fit).

    Each level's two 3x3 convs trim 4 px; every pooling needs an even size.
    """
    s = size
    for _ in range(depth):
        s -= 4
        if s <= 0 or s % 2:
            return 0
        s //= 2
    s -= 4
    if s <= 0:
        return 0
    for _ in range(depth):
        s = 2 * s - 4
    return max(s, 0)


class UNet(nn.Module):
    """U-Net encoder-decoder with skip connections.

    Args:
        in_channels: Input channels.
        num_classes: Output logits channels.
        base_channels: Channels of the first level (doubled at each level down).
        depth: Number of poolings.
        padding: "same" (output = input size) or "valid" (original; the input is mirror-padded and
            skips are centre-cropped, then the output is cropped back to the input size).
        batch_norm: BatchNorm after each conv.
        block: "double_conv" (U-Net) or "inception" (Inception U-Net).
        up_mode: "transpose" (2x2 transposed conv) or "bilinear" (upsample + 1x1 conv).
        deep_supervision: In train mode also return auxiliary logits from the coarser decoder levels,
            upsampled to full size (main output first).

    Shape:
        (N, in_channels, H, W) -> (N, num_classes, H, W); H, W divisible by 2**depth for "same"
        (use :func:`build_model`, which pads any size).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        base_channels: int = 32,
        depth: int = 4,
        padding: Literal["same", "valid"] = "same",
        batch_norm: bool = True,
        block: Literal["double_conv", "inception"] = "double_conv",
        up_mode: Literal["transpose", "bilinear"] = "transpose",
        deep_supervision: bool = False,
    ) -> None:
        super().__init__()
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
        if block not in _BLOCKS:
            raise ValueError(f"block must be one of {sorted(_BLOCKS)}, got {block!r}")
        if up_mode not in ("transpose", "bilinear"):
            raise ValueError(f"up_mode must be 'transpose' or 'bilinear', got {up_mode!r}")
        blk, valid = _BLOCKS[block], padding == "valid"
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.depth, self.valid, self.deep_supervision = depth, valid, deep_supervision
        chans = [in_channels, *widths]
        self.down = nn.ModuleList(blk(chans[i], chans[i + 1], valid, batch_norm) for i in range(depth + 1))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            if up_mode == "transpose":
                self.up.append(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            else:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                        nn.Conv2d(widths[i + 1], widths[i], 1),
                    )
                )
            self.dec.append(blk(2 * widths[i], widths[i], valid, batch_norm))
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.aux = nn.ModuleList(
            nn.Conv2d(widths[i], num_classes, 1) for i in range(1, depth) if deep_supervision
        )

    def _core(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips, h = [], x
        for blk in self.down[:-1]:
            h = blk(h)
            skips.append(h)
            h = F.max_pool2d(h, 2)
        h = self.down[-1](h)
        feats = []
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            h = up(h)
            h = dec(torch.cat([_center_crop(skip, h.shape[-2:]), h], dim=1))
            feats.append(h)
        return self.head(h), feats[:-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        h, w = x.shape[-2:]
        if self.valid:
            x = self._mirror_pad(x)
        out, feats = self._core(x)
        if not (self.deep_supervision and self.training):
            return out[..., :h, :w]
        full = out.shape[-2:]
        outs = [out[..., :h, :w]]
        # aux heads are ordered fine -> coarse; level j sits at scale 2**(j+1) and, with valid padding,
        # covers a larger centred region than the main output, hence the centre crop before resizing
        for j, (head, feat) in enumerate(zip(self.aux, reversed(feats), strict=True)):
            scale = 2 ** (j + 1)
            a = _center_crop(head(feat), (max(1, round(full[0] / scale)), max(1, round(full[1] / scale))))
            a = F.interpolate(a, size=tuple(full), mode="bilinear", align_corners=False)
            outs.append(a[..., :h, :w])
        return outs

    def _mirror_pad(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            n = size
            while valid_output_size(n, self.depth) < size:
                n += 1
            before = (n - valid_output_size(n, self.depth)) // 2
            pads += [before, n - size - before]
        mode = "reflect" if max(pads[:2]) < x.shape[-1] and max(pads[2:]) < x.shape[-2] else "replicate"
        return F.pad(x, pads, mode=mode)


def _own_unet(in_channels: int, num_classes: int, name: str, **kwargs: Any) -> nn.Module:
    net = UNet(in_channels, num_classes, **drop_encoder_weights(name, kwargs))
    return net if net.valid else PadToStride(net, 2**net.depth)


@MODELS.register("unet", "U-Net (own, 2015 design); with encoder_name=... smp U-Net on that encoder")
def unet(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """U-Net: own original design, or smp's when ``encoder_name`` is given."""
    if "encoder_name" in kwargs:
        return build_smp("unet", smp.Unet, in_channels, num_classes, **kwargs)
    return _own_unet(in_channels, num_classes, "unet", **kwargs)


@MODELS.register("inception_unet", "Inception U-Net: inception blocks in encoder and decoder (own)")
def inception_unet(in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """U-Net whose levels are inception modules."""
    kwargs.setdefault("block", "inception")
    return _own_unet(in_channels, num_classes, "inception_unet", **kwargs)
