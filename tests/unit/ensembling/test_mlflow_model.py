"""The packaged fold ensemble (MLflow model from code) and ``predict_folder``, on real saved models."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pytest
import torch
from PIL import Image

from components.ensembling.packaged_model import PyfuncPredictor
from components.ensembling.packaging import save_ensemble_model
from components.ensembling.predict_folder import list_images, predict_folder
from components.inference.predictor import predictor_from_checkpoints
from components.io import read_image, read_mask
from components.preprocessing.pipeline import PreprocessSpec
from components.training.checkpoint import ModelSpec, save_checkpoint

CLASS_NAMES = ["background", "organ", "lesion"]
RNG = np.random.default_rng(9)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Two untrained tiny U-Nets saved as checkpoints and packaged as one ensemble model folder."""
    root = tmp_path_factory.mktemp("ensemble")
    spec = PreprocessSpec((32, 32), "letterbox", "minmax", {}, 1)
    mspec = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 2})
    checkpoints = []
    for k in range(2):
        torch.manual_seed(k)
        model = mspec.build().eval()
        checkpoints.append(root / f"fold_{k}.pt")
        save_checkpoint(checkpoints[-1], model, mspec, spec, {"fold": k})
    save_ensemble_model(root / "model", checkpoints, True, CLASS_NAMES, 1)
    return root / "model", checkpoints


@pytest.fixture(scope="module")
def loaded(packaged: tuple[Path, list[Path]]) -> mlflow.pyfunc.PyFuncModel:
    return mlflow.pyfunc.load_model(str(packaged[0]))


def test_model_folder_holds_the_folds_and_the_config(packaged: tuple[Path, list[Path]]) -> None:
    path, _ = packaged
    assert (path / "MLmodel").is_file()
    artifacts = path / "artifacts"
    assert {p.name for p in artifacts.iterdir()} >= {"fold_0.pt", "fold_1.pt", "ensemble.json"}
    cfg = json.loads((artifacts / "ensemble.json").read_text())
    assert (cfg["tta"], cfg["class_names"]) == (True, CLASS_NAMES)
    assert cfg["inference"] == {
        "tta": True,
        "postprocessing": None,
        "tta_axes": None,
        "mode": "mean",
        "overlap": 0.5,
        "window_batch": 4,
    }


def test_labels_and_probabilities_for_an_odd_sized_gray_image(loaded: mlflow.pyfunc.PyFuncModel) -> None:
    image = RNG.integers(0, 256, (37, 29)).astype(np.float32)
    x = image[None, ..., None]  # (N, H, W, C)
    labels = np.asarray(loaded.predict(x))
    assert labels.shape == (1, 37, 29) and labels.dtype == np.int64
    assert set(np.unique(labels)) <= {0, 1, 2}
    probs = np.asarray(loaded.predict(x, params={"output": "probabilities"}))
    assert probs.shape == (1, 3, 37, 29) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels, probs.argmax(1))


def test_packaged_model_equals_the_in_process_fold_ensemble(
    packaged: tuple[Path, list[Path]], loaded: mlflow.pyfunc.PyFuncModel
) -> None:
    images = RNG.integers(0, 256, (2, 23, 31)).astype(np.float32)
    probs = np.asarray(loaded.predict(images[..., None], params={"output": "probabilities"}))
    assert probs.shape == (2, 3, 23, 31)
    direct = predictor_from_checkpoints(packaged[1], tta=True)
    for i in range(2):
        np.testing.assert_allclose(probs[i], direct.predict_proba(images[i]), atol=1e-5)
    # The adapter used to re-score a champion gives the same numbers.
    adapter = PyfuncPredictor(str(packaged[0]))
    np.testing.assert_allclose(adapter.predict_proba(images[0]), probs[0], atol=1e-6)


def test_rgb_image_with_a_gray_packaged_model(loaded: mlflow.pyfunc.PyFuncModel) -> None:
    rgb = RNG.integers(0, 256, (1, 17, 19, 3)).astype(np.float32)
    assert np.asarray(loaded.predict(rgb)).shape == (1, 17, 19)


def test_packaged_model_with_dtype_intensity_on_an_8_bit_png(tmp_path: Path) -> None:
    spec = PreprocessSpec((32, 32), "resize", "dtype", {}, 1)
    mspec = ModelSpec("unet", 1, 3, {"base_channels": 8, "depth": 2})
    save_checkpoint(tmp_path / "fold_0.pt", mspec.build(), mspec, spec, {})
    save_ensemble_model(tmp_path / "model", [tmp_path / "fold_0.pt"], False, CLASS_NAMES, 1)
    (tmp_path / "in").mkdir()
    Image.fromarray(RNG.integers(0, 256, (9, 11), dtype=np.uint8)).save(tmp_path / "in" / "a.png")
    assert predict_folder(str(tmp_path / "model"), tmp_path / "in", tmp_path / "out") == 1
    # Without the stored dtype, 0..255 floats are not a valid "dtype"-normalised input: a clear error.
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    with pytest.raises(ValueError, match="dtype"):
        model.predict(np.full((1, 9, 11, 1), 200, np.float32))


def test_predict_folder_writes_masks_and_overlays(
    tmp_path: Path, packaged: tuple[Path, list[Path]], loaded: mlflow.pyfunc.PyFuncModel
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    a = RNG.integers(0, 256, (37, 29), dtype=np.uint8)
    b = RNG.integers(0, 65536, (20, 45), dtype=np.uint16)
    Image.fromarray(a).save(src / "a.png")
    Image.fromarray(b).save(src / "b.png")
    (src / ".hidden.png").write_bytes(b"not read")
    (src / "notes.txt").write_text("not an image")
    (src / "sub").mkdir()
    assert [p.name for p in list_images(src)] == ["a.png", "b.png"]

    out = tmp_path / "out"
    n = predict_folder(str(packaged[0]), src, out)
    assert n == 2
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]
    for name, image in (("a", a), ("b", b)):
        mask = read_mask(out / f"{name}.png")
        assert mask.shape == image.shape and mask.dtype == np.uint8
        expected = np.asarray(loaded.predict(image[None, ..., None].astype(np.float32)))[0]
        np.testing.assert_array_equal(mask, expected)
        ov = read_image(out / "overlays" / f"{name}.png")
        assert ov.shape == (*image.shape, 3) and ov.dtype == np.uint8


def test_predict_folder_without_overlays(tmp_path: Path, packaged: tuple[Path, list[Path]]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(RNG.integers(0, 256, (9, 11), dtype=np.uint8)).save(src / "c.png")
    assert predict_folder(str(packaged[0]), src, tmp_path / "out", overlays=False) == 1
    assert (tmp_path / "out" / "c.png").is_file() and not (tmp_path / "out" / "overlays").exists()


def test_predict_folder_input_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"--input .*missing: not a folder"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no PNG/JPG/TIFF images found"):
        predict_folder("unused", tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_predict_folder_with_rois_clears_the_outside(
    tmp_path: Path, packaged: tuple[Path, list[Path]], loaded: mlflow.pyfunc.PyFuncModel
) -> None:
    src, rois = tmp_path / "in", tmp_path / "rois"
    src.mkdir()
    rois.mkdir()
    image = RNG.integers(0, 256, (24, 30), dtype=np.uint8)
    Image.fromarray(image).save(src / "a.png")
    roi = np.zeros((24, 30), np.uint8)
    roi[4:20, 5:25] = 1
    Image.fromarray(roi).save(rois / "a.png")
    assert predict_folder(str(packaged[0]), src, tmp_path / "out", overlays=False, rois_dir=rois) == 1
    mask = read_mask(tmp_path / "out" / "a.png")
    expected = np.asarray(loaded.predict(image[None, ..., None].astype(np.float32)))[0]
    np.testing.assert_array_equal(mask, np.where(roi > 0, expected, 0))
    (rois / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match="no region-of-interest file for a"):
        predict_folder(str(packaged[0]), src, tmp_path / "out2", rois_dir=rois)
    assert not (tmp_path / "out2").exists()


def test_a_model_trained_inside_rois_warns_when_predicting_without_them(
    tmp_path: Path, packaged: tuple[Path, list[Path]]
) -> None:
    _, checkpoints = packaged
    save_ensemble_model(tmp_path / "roi_model", checkpoints, True, CLASS_NAMES, 1, rois=True)
    assert json.loads((tmp_path / "roi_model/artifacts/ensemble.json").read_text())["regions_of_interest"]
    src, rois = tmp_path / "in", tmp_path / "rois"
    for folder in (src, rois):
        folder.mkdir()
    Image.fromarray(RNG.integers(0, 256, (16, 20), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(np.ones((16, 20), np.uint8)).save(rois / "a.png")
    said: list[str] = []
    model = str(tmp_path / "roi_model")
    predict_folder(model, src, tmp_path / "o1", overlays=False, warn=said.append)
    assert len(said) == 1 and "--rois" in said[0] and "--no-rois" in said[0]
    predict_folder(model, src, tmp_path / "o2", overlays=False, no_rois=True, warn=said.append)
    predict_folder(model, src, tmp_path / "o3", overlays=False, rois_dir=rois, warn=said.append)
    predict_folder(str(packaged[0]), src, tmp_path / "o4", overlays=False, warn=said.append)  # no ROIs
    assert len(said) == 1
    assert (tmp_path / "o1" / "a.png").is_file()  # a warning, not a refusal


def test_predict_refuses_rois_and_no_rois_together(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    args = ["predict", "--model", "m", "--input", str(tmp_path), "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--rois", str(tmp_path), "--no-rois"])
    assert result.exit_code == 1 and "--rois and --no-rois contradict" in result.output
    assert not (tmp_path / "o").exists()
