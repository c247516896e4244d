"""Training loop for one fold: setup, one epoch, validation, history; bf16 on CUDA, checkpoints."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm.auto import tqdm

from components import layout
from components.config import Params
from components.data.class_balance import class_frequencies, rare_class_weights
from components.data.splits import Splits
from components.errors import UserError
from components.losses import build_loss
from components.metrics import case_metrics
from components.metrics.reductions import class_means, mean_foreground_dice
from components.models import build_model
from components.preprocessing.augment import build_augmentation, describe_augmentation
from components.preprocessing.native import NativeSpec, with_training_window
from components.preprocessing.specs import AnySpec, prepared_info, prepared_spec
from components.training.checkpoint import ModelSpec, model_spec_from_params, save_checkpoint
from components.training.dataset import SegmentationDataset
from components.training.device import autocast, resolve_device, seed_everything
from components.training.early_stopping import EarlyStopping
from components.training.native_data import native_fold_data, native_model_kwargs
from components.training.optim import build_optimizer
from components.training.patches import PatchDataset
from components.training.schedulers import build_scheduler
from components.windowing import SliceWise, WindowSettings, sliding_window_probabilities

MetricLogger = Callable[[Mapping[str, float], int], None]


class NonFiniteLossError(UserError, ArithmeticError):
    """The training loss became NaN or infinite: the fold stops, and nothing is registered."""


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


@dataclass
class FoldSetup:
    """Everything one fold trains with, wired from params (data, model, loss, optimisation)."""

    params: Params
    fold: int
    device: torch.device
    spec: AnySpec
    model_spec: ModelSpec
    augmentation: Any
    train_loader: DataLoader
    val_loader: DataLoader | None
    model: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    stopper: EarlyStopping | None
    val_cases: list[tuple[np.ndarray, np.ndarray]] | None = None  # patch mode: whole cases
    window: WindowSettings | None = None  # patch mode: sliding-window validation


def _patch_loader(ds: PatchDataset, params: Params) -> DataLoader:
    """Patches in batches; every item is drawn at random already, so no shuffling."""
    tc = params.train
    return DataLoader(ds, batch_size=tc.batch_size, shuffle=False, num_workers=tc.num_workers, drop_last=True)


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


def setup_fold(params: Params, fold: int, splits: Splits, prepared_dir: Path) -> FoldSetup:
    """Seed, then build the datasets, loaders, model, loss, optimiser, scheduler and early stopping.

    Args:
        params: Validated params.yaml.
        fold: Fold index; its cases validate, the other folds train.
        splits: Folds and test set from the preprocess stage.
        prepared_dir: Cached arrays from the preprocess stage.
    """
    tc = params.train
    device = resolve_device(tc.device)
    gen = seed_everything(tc.seed + fold)
    spec = prepared_spec(prepared_dir)
    mspec = model_spec_from_params(params)
    val_cases, window, val_dl = None, None, None
    if isinstance(spec, NativeSpec):
        spec = with_training_window(spec, params, prepared_info(prepared_dir)["fingerprint"])
        nd = native_fold_data(params, fold, splits, prepared_dir, spec)
        train_ds: PatchDataset | SegmentationDataset = nd.train
        train_dl, aug, val_cases = _patch_loader(nd.train, params), nd.augmentation, nd.val_cases
        # validation windows use the defaults (overlap 0.5, no TTA): ensemble.* must not re-train
        window = WindowSettings(
            patch_size=(1, *nd.patch_size) if spec.slice_axis is not None else nd.patch_size
        )
        kwargs = native_model_kwargs(mspec.name, mspec.kwargs, nd.patch_size, nd.spacing)
        mspec = ModelSpec(mspec.name, spec.channels, mspec.num_classes, kwargs)
    else:
        aug = build_augmentation([t.model_dump() for t in tc.augment.transforms], seed=tc.augment.seed + fold)
        train_ds = SegmentationDataset(prepared_dir, splits.train_cases(fold), spec, augment=aug)
        val_ds = SegmentationDataset(prepared_dir, splits.folds[fold], spec)
        train_dl, val_dl = _loader(train_ds, params, True, gen), _loader(val_ds, params, False, gen)

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
    return FoldSetup(
        params,
        fold,
        device,
        spec,
        mspec,
        aug,
        train_dl,
        val_dl,
        model,
        criterion,
        optimizer,
        scheduler,
        stopper,
        val_cases,
        window,
    )


def train_one_epoch(s: FoldSetup) -> tuple[float, int, float]:
    """One pass over the training loader (with gradient accumulation and clipping).

    Returns:
        Mean training loss, images seen, seconds spent (device work included).
    """
    tc = s.params.train
    s.model.train()
    t0, losses, seen = time.perf_counter(), [], 0
    s.optimizer.zero_grad(set_to_none=True)
    n_batches = len(s.train_loader)
    for i, (x, y) in enumerate(s.train_loader):
        x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
        with autocast(s.device, tc.bf16):
            out = s.model(x)
            loss = s.criterion(out, y) / tc.grad_accum
        value = float(loss.detach()) * tc.grad_accum
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"fold {s.fold}: training loss is {value} at batch {i}; stopping before the weights "
                "are spoiled. Lower train.optimizer.kwargs.lr, keep train.grad_clip on, or check the "
                "intensity normalisation (preprocess.intensity)"
            )
        loss.backward()
        losses.append(value)
        if (i + 1) % tc.grad_accum == 0 or i + 1 == n_batches:
            if tc.grad_clip:
                nn.utils.clip_grad_norm_(s.model.parameters(), tc.grad_clip)
            s.optimizer.step()
            s.optimizer.zero_grad(set_to_none=True)
            s.scheduler.step_batch()
        seen += len(x)
    if s.device.type == "cuda":
        torch.cuda.synchronize()
    return float(np.mean(losses)), seen, time.perf_counter() - t0


def _validation_batches(s: FoldSetup) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(logits-like, target) per validation batch: network outputs at network size, or in patch
    mode the log of each whole case's sliding-window probabilities (softmax of it gives them back,
    so the loss is that of the stitched prediction)."""
    if s.window is None:
        assert s.val_loader is not None  # resize/pad/letterbox modes validate in batches
        for x, y in s.val_loader:
            x, y = x.to(s.device), y.to(s.device)
            with autocast(s.device, s.params.train.bf16):
                logits = s.model(x)
            yield logits.float(), y
        return
    assert s.val_cases is not None
    spec = s.spec
    axis = spec.slice_axis if isinstance(spec, NativeSpec) else None
    net = SliceWise(s.model) if axis is not None else s.model
    for image, mask in s.val_cases:
        img, m = (
            (np.moveaxis(image, 1 + axis, 1), np.moveaxis(mask, axis, 0))
            if axis is not None
            else (image, mask)
        )
        probs = sliding_window_probabilities([net], img, s.window, s.device, bf16=s.params.train.bf16)
        yield probs.clamp_min(1e-8).log()[None], torch.from_numpy(np.asarray(m, dtype=np.int64))[None]


def validate(s: FoldSetup) -> dict[str, float]:
    """Validation loss and per-class Dice (the shared metric code, at network resolution).

    Returns:
        ``val_loss``, ``val_dice_<class>`` per foreground class and ``val_dice`` (their mean; 0
        when no class has a value).
    """
    params = s.params
    s.model.eval()
    classes = list(range(1, params.data.num_classes))
    names = params.data.class_names
    losses, rows = [], []
    with torch.no_grad():
        for logits, y in _validation_batches(s):
            losses.append(float(s.criterion(logits, y.to(logits.device))))
            pred = logits.argmax(1).cpu().numpy()
            for p, r in zip(pred, y.cpu().numpy(), strict=True):
                rows += [
                    {"class_name": names[int(m["class"])], "dice": float(m["dice"])}
                    for m in case_metrics(p, r, classes, surface=False)
                ]
    per_case = pd.DataFrame(rows, columns=["class_name", "dice"])
    means = class_means(per_case, "dice")
    out = {"val_loss": float(np.mean(losses))}
    for c in classes:
        out[f"val_dice_{names[c]}"] = float(means.get(names[c], float("nan")))
    fg = mean_foreground_dice(per_case)
    out["val_dice"] = 0.0 if fg is None else fg
    return out


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """Write the per-epoch rows as CSV."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


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
        out_dir: ``models/folds/fold_<k>``.
        log_metrics: Called with each epoch's metrics and the epoch index (e.g. MLflow).
    """
    s = setup_fold(params, fold, splits, prepared_dir)
    tc = params.train
    out_dir.mkdir(parents=True, exist_ok=True)
    best_path, last_path = out_dir / layout.BEST_CHECKPOINT, out_dir / layout.LAST_CHECKPOINT
    history: list[dict[str, float]] = []
    best_dice, best_epoch, seen, busy = -1.0, -1, 0, 0.0
    extra = {"fold": fold, "params_train": tc.model_dump(mode="json")}
    bar = tqdm(range(tc.epochs), desc=f"fold {fold}", unit="epoch", dynamic_ncols=True)
    for epoch in bar:
        if isinstance(s.train_loader.dataset, PatchDataset):
            s.train_loader.dataset.epoch = epoch  # fresh patches each epoch
        train_loss, n_images, seconds = train_one_epoch(s)
        seen, busy = seen + n_images, busy + seconds
        row = {"epoch": float(epoch), "train_loss": train_loss, "lr": s.optimizer.param_groups[0]["lr"]}
        row.update(validate(s))
        history.append(row)
        s.scheduler.step_epoch(row)
        if row["val_dice"] > best_dice:
            best_dice, best_epoch = row["val_dice"], epoch
            save_checkpoint(
                best_path, s.model, s.model_spec, s.spec, {**extra, "epoch": epoch, "val_dice": best_dice}
            )
        if log_metrics is not None:
            log_metrics({k: v for k, v in row.items() if k != "epoch"}, epoch)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_dice=f"{row['val_dice']:.3f}")
        if s.stopper is not None and s.stopper.update(row):
            break
    save_checkpoint(last_path, s.model, s.model_spec, s.spec, {**extra, "epoch": len(history) - 1})
    hist_path = out_dir / layout.HISTORY
    write_history(hist_path, history)
    return FoldResult(
        fold,
        best_epoch,
        best_dice,
        len(history),
        best_path,
        last_path,
        hist_path,
        seen / max(busy, 1e-9),
        s.augmentation if isinstance(s.augmentation, dict) else describe_augmentation(s.augmentation),
    )
