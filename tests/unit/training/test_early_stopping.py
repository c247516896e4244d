"""Early stopping: patience, min_delta, mode, NaN handling, resume state."""

from __future__ import annotations

import pytest

from components.training.early_stopping import EarlyStopping


def feed(stopper: EarlyStopping, values: list[float], key: str = "val_dice") -> list[bool]:
    return [stopper.update({key: v}) for v in values]


def test_max_mode_patience_and_best() -> None:
    es = EarlyStopping("val_dice", "max", patience=2)
    assert feed(es, [0.5, 0.6, 0.55, 0.6, 0.59]) == [False, False, False, True, True]
    assert es.best == 0.6 and es.best_epoch == 1


def test_min_mode_with_min_delta() -> None:
    es = EarlyStopping("val_loss", "min", patience=2, min_delta=0.05)
    stops = feed(es, [1.0, 0.97, 0.9, 0.88], key="val_loss")  # 0.97 not enough; 0.9 is; 0.88 is not
    assert stops == [False, False, False, False] and es.best == 0.9 and es.best_epoch == 2
    assert es.update({"val_loss": 0.87}) is True


def test_nan_is_not_an_improvement() -> None:
    es = EarlyStopping("val_dice", "max", patience=1)
    assert feed(es, [float("nan")]) == [True] and es.best is None


def test_errors() -> None:
    es = EarlyStopping("val_dice", "max", patience=3)
    with pytest.raises(KeyError, match="val_dice"):
        es.update({"val_loss": 1.0})
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping("val_dice", "maximum", patience=1)  # type: ignore[arg-type]
