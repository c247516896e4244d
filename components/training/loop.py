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
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, WeightedRandomSampler
from tqdm.auto import tqdm

from components import layout
from components.config import Params
from components.data.class_balance import class_frequencies, rare_class_weights
from components.data.splits import Splits
from components.errors import UserError
from components.losses import build_loss
from components.metrics.reductions import class_means, mean_foreground_dice
from components.models import build_model
from components.preprocessing.augment import build_augmentation, describe_augmentation
from components.preprocessing.native import NativeSpec, with_training_window
from components.preprocessing.specs import AnySpec, prepared_info, prepared_spec
from components.training.checkpoint import ModelSpec, model_spec_from_params, save_checkpoint
from components.training.dataset import SegmentationDataset
from components.training.ddp import (
    AgreedStop,
    Rank,
    broadcast_from_main,
    current_rank,
    is_main,
    local_stop,
    mean_over_ranks,
    per_rank_batch,
    rank_device,
    shard_sampler,
    wrap_model,
)
from components.training.device import autocast, resolve_device, seed_everything
from components.training.early_stopping import EarlyStopping
from components.training.interrupt import StopRequest
from components.training.native_data import native_fold_data, native_model_kwargs
from components.training.optim import build_optimizer
from components.training.patches import PatchDataset
from components.training.resume import (
    STATE_FILE,
    FoldProgress,
    commit_best,
    fold_state,
    load_state,
    reconcile_best,
    restore_fold,
    save_state,
)
from components.training.schedulers import build_scheduler
from components.training.val_dice import dice_counts, dice_rows
from components.training.workers import resolve_num_workers
from components.windowing import SliceWise, WindowSettings, sliding_window_probabilities

MetricLogger = Callable[[Mapping[str, float], int], None]
# Steps between loss read-backs on a GPU (each one waits for the device); every step on the CPU,
# where reading a value costs nothing. A non-finite loss stops the fold at the next read-back,
# before the epoch's checkpoint and state are written.
LOSS_READ_EVERY_CUDA = 25


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
    generator: torch.Generator | None = None  # data order (shuffling / class-aware sampling)
    stop: StopRequest | None = None  # polled between steps (SIGTERM / Ctrl-C)
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None  # training forward (compiled, DDP)
    memory_format: torch.memory_format = torch.contiguous_format  # of the inputs (channels-last)
    rank: Rank | None = None  # this process's rank when the fold trains with DDP (ddp.py)


def _loading(params: Params, device: torch.device) -> dict[str, Any]:
    """DataLoader settings shared by every loader: worker count, pinned memory on CUDA."""
    workers = resolve_num_workers(params.train.num_workers, device)
    return {"num_workers": workers, "pin_memory": device.type == "cuda"}


def _patch_loader(ds: PatchDataset, params: Params, device: torch.device, rank: Rank | None) -> DataLoader:
    """Patches in batches; every item is drawn at random already, so no shuffling (with DDP, each
    rank takes its own indices of the epoch's patches)."""
    sampler = shard_sampler(ds, rank, params.train.seed, shuffle=False) if rank is not None else None
    batch = per_rank_batch(params.train.batch_size, rank)
    return DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=True, **_loading(params, device))


def _loader(
    ds: SegmentationDataset,
    params: Params,
    shuffle: bool,
    gen: torch.Generator,
    device: torch.device,
    rank: Rank | None = None,
) -> DataLoader:
    """Training (``shuffle``) or validation batches; with DDP, training items are sharded by rank."""
    tc = params.train
    sampler: Any = None
    if shuffle and tc.class_aware_sampling:
        weights = rare_class_weights(ds.masks(), params.data.num_classes)
        sampler = WeightedRandomSampler(weights, num_samples=len(ds), replacement=True, generator=gen)
    elif shuffle and rank is not None:
        sampler = shard_sampler(ds, rank, int(gen.initial_seed()), shuffle=True)
    return DataLoader(
        ds,
        batch_size=per_rank_batch(tc.batch_size, rank) if shuffle else tc.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=gen,
        drop_last=shuffle and len(ds) > tc.batch_size,  # BatchNorm layers fail on a batch of 1
        **_loading(params, device),
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
    rank = current_rank()
    device = rank_device(resolve_device(tc.device), rank)
    gen = seed_everything(tc.seed + fold)
    spec = prepared_spec(prepared_dir)
    mspec = model_spec_from_params(params)
    val_cases, window, val_dl = None, None, None
    if isinstance(spec, NativeSpec):
        spec = with_training_window(spec, params, prepared_info(prepared_dir)["fingerprint"])
        nd = native_fold_data(params, fold, splits, prepared_dir, spec)
        train_ds: PatchDataset | SegmentationDataset = nd.train
        train_dl, aug, val_cases = (
            _patch_loader(nd.train, params, device, rank),
            nd.augmentation,
            nd.val_cases,
        )
        # validation windows use the defaults (overlap 0.5, no TTA): ensemble.* must not re-train
        window = WindowSettings(
            patch_size=(1, *nd.patch_size) if spec.slice_axis is not None else nd.patch_size
        )
        kwargs = native_model_kwargs(mspec.name, mspec.kwargs, nd.patch_size, nd.spacing)
        mspec = ModelSpec(mspec.name, spec.channels, mspec.num_classes, kwargs)
    else:
        seed = tc.augment.seed + fold
        aug = build_augmentation([t.model_dump() for t in tc.augment.transforms], seed=seed)
        train_ds = SegmentationDataset(prepared_dir, splits.train_cases(fold), spec, aug, augment_seed=seed)
        val_ds = SegmentationDataset(prepared_dir, splits.folds[fold], spec)
        train_dl = _loader(train_ds, params, True, gen, device, rank)
        # its own generator: how often validation runs must not move the training data order
        val_dl = _loader(val_ds, params, False, torch.Generator().manual_seed(0), device)

    model = build_model(mspec.name, mspec.in_channels, mspec.num_classes, **mspec.kwargs).to(device)
    spatial_dims = len(nd.patch_size) if isinstance(spec, NativeSpec) else 2  # the network's input
    memory_format = _memory_format(tc.channels_last, spatial_dims)
    model = model.to(memory_format=memory_format)
    trained = wrap_model(model, device) if rank is not None else model  # gradients averaged over ranks
    forward = torch.compile(trained) if tc.compile else trained
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
        gen,
        forward=forward,
        memory_format=memory_format,
        rank=rank,
    )


def _memory_format(channels_last: bool, spatial_dims: int) -> torch.memory_format:
    """channels-last (2D) / channels-last-3d (volumes) when asked for, else the default layout."""
    if not channels_last:
        return torch.contiguous_format
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def train_one_epoch(s: FoldSetup) -> tuple[float, int, float]:
    """One pass over the training loader (with gradient accumulation and clipping).

    Returns:
        Mean training loss, images seen, seconds spent (device work included).
    """
    tc = s.params.train
    s.model.train()
    forward = s.forward if s.forward is not None else s.model
    read_every = 1 if s.device.type == "cpu" else LOSS_READ_EVERY_CUDA
    t0, losses, seen = time.perf_counter(), [], 0
    pending: list[torch.Tensor] = []  # losses not yet read back from the device
    s.optimizer.zero_grad(set_to_none=True)
    n_batches = len(s.train_loader)
    for i, (x, y) in enumerate(s.train_loader):
        if s.stop is not None and s.stop.requested:
            s.stop.check(f"in fold {s.fold}, training batch {i}")
        x = x.to(s.device, non_blocking=True, memory_format=s.memory_format)
        y = y.to(s.device, non_blocking=True)
        with autocast(s.device, tc.bf16):
            out = forward(x)
            loss = s.criterion(out, y) / tc.grad_accum
        pending.append(loss.detach())
        if len(pending) >= read_every or i + 1 == n_batches:
            losses += _read_losses(s, pending, i, tc.grad_accum)
            pending = []
        loss.backward()
        if (i + 1) % tc.grad_accum == 0 or i + 1 == n_batches:
            if tc.grad_clip:
                nn.utils.clip_grad_norm_(s.model.parameters(), tc.grad_clip)
            s.optimizer.step()
            s.optimizer.zero_grad(set_to_none=True)
            s.scheduler.step_batch()
        seen += len(x)
    if s.device.type == "cuda":
        torch.cuda.synchronize()
    mean_loss, seen_all = mean_over_ranks([float(np.mean(losses)), float(seen)], s.device, s.rank)
    world = 1 if s.rank is None else s.rank.world
    return mean_loss, round(seen_all * world), time.perf_counter() - t0


def _read_losses(s: FoldSetup, pending: list[torch.Tensor], batch: int, grad_accum: int) -> list[float]:
    """The pending step losses as floats (one device read-back); a non-finite one stops the fold."""
    values = [v * grad_accum for v in torch.stack(pending).float().cpu().tolist()]
    for k, value in enumerate(values):
        if not math.isfinite(value):
            at = batch - len(values) + 1 + k
            raise NonFiniteLossError(
                f"fold {s.fold}: training loss is {value} at batch {at}; stopping before this epoch is "
                "saved. Lower train.optimizer.kwargs.lr, keep train.grad_clip on, or check the "
                "intensity normalisation (preprocess.intensity)"
            )
    return values


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
    """Validation loss and per-class Dice (counted on the device; see ``val_dice``), at network
    resolution.

    Returns:
        ``val_loss``, ``val_dice_<class>`` per foreground class and ``val_dice`` (their mean; 0
        when no class has a value).
    """
    params = s.params
    s.model.eval()
    classes = list(range(1, params.data.num_classes))
    names = params.data.class_names
    losses, counts = [], []  # kept on the device until the end: one read-back per validation
    stop = local_stop(s.stop)  # with DDP only rank 0 validates: its own stop request
    with torch.no_grad():
        for logits, y in _validation_batches(s):
            if stop is not None and stop.requested:
                stop.check(f"in fold {s.fold}, validation")
            y = y.to(logits.device)
            losses.append(s.criterion(logits, y).detach().float())
            counts.append(dice_counts(logits.argmax(1), y, classes))
    per_case = dice_rows(torch.cat(counts).cpu().numpy(), classes, names)
    means = class_means(per_case, "dice")
    out = {"val_loss": float(np.mean(torch.stack(losses).cpu().double().numpy()))}
    for c in classes:
        out[f"val_dice_{names[c]}"] = float(means.get(names[c], float("nan")))
    fg = mean_foreground_dice(per_case)
    out["val_dice"] = 0.0 if fg is None else fg
    return out


def validation_due(epoch: int, epochs: int, every: int) -> bool:
    """Validate after every ``every``-th epoch and after the last one."""
    return (epoch + 1) % every == 0 or epoch + 1 == epochs


def _val_keys(params: Params) -> list[str]:
    """The columns :func:`validate` fills (NaN on epochs without validation)."""
    names = params.data.class_names
    return ["val_loss", *(f"val_dice_{names[c]}" for c in range(1, params.data.num_classes)), "val_dice"]


def logged_metrics(row: Mapping[str, float]) -> dict[str, float]:
    """An epoch's history row as tracked metrics: no ``epoch`` (it is the step), no NaN placeholders
    of epochs without validation."""
    return {k: v for k, v in row.items() if k != "epoch" and not (k.startswith("val_") and math.isnan(v))}


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
    *,
    resume_dir: Path | None = None,
    stop: StopRequest | None = None,
    after_epoch: Callable[[int], None] | None = None,
) -> FoldResult:
    """Train one fold and write ``best.pt``, ``last.pt`` and ``history.csv`` into ``out_dir``.

    With ``resume_dir``, the fold's resumable state is written there (atomically) before the first
    epoch and after every complete epoch, and a state found there is resumed from: the fold then
    ends as an uninterrupted run would (bitwise on the CPU), and ``log_metrics`` is first called
    again for the epochs already done (a logger that has them skips them by step).

    Args:
        params: Validated params.yaml.
        fold: Fold index; its cases validate, the other folds train.
        splits: Folds and test set from the preprocess stage.
        prepared_dir: Cached arrays from the preprocess stage.
        out_dir: Where the fold's final files go (the train stage: its resume folder).
        log_metrics: Called with each epoch's metrics and the epoch index (e.g. MLflow).
        resume_dir: Folder of the fold's resumable state (None: no resume, nothing extra written).
        stop: Polled between steps; a requested stop raises ``TrainingInterrupted`` (the state of
            the last complete epoch stays in ``resume_dir``).
        after_epoch: Called with the epoch index once that epoch's state is saved.
    """
    s = setup_fold(params, fold, splits, prepared_dir)
    main = is_main(s.rank)  # with DDP: rank 0 alone validates, writes and logs
    every = 1 if s.device.type == "cpu" else LOSS_READ_EVERY_CUDA
    s.stop = AgreedStop(stop, s.device, every) if s.rank is not None and stop is not None else stop
    tc = params.train
    out_dir.mkdir(parents=True, exist_ok=True)
    best_path, last_path = out_dir / layout.BEST_CHECKPOINT, out_dir / layout.LAST_CHECKPOINT
    # With a resume folder the best checkpoint is committed together with the epoch's state.
    pending = best_path.with_name("best.next.pt") if resume_dir is not None else best_path
    state_path = resume_dir / STATE_FILE if resume_dir is not None else None
    state = load_state(state_path) if state_path is not None else None
    p = FoldProgress()
    if state is not None and state_path is not None:
        p = restore_fold(s, state)
        if main:
            reconcile_best(pending, best_path, p)
            print(f"fold {fold}: resuming from epoch {p.next_epoch} (of {tc.epochs}) — {state_path}")
        if log_metrics is not None:  # the epochs done before; the logger skips those it has
            for row in p.history:
                log_metrics(logged_metrics(row), int(row["epoch"]))
    elif state_path is not None and main:
        save_state(state_path, fold_state(s, p))  # resumable (and its MLflow run reusable) from epoch 0
    extra = {"fold": fold, "params_train": tc.model_dump(mode="json")}
    epochs = [] if p.stopped else range(p.next_epoch, tc.epochs)
    bar = tqdm(
        epochs,
        desc=f"fold {fold}",
        unit="epoch",
        dynamic_ncols=True,
        initial=p.next_epoch,
        total=tc.epochs,
        disable=not main,
    )
    for epoch in bar:
        if s.stop is not None:
            s.stop.check(f"in fold {fold} before epoch {epoch}")
        if isinstance(s.train_loader.sampler, DistributedSampler):
            s.train_loader.sampler.set_epoch(epoch)  # each epoch its own order, the same on every rank
        if isinstance(s.train_loader.dataset, PatchDataset):
            s.train_loader.dataset.epoch = epoch  # fresh patches each epoch
        if isinstance(s.train_loader.dataset, SegmentationDataset):
            s.train_loader.dataset.epoch = epoch  # the items' augmentation seeds
        train_loss, n_images, seconds = train_one_epoch(s)
        p.seen, p.busy = p.seen + n_images, p.busy + seconds
        row = {"epoch": float(epoch), "train_loss": train_loss, "lr": s.optimizer.param_groups[0]["lr"]}
        validated = validation_due(epoch, tc.epochs, tc.val_every)
        if validated:
            row.update(broadcast_from_main(validate(s) if main else None, s.rank))
        else:
            row.update(dict.fromkeys(_val_keys(params), math.nan))
        p.history.append(row)
        if validated or s.scheduler.monitor is None:  # reduce-on-plateau steps on validations only
            s.scheduler.step_epoch(row)
        if validated and row["val_dice"] > p.best_dice:
            p.best_dice, p.best_epoch = row["val_dice"], epoch
            if main:
                meta = {**extra, "epoch": epoch, "val_dice": p.best_dice}
                save_checkpoint(pending, s.model, s.model_spec, s.spec, meta)
        p.stopped = validated and s.stopper is not None and s.stopper.update(row)
        p.next_epoch = epoch + 1
        if state_path is not None and main:
            save_state(state_path, fold_state(s, p))
            commit_best(pending, best_path)
        if log_metrics is not None:
            log_metrics(logged_metrics(row), epoch)
        if after_epoch is not None:
            after_epoch(epoch)
        shown = {"loss": f"{row['train_loss']:.3f}"} | (
            {"val_dice": f"{row['val_dice']:.3f}"} if validated else {}
        )
        bar.set_postfix(shown)
        if p.stopped:
            break
    hist_path = out_dir / layout.HISTORY
    if main:
        save_checkpoint(last_path, s.model, s.model_spec, s.spec, {**extra, "epoch": len(p.history) - 1})
        write_history(hist_path, p.history)
    return FoldResult(
        fold,
        p.best_epoch,
        p.best_dice,
        len(p.history),
        best_path,
        last_path,
        hist_path,
        p.seen / max(p.busy, 1e-9),
        s.augmentation if isinstance(s.augmentation, dict) else describe_augmentation(s.augmentation),
    )
