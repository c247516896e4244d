"""Training loop for one fold: AdamW/any optimiser, schedules, bf16 on CUDA, checkpoints, history."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm.auto import tqdm

from components.config import Params
from components.data.dataset import SegmentationDataset, class_frequencies, rare_class_weights
from components.data.splits import Splits
from components.losses import build_loss
from components.metrics import case_metrics
from components.models import build_model
from components.preprocessing.augment import build_augmentation, describe_augmentation
from components.preprocessing.pipeline import spec_from_params
from components.training.checkpoint import model_spec_from_params, save_checkpoint
from components.training.device import autocast, resolve_device, seed_everything
from components.training.early_stopping import EarlyStopping
from components.training.optim import build_optimizer
from components.training.schedulers import build_scheduler

MetricLogger = Callable[[Mapping[str, float], int], None]


@dataclass(frozen=True)
class FoldResult:
    """What training one fold produced."""

    fold: int
    best_epoch: int
    best_val_dice: float
    epochs_run: int
    best_checkpoint: Path
    last_checkpoint: Path
    history: Path
    train_images_per_s: float
    augmentation: dict  # resolved albumentations pipeline + seed (logged with the fold's run)


def _val_scores(
    model: nn.Module, loader: DataLoader, criterion: nn.Module, device: torch.device, params: Params
) -> dict[str, float]:
    """Validation loss and per-class Dice (the shared metric code, at network resolution)."""
    model.eval()
    classes = list(range(1, params.data.num_classes))
    losses, dice = [], {c: [] for c in classes}
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with autocast(device, params.train.bf16):
                logits = model(x)
                losses.append(float(criterion(logits.float(), y)))
            pred = logits.argmax(1).cpu().numpy()
            for p, r in zip(pred, y.cpu().numpy(), strict=True):
                for row in case_metrics(p, r, classes, surface=False):
                    dice[int(row["class"])].append(float(row["dice"]))
    out = {"val_loss": float(np.mean(losses))}
    for c in classes:
        out[f"val_dice_{params.data.class_names[c]}"] = (
            float(np.nanmean(dice[c])) if dice[c] else float("nan")
        )
    fg = [out[f"val_dice_{params.data.class_names[c]}"] for c in classes]
    out["val_dice"] = float(np.nanmean(fg)) if not np.all(np.isnan(fg)) else 0.0
    return out


def _loader(ds: SegmentationDataset, params: Params, shuffle: bool, gen: torch.Generator) -> DataLoader:
    tc = params.train
    sampler = None
    if shuffle and tc.class_aware_sampling:
        weights = rare_class_weights(ds.masks(), params.data.num_classes)
        sampler = WeightedRandomSampler(weights, num_samples=len(ds), replacement=True, generator=gen)
    return DataLoader(
        ds,
        batch_size=tc.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=tc.num_workers,
        generator=gen,
        drop_last=shuffle and len(ds) > tc.batch_size,  # BatchNorm layers fail on a batch of 1
    )


def train_fold(
    params: Params,
    fold: int,
    splits: Splits,
    prepared_dir: Path,
    out_dir: Path,
    log_metrics: MetricLogger | None = None,
) -> FoldResult:
    """Train one fold and write ``best.pt``, ``last.pt`` and ``history.csv`` into ``out_dir``.

    Args:
        params: Validated params.yaml.
        fold: Fold index; its cases validate, the other folds train.
        splits: Folds and test set from the preprocess stage.
        prepared_dir: Cached arrays from the preprocess stage.
        out_dir: ``models/fold_<k>``.
        log_metrics: Called with each epoch's metrics and the epoch index (e.g. MLflow).
    """
    tc = params.train
    device = resolve_device(tc.device)
    gen = seed_everything(tc.seed + fold)
    spec = spec_from_params(params)
    aug = build_augmentation([t.model_dump() for t in tc.augment.transforms], seed=tc.augment.seed + fold)
    train_ds = SegmentationDataset(prepared_dir, splits.train_cases(fold), spec, augment=aug)
    val_ds = SegmentationDataset(prepared_dir, splits.folds[fold], spec)
    train_dl, val_dl = _loader(train_ds, params, True, gen), _loader(val_ds, params, False, gen)

    mspec = model_spec_from_params(params)
    model = build_model(mspec.name, mspec.in_channels, mspec.num_classes, **mspec.kwargs).to(device)
    freqs = class_frequencies(train_ds.masks(), params.data.num_classes)
    criterion = build_loss(
        [t.model_dump() for t in tc.loss], params.data.num_classes, class_frequencies=freqs
    )
    optimizer = build_optimizer(tc.optimizer.name, model.parameters(), **tc.optimizer.kwargs)
    steps = max(1, math.ceil(len(train_dl) / tc.grad_accum))  # optimiser steps per epoch
    scheduler = build_scheduler(
        tc.scheduler.name, optimizer, epochs=tc.epochs, steps_per_epoch=steps, **tc.scheduler.kwargs
    )
    es = tc.early_stopping
    stopper = EarlyStopping(es.monitor, es.mode, es.patience, es.min_delta) if es.patience > 0 else None

    out_dir.mkdir(parents=True, exist_ok=True)
    best_path, last_path, hist_path = out_dir / "best.pt", out_dir / "last.pt", out_dir / "history.csv"
    history: list[dict[str, float]] = []
    best_dice, best_epoch, seen, busy = -1.0, -1, 0, 0.0
    extra = {"fold": fold, "params_train": tc.model_dump(mode="json")}
    bar = tqdm(range(tc.epochs), desc=f"fold {fold}", unit="epoch", dynamic_ncols=True)
    for epoch in bar:
        model.train()
        t0, losses = time.perf_counter(), []
        optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(train_dl):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device, tc.bf16):
                out = model(x)
                loss = criterion(out, y) / tc.grad_accum
            loss.backward()
            losses.append(float(loss.detach()) * tc.grad_accum)
            if (i + 1) % tc.grad_accum == 0 or i + 1 == len(train_dl):
                if tc.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step_batch()
            seen += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        busy += time.perf_counter() - t0
        row = {
            "epoch": float(epoch),
            "train_loss": float(np.mean(losses)),
            "lr": optimizer.param_groups[0]["lr"],
        }
        row.update(_val_scores(model, val_dl, criterion, device, params))
        history.append(row)
        scheduler.step_epoch(row)
        if row["val_dice"] > best_dice:
            best_dice, best_epoch = row["val_dice"], epoch
            save_checkpoint(best_path, model, mspec, spec, {**extra, "epoch": epoch, "val_dice": best_dice})
        if log_metrics is not None:
            log_metrics({k: v for k, v in row.items() if k != "epoch"}, epoch)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_dice=f"{row['val_dice']:.3f}")
        if stopper is not None and stopper.update(row):
            break
    save_checkpoint(last_path, model, mspec, spec, {**extra, "epoch": len(history) - 1})
    with hist_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    return FoldResult(
        fold,
        best_epoch,
        best_dice,
        len(history),
        best_path,
        last_path,
        hist_path,
        seen / max(busy, 1e-9),
        describe_augmentation(aug),
    )
