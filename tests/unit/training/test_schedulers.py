"""Schedulers: stepping interval, shapes of the LR curves, toy training, state round-trip, errors."""

from __future__ import annotations

import pytest
import torch

from components.training.optim import build_optimizer
from components.training.schedulers import SCHEDULERS, build_scheduler

EPOCHS, STEPS = 4, 5


def make(name: str, opt_name: str = "sgd", lr: float = 0.1, **kwargs):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer(opt_name, [param], lr=lr)
    return opt, build_scheduler(name, opt, epochs=EPOCHS, steps_per_epoch=STEPS, **kwargs)


def flat(history: list[list[float]]) -> list[float]:
    return [lr for epoch in history for lr in epoch]


def run(opt, sched, metrics=lambda e: {"val_loss": 1.0, "val_dice": 0.5}) -> list[list[float]]:
    """LR seen at each batch, per epoch."""
    history = []
    for epoch in range(EPOCHS):
        lrs = []
        for _ in range(STEPS):
            lrs.append(sched.lr[0])
            opt.step()
            sched.step_batch()
        history.append(lrs)
        sched.step_epoch(metrics(epoch))
    return history


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_toy_training_reduces_loss(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 3)
    y = x.sum(1)
    model = torch.nn.Linear(3, 1)
    opt = build_optimizer("sgd", model.parameters(), lr=0.05)
    sched = build_scheduler(name, opt, epochs=EPOCHS, steps_per_epoch=STEPS)
    losses = []
    for _ in range(EPOCHS):
        for _ in range(STEPS):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x).squeeze(1), y)
            loss.backward()
            opt.step()
            sched.step_batch()
            losses.append(float(loss.detach()))
        sched.step_epoch({"val_loss": losses[-1]})
    assert losses[-1] < 0.5 * losses[0], name


def test_each_scheduler_steps_in_one_place_only() -> None:
    expected = {
        "cosine": "batch",
        "poly": "batch",
        "cyclic": "batch",
        "onecycle": "batch",
        "step": "epoch",
        "plateau": "epoch",
        "none": "none",
    }
    assert set(SCHEDULERS.names()) == set(expected)
    for name, interval in expected.items():
        assert make(name)[1].interval == interval


def test_cosine_warmup_and_poly_formula() -> None:
    lrs = flat(run(*make("cosine", warmup_epochs=1, min_lr=0.01)))
    assert lrs[:STEPS] == pytest.approx([0.1 * (i + 1) / STEPS for i in range(STEPS)])  # linear warm-up
    assert max(lrs) == pytest.approx(0.1) and lrs[-1] < 0.02 and min(lrs) >= 0.01 - 1e-12
    assert all(b <= a + 1e-12 for a, b in zip(lrs[STEPS:], lrs[STEPS + 1 :], strict=False))  # then decays
    poly = flat(run(*make("poly")))
    total = EPOCHS * STEPS
    assert poly == pytest.approx([0.1 * (1 - t / total) ** 0.9 for t in range(total)])


def test_step_plateau_and_none() -> None:
    step = run(*make("step", step_size=2, gamma=0.5))
    assert [e[0] for e in step] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    plateau = run(*make("plateau", monitor="val_dice", patience=1, factor=0.5))  # val_dice never improves
    assert plateau[0][0] == 0.1 and plateau[-1][0] < 0.1
    assert make("plateau", monitor="val_dice")[1].scheduler.mode == "max"
    assert make("plateau")[1].scheduler.mode == "min"
    assert {lr for e in run(*make("none")) for lr in e} == {0.1}


def test_onecycle_peaks_and_tolerates_extra_steps() -> None:
    opt, sched = make("onecycle", opt_name="adam")
    lrs = flat(run(opt, sched))
    assert max(lrs) == pytest.approx(0.1, rel=1e-3) and lrs[-1] < 0.01
    for _ in range(3):  # a miscounted last batch must not crash
        sched.step_batch()


def test_cyclic_stays_in_range() -> None:
    lrs = flat(run(*make("cyclic", base_lr=0.01, max_lr=0.1, step_size_up=3)))
    assert min(lrs) == pytest.approx(0.01) and max(lrs) == pytest.approx(0.1)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"scheduler 'cosine'.*'warmup'"):
        make("cosine", warmup=1)
    with pytest.raises(ValueError, match="scheduler 'plateau'"):
        make("plateau", bogus=1)
    with pytest.raises(ValueError, match="epochs"):
        build_scheduler("none", make("none")[0], epochs=0, steps_per_epoch=1)
    _, sched = make("plateau", monitor="val_dice")
    with pytest.raises(KeyError, match="val_dice"):
        sched.step_epoch({"val_loss": 1.0})
