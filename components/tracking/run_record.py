"""Which MLflow runs belong to one pipeline run (written by train, read by evaluate and ensemble)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunRecord:
    """The parent run and the fold child runs of one training."""

    tracking_uri: str
    experiment: str
    parent_run_id: str
    fold_run_ids: dict[int, str]

    def save(self, path: Path) -> None:
        """Write as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        """Read the JSON written by :meth:`save`."""
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; run the train stage first (dvc repro train)")
        d = json.loads(path.read_text())
        d["fold_run_ids"] = {int(k): v for k, v in d["fold_run_ids"].items()}
        return cls(**d)
