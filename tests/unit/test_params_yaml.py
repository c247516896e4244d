"""The shipped params.yaml is valid and every component it names builds and works together."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from components.config import load_params
from components.losses import build_loss
from components.models import build_model
from components.preprocessing.augment import build_augmentation
from components.training.early_stopping import EarlyStopping
from components.training.optim import build_optimizer
from components.training.schedulers import build_scheduler

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_every_component_named_in_params_yaml_builds_and_trains_one_step() -> None:
    p = load_params(PARAMS)
    tc = p.train
    model = build_model(tc.model.name, p.data.channels, p.data.num_classes, **tc.model.kwargs)
    loss_fn = build_loss(
        [t.model_dump() for t in tc.loss], p.data.num_classes, class_frequencies=[0.7, 0.1, 0.1, 0.1]
    )
    opt = build_optimizer(tc.optimizer.name, model.parameters(), **tc.optimizer.kwargs)
    sched = build_scheduler(
        tc.scheduler.name, opt, epochs=tc.epochs, steps_per_epoch=2, **tc.scheduler.kwargs
    )
    aug = build_augmentation([t.model_dump() for t in tc.augment.transforms], seed=tc.augment.seed)
    stopper = EarlyStopping(
        tc.early_stopping.monitor, tc.early_stopping.mode, max(tc.early_stopping.patience, 1)
    )

    h, w = p.preprocess.size
    rng = np.random.default_rng(0)
    image = rng.random((h, w, p.data.channels), dtype=np.float32)
    mask = rng.integers(0, p.data.num_classes, (h, w), dtype=np.uint8)
    out = aug(image=image, mask=mask)
    assert out["image"].shape == image.shape and set(np.unique(out["mask"])) <= set(range(p.data.num_classes))

    x = torch.from_numpy(np.moveaxis(out["image"], -1, 0)[None].copy())
    y = torch.from_numpy(out["mask"][None].astype(np.int64))
    logits = model(x)
    assert logits.shape == (1, p.data.num_classes, h, w)
    loss = loss_fn(logits, y)
    loss.backward()
    opt.step()
    sched.step_batch()
    sched.step_epoch({"val_dice": 0.5, "val_loss": float(loss.detach())})
    assert torch.isfinite(loss)
    assert stopper.update({tc.early_stopping.monitor: 0.5}) is False
