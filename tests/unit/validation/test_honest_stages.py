"""validate + preprocess on generated data with the traps of real datasets: near-duplicate copies
(flipped, rotated, re-encoded, cropped), an official split, regions of interest and an ignore label."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy.ndimage import gaussian_filter

from components.core import layout
from components.data.case_store import load_case
from components.data.regions import IGNORE_INDEX
from components.data.splits import read_splits
from components.params.config import load_params
from components.validation import DatasetValidationError, read_manifest
from components.validation.duplicate_groups import NearDuplicateOptions
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]
CLASSES = ["background", "lesion"]


def _smooth(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An anatomy-like image: overlapping sharp-edged ellipses, noise, a slight blur."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w))
    for _ in range(7):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ay, ax = rng.uniform(6, 30, 2)
        img += rng.uniform(0.3, 1) * (((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2 < 1)
    img = gaussian_filter(img + 0.1 * rng.standard_normal((h, w)), 1.0)
    return (255 * (img - img.min()) / np.ptp(img)).astype(np.uint8)


def _copies(image: np.ndarray, mask: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    h, w = image.shape
    ch, cw = int(0.04 * h), int(0.04 * w)
    crop = Image.fromarray(image[ch : h - ch, cw : w - cw]).resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=70)
    jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return [
        ("flip", image[:, ::-1], mask[:, ::-1]),
        ("rot90", np.rot90(image), np.rot90(mask)),
        ("jpeg", jpeg, mask),
        (
            "crop",
            np.asarray(crop),
            np.asarray(Image.fromarray(mask[ch : h - ch, cw : w - cw]).resize((w, h), 0)),
        ),
    ]


def _write(root: Path, n_distinct: int = 16) -> dict[str, str]:
    """``n_distinct`` cases; cases 0..3 get one copy each; returns copy id -> original id."""
    rng = np.random.default_rng(0)
    truth: dict[str, str] = {}
    rows = ["case_id,patient_id,split"]
    for i in range(n_distinct):
        image = _smooth(rng, 120, 100)
        mask = np.zeros_like(image)
        mask[25 + i % 5 : 60, 20 : 50 + i % 7] = 1
        items = [(f"c{i:02d}", image, mask)]
        if i < 4:
            kind, copy, copy_mask = _copies(image, mask)[i]
            items.append((f"c{i:02d}{kind}", copy, copy_mask))
            truth[f"c{i:02d}{kind}"] = f"c{i:02d}"
        for case, img, msk in items:
            for sub, arr in (("images", img), ("masks", msk)):
                (root / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.ascontiguousarray(arr)).save(root / sub / f"{case}.png")
            roi = np.ones_like(msk)
            roi[:10, :] = 0
            (root / "rois").mkdir(exist_ok=True)
            Image.fromarray(roi).save(root / "rois" / f"{case}.png")
            official = "test" if case.startswith(("c00", "c13", "c14", "c15")) else "train"
            rows.append(f"{case},{case},{official}")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    return truth


def _params(tmp_path: Path, data: Path, **validate: object) -> str:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["data"].update(dir=str(data), classes=dict(zip(CLASSES, range(2), strict=True)))
    raw["validate"].update(validate)
    raw["preprocess"]["splits"].update(n_folds=3)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _validate(params_path: str) -> None:
    """The validate stage's task with the params' values (as validate_flow passes them)."""
    from flows.validate import check_dataset

    p = load_params(params_path)
    options = NearDuplicateOptions(p.validate_.near_duplicates, p.validate_.near_duplicate_threshold)
    check_dataset.fn(p.data.dir, p.data.classes, p.data.channels, p.data.ignore_label, options)


def test_copies_are_grouped_kept_on_one_side_and_the_official_split_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.preprocess import prepare

    monkeypatch.chdir(tmp_path)
    truth = _write(tmp_path / "data")
    params = _params(tmp_path, tmp_path / "data")
    _validate(params)
    manifest = read_manifest(layout.MANIFEST).set_index("case_id")
    grouped = manifest["dup_group"].dropna()
    assert {c: grouped[c] for c in grouped.index} == {
        **{copy: orig for copy, orig in truth.items()},
        **{orig: orig for orig in truth.values()},
    }
    assert manifest["dup_mask_agreement"].dropna().min() > 0.8  # the copies' masks agree
    report = json.loads(layout.NEAR_DUPLICATES.read_text())  # the validation report lists each group
    assert sorted(tuple(g["members"]) for g in report["groups"]) == sorted(
        tuple(sorted([orig, *(c for c, o in truth.items() if o == orig)])) for orig in set(truth.values())
    )
    assert all(p["transform"] and p["mask_agreement"] > 0.8 for g in report["groups"] for p in g["pairs"])

    prepare.fn(params, str(layout.MANIFEST))
    splits = read_splits(layout.SPLITS)
    official_test = {c for c in manifest.index if c.startswith(("c00", "c13", "c14", "c15"))}
    assert set(splits.test) == official_test  # kept as given (c00's flip copy is official test too)
    place = {c: k for k, f in enumerate(splits.folds) for c in f}
    for copy, orig in truth.items():
        if orig not in official_test:
            assert place[copy] == place[orig], f"{copy} and {orig} in different folds"
    info = json.loads(layout.PREPARED_INFO.read_text())
    assert info["test_source"] == "cases.csv split column" and info["near_duplicate_groups"] == 4

    _, mask = load_case(layout.PREPARED, "c05")
    assert (mask[:3] == IGNORE_INDEX).all() and (mask[8:] != IGNORE_INDEX).all()  # outside the ROI


def test_fail_mode_stops_validate_naming_the_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "data")
    with pytest.raises(DatasetValidationError, match=r"c01rot90\.png") as err:
        _validate(_params(tmp_path, tmp_path / "data", near_duplicates="fail"))
    assert "near-duplicate group c01" in str(err.value)
    assert not layout.MANIFEST.exists()


def test_an_ignore_label_is_allowed_in_masks_and_stored_as_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.preprocess import prepare

    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "data")
    for path in (tmp_path / "data/masks").glob("*.png"):
        m = np.asarray(Image.open(path)).copy()
        m[:, -5:] = 7  # unannotated band
        Image.fromarray(m).save(path)
    params = _params(tmp_path, tmp_path / "data", near_duplicates="ignore")
    with pytest.raises(DatasetValidationError, match="values 0,1,7"):
        _validate(params)
    raw = yaml.safe_load(Path(params).read_text())
    raw["data"]["ignore_label"] = 7
    Path(params).write_text(yaml.safe_dump(raw))
    _validate(params)
    prepare.fn(params, str(layout.MANIFEST))
    _, mask = load_case(layout.PREPARED, "c05")
    assert set(np.unique(mask)) <= {0, 1, IGNORE_INDEX} and (mask[:, -2:] == IGNORE_INDEX).all()
