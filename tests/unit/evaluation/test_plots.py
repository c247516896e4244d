"""Plots are written as readable PNG files (matplotlib Agg canvas, no pyplot state)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.evaluation.plots import bland_altman_plot, boxplot_by_fold, roc_plot, worst_cases_gallery
from components.evaluation.roc import StreamingROC


def _check_png(path: Path) -> None:
    assert path.exists() and path.stat().st_size > 5_000
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 300
    assert not list(path.parent.glob(".*tmp*"))  # temp file renamed away


def _per_case() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {"case_id": f"c{i}", "fold": i % 3, "class": c, "class_name": n, "dice": rng.uniform(0.5, 1.0),
         "hd95": np.nan if i == 0 else rng.uniform(1, 20)}
        for i in range(18) for c, n in ((1, "GGO"), (2, "consolidation"))
    ]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("metric", ["dice", "hd95"])
def test_boxplot_by_fold(tmp_path: Path, metric: str) -> None:
    _check_png(boxplot_by_fold(_per_case(), metric, tmp_path / f"box_{metric}.png"))
    _check_png(boxplot_by_fold(_per_case().drop(columns="fold"), metric, tmp_path / "nofold.png"))
    with pytest.raises(KeyError, match="no column"):
        boxplot_by_fold(_per_case(), "asd", tmp_path / "x.png")


def test_roc_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(32, 32))
    logits = rng.normal(size=(3, 32, 32)) + 2.0 * np.eye(3)[labels].transpose(2, 0, 1)
    roc = StreamingROC(3, bins=200)
    roc.update(np.exp(logits) / np.exp(logits).sum(0), labels)
    _check_png(
        roc_plot(roc.curves(), roc.auc(), ["background", "GGO", "consolidation"], tmp_path / "roc.png")
    )


def test_bland_altman_plot(tmp_path: Path) -> None:
    ref = np.linspace(100, 2000, 25)
    pred = ref * 1.05 + np.random.default_rng(1).normal(0, 40, 25)
    _check_png(bland_altman_plot(pred, ref, tmp_path / "ba.png", unit="mm²"))


def test_worst_cases_gallery_2d_and_3d(tmp_path: Path) -> None:
    yy, xx = np.mgrid[:64, :64]
    image = np.sin(xx / 6.0) + np.cos(yy / 9.0)
    ref = ((xx - 30) ** 2 + (yy - 30) ** 2 < 200).astype(np.uint8) + ((xx - 45) ** 2 + (yy - 20) ** 2 < 40)
    pred = np.roll(ref, 4, axis=1)
    items = [
        {"image": image, "ref": ref, "pred": pred, "title": "case_a  Dice 0.71"},
        {
            "image": np.stack([image] * 3, -1),
            "ref": ref,
            "pred": np.zeros_like(ref),
            "title": "case_b  Dice 0.00",
        },
        {
            "image": np.stack([image] * 5),
            "ref": np.stack([ref] * 5),
            "pred": np.stack([pred] * 5),
            "title": "vol",
        },
    ]
    _check_png(worst_cases_gallery(items, ["background", "GGO", "consolidation"], tmp_path / "gallery.png"))
    with pytest.raises(ValueError, match="at least one"):
        worst_cases_gallery([], ["bg"], tmp_path / "empty.png")
