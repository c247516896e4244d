"""Every registered optimiser reduces the loss of a toy regression; bad arguments are errors."""

from __future__ import annotations

import pytest
import torch

from components.core.registry import RegistryError
from components.training.optim import OPTIMIZERS, build_optimizer


def toy_problem() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1
    return torch.nn.Linear(4, 1), x, y


def fit(
    model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int
) -> list:
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_reduces_loss(name: str) -> None:
    model, x, y = toy_problem()
    losses = fit(model, build_optimizer(name, model.parameters()), x, y, 200)
    assert losses[-1] < 0.9 * losses[0], (name, losses[0], losses[-1])


def test_expected_names_and_options() -> None:
    assert set(OPTIMIZERS.names()) == {
        "sgd",
        "rmsprop",
        "adam",
        "adamw",
        "nadam",
        "adamax",
        "adagrad",
        "adadelta",
    }
    model, _, _ = toy_problem()
    opt = build_optimizer("sgd", model.parameters(), lr=0.05, momentum=0.99, nesterov=True, weight_decay=3e-5)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (
        0.05,
        0.99,
        True,
        3e-5,
    )


def test_errors_name_optimizer_and_argument() -> None:
    model, _, _ = toy_problem()
    with pytest.raises(RegistryError, match="adamw"):
        build_optimizer("adamm", model.parameters())
    with pytest.raises(ValueError, match=r"optimizer 'adam'.*'momentum'"):
        build_optimizer("adam", model.parameters(), momentum=0.9)
    with pytest.raises(ValueError, match="optimizer 'sgd'"):
        build_optimizer("sgd", model.parameters(), lr=-1.0)
