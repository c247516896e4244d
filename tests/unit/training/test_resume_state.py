"""Round trips of every piece of the resumable state: schedulers, early stopping, augmentation and
global RNGs, through a real ``torch.save`` / ``torch.load(weights_only=True)`` file."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from components.preprocessing.augment import (
    augmentation_state,
    build_augmentation,
    set_augmentation_state,
)
from components.preprocessing.augment3d import build_augmentation_3d
from components.preprocessing.native import NativeSpec
from components.training.checkpoint import CheckpointError
from components.training.early_stopping import EarlyStopping
from components.training.interrupt import StopRequest, TrainingInterrupted, graceful_stop
from components.training.native_data import patch_augmentation
from components.training.optim import build_optimizer
from components.training.patches import PatchDataset
from components.training.resume import load_state, rng_state, save_state, set_rng_state
from components.training.schedulers import SCHEDULERS, build_scheduler

EPOCHS, STEPS = 4, 3


def through_file(tmp_path: Path, obj: Any) -> Any:
    """``obj`` written as a resumable state and read back with ``weights_only=True``."""
    save_state(tmp_path / "state.pt", {"obj": obj})
    state = load_state(tmp_path / "state.pt")
    assert state is not None
    return state["obj"]


def _sched(name: str) -> tuple[torch.optim.Optimizer, Any]:
    param = torch.nn.Parameter(torch.ones(2))
    opt = build_optimizer("adamw", [param], lr=0.1)
    return opt, build_scheduler(name, opt, epochs=EPOCHS, steps_per_epoch=STEPS)


def _epoch(opt: torch.optim.Optimizer, sched: Any, e: int) -> list[float]:
    lrs = []
    for _ in range(STEPS):
        opt.step()
        sched.step_batch()
        lrs.append(sched.lr[0])
    sched.step_epoch({"val_loss": 1.0 / (1 + e % 2), "val_dice": 0.5})
    return [*lrs, sched.lr[0]]


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_scheduler_state_round_trip_continues_the_same_lr_curve(tmp_path: Path, name: str) -> None:
    opt, sched = _sched(name)
    full = [_epoch(opt, sched, e) for e in range(EPOCHS)]

    opt1, sched1 = _sched(name)
    first = [_epoch(opt1, sched1, e) for e in range(2)]
    state = through_file(tmp_path, {"opt": opt1.state_dict(), "sched": sched1.state_dict()})
    opt2, sched2 = _sched(name)  # rebuilt from scratch, as a resumed process does
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    rest = [_epoch(opt2, sched2, e) for e in range(2, EPOCHS)]
    assert first + rest == full


def test_early_stopping_state_round_trip(tmp_path: Path) -> None:
    values = [0.5, 0.6, 0.55, 0.58, 0.7, 0.65, 0.64]
    ref = EarlyStopping("val_dice", "max", patience=2, min_delta=0.01)
    ref_stops = [ref.update({"val_dice": v}) for v in values]

    es = EarlyStopping("val_dice", "max", patience=2, min_delta=0.01)
    stops = [es.update({"val_dice": v}) for v in values[:3]]
    resumed = EarlyStopping("val_dice", "max", patience=2, min_delta=0.01)
    resumed.load_state_dict(through_file(tmp_path, es.state_dict()))
    stops += [resumed.update({"val_dice": v}) for v in values[3:]]
    assert stops == ref_stops
    assert (resumed.best, resumed.best_epoch, resumed.epoch) == (ref.best, ref.best_epoch, ref.epoch)


def _images(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        (rng.random((16, 16, 1), dtype=np.float32), (rng.random((16, 16)) > 0.5).astype(np.uint8))
        for _ in range(n)
    ]


def test_2d_augmentation_state_round_trip(tmp_path: Path) -> None:
    transforms = [
        {"name": "HorizontalFlip", "kwargs": {"p": 0.5}},
        {"name": "Affine", "kwargs": {"rotate": [-20, 20], "p": 0.7}},
        {"name": "RandomBrightnessContrast", "kwargs": {"p": 0.5}},
    ]
    images = _images(6)
    ref = build_augmentation(transforms, seed=3)
    want = [ref(image=i, mask=m)["image"] for i, m in images]

    aug = build_augmentation(transforms, seed=3)
    got = [aug(image=i, mask=m)["image"] for i, m in images[:3]]
    state = through_file(tmp_path, augmentation_state(aug))
    fresh = build_augmentation(transforms, seed=3)
    set_augmentation_state(fresh, state)
    got += [fresh(image=i, mask=m)["image"] for i, m in images[3:]]
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_3d_augmentation_state_round_trip(tmp_path: Path) -> None:
    transforms = [
        {"name": "RandFlip", "kwargs": {"prob": 0.5, "spatial_axis": 2}},
        {"name": "RandAffine", "kwargs": {"prob": 0.8, "rotate_range": [0.3, 0.0, 0.0]}},
        {"name": "RandGaussianNoise", "kwargs": {"prob": 0.5}},
        {"name": "CoarseDropout3D", "kwargs": {"p": 0.5}},
    ]
    rng = np.random.default_rng(1)
    patches = [
        (rng.random((1, 8, 8, 8), dtype=np.float32), (rng.random((8, 8, 8)) > 0.5).astype(np.uint8))
        for _ in range(6)
    ]
    ref = build_augmentation_3d(transforms, seed=5)
    want = [ref(i, m)[0] for i, m in patches]

    aug = build_augmentation_3d(transforms, seed=5)
    got = [aug(i, m)[0] for i, m in patches[:3]]
    state = through_file(tmp_path, aug.random_state())
    fresh = build_augmentation_3d(transforms, seed=5)
    fresh.set_random_state(state)
    got += [fresh(i, m)[0] for i, m in patches[3:]]
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_global_and_loader_rng_round_trip(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(7)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's legacy state
    state = through_file(tmp_path, rng_state(gen, None))
    want = (random.random(), np.random.standard_normal(), torch.rand(2), torch.randperm(5, generator=gen))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    gen.manual_seed(9)
    set_rng_state(state, gen, None)
    got = (random.random(), np.random.standard_normal(), torch.rand(2), torch.randperm(5, generator=gen))
    assert got[:2] == want[:2]
    assert torch.equal(got[2], want[2]) and torch.equal(got[3], want[3])


def test_a_state_holding_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    torch.save({"version": 1, "obj": StopRequest()}, path)  # an arbitrary object: needs code to load
    with pytest.raises(CheckpointError, match="tensors and plain data"):
        load_state(path)
    path.write_bytes(b"PK\x03\x04 truncated")  # e.g. a state cut short by a power loss
    with pytest.raises(CheckpointError, match="delete it"):
        load_state(path)


def test_stop_request_raises_an_interrupt_that_ends_runs_killed() -> None:
    stop = StopRequest()
    stop.check()  # nothing requested: no-op
    stop.request(15)
    with pytest.raises(TrainingInterrupted, match="SIGTERM") as info:
        stop.check("in fold 0")
    assert isinstance(info.value, KeyboardInterrupt) and info.value.signum == 15


def _deliver(signum: int, stop: StopRequest | None = None) -> None:
    """Send ``signum`` to this process and let its Python handler run."""
    os.kill(os.getpid(), signum)
    deadline = time.monotonic() + 30  # liveness only: handlers run at the next bytecode
    while stop is not None and not stop.requested and time.monotonic() < deadline:
        time.sleep(0.01)


def test_graceful_stop_defers_the_signal_then_hands_it_to_the_previous_handler() -> None:
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with pytest.raises(TrainingInterrupted), graceful_stop() as stop:
            _deliver(signal.SIGTERM, stop)
            assert stop.requested and seen == []  # deferred: training stops at its next step
            stop.check("at the next step")
        assert seen == [signal.SIGTERM]  # then the previous handler (e.g. Prefect's) gets it
        assert signal.getsignal(signal.SIGTERM) is not None and seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_ctrl_c_ends_as_keyboard_interrupt_and_a_second_signal_stops_at_once() -> None:
    # Python's own SIGINT handler, as in a fresh process (an earlier test in this process, e.g. one
    # running a Dask cluster, may have installed another; graceful_stop forwards to whichever it is)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt) as info, graceful_stop() as stop:
            _deliver(signal.SIGINT, stop)
            stop.check()
        assert not isinstance(info.value, TrainingInterrupted)  # Python's own handler raised it
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)

    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:  # (the default SIGTERM disposition, forwarded to, would end the test process)
        with pytest.raises(TrainingInterrupted, match="second signal"), graceful_stop() as stop:
            _deliver(signal.SIGTERM, stop)
            _deliver(signal.SIGTERM)  # raises from the handler, wherever the code is
            time.sleep(30)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]


@pytest.mark.parametrize(
    "transforms",
    [
        [{"name": "HorizontalFlip", "kwargs": {"p": 0.5}}, {"name": "GaussNoise", "kwargs": {"p": 0.5}}],
        [
            {"name": "RandFlip", "kwargs": {"prob": 0.5}},
            {"name": "RandGaussianNoise", "kwargs": {"prob": 0.5}},
        ],
    ],
    ids=["2d-albumentations-on-patches", "3d-monai"],
)
def test_patch_sampler_items_are_a_function_of_seed_epoch_and_index(transforms: list[dict[str, Any]]) -> None:
    """What a resumed epoch or a DataLoader worker draws needs no saved stream: item ``i`` of epoch
    ``e`` is the same whichever sampler copy draws it, in whatever order."""
    ndim = 2 if transforms[0]["name"] == "HorizontalFlip" else 3
    rng = np.random.default_rng(0)
    shape = (24,) * ndim
    cases = [
        (rng.random((1, *shape), dtype=np.float32), rng.integers(0, 3, shape, dtype=np.uint8))
        for _ in range(3)
    ]

    def sampler(augment_seed: int = 4) -> PatchDataset:
        spec = NativeSpec(ndim=ndim, channels=1, intensity_method="zscore")
        aug, _ = patch_augmentation(transforms, augment_seed, spec, ndim)
        return PatchDataset(cases, (8,) * ndim, 12, 3, seed=1, augment=aug, augment_seed=augment_seed)

    def epoch(ds: PatchDataset, e: int, order: list[int] | None = None) -> list[torch.Tensor]:
        ds.epoch = e
        idx = order if order is not None else list(range(len(ds)))
        got = {i: ds[i][0] for i in idx}
        return [got[i] for i in range(len(ds))]

    ref = sampler()
    want = epoch(ref, 0) + epoch(ref, 1)
    fresh = sampler()  # a new process (a resumed run, or a loader worker): nothing restored
    assert all(torch.equal(a, b) for a, b in zip(epoch(fresh, 1), want[12:], strict=True))
    shuffled = epoch(sampler(), 0, order=[5, 0, 11, 3, 1, 2, 4, 6, 10, 9, 8, 7])
    assert all(torch.equal(a, b) for a, b in zip(shuffled, want[:12], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(want[:12], want[12:], strict=True))  # epochs differ
    other = epoch(sampler(augment_seed=5), 0)
    assert not all(torch.equal(a, b) for a, b in zip(other, want[:12], strict=True))  # the seed counts
