"""Every registered loss works on volumes (N, C, Z, Y, X) as on images, deep supervision included."""

from __future__ import annotations

import pytest
import torch

from components.losses import LOSSES, build_loss

FREQS = [0.8, 0.15, 0.05]


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_runs_and_backpropagates_on_volumes(name: str) -> None:
    torch.manual_seed(0)
    loss = build_loss([{"name": name}], 3, class_frequencies=FREQS)
    logits = torch.randn(2, 3, 4, 6, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 6, 6))
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["dice", "ce", "tversky"])
def test_a_perfect_volume_prediction_scores_lower_than_a_wrong_one(name: str) -> None:
    target = torch.zeros(1, 4, 6, 6, dtype=torch.long)
    target[:, 1:3, 2:5, 2:5] = 1
    perfect = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 20 - 10
    loss = build_loss([{"name": name}], 2)
    assert float(loss(perfect, target)) < float(loss(-perfect, target))


def test_deep_supervision_downsamples_volume_targets() -> None:
    torch.manual_seed(0)
    loss = build_loss([{"name": "dice"}, {"name": "ce"}], 3)
    x = torch.randn(2, 3, 8, 8, 8)
    y = torch.randint(0, 3, (2, 8, 8, 8))
    full = float(loss(x, y))
    both = float(loss([x, x[:, :, ::2, ::2, ::2]], y))
    assert both != full and torch.isfinite(torch.tensor(both))


def test_wrong_rank_is_refused_with_the_shapes() -> None:
    loss = build_loss([{"name": "dice"}], 2)
    with pytest.raises(ValueError, match=r"\(N, C, Z, Y, X\)"):
        loss(torch.randn(2, 2, 4, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
