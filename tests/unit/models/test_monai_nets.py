"""3D (and 2D) MONAI networks: nnU-Net's topology rule, shapes, deep supervision, clear errors."""

from __future__ import annotations

import pytest
import torch

from components.models import build_model
from components.models.monai_nets import dynunet_topology


def test_isotropic_patches_pool_every_axis_until_the_feature_map_is_small() -> None:
    kernels, strides = dynunet_topology((32, 48, 32), (1.0, 1.0, 1.0))
    assert strides[0] == [1, 1, 1] and all(k == [3, 3, 3] for k in kernels)
    assert strides[1:] == [[2, 2, 2], [2, 2, 2], [2, 2, 2]]  # 32 -> 4: no further pooling


def test_anisotropic_spacing_pools_only_the_fine_axes_first() -> None:
    kernels, strides = dynunet_topology((20, 160, 160), (3.0, 0.8, 0.8))
    assert strides[1] == [1, 2, 2] and kernels[0] == [1, 3, 3]  # thick slices: no mixing, no pooling
    assert strides[2] == [2, 2, 2]  # in-plane 1.6 mm: now within 2x of 3 mm


@pytest.mark.parametrize(
    ("patch", "spacing"), [((16, 24, 16), (1.0, 1.0, 1.0)), ((8, 32, 32), (4.0, 1.0, 1.0))]
)
def test_dynunet_maps_a_patch_to_class_logits_and_splits_deep_supervision(
    patch: tuple, spacing: tuple
) -> None:
    net = build_model(
        "dynunet", 2, 3, patch_size=list(patch), spacing=list(spacing), base_filters=4, deep_supervision=True
    )
    x = torch.randn(2, 2, *patch)
    net.train()
    outs = net(x)
    assert isinstance(outs, list) and len(outs) >= 2 and all(tuple(o.shape) == (2, 3, *patch) for o in outs)
    net.eval()
    with torch.no_grad():
        assert tuple(net(x).shape) == (2, 3, *patch)


def test_dynunet_and_segresnet_also_build_in_2d() -> None:
    x = torch.randn(1, 1, 32, 32)
    for name, kwargs in (("dynunet", {"base_filters": 4}), ("segresnet", {"init_filters": 8})):
        net = build_model(name, 1, 2, patch_size=[32, 32], **kwargs).eval()
        with torch.no_grad():
            assert tuple(net(x).shape) == (1, 2, 32, 32)


def test_segresnet_refuses_a_patch_it_cannot_pool() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        build_model("segresnet", 1, 2, patch_size=[20, 32, 32])


def test_unknown_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="filterz"):
        build_model("dynunet", 1, 2, patch_size=[16, 16, 16], filterz=3)
