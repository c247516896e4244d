"""evaluate_folders on real files in tmp_path (PNG, TIFF, NIfTI) and a few real CT masks."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from medpy.metric import binary as mb
from PIL import Image
from scipy import ndimage as ndi

from components.evaluation.mask_folders import FolderEvaluationError, evaluate_folders
from components.metrics import METRIC_NAMES

COVID_MASKS = Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets" / "covid_ct_infnet" / "masks"


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def _nifti(path: Path, vol_zyx: np.ndarray, spacing_zyx: tuple[float, float, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing_zyx[::-1], 1.0])  # voxel sizes in the affine and in pixdim agree
    img = nib.Nifti1Image(np.transpose(vol_zyx, (2, 1, 0)).astype(np.uint8), affine)
    img.header.set_zooms(spacing_zyx[::-1])
    nib.save(img, path)


def _labels(shift: int = 0) -> np.ndarray:
    lab = np.zeros((40, 48), np.uint8)
    lab[5 + shift : 20 + shift, 6:30] = 1
    lab[25:35, 30:44] = 2
    return lab


def test_png_and_tiff_pairs(tmp_path: Path) -> None:
    _png(tmp_path / "ref" / "a.png", _labels())
    _png(tmp_path / "ref" / "b.png", _labels())
    _png(tmp_path / "pred" / "a.png", _labels(shift=2))
    (tmp_path / "pred").mkdir(exist_ok=True)
    tifffile.imwrite(tmp_path / "pred" / "b.tif", _labels() * (_labels() != 2))  # class 2 missed
    (tmp_path / "pred" / "notes.txt").write_text("ignored")
    df = evaluate_folders(tmp_path / "pred", tmp_path / "ref", spacing=(0.7, 0.7))
    assert list(df[["case_id", "class"]].itertuples(index=False, name=None)) == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("b", 2),
    ]
    assert set(METRIC_NAMES) <= set(df.columns)
    a1 = df.iloc[0]
    assert a1["dice"] == pytest.approx(mb.dc(_labels(2) == 1, _labels() == 1))
    assert a1["hd95"] == pytest.approx(mb.hd95(_labels(2) == 1, _labels() == 1, (0.7, 0.7)))
    assert a1["spacing"] == "0.7x0.7"
    assert df.iloc[3]["empty"] == "pred" and df.iloc[3]["dice"] == 0.0
    only1 = evaluate_folders(tmp_path / "pred", tmp_path / "ref", classes=[1])
    assert list(only1["class"]) == [1, 1] and only1.iloc[0]["pred_volume"] == 15 * 24


def test_nifti_spacing_from_header_or_override(tmp_path: Path) -> None:
    ref = np.zeros((6, 20, 22), np.uint8)
    ref[1:5, 4:15, 5:16] = 1
    pred = np.roll(ref, 2, axis=2)
    _nifti(tmp_path / "ref" / "vol.nii.gz", ref, (3.0, 0.8, 0.6))
    _nifti(tmp_path / "pred" / "vol.nii.gz", pred, (3.0, 0.8, 0.6))
    row = evaluate_folders(tmp_path / "pred", tmp_path / "ref").iloc[0]
    assert row["spacing"] == "3x0.8x0.6"
    assert row["hd"] == pytest.approx(mb.hd(pred, ref, (3.0, 0.8, 0.6)))
    assert row["ref_volume"] == pytest.approx(ref.sum() * 3.0 * 0.8 * 0.6)
    over = evaluate_folders(tmp_path / "pred", tmp_path / "ref", spacing=(1.0, 1.0, 1.0)).iloc[0]
    assert over["hd"] == pytest.approx(2.0)
    with pytest.raises(FolderEvaluationError, match="3D"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", spacing=(1.0, 1.0))
    _nifti(tmp_path / "pred" / "vol.nii.gz", pred, (3.0, 0.8, 0.9))
    with pytest.raises(FolderEvaluationError, match="spacing"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref")


def test_clear_errors(tmp_path: Path) -> None:
    _png(tmp_path / "ref" / "a.png", _labels())
    _png(tmp_path / "ref" / "b.png", _labels())
    _png(tmp_path / "pred" / "a.png", _labels())
    _png(tmp_path / "pred" / "c.png", _labels())
    with pytest.raises(FolderEvaluationError, match=r"reference case\(s\): b.*predicted case\(s\): c"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref")
    (tmp_path / "pred" / "c.png").rename(tmp_path / "pred" / "b.png")
    _png(tmp_path / "pred" / "b.png", _labels()[:30])
    with pytest.raises(FolderEvaluationError, match=r"'b'.*shape \(30, 48\).*\(40, 48\)"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref")
    colour = np.zeros((40, 48, 3), np.uint8)
    colour[..., 1] = 1  # colour-coded (equal channels would be a gray mask saved as RGB, and read)
    Image.fromarray(colour).save(tmp_path / "pred" / "b.png")
    with pytest.raises(FolderEvaluationError, match="3 channels"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref")
    with pytest.raises(FolderEvaluationError, match="does not exist"):
        evaluate_folders(tmp_path / "nope", tmp_path / "ref")
    _png(tmp_path / "pred" / "b.png", _labels())
    tifffile.imwrite(tmp_path / "pred" / "b.tif", _labels())
    with pytest.raises(FolderEvaluationError, match="share the stem"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref")


@pytest.mark.skipif(not COVID_MASKS.is_dir(), reason="shared COVID CT dataset not present")
def test_real_covid_masks(tmp_path: Path) -> None:
    names = sorted(p.name for p in COVID_MASKS.glob("*.png"))[:3]
    for name in names:
        ref = np.asarray(Image.open(COVID_MASKS / name))
        pred = ref.copy()
        pred[ndi.binary_erosion(ref > 0, iterations=2) == 0] = 0  # shrunken prediction
        _png(tmp_path / "ref" / name, ref)
        _png(tmp_path / "pred" / name, pred)
    df = evaluate_folders(tmp_path / "pred", tmp_path / "ref", progress=False)
    assert set(df["class"]) <= {1, 2} and len(df) == 3 * df["class"].nunique()
    for row in df.to_dict("records"):
        ref = np.asarray(Image.open(row["ref_path"])) == row["class"]
        pred = np.asarray(Image.open(row["pred_path"])) == row["class"]
        if ref.any() and pred.any():
            assert row["dice"] == pytest.approx(mb.dc(pred, ref))
            assert row["assd"] == pytest.approx(mb.assd(pred, ref))


def test_metrics_command_writes_csv_and_table(tmp_path: Path) -> None:
    import pandas as pd
    import typer
    from typer.testing import CliRunner

    from flows.commands.metrics import metrics_command

    app = typer.Typer()
    app.command("metrics")(metrics_command)
    app.command("noop")(lambda: None)  # two commands: typer keeps the "metrics" sub-command name
    _png(tmp_path / "ref" / "a.png", _labels())
    _png(tmp_path / "pred" / "a.png", _labels(shift=1))
    out = tmp_path / "out" / "per_case.csv"
    args = ["metrics", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--classes", "1,2", "--spacing", "0.5,0.5"])
    assert result.exit_code == 0, result.output
    assert "dice" in result.output and "hd95" in result.output
    assert "no threshold is applied" in " ".join(result.output.split())  # the pooled table says so
    df = pd.read_csv(out)
    assert len(df) == 2 and df["spacing"].tolist() == ["0.5x0.5"] * 2
    bad = CliRunner().invoke(app, [*args, "--classes", "1,x"])
    assert bad.exit_code != 0 and "comma-separated" in bad.output
    missing = CliRunner().invoke(
        app, ["metrics", "--pred", str(tmp_path / "nope"), "--ref", str(tmp_path / "ref")]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_roi_and_ignore_label_exclude_pixels_and_pooled_counts_match_numpy(tmp_path: Path) -> None:
    from components.metrics.protocol import PooledCounts

    rng = np.random.default_rng(5)
    refs, preds = [], []
    for i in range(3):
        ref, pred = _labels(), _labels(shift=i)
        ref[:, :4] = 9  # unannotated band
        pred[:, :4] = rng.integers(0, 3, (40, 4))  # garbage there
        roi = np.ones_like(ref)
        roi[36:, :] = 0
        pred[36:, :] = rng.integers(0, 3, (4, 48))  # garbage outside the ROI
        for sub, arr in (("ref", ref), ("pred", pred), ("roi", roi)):
            _png(tmp_path / sub / f"c{i}.png", arr)
        refs.append(ref)
        preds.append(pred)
    pooled = PooledCounts(3)
    df = evaluate_folders(
        tmp_path / "pred", tmp_path / "ref", [1, 2], roi_dir=tmp_path / "roi", ignore_label=9, pooled=pooled
    )
    scored = np.zeros((40, 48), bool)
    scored[:36, 4:] = True
    for i in range(3):  # the per-case panel equals scoring the annotated part alone
        row = df[(df["case_id"] == f"c{i}") & (df["class"] == 1)].iloc[0]
        p, r = preds[i][:36, 4:] == 1, refs[i][:36, 4:] == 1
        assert row["dice"] == pytest.approx(2 * (p & r).sum() / (p.sum() + r.sum()))
    for c in (1, 2):
        p = np.concatenate([x[scored] for x in preds]) == c
        r = np.concatenate([x[scored] for x in refs]) == c
        tp, fp, fn = (p & r).sum(), (p & ~r).sum(), (~p & r).sum()
        tn = p.size - tp - fp - fn
        got = pooled.metrics()[c]
        assert got["pooled_dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert got["pooled_specificity"] == pytest.approx(tn / (tn + fp))
        assert got["pooled_accuracy"] == pytest.approx((tp + tn) / p.size)


def test_binary_references_written_as_0_255_score_0_1_predictions_as_class_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """segflow writes predictions as 0 / 1; a photograph dataset's references are 0 / 255: the 255 is
    class 1 in both folders (with a note), not a class the predictions never hold (Dice 0)."""
    ref = (_labels() == 1).astype(np.uint8)
    pred = (_labels(shift=2) == 1).astype(np.uint8)
    _png(tmp_path / "ref" / "a.png", ref * 255)
    _png(tmp_path / "pred" / "a.png", pred)
    _png(tmp_path / "pred255" / "a.png", pred * 255)
    df = evaluate_folders(tmp_path / "pred", tmp_path / "ref", progress=False)
    expected = mb.dc(pred.astype(bool), ref.astype(bool))
    assert df["class"].tolist() == [1] and df["dice"].iloc[0] == pytest.approx(expected)
    assert "binary masks written as 0 / 255: 255 is read as class 1" in capsys.readouterr().out
    same = evaluate_folders(tmp_path / "pred255", tmp_path / "ref", progress=False)
    assert same["dice"].iloc[0] == pytest.approx(expected)
