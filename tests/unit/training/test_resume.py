"""In-process resume: a fold interrupted after epoch k (an exception from a hook) and resumed ends
bitwise like an uninterrupted run on the CPU (history, best score, weights), and a stop request
leaves the state of the last complete epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from components.data.splits import Splits
from components.training.interrupt import StopRequest, TrainingInterrupted
from components.training.loop import train_fold
from components.training.resume import STATE_FILE, load_state
from tests.unit.training.test_loop import make_params, prepared  # noqa: F401  (module fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Everything that carries state from one epoch to the next: augmentation, class-aware sampling
# (the loader's generator), a per-batch schedule, AdamW moments and early stopping.
TRAIN = {
    "epochs": 4,
    "class_aware_sampling": True,
    "early_stopping": {"monitor": "val_dice", "mode": "max", "patience": 3, "min_delta": 0.0},
}


class Boom(RuntimeError):
    """Stands in for a kill after an epoch's state is saved."""


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_fold(a: Path, b: Path) -> None:
    assert (a / "history.csv").read_bytes() == (b / "history.csv").read_bytes()
    for name in ("best.pt", "last.pt"):
        wa, wb = weights(a / name), weights(b / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name


def test_interrupted_fold_resumes_to_the_uninterrupted_result(
    tmp_path: Path,
    prepared: tuple[Path, Splits],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    prepared_dir, splits = prepared
    params = make_params(**TRAIN)
    ref = train_fold(params, 0, splits, prepared_dir, tmp_path / "ref")  # no resume folder at all

    def boom(epoch: int) -> None:
        if epoch == 1:
            raise Boom

    out = tmp_path / "resumed"
    with pytest.raises(Boom):
        train_fold(params, 0, splits, prepared_dir, out, resume_dir=out, after_epoch=boom)
    state = load_state(out / STATE_FILE)
    assert state is not None and state["progress"]["next_epoch"] == 2
    assert not (out / "history.csv").exists()  # no final files from an unfinished fold

    logged: list[int] = []
    res = train_fold(
        params, 0, splits, prepared_dir, out, lambda m, step: logged.append(step), resume_dir=out
    )
    assert f"fold 0: resuming from epoch 2 (of 4) — {out / STATE_FILE}" in capsys.readouterr().out
    assert logged == [0, 1, 2, 3]  # the restored epochs again (a logger skips those it has), then the rest
    assert (res.best_epoch, res.best_val_dice, res.epochs_run) == (
        ref.best_epoch,
        ref.best_val_dice,
        ref.epochs_run,
    )
    assert_same_fold(out, tmp_path / "ref")

    # A finished fold's state resumes to the same files without training again.
    again = train_fold(params, 0, splits, prepared_dir, out, resume_dir=out, after_epoch=boom)
    assert again.best_val_dice == ref.best_val_dice
    assert_same_fold(out, tmp_path / "ref")


def test_a_stop_request_stops_at_the_next_step_and_keeps_the_last_epoch(
    tmp_path: Path,
    prepared: tuple[Path, Splits],  # noqa: F811
) -> None:
    prepared_dir, splits = prepared
    params = make_params(epochs=3)
    stop = StopRequest()
    out = tmp_path / "fold"

    def request(epoch: int) -> None:
        stop.request()  # as SIGTERM's handler does, here during epoch 0's bookkeeping

    with pytest.raises(TrainingInterrupted, match="SIGTERM"):
        train_fold(params, 1, splits, prepared_dir, out, resume_dir=out, stop=stop, after_epoch=request)
    state = load_state(out / STATE_FILE)
    assert state is not None and state["progress"]["next_epoch"] == 1
    assert len(state["progress"]["history"]) == 1
