"""validate stage: metadata table + great-expectations suite -> data/manifest.parquet, reports/validation/
(GX result, Data Docs and the dataset fingerprint)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.core import layout
from components.data.discovery import discover
from components.params.config import load_params
from components.validation import (
    DatasetValidationError,
    build_metadata,
    compute_fingerprint,
    validate_metadata,
    write_fingerprint,
    write_manifest,
)
from components.validation.duplicate_groups import NearDuplicateOptions, duplicate_summary
from flows.runtime.stage import run


@task(cache_policy=NO_CACHE)
def check_dataset(
    data_dir: str,
    class_names: list[str],
    channels: int,
    ignore_label: int | None = None,
    near_duplicates: NearDuplicateOptions | None = None,
) -> str:
    """Build the metadata table, run the suite; only when it passes write the fingerprint, then the manifest.

    Args:
        data_dir: The dataset folder (images/, masks/, optional rois/ and cases.csv).
        class_names: Class names ordered by mask value (values are 0..K-1).
        channels: Required image channel count.
        ignore_label: Mask value of unannotated pixels (``data.ignore_label``).
        near_duplicates: Near-duplicate search (``validate``); None = group with the default threshold.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data.dir '{data_dir}' is not a folder; it must hold images/ and masks/")
    class_values = list(range(len(class_names)))
    allowed = class_values + ([ignore_label] if ignore_label is not None else [])
    options = near_duplicates or NearDuplicateOptions()
    found = discover(root)
    for note in found.notes:
        print(note)
    meta = build_metadata(found, class_values, root=root, ignore_label=ignore_label, near_duplicates=options)
    for line in duplicate_summary(meta):
        print(line)
    outcome = validate_metadata(
        meta, allowed, layout.VALIDATION_REPORTS, expected_channels=channels, near_duplicates=options.mode
    )
    if not outcome.success:
        raise DatasetValidationError(outcome.failures, outcome.result_path)
    write_fingerprint(
        compute_fingerprint(meta, root, class_names, ignore_label=ignore_label), layout.FINGERPRINT
    )
    write_manifest(meta, layout.MANIFEST)
    return str(layout.MANIFEST)


@flow(name="validate", log_prints=True)
def validate_flow(params_path: str = "params.yaml") -> str:
    """Validate the dataset named by params.yaml data.dir."""
    params = load_params(params_path)
    v = params.validate_
    options = NearDuplicateOptions(v.near_duplicates, v.near_duplicate_threshold)
    data = params.data
    return check_dataset(data.dir, data.class_names, data.channels, data.ignore_label, options)


if __name__ == "__main__":
    run(validate_flow)
