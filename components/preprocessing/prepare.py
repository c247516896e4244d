"""The preprocess stage's work: cache network-size arrays and write the k-fold/test splits."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from components.core import layout
from components.core.errors import UserError
from components.data.case_store import save_case
from components.data.regions import reference_labels
from components.data.splits import (
    Splits,
    check_splits,
    make_splits,
    merge_groups,
    split_leaks,
    split_sha,
    write_splits,
)
from components.io import read_case_roi, read_image
from components.io.case_masks import read_case_mask
from components.params.config import Params
from components.preprocessing.native import NativeSpec, preprocess_case
from components.preprocessing.native_io import image_files, read_native_image
from components.preprocessing.pipeline import PreprocessSpec, to_unit_image
from components.preprocessing.specs import AnySpec


def _labels(s: object) -> list[int]:
    return [int(v) for v in str(s).split(",") if str(v).strip() != ""]


def _cache_resized(
    rows: list[Any], data_dir: Path, spec: PreprocessSpec, out: Path, ignore_label: int | None
) -> dict[str, Any]:
    """Cache each case at the network size; return the original (H, W) per case."""
    shapes = {}
    for row in tqdm(rows, desc="preprocess", unit="case"):
        # the manifest's path columns hold relative paths as str (the stubs type a row's fields as any scalar)
        image = read_image(data_dir / cast(str, row.image_path))
        mask = read_case_mask(data_dir, row)
        mask = reference_labels(
            mask, read_case_roi(data_dir, getattr(row, "roi_path", None)), ignore_label
        ).astype(np.uint8)
        unit, m, _ = to_unit_image(image, mask, spec)
        assert m is not None  # a mask was given
        save_case(out, str(row.case_id), unit, m)
        shapes[str(row.case_id)] = list(image.shape[:2])
    return {"original_shapes": shapes}


def _cache_native(
    rows: list[Any], data_dir: Path, spec: NativeSpec, num_classes: int, out: Path, ignore_label: int | None
) -> dict[str, Any]:
    """Cache each case at native resolution (cropped/resampled/normalised); return the case records."""
    records = {}
    for row in tqdm(rows, desc="preprocess", unit="case"):
        image, geometry = read_native_image(image_files(data_dir, cast(str, row.image_path)), spec)
        mask = read_case_mask(data_dir, row)
        mask = reference_labels(mask, read_case_roi(data_dir, getattr(row, "roi_path", None)), ignore_label)
        img, m, record = preprocess_case(image, geometry.spacing, spec, mask, num_classes)
        assert m is not None  # a mask was given
        save_case(out, str(row.case_id), img, m)
        records[str(row.case_id)] = record.to_json()
    shapes = {c: r["original_shape"] for c, r in records.items()}
    return {"original_shapes": shapes, "case_records": records}


def _column(cases: pd.DataFrame, ids: list[str], name: str) -> dict[str, str]:
    """Non-null values of an optional manifest column, by case id."""
    if name not in cases.columns:
        return {}
    return {c: str(v) for c, v in zip(ids, cases[name], strict=True) if isinstance(v, str) and v}


def _split(cases: pd.DataFrame, ids: list[str], params: Params) -> tuple[Splits, dict[str, Any]]:
    """The splits (grouped by patient and near-duplicate group; an official test set kept) and
    what prepared.json records about how they were made."""
    sp = params.preprocess.splits
    patients = dict(zip(ids, cases["patient_id"].astype(str), strict=True))
    dup_groups = _column(cases, ids, "dup_group")
    groups = merge_groups(patients, dup_groups)
    k = params.data.num_classes  # labels_present may hold the ignore label: not a stratum
    labels = {c: [v for v in _labels(x) if v < k] for c, x in zip(ids, cases["labels_present"], strict=True)}
    official = _column(cases, ids, "split")
    fixed = sorted(c for c, v in official.items() if v == "test") if official else None
    try:
        splits = make_splits(ids, labels, groups, sp.n_folds, sp.test_fraction, sp.seed, fixed_test=fixed)
    except ValueError as exc:
        if not dup_groups:
            raise
        raise ValueError(
            f"{exc}. The validate stage merged {len(dup_groups)} cases into "
            f"{len(set(dup_groups.values()))} near-duplicate group(s) (manifest column dup_group), "
            "which the splits keep together; if they are distinct cases, raise "
            "validate.near_duplicate_threshold or set validate.near_duplicates: ignore"
        ) from None
    leaks = split_leaks(splits.test, groups) if fixed is not None else []
    for line in leaks:
        print(f"warning: the official split puts one patient / near-duplicate group on both sides: {line}")
    in_test = set(splits.test)
    check_splits(splits, ids, {c: g for c, g in groups.items() if fixed is None or c not in in_test})
    info: dict[str, Any] = {
        "test_source": "cases.csv split column" if fixed is not None else "preprocess.splits.test_fraction",
        "near_duplicate_groups": len(set(dup_groups.values())),
        "official_split_leaks": leaks,
    }
    return splits, info


def prepare_dataset(
    manifest: pd.DataFrame,
    data_dir: Path,
    params: Params,
    spec: AnySpec,
    out_dir: Path,
    fingerprint: dict[str, Any] | None = None,
) -> Splits:
    """Cache every case (at the network size, or native in patch mode) and write ``splits.json``.

    Everything is written into a temporary sibling folder that replaces ``out_dir`` only when
    complete, so a failure never leaves partial outputs behind.

    Args:
        manifest: The validate stage's table (case_id, patient_id, image_path, mask_path, labels_present).
        data_dir: Folder the manifest's relative paths start from.
        params: Validated params (splits section).
        spec: Preprocessing spec.
        out_dir: ``data/prepared``.
        fingerprint: Patch mode: the dataset fingerprint the spec was resolved against (recorded).
    """
    cases = manifest.sort_values("case_id")
    ids = cases["case_id"].astype(str).tolist()
    splits, split_info = _split(cases, ids, params)

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = list(cases.itertuples(index=False))
    ignore = params.data.ignore_label
    if isinstance(spec, NativeSpec):
        cached = _cache_native(rows, data_dir, spec, params.data.num_classes, tmp, ignore)
    else:
        cached = _cache_resized(rows, data_dir, spec, tmp, ignore)
    write_splits(splits, tmp / layout.SPLITS.name)
    info = {
        "preprocess": spec.to_dict(),
        "class_names": params.data.class_names,
        "n_cases": len(ids),
        **cached,
        "test_split_sha256": split_sha(splits.test),
        **split_info,
        **({"fingerprint": fingerprint} if fingerprint is not None else {}),
    }
    (tmp / layout.PREPARED_INFO.name).write_text(json.dumps(info, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return splits


class PreparedDataMismatch(UserError, ValueError):
    """The prepared data was made with other preprocessing params than the stage was given."""


def check_prepared_matches(prepared_dir: Path, spec: AnySpec, class_names: Sequence[str]) -> None:
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
