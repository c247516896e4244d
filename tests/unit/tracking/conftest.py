"""Shared fixtures of this test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from components.tracking.tracker import Tracker


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread: None) -> None:
    """Every test here runs torch on one thread (see tests/unit/conftest.py)."""


@pytest.fixture(scope="package")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow SQLite store in a temporary folder, for this whole test folder.

    The working directory moves there (MLflow puts artifacts under ``./mlruns``), and the process-wide
    MLflow URIs that ``register_and_gate`` / ``log_ensemble_model`` set are restored afterwards.
    """
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uri)
        mp.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        mp.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
        yield uri


@pytest.fixture(scope="package")
def tracker(store: str) -> Tracker:
    return Tracker("segflow-unit", uri=store)
