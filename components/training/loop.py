"""Training loop for one fold: setup, one epoch, validation, history; bf16 on CUDA, checkpoints."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from components.core import layout
from components.core.errors import UserError
from components.data.splits import Splits
from components.metrics.reductions import class_means, mean_foreground_dice
from components.params.config import Params
from components.preprocessing.augment import describe_augmentation
from components.preprocessing.native import NativeSpec
from components.training.checkpoint import save_checkpoint
from components.training.dataset import SegmentationDataset
from components.training.ddp import (
    AgreedStop,
    broadcast_from_main,
    is_main,
    local_stop,
    mean_over_ranks,
)
from components.training.device import autocast
from components.training.fold_setup import FoldSetup, setup_fold
from components.training.interrupt import StopRequest
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
from components.training.val_dice import dice_counts, dice_rows
from components.windowing import SliceWise, sliding_window_probabilities

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
