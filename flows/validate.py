"""validate stage: metadata table + great-expectations suite -> data/manifest.parquet, reports/validation/
(GX result, Data Docs, the dataset fingerprint and dataset.md: classes and channels as read)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.params.user import load_user_params
from components.validation.duplicate_groups import NearDuplicateOptions
from components.validation.stage import validate_dataset
from flows.runtime.stage import run


@task(cache_policy=NO_CACHE)
def check_dataset(
    data_dir: str,
    classes: dict[str, int] | str,
    channels: int | str,
    ignore_label: int | None = None,
    near_duplicates: NearDuplicateOptions | None = None,
) -> str:
    """Build the metadata table, run the suite; only when it passes write the fingerprint, the dataset
    report and the manifest.

    Args:
        data_dir: The dataset folder (images/ + masks/ or an MSD / nnU-Net imagesTr/ + labelsTr/,
            optional rois/, cases.csv and dataset.json).
        classes: ``data.classes`` (name -> mask value) or ``"auto"`` (dataset.json, else the values found).
        channels: ``data.channels`` or ``"auto"`` (the count every image shares).
        ignore_label: Mask value of unannotated pixels (``data.ignore_label``).
        near_duplicates: Near-duplicate search (``validate``); None = group with the default threshold.
    """
    return str(validate_dataset(Path(data_dir), classes, channels, ignore_label, near_duplicates))


@flow(name="validate", log_prints=True)
def validate_flow(params_path: str = "params.yaml") -> str:
    """Validate the dataset named by params.yaml data.dir."""
    params = load_user_params(params_path)  # data.classes / data.channels may be auto
    v = params.validate_
    options = NearDuplicateOptions(v.near_duplicates, v.near_duplicate_threshold)
    data = params.data
    return check_dataset(data.dir, data.classes, data.channels, data.ignore_label, options)


if __name__ == "__main__":
    run(validate_flow)
