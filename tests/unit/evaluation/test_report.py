"""Scoring cases, the worst-case heap, the written report (strict JSON), summaries and overlays."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.core.stage_times import record_stage_time
from components.data.synthetic import CLASS_NAMES, generate_phantoms
from components.evaluation.last_run import last_run_markdown, last_run_results
from components.evaluation.presentation import fold_mlflow_metrics, headline_markdown, headline_mlflow_metrics
from components.evaluation.report import headline_metrics, write_report
from components.evaluation.scoring import ScoringOptions, score_cases
from components.io import read_image, read_mask
from components.viz.overlay import PALETTE, class_color, overlay, overlay_uint8, to_gray_unit

K = len(CLASS_NAMES)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = generate_phantoms(tmp_path_factory.mktemp("eval") / "raw", n_cases=8, size=32)
    ids = sorted(p.stem for p in (root / "images").glob("*.png"))
    cases = pd.DataFrame(
        {
            "case_id": ids,
            "image_path": [f"images/{c}.png" for c in ids],
            "mask_path": [f"masks/{c}.png" for c in ids],
        }
    )
    return root, cases


class Oracle:
    """Returns the one-hot reference of each image, shifted right by ``shift[case]`` pixels;
    ``None`` predicts background everywhere."""

    def __init__(self, root: Path, cases: pd.DataFrame, shift: dict[str, int | None] | None = None) -> None:
        self.refs: dict[bytes, tuple[str, np.ndarray]] = {}
        for row in cases.itertuples():
            image = read_image(root / row.image_path)
            self.refs[image.tobytes()] = (row.case_id, read_mask(root / row.mask_path).astype(np.int64))
        self.shift = shift or {}

    def predict_proba(self, image: np.ndarray, spacing: Sequence[float] | None = None) -> np.ndarray:
        assert spacing is None  # 2D files carry no spacing
        case_id, ref = self.refs[image.tobytes()]
        s = self.shift.get(case_id, 0)
        labels = np.zeros_like(ref) if s is None else np.roll(ref, s, axis=1)
        return np.eye(K, dtype=np.float32)[labels].transpose(2, 0, 1)


def strict_json(path: Path) -> Any:
    def reject(name: str) -> None:
        raise AssertionError(f"{path.name} holds {name}: not strict JSON")

    return json.loads(path.read_text(), parse_constant=reject)


def test_perfect_predictor_scores_dice_one(dataset: tuple[Path, pd.DataFrame]) -> None:
    root, cases = dataset
    scored = score_cases(Oracle(root, cases), cases, root, ScoringOptions(CLASS_NAMES, worst_cases=3))
    df = scored.per_case
    assert len(df) == len(cases) * (K - 1)  # one row per case and foreground class
    assert set(df["class_name"]) == set(CLASS_NAMES[1:])
    assert set(df["case_id"]) == set(cases["case_id"])
    assert (df["dice"] == 1.0).all() and (df["iou"] == 1.0).all()
    assert (df["hd95"] == 0.0).all()
    aucs = scored.roc.auc()
    for c in range(1, K):
        if (df[df["class"] == c]["ref_volume"] > 0).any():
            assert aucs[c] == pytest.approx(1.0)
    assert len(scored.worst) == 3 and all(w["mean_dice"] == 1.0 for w in scored.worst)


@pytest.mark.parametrize("k", [0, 1, 3, 8, 20])
def test_worst_case_heap_keeps_the_k_lowest_mean_dice(dataset: tuple[Path, pd.DataFrame], k: int) -> None:
    root, cases = dataset
    ids = list(cases["case_id"])
    shift: dict[str, int | None] = {c: i % 4 for i, c in enumerate(ids)}  # 0 = perfect, larger = worse
    shift[ids[5]] = None  # all background: Dice 0 where the reference has the class
    scored = score_cases(Oracle(root, cases, shift), cases, root, ScoringOptions(CLASS_NAMES, worst_cases=k))
    per_case = scored.per_case.groupby("case_id")["dice"].apply(lambda s: float(np.nanmean(s)))
    expected = sorted(per_case.items(), key=lambda kv: (kv[1], ids.index(kv[0])))[:k]
    assert [w["mean_dice"] for w in scored.worst] == pytest.approx([v for _, v in expected])
    assert [str(w["title"]).split()[0] for w in scored.worst] == [c for c, _ in expected]
    if k:
        assert str(scored.worst[0]["title"]).startswith(ids[5])
        worst = scored.worst[0]
        assert worst["pred"].shape == worst["ref"].shape == worst["image"].shape[:2]  # type: ignore[union-attr]


def test_write_report_files_and_strict_json(tmp_path: Path, dataset: tuple[Path, pd.DataFrame]) -> None:
    root, cases = dataset
    ids = list(cases["case_id"])
    shift: dict[str, int | None] = {ids[0]: None, ids[1]: 2}  # NaN surface metrics for the empty prediction
    scored = score_cases(Oracle(root, cases, shift), cases, root, ScoringOptions(CLASS_NAMES, worst_cases=2))
    assert scored.per_case["hd95"].isna().any()
    out = tmp_path / "reports" / "test"
    summary = write_report(scored, out, CLASS_NAMES, by_fold=False, unit="px")

    for name in ("per_case.csv", "summary.json", "statistics.json", "roc.csv"):
        assert (out / name).is_file(), name
    plots = {p.name for p in (out / "plots").glob("*.png")}
    assert {"box_dice.png", "box_hd95.png", "roc.png", "worst_cases.png"} <= plots
    assert any(p.startswith("bland_altman_") for p in plots)
    assert all((out / "plots" / p).stat().st_size > 0 for p in plots)

    assert strict_json(out / "summary.json") == summary
    strict_json(out / "statistics.json")
    back = pd.read_csv(out / "per_case.csv")
    assert len(back) == len(scored.per_case) and "dice" in back.columns
    roc = pd.read_csv(out / "roc.csv")
    assert set(roc.columns) == {"class_name", "fpr", "tpr"} and roc["fpr"].between(0, 1).all()

    dice = scored.per_case.groupby("class_name")["dice"].mean()
    assert summary["mean_foreground_dice"] == pytest.approx(dice.mean())
    for name in CLASS_NAMES[1:]:
        sub = scored.per_case[scored.per_case["class_name"] == name]
        assert summary[name]["dice"]["mean"] == pytest.approx(sub["dice"].mean())
        assert summary[name]["dice"]["sd"] == pytest.approx(sub["dice"].std(ddof=1))


def test_write_report_without_worst_cases(tmp_path: Path, dataset: tuple[Path, pd.DataFrame]) -> None:
    root, cases = dataset
    scored = score_cases(Oracle(root, cases), cases, root, ScoringOptions(CLASS_NAMES, worst_cases=0))
    write_report(scored, tmp_path, CLASS_NAMES, by_fold=False, unit="mm")
    assert not (tmp_path / "plots" / "worst_cases.png").exists()


def per_case_table() -> pd.DataFrame:
    """Two folds, two classes; ``lesion`` has no hd95 at all."""
    rows = []
    for fold, dices in ((0, [0.6, 0.8]), (1, [0.9, 0.9])):
        for i, d in enumerate(dices):
            rows.append(
                {"fold": fold, "case_id": f"f{fold}c{i}", "class_name": "organ", "dice": d, "hd95": 2.0 * i}
            )
            rows.append(
                {
                    "fold": fold,
                    "case_id": f"f{fold}c{i}",
                    "class_name": "lesion",
                    "dice": d / 2,
                    "hd95": np.nan,
                }
            )
    df = pd.DataFrame(rows)
    for m in ("iou", "sensitivity", "specificity", "precision", "assd"):
        df[m] = df["dice"]
    return df


def test_headline_metrics_by_fold_and_by_case() -> None:
    df = per_case_table()
    by_fold = headline_metrics(df, ["background", "organ", "lesion"], by_fold=True)
    assert by_fold["organ"]["dice"]["mean"] == pytest.approx((0.7 + 0.9) / 2)  # mean of the fold means
    assert by_fold["organ"]["dice"]["sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert by_fold["lesion"]["hd95"] == {"mean": None, "sd": None}  # all NaN -> null, not NaN
    by_case = headline_metrics(df, ["background", "organ", "lesion"], by_fold=False)
    assert by_case["organ"]["dice"]["mean"] == pytest.approx(0.8)
    assert by_case["organ"]["dice"]["sd"] == pytest.approx(np.std([0.6, 0.8, 0.9, 0.9], ddof=1))
    assert by_case["mean_foreground_dice"] == pytest.approx((0.8 + 0.4) / 2)
    assert "background" not in by_case
    json.dumps(by_case, allow_nan=False)


def test_summary_metrics_and_markdown() -> None:
    summary = headline_metrics(per_case_table(), ["background", "organ", "lesion"], by_fold=True)
    metrics = headline_mlflow_metrics(summary, "cv")
    assert metrics["cv_dice_organ"] == pytest.approx(0.8)
    assert metrics["cv_dice_mean_fg"] == pytest.approx(summary["mean_foreground_dice"])
    assert "cv_hd95_lesion" not in metrics  # no value, not logged
    md = headline_markdown(summary, "CV")
    lines = md.splitlines()
    assert lines[0] == "### CV" and lines[2] == "| class | dice | iou | hd95 | assd |"
    organ = next(line for line in lines if line.startswith("| organ |"))
    assert f"{0.8:.3f} ± {np.std([0.7, 0.9], ddof=1):.3f}" in organ
    lesion = next(line for line in lines if line.startswith("| lesion |"))
    assert "n/a" in lesion
    assert not any(line.startswith("| mean_foreground_dice") for line in lines)


def test_fold_mlflow_metrics() -> None:
    means = fold_mlflow_metrics(per_case_table())
    assert set(means) == {0, 1}
    assert means[0]["cv_dice_organ"] == pytest.approx(0.7)
    assert means[1]["cv_dice_lesion"] == pytest.approx(0.45)
    assert np.isnan(means[0]["cv_hd95_lesion"])


def test_last_run_results_reads_what_exists(tmp_path: Path) -> None:
    assert last_run_results(tmp_path) == {
        "cv": None,
        "configurations": None,
        "test": None,
        "registration": None,
        "time": None,
    }
    assert "No results yet" in last_run_markdown(last_run_results(tmp_path))
    summary = headline_metrics(per_case_table(), ["background", "organ", "lesion"], by_fold=True)
    (tmp_path / "reports" / "cv").mkdir(parents=True)
    (tmp_path / "reports" / "cv" / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "models" / "ensemble").mkdir(parents=True)
    reg = {
        "registered_model": "seg",
        "version": "3",
        "alias": "challenger",
        "test_dice": 0.81234,
        "reason": "worse",
    }
    (tmp_path / "models" / "ensemble" / "registration.json").write_text(json.dumps(reg))
    loaded = last_run_results(tmp_path)
    assert loaded["cv"] == summary and loaded["test"] is None and loaded["registration"] == reg
    md = last_run_markdown(loaded)
    assert "Cross-validation" in md and "Test set" not in md
    assert "**seg** version 3 with alias `challenger`" in md and "0.8123" in md


def test_the_report_sets_each_stages_time_beside_the_plan(tmp_path: Path) -> None:
    plan = {
        "budget": {"time_budget": "20m", "time_budget_s": 1200.0},
        "estimate": {"stages_s": {"train": 600.0, "plan": 30.0}},
    }
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "plan.json").write_text(json.dumps(plan))
    record_stage_time("train", 100.0, 790.0, tmp_path)
    record_stage_time("plan", 10.0, 35.0, tmp_path)
    report = last_run_results(tmp_path)["time"]
    assert report["stages"] == {
        "plan": {"planned_s": 30.0, "actual_s": 25.0},
        "train": {"planned_s": 600.0, "actual_s": 690.0},
    }
    md = last_run_markdown(last_run_results(tmp_path))
    assert (
        "budget 20m" in md and "| train | 10m00s | 11m30s |" in md and "| **all** | 10m30s | 11m55s |" in md
    )


# ----------------------------------------------------------------------------- overlay


def hex_rgb(c: int) -> np.ndarray:
    h = class_color(c).lstrip("#")
    return np.array([int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)], dtype=np.float32)


def test_class_colours_cycle_through_the_palette() -> None:
    assert class_color(1) == PALETTE[0] == "#E69F00"
    assert class_color(len(PALETTE)) == PALETTE[-1]
    assert class_color(len(PALETTE) + 1) == class_color(1)


def test_overlay_blends_classes_and_leaves_background_untouched() -> None:
    rng = np.random.default_rng(0)
    gray = rng.random((6, 7)).astype(np.float32)
    labels = np.zeros((6, 7), np.int64)
    labels[1:3, 2:5] = 1
    labels[4, :] = 3
    out = overlay(gray, labels, alpha=0.25, stretch=False)
    assert out.shape == (6, 7, 3)
    bg = labels == 0
    np.testing.assert_allclose(out[bg], np.repeat(gray[bg][:, None], 3, axis=1), atol=1e-7)
    for c in (1, 3):
        sel = labels == c
        np.testing.assert_allclose(out[sel], 0.75 * gray[sel][:, None] + 0.25 * hex_rgb(c), atol=1e-6)


def test_overlay_on_rgb_without_stretch_keeps_colours() -> None:
    rgb = np.random.default_rng(1).random((5, 5, 3)).astype(np.float32)
    labels = np.zeros((5, 5), np.int64)
    labels[0, 0] = 2
    out = overlay(rgb, labels, alpha=1.0, stretch=False)
    np.testing.assert_allclose(out[labels == 0], rgb[labels == 0])
    np.testing.assert_allclose(out[0, 0], hex_rgb(2), atol=1e-6)


def test_overlay_uint8_and_stretch() -> None:
    image = np.linspace(1000, 3000, 100).reshape(10, 10).astype(np.uint16)  # any range
    unit = to_gray_unit(image)
    assert unit.min() == 0.0 and unit.max() == 1.0
    pic = overlay_uint8(image, np.zeros((10, 10), np.int64))
    assert pic.shape == (10, 10, 3) and pic.dtype == np.uint8
    np.testing.assert_array_equal(pic[..., 0], np.round(unit * 255).astype(np.uint8))
