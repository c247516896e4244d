"""Which MLflow runs belong to one pipeline run (written by train, read by evaluate and ensemble)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from components.tracking.tracker import Tracker


@dataclass(frozen=True)
class RunRecord:
    """The parent run and the fold child runs of one training (``fold_run_ids``: the first
    configuration's; ``configuration_runs``: a second configuration's, by its name)."""

    tracking_uri: str
    experiment: str
    parent_run_id: str
    fold_run_ids: dict[int, str]
    configuration_runs: dict[str, dict[int, str]] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write as JSON (a single configuration's without ``configuration_runs``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        d = asdict(self)
        if not self.configuration_runs:
            del d["configuration_runs"]
        path.write_text(json.dumps(d, indent=2))

    def all_fold_runs(self) -> list[str]:
        """Every fold run of every configuration."""
        return [
            *self.fold_run_ids.values(),
            *(r for runs in self.configuration_runs.values() for r in runs.values()),
        ]

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """Read the JSON written by :meth:`save`."""
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run the train stage first (dvc repro train)")
        d = json.loads(path.read_text())
        d["fold_run_ids"] = {int(k): v for k, v in d["fold_run_ids"].items()}
        d["configuration_runs"] = {
            name: {int(k): v for k, v in runs.items()}
            for name, runs in d.get("configuration_runs", {}).items()
        }
        return cls(**d)


@contextmanager
def parent_run_outcome(record: RunRecord, last_stage: bool) -> Iterator[Tracker]:
    """Let a stage's outcome end the pipeline's parent run, which spans train to ensemble.

    A failure marks the parent FAILED (KILLED on an interrupt) and re-raises; the last stage's
    success marks it FINISHED, so its duration is the whole pipeline's.

    Yields:
        A tracker on the record's experiment and store.
    """
    tracker = Tracker(record.experiment, record.tracking_uri)
    try:
        yield tracker
    except BaseException as exc:
        tracker.end_run(record.parent_run_id, ok=False, error=exc)
        raise
    if last_stage:
        tracker.end_run(record.parent_run_id)
