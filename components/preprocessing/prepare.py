"""The preprocess stage's work: cache network-size arrays and write the k-fold/test splits."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from components.config import Params
from components.data.dataset import save_case
from components.data.splits import Splits, check_splits, make_splits
from components.io import read_image, read_mask
from components.preprocessing.pipeline import PreprocessSpec, to_unit_image

SPLITS_FILE = "splits.json"
INFO_FILE = "prepared.json"


def split_sha(test_cases: list[str]) -> str:
    """Identity of a test split (sorted case ids), to compare models on the same cases."""
    return hashlib.sha256("\n".join(sorted(test_cases)).encode()).hexdigest()


def _labels(s: object) -> list[int]:
    return [int(v) for v in str(s).split(",") if str(v).strip() != ""]


def prepare_dataset(
    manifest: pd.DataFrame, data_dir: Path, params: Params, spec: PreprocessSpec, out_dir: Path
) -> Splits:
    """Cache every case at the network size and write ``splits.json``.

    Everything is written into a temporary sibling folder that replaces ``out_dir`` only when
    complete, so a failure never leaves partial outputs behind.

    Args:
        manifest: The validate stage's table (case_id, patient_id, image_path, mask_path, labels_present).
        data_dir: Folder the manifest's relative paths start from.
        params: Validated params (splits section).
        spec: Preprocessing spec.
        out_dir: ``data/prepared``.
    """
    cases = manifest.sort_values("case_id")
    ids = cases["case_id"].astype(str).tolist()
    sp = params.preprocess.splits
    groups = dict(zip(ids, cases["patient_id"].astype(str), strict=True))
    labels = {c: _labels(v) for c, v in zip(ids, cases["labels_present"], strict=True)}
    splits = make_splits(ids, labels, groups, sp.n_folds, sp.test_fraction, sp.seed)
    check_splits(splits, ids, groups)

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shapes = {}
    for row in tqdm(list(cases.itertuples(index=False)), desc="preprocess", unit="case"):
        image = read_image(data_dir / row.image_path)
        mask = read_mask(data_dir / row.mask_path)
        unit, m, _ = to_unit_image(image, mask, spec)
        save_case(tmp, str(row.case_id), unit, m)
        shapes[str(row.case_id)] = list(image.shape[:2])
    (tmp / SPLITS_FILE).write_text(json.dumps(splits.to_json(), indent=2))
    info = {
        "preprocess": spec.to_dict(),
        "class_names": params.data.class_names,
        "n_cases": len(ids),
        "original_shapes": shapes,
        "test_split_sha256": split_sha(splits.test),
    }
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return splits


def load_splits(prepared_dir: Path) -> Splits:
    """Read the splits written by :func:`prepare_dataset`."""
    return Splits.from_json(json.loads((prepared_dir / SPLITS_FILE).read_text()))
