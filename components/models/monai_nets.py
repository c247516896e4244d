"""2D/3D networks for native-resolution patch training, from MONAI (a maintained medical-imaging library).

- ``dynunet``: nnU-Net's "dynamic U-Net": per-level strides and kernel sizes per axis derived
  from the patch size and voxel spacing (:func:`dynunet_topology`), so anisotropic data pools
  only its fine axes until they catch up; instance norm, leaky ReLU; optional residual blocks
  and deep supervision.
- ``segresnet``: Myronenko's SegResNet (residual encoder, light decoder).

Both take ``patch_size`` (and ``dynunet`` ``spacing``), which the training stage fills in from
``train.patch_size`` and the prepared spacing; the number of spatial axes follows from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from components.models.base import MODELS, drop_encoder_weights

if TYPE_CHECKING:  # MONAI is imported when one of its networks is built (it costs seconds at start-up)
    from monai.networks.nets import DynUNet

MIN_FEATURE_SIZE = 4  # nnU-Net: an axis stops pooling once its feature map would drop below this


def dynunet_topology(
    patch_size: Sequence[int], spacing: Sequence[float] | None = None, max_levels: int = 6
) -> tuple[list[list[int]], list[list[int]]]:
    """Kernel sizes and strides per level (nnU-Net's rule).

    At each level an axis is pooled (stride 2) when its spacing is at most twice the finest
    current spacing and its feature map stays at least MIN_FEATURE_SIZE; an axis much coarser
    than the finest gets kernel 1 (no mixing across thick slices) until it is first pooled.

    Returns:
        (kernel_size per level, strides per level), first level stride 1.
    """
    sizes = [int(p) for p in patch_size]
    sp = [float(s) for s in (spacing or [1.0] * len(sizes))]

    pooled = [False] * len(sizes)

    def kernel(current: list[float]) -> list[int]:
        return [3 if s / min(current) < 2 or done else 1 for s, done in zip(current, pooled, strict=True)]

    kernels, strides = [kernel(sp)], [[1] * len(sizes)]
    while len(strides) < max_levels:
        finest = min(sp)
        stride = [
            2 if s / finest <= 2 and size // 2 >= MIN_FEATURE_SIZE else 1
            for s, size in zip(sp, sizes, strict=True)
        ]
        if not any(st == 2 for st in stride):
            break
        sizes = [size // st for size, st in zip(sizes, stride, strict=True)]
        sp = [s * st for s, st in zip(sp, stride, strict=True)]
        pooled = [done or st == 2 for done, st in zip(pooled, stride, strict=True)]
        strides.append(stride)
        kernels.append(kernel(sp))
    return kernels, strides


class _MainOutput(nn.Module):
    """MONAI's deep-supervision DynUNet returns (N, heads, K, *S) in training: split it into a list
    (full-resolution head first) for the compound loss; eval mode returns the main head."""

    def __init__(self, net: DynUNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        out = self.net(x)
        if self.training and out.ndim == x.ndim + 1:
            return list(out.unbind(1))
        return out


@MODELS.register("dynunet", "nnU-Net-style dynamic U-Net (MONAI), 2D or 3D, anisotropy-aware pooling")
def dynunet(
    in_channels: int,
    num_classes: int,
    patch_size: Sequence[int] = (64, 64, 64),
    spacing: Sequence[float] | None = None,
    base_filters: int = 32,
    max_filters: int = 320,
    max_levels: int = 6,
    deep_supervision: bool = False,
    res_block: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Dynamic U-Net whose depth, strides and kernels follow the patch size and spacing.

    Args:
        patch_size: Training patch (2 or 3 ints); sets the number of spatial axes.
        spacing: Voxel spacing of the prepared data (array-axis order); None = isotropic.
        base_filters: Channels of the first level, doubled per level up to ``max_filters``.
        max_levels: At most this many resolution levels.
        deep_supervision: Extra outputs from the two coarser decoder levels (training only).
        res_block: Residual blocks (a residual 3D U-Net) instead of plain conv blocks.
    """
    drop_encoder_weights("dynunet", kwargs)
    if kwargs:
        raise ValueError(f"model 'dynunet' got unknown argument(s) {sorted(kwargs)}")
    kernels, strides = dynunet_topology(patch_size, spacing, max_levels)
    filters = [min(base_filters * 2**i, max_filters) for i in range(len(strides))]
    from monai.networks.nets import DynUNet

    net = DynUNet(
        spatial_dims=len(patch_size),
        in_channels=in_channels,
        out_channels=num_classes,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=filters,
        deep_supervision=deep_supervision,
        deep_supr_num=min(2, len(strides) - 2) if deep_supervision else 1,
        res_block=res_block,
    )
    return _MainOutput(net)


@MODELS.register("segresnet", "SegResNet (MONAI): residual encoder-decoder, 2D or 3D")
def segresnet(
    in_channels: int,
    num_classes: int,
    patch_size: Sequence[int] = (64, 64, 64),
    spacing: Sequence[float] | None = None,
    init_filters: int = 16,
    blocks_down: Sequence[int] = (1, 2, 2, 4),
    dropout_prob: float | None = None,
    **kwargs: Any,
) -> nn.Module:
    """SegResNet; every patch axis must be divisible by 2 ** (len(blocks_down) - 1).

    Args:
        patch_size: Training patch (2 or 3 ints); sets the number of spatial axes.
        spacing: Accepted for a uniform interface (SegResNet pools every axis alike).
        init_filters: Channels of the first level (doubled per level).
        blocks_down: Residual blocks per encoder level.
    """
    del spacing
    drop_encoder_weights("segresnet", kwargs)
    if kwargs:
        raise ValueError(f"model 'segresnet' got unknown argument(s) {sorted(kwargs)}")
    factor = 2 ** (len(blocks_down) - 1)
    if any(int(p) % factor for p in patch_size):
        raise ValueError(
            f"model 'segresnet': train.patch_size {list(patch_size)} must be divisible by {factor} on "
            f"every axis (2 ** (len(blocks_down) - 1))"
        )
    from monai.networks.nets import SegResNet

    return SegResNet(
        spatial_dims=len(patch_size),
        init_filters=init_filters,
        in_channels=in_channels,
        out_channels=num_classes,
        dropout_prob=dropout_prob,
        blocks_down=tuple(int(b) for b in blocks_down),
        blocks_up=(1,) * (len(blocks_down) - 1),
    )
