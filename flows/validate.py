"""validate stage: metadata table + great-expectations suite -> data/manifest.parquet, reports/validation/
(GX result, Data Docs and the dataset fingerprint)."""

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
    compute_fingerprint,
    validate_metadata,
    write_fingerprint,
    write_manifest,
)
from flows.stage import main


@task(cache_policy=NO_CACHE)
def check_dataset(data_dir: str, class_names: list[str], channels: int) -> str:
    """Build the metadata table, run the suite; only when it passes write the fingerprint, then the manifest.

    Args:
        data_dir: The dataset folder (images/, masks/).
        class_names: Class names ordered by mask value (values are 0..K-1).
        channels: Required image channel count.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data.dir '{data_dir}' is not a folder; it must hold images/ and masks/")
    class_values = list(range(len(class_names)))
    meta = build_metadata(discover(root), class_values, root=root)
    outcome = validate_metadata(meta, class_values, layout.VALIDATION_REPORTS, expected_channels=channels)
    if not outcome.success:
        raise DatasetValidationError(outcome.failures, outcome.result_path)
    write_fingerprint(compute_fingerprint(meta, root, class_names), layout.FINGERPRINT)
    write_manifest(meta, layout.MANIFEST)
    return str(layout.MANIFEST)


@flow(name="validate", log_prints=True)
def validate_flow(params_path: str = "params.yaml") -> str:
    """Validate the dataset named by params.yaml data.dir."""
    params = load_params(params_path)
    return check_dataset(params.data.dir, params.data.class_names, params.data.channels)


if __name__ == "__main__":
    main(validate_flow)
