"""A thin MLflow tracker that addresses runs by id.

Runs are created and written through ``MlflowClient`` with explicit run ids instead of the
thread-local "active run", so fold runs created inside Prefect worker threads keep their parent
(see STACK_NOTES §2) and stages in separate processes can log to the same runs.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow 3's UI opens an experiment on its GenAI "Traces" view unless the experiment says it is
# for model training; this tag (read by the UI) makes it open on the runs table.
EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else a SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"a.b.c": "value"}`` strings (lists as JSON)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list | tuple) else str(v)
    return out


class Tracker:
    """Create runs in one experiment and log to them by id.

    Args:
        experiment: Experiment name (created when missing).
        uri: Tracking URI; default :func:`tracking_uri`.
    """

    def __init__(self, experiment: str, uri: str | None = None) -> None:
        self.uri = uri or tracking_uri()
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            self.experiment_id = self.client.create_experiment(
                experiment, tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND}
            )
        else:
            self.experiment_id = exp.experiment_id
            if EXPERIMENT_KIND_TAG not in exp.tags:  # made before segflow set the kind
                self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)

    def start_run(
        self, name: str, parent_id: str | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """Create a run (a child of ``parent_id`` when given) and return its id."""
        all_tags = {"mlflow.runName": name, **(tags or {})}
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        return self.client.create_run(self.experiment_id, tags=all_tags, run_name=name).info.run_id

    def end_run(self, run_id: str, ok: bool = True, error: BaseException | None = None) -> None:
        """Mark a run FINISHED, or FAILED (``ok=False``) — KILLED when ``error`` is an interrupt."""
        interrupted = isinstance(error, KeyboardInterrupt | SystemExit)
        self.client.set_terminated(run_id, "FINISHED" if ok else "KILLED" if interrupted else "FAILED")

    def run_status(self, run_id: str) -> str | None:
        """The run's status (RUNNING, FINISHED, FAILED, KILLED...), or None when it is gone or deleted."""
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        return None if run.info.lifecycle_stage == "deleted" else str(run.info.status)

    def reopen_run(self, run_id: str) -> bool:
        """Continue an existing run (a resumed training): mark it RUNNING again; False when it is gone."""
        if self.run_status(run_id) is None:
            return False
        self.client.update_run(run_id, status="RUNNING")
        return True

    def kill_if_running(self, run_id: str) -> bool:
        """End a run left RUNNING by a killed process as KILLED; True when it was RUNNING."""
        if self.run_status(run_id) != "RUNNING":
            return False
        self.client.set_terminated(run_id, "KILLED")
        return True

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        """The steps at which metric ``key`` was logged to the run."""
        return {int(m.step) for m in self.client.get_metric_history(run_id, key)}

    def epoch_logger(
        self, run_id: str, key: str = "train_loss"
    ) -> Callable[[Mapping[str, float], int], None]:
        """A per-epoch metric logger for the run that skips the steps it already has (those an
        interrupted attempt logged, found by ``key``), so a resumed fold logs each epoch once."""
        logged = self.logged_steps(run_id, key)

        def log(metrics: Mapping[str, float], step: int) -> None:
            if step not in logged:
                self.log_metrics(run_id, metrics, step)
                logged.add(step)

        return log

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log (nested) params, flattened to dotted keys."""
        items = [Param(k, v[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i : i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log finite metrics in one batch (NaN/inf are skipped: MLflow charts cannot show them).

        A "±" in a key becomes "_pm_": MLflow metric names allow only letters, digits and ``_-. :/``.
        """
        ts = int(time.time() * 1000)
        items = [
            Metric(k.replace("±", "_pm_"), float(v), ts, step or 0)
            for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))
        ]
        for i in range(0, len(items), 500):
            self.client.log_batch(run_id, metrics=items[i : i + 500])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set string tags."""
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """Upload a file or a folder."""
        if Path(path).is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_dict(self, run_id: str, data: Mapping[str, Any], name: str) -> None:
        """Store a mapping as a JSON/YAML artifact named ``name``."""
        self.client.log_dict(run_id, dict(data), name)

    def log_dataset(
        self, run_id: str, name: str, digest: str, source: str, profile: Mapping[str, Any], context: str
    ) -> None:
        """Record the run's input data as an MLflow dataset (the UI's Dataset column and view).

        Args:
            run_id: The run.
            name: Dataset name (e.g. the data folder's name).
            digest: Its version: the DVC md5 of the data folder, so two data versions differ.
            source: Where it lives (the data path or remote URL).
            profile: Small summary shown with it (case and class counts).
            context: How the run used it (``training``, ``evaluation``...).
        """
        dataset = Dataset(
            name=name,
            digest=digest[:36],  # MLflow stores at most 36 characters
            source_type="dvc",
            source=json.dumps({"path": source, "dvc_md5": digest}),
            profile=json.dumps(dict(profile)),
        )
        tags = [InputTag(key="mlflow.data.context", value=context)]
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset=dataset, tags=tags)])
