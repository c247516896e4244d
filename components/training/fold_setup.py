"""One fold's training setup: seed, datasets and loaders, model, loss, optimiser, scheduler and
early stopping, wired from params (what :mod:`components.training.loop` and the resume state use)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler

from components.core.threads import apply_threads
from components.data.class_balance import class_frequencies, rare_class_weights
from components.data.splits import Splits
from components.losses import build_loss
from components.models import build_model
from components.params.config import Params
from components.preprocessing.augment import build_augmentation
from components.preprocessing.native import NativeSpec, with_training_window
from components.preprocessing.specs import AnySpec, prepared_info, prepared_spec
from components.training.checkpoint import ModelSpec, model_spec_from_params
from components.training.dataset import SegmentationDataset
from components.training.ddp import Rank, current_rank, per_rank_batch, rank_device, shard_sampler, wrap_model
from components.training.device import memory_format as device_memory_format
from components.training.device import resolve_device, seed_everything
from components.training.early_stopping import EarlyStopping
from components.training.interrupt import StopRequest
from components.training.native_data import native_fold_data, native_model_kwargs
from components.training.optim import build_optimizer
from components.training.patches import PatchDataset
from components.training.schedulers import build_scheduler
from components.training.workers import resolve_num_workers
from components.windowing import WindowSettings


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
    apply_threads(loader_workers=resolve_num_workers(tc.num_workers, device))  # the cores the loaders leave
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
    memory_format = device_memory_format(tc.channels_last, spatial_dims)
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
