"""preprocess stage: network-size arrays + stratified, grouped k-fold/test splits -> data/prepared/."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.core import layout
from components.params.config import load_params
from components.preprocessing.native import native_spec_from_params
from components.preprocessing.pipeline import spec_from_params
from components.preprocessing.prepare import prepare_dataset
from components.preprocessing.specs import read_fingerprint
from components.validation import read_manifest
from flows.runtime.stage import run


@task(cache_policy=NO_CACHE)
def prepare(params_path: str, manifest_path: str) -> str:
    """Cache arrays and write splits.json."""
    params = load_params(params_path)
    patch = params.preprocess.spatial_mode == "patch"
    fingerprint = read_fingerprint(layout.FINGERPRINT) if patch else None
    spec = (
        native_spec_from_params(params, fingerprint) if fingerprint is not None else spec_from_params(params)
    )
    splits = prepare_dataset(
        read_manifest(Path(manifest_path)), Path(params.data.dir), params, spec, layout.PREPARED, fingerprint
    )
    print(f"splits: test {len(splits.test)} cases, folds {[len(f) for f in splits.folds]}")
    return str(layout.PREPARED)


@flow(name="preprocess", log_prints=True)
def preprocess_flow(params_path: str = str(layout.RESOLVED_PARAMS)) -> str:
    """Preprocess the validated dataset."""
    return prepare(params_path, str(layout.MANIFEST))


if __name__ == "__main__":
    run(preprocess_flow)
