"""The speed options change speed only: fast validation Dice, validation every N epochs, loader
workers, channels-last and torch.compile give the results of the plain loop."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from components.data.regions import IGNORE_INDEX
from components.data.splits import Splits
from components.metrics import case_metrics
from components.training.augment_seed import item_seed, reseed
from components.training.loop import train_fold, validation_due
from components.training.val_dice import dice_counts, dice_rows
from components.training.workers import MAX_AUTO_WORKERS, resolve_num_workers
from tests.unit.training.test_loop import make_params, prepared  # noqa: F401  (module fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _history(path: Path) -> list[dict[str, float]]:
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def test_fast_dice_equals_the_panel_dice_with_empty_classes_and_ignored_pixels() -> None:
    rng = np.random.default_rng(3)
    pred = rng.integers(0, 4, (6, 20, 24))
    ref = rng.integers(0, 4, (6, 20, 24))
    pred[0][pred[0] == 3] = 0  # class 3 absent from the prediction of case 0
    ref[1][ref[1] == 2] = 0  # class 2 absent from the reference of case 1
    pred[2][pred[2] == 1], ref[2][ref[2] == 1] = 0, 0  # class 1 absent from both in case 2
    ref[3, :5] = IGNORE_INDEX  # unscored rows, whatever is predicted there
    classes, names = [1, 2, 3], ["bg", "a", "b", "c"]
    counts = dice_counts(torch.from_numpy(pred), torch.from_numpy(ref), classes)
    got = dice_rows(counts.numpy(), classes, names)
    want = [float(m["dice"]) for p, r in zip(pred, ref, strict=True) for m in case_metrics(p, r, classes)]
    assert got["class_name"].tolist() == [names[c] for _ in range(6) for c in classes]
    np.testing.assert_array_equal(got["dice"].to_numpy(), np.array(want))
    assert got["dice"].iloc[6] == 1.0 and got["dice"].iloc[2] == 0.0  # both empty: 1; one empty: 0


def test_auto_workers_follow_the_device_and_cores() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_num_workers("auto", cpu, cores=16) == 0
    assert resolve_num_workers("auto", cuda, cores=16) == MAX_AUTO_WORKERS
    assert resolve_num_workers("auto", cuda, cores=4) == 3
    assert resolve_num_workers("auto", cuda, cores=1) == 0
    assert resolve_num_workers(3, cpu) == 3


def test_transforms_of_one_item_draw_independently() -> None:
    """albumentations' set_random_seed gives each transform the same seed, so two p=0.5 flips would
    always fire together; per-item reseeding gives each transform its own stream."""
    aug = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    hflip_only = sum(1 for i in range(64) if _flips(aug, image, i) == (True, False))
    vflip_only = sum(1 for i in range(64) if _flips(aug, image, i) == (False, True))
    assert hflip_only > 5 and vflip_only > 5


def _flips(aug: A.Compose, image: np.ndarray, i: int) -> tuple[bool, bool]:
    reseed(aug, item_seed(0, 0, i))
    out = aug(image=image)["image"]
    candidates = {
        (False, False): image,
        (True, False): image[:, ::-1],
        (False, True): image[::-1],
        (True, True): image[::-1, ::-1],
    }
    return next(k for k, v in candidates.items() if np.array_equal(out, v))


def test_validation_due_every_n_epochs_and_after_the_last() -> None:
    assert [e for e in range(7) if validation_due(e, 7, 3)] == [2, 5, 6]
    assert [e for e in range(4) if validation_due(e, 4, 1)] == [0, 1, 2, 3]


def test_validation_every_2_epochs_measures_the_same_run_less_often(
    tmp_path: Path,
    prepared: tuple[Path, Splits],  # noqa: F811
) -> None:
    prepared_dir, splits = prepared
    every = _history(train_fold(make_params(epochs=5), 0, splits, prepared_dir, tmp_path / "a").history)
    some = train_fold(make_params(epochs=5, val_every=2), 0, splits, prepared_dir, tmp_path / "b")
    sparse = _history(some.history)
    assert [r["train_loss"] for r in sparse] == [r["train_loss"] for r in every]  # training unchanged
    for e, (a, b) in enumerate(zip(every, sparse, strict=True)):
        if e in (1, 3, 4):  # every 2nd epoch and the last
            assert {k: v for k, v in b.items() if k.startswith("val_")} == {
                k: v for k, v in a.items() if k.startswith("val_")
            }
        else:
            assert all(math.isnan(v) for k, v in b.items() if k.startswith("val_"))
    best = max((1, 3, 4), key=lambda e: (every[e]["val_dice"], -e))
    assert some.best_epoch == best
    assert some.best_val_dice == every[best]["val_dice"]


def test_loader_workers_change_speed_not_results(
    tmp_path: Path,
    prepared: tuple[Path, Splits],  # noqa: F811
) -> None:
    prepared_dir, splits = prepared
    augment = {"seed": 0, "transforms": [{"name": "HorizontalFlip", "kwargs": {"p": 0.5}}]}
    inline = train_fold(make_params(num_workers=0, augment=augment), 0, splits, prepared_dir, tmp_path / "a")
    workers = train_fold(make_params(num_workers=2, augment=augment), 0, splits, prepared_dir, tmp_path / "b")
    assert inline.history.read_bytes() == workers.history.read_bytes()
    a = torch.load(inline.last_checkpoint, weights_only=True)["state_dict"]
    b = torch.load(workers.last_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_channels_last_gives_the_same_losses(tmp_path: Path, prepared: tuple[Path, Splits]) -> None:  # noqa: F811
    prepared_dir, splits = prepared
    plain = _history(train_fold(make_params(), 0, splits, prepared_dir, tmp_path / "a").history)
    cl_run = train_fold(make_params(channels_last=True), 0, splits, prepared_dir, tmp_path / "b")
    cl = _history(cl_run.history)
    for a, b in zip(plain, cl, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3)


@pytest.mark.slow
def test_compiled_and_eager_training_give_the_same_losses(
    tmp_path: Path,
    prepared: tuple[Path, Splits],  # noqa: F811
) -> None:
    prepared_dir, splits = prepared
    eager = _history(train_fold(make_params(epochs=1), 0, splits, prepared_dir, tmp_path / "a").history)
    compiled = train_fold(make_params(epochs=1, compile=True), 0, splits, prepared_dir, tmp_path / "b")
    got = _history(compiled.history)
    assert got[0]["train_loss"] == pytest.approx(eager[0]["train_loss"], rel=1e-3)
    assert got[0]["val_loss"] == pytest.approx(eager[0]["val_loss"], rel=1e-3)
    state = torch.load(compiled.best_checkpoint, weights_only=True)["state_dict"]
    assert not any(k.startswith("_orig_mod.") for k in state)  # the plain module's weights are saved


def test_bf16_on_the_cpu_trains_with_float32_weights_and_near_float32_losses(
    tmp_path: Path,
    prepared: tuple[Path, Splits],  # noqa: F811
) -> None:
    """train.bf16 now applies on the CPU too (the plan turns it on where it measures it faster)."""
    prepared_dir, splits = prepared
    plain = _history(train_fold(make_params(), 0, splits, prepared_dir, tmp_path / "a").history)
    run = train_fold(make_params(bf16=True), 0, splits, prepared_dir, tmp_path / "b")
    low = _history(run.history)
    assert low[0]["train_loss"] != plain[0]["train_loss"]  # autocast did run in bf16
    for a, b in zip(plain, low, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.05)
    state = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}
