"""validate stage: metadata table + great-expectations suite -> data/manifest.parquet, reports/validation/."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components import layout
from components.config import load_params
from components.data.discovery import discover
from components.validation import (
    DatasetValidationError,
    build_metadata,
    validate_metadata,
    write_manifest,
)
from flows.stage import main


@task(cache_policy=NO_CACHE)
def check_dataset(data_dir: str, class_values: list[int], channels: int) -> str:
    """Build the metadata table, run the suite, write the manifest only when it passes."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data.dir '{data_dir}' is not a folder; it must hold images/ and masks/")
    meta = build_metadata(discover(root), class_values, root=root)
    outcome = validate_metadata(meta, class_values, layout.VALIDATION_REPORTS, expected_channels=channels)
    if not outcome.success:
        raise DatasetValidationError(outcome.failures, outcome.result_path)
    write_manifest(meta, layout.MANIFEST)
    return str(layout.MANIFEST)


@flow(name="validate", log_prints=True)
def validate_flow(params_path: str = "params.yaml") -> str:
    """Validate the dataset named by params.yaml data.dir."""
    params = load_params(params_path)
    return check_dataset(params.data.dir, sorted(params.data.classes.values()), params.data.channels)


if __name__ == "__main__":
    main(validate_flow)
