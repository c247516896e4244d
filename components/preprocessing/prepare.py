"""The preprocess stage's work: cache network-size arrays and write the k-fold/test splits."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import cast

import pandas as pd
from tqdm.auto import tqdm

from components import layout
from components.config import Params
from components.data.case_store import save_case
from components.data.splits import Splits, check_splits, make_splits, split_sha, write_splits
from components.io import read_image, read_mask
from components.preprocessing.pipeline import PreprocessSpec, to_unit_image


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
        # the manifest's path columns hold relative paths as str (the stubs type a row's fields as any scalar)
        image = read_image(data_dir / cast(str, row.image_path))
        mask = read_mask(data_dir / cast(str, row.mask_path))
        unit, m, _ = to_unit_image(image, mask, spec)
        assert m is not None  # a mask was given
        save_case(tmp, str(row.case_id), unit, m)
        shapes[str(row.case_id)] = list(image.shape[:2])
    write_splits(splits, tmp / layout.SPLITS.name)
    info = {
        "preprocess": spec.to_dict(),
        "class_names": params.data.class_names,
        "n_cases": len(ids),
        "original_shapes": shapes,
        "test_split_sha256": split_sha(splits.test),
    }
    (tmp / layout.PREPARED_INFO.name).write_text(json.dumps(info, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return splits
