"""Ignored pixels (outside the ROI or the ignore label) count in no loss, for every registered loss."""

from __future__ import annotations

import pytest
import torch

from components.losses import LOSSES, build_loss
from components.losses.base import IGNORE_INDEX


def _loss(name: str, num_classes: int) -> torch.nn.Module:
    freqs = [0.5, 0.3, 0.2] if num_classes == 3 else None
    return build_loss([{"name": name}], num_classes, freqs)


def _case(num_classes: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    target = torch.randint(0, max(num_classes, 2), (2, *shape))
    ignored = torch.zeros_like(target, dtype=torch.bool)
    ignored[..., : shape[-1] // 3] = True  # a band of unannotated pixels in every image
    return target.masked_fill(ignored, IGNORE_INDEX), ignored


@pytest.mark.parametrize("shape", [(8, 9), (4, 5, 6)])
@pytest.mark.parametrize("num_classes", [1, 3])
@pytest.mark.parametrize("name", LOSSES.names())
def test_garbage_logits_at_ignored_pixels_change_neither_value_nor_gradient(
    name: str, num_classes: int, shape: tuple[int, ...]
) -> None:
    if name in ("ce", "weighted_ce") and num_classes == 1:
        return  # refused at build time (test_losses)
    target, ignored = _case(num_classes, shape)
    loss = _loss(name, num_classes)
    base = torch.randn(2, num_classes, *shape, dtype=torch.float64)
    mask = ignored.unsqueeze(1).expand_as(base)
    values, grads = [], []
    for fill in (0.0, 1e3, -50.0):
        logits = base.masked_fill(mask, fill).requires_grad_(True)
        value = loss(logits, target)
        (grad,) = torch.autograd.grad(value, logits)
        values.append(value.detach())
        grads.append(grad)
    assert torch.isfinite(values[0])
    for v, g in zip(values[1:], grads[1:], strict=True):
        torch.testing.assert_close(v, values[0], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(g, grads[0], rtol=1e-9, atol=1e-12)
    assert float(grads[0][mask].abs().max()) == 0.0, "ignored pixels must get no gradient"


@pytest.mark.parametrize("name", ["dice", "ce", "bce", "focal", "jaccard"])
def test_ignored_pixels_equal_leaving_them_out(name: str) -> None:
    """Ignoring the right half of an image gives the loss of its left half alone."""
    torch.manual_seed(2)
    target = torch.randint(0, 3, (1, 6, 8))
    logits = torch.randn(1, 3, 6, 8, dtype=torch.float64)
    masked = target.clone()
    masked[..., 4:] = IGNORE_INDEX
    loss = _loss(name, 3)
    torch.testing.assert_close(loss(logits, masked), loss(logits[..., :4], target[..., :4]))


def test_an_all_ignored_batch_gives_zero_loss_and_no_nan() -> None:
    target = torch.full((1, 4, 4), IGNORE_INDEX)
    for name in LOSSES.names():
        value = _loss(name, 3)(torch.randn(1, 3, 4, 4, requires_grad=True), target)
        assert torch.isfinite(value), name
