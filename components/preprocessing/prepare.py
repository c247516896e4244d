"""The preprocess stage's work: cache network-size arrays and write the k-fold/test splits."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd
from tqdm.auto import tqdm

from components import layout
from components.config import Params
from components.data.case_store import save_case
from components.data.splits import Splits, check_splits, make_splits, split_sha, write_splits
from components.errors import UserError
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


class PreparedDataMismatch(UserError, ValueError):
    """The prepared data was made with other preprocessing params than the stage was given."""


def check_prepared_matches(prepared_dir: Path, spec: PreprocessSpec, class_names: Sequence[str]) -> None:
    """Refuse prepared data that another preprocessing produced (a stale or foreign data/prepared).

    DVC normally re-runs preprocess when its params change; this guards against everything that
    bypasses that (a run-cache restore, a hand-copied folder, a stage run outside DVC).

    Raises:
        FileNotFoundError: No prepared.json (the preprocess stage has not run).
        PreparedDataMismatch: Lists each differing setting, prepared value vs the params' value.
    """
    path = Path(prepared_dir) / layout.PREPARED_INFO.name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the preprocess stage first (dvc repro preprocess)")
    info = json.loads(path.read_text())
    want: dict[str, Any] = json.loads(json.dumps({**spec.to_dict(), "class_names": list(class_names)}))
    got: dict[str, Any] = {**info.get("preprocess", {}), "class_names": info.get("class_names")}
    diffs = [
        f"  - {k}: prepared with {got.get(k)!r}, params give {v!r}"
        for k, v in want.items()
        if got.get(k) != v
    ]
    if diffs:
        raise PreparedDataMismatch(
            f"{prepared_dir} was made with other preprocessing than params.yaml asks for:\n"
            + "\n".join(diffs)
            + "\nre-run the preprocess stage (dvc repro preprocess, or segflow run)"
        )
