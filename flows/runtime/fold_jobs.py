"""The train stage's folds per configuration: each configuration's params, MLflow tags and resume
folder (:func:`fold_jobs`), and every configuration's finished folds published as one
``models/folds`` (:func:`publish_folds`): the first configuration's ``fold_<k>/`` (a
single-configuration run's layout) and a second one's ``<name>/fold_<k>/``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from components.core import layout
from components.params.config import Params
from components.params.configurations import Configuration
from components.training.resume_store import ResumeStore

if TYPE_CHECKING:
    from components.tracking.run_record import RunRecord

CONFIGURATION_TAG = "segflow.configuration"  # 3d | 2d: the configuration a fold run trains


class FoldJob(TypedDict):
    """One configuration's folds to train: its params and resume folder."""

    params_path: str
    tags: dict[str, str]
    resume_root: str


def fold_jobs(
    configs: list[tuple[Configuration, Params]], store: ResumeStore, tags: dict[str, str]
) -> list[FoldJob]:
    """Each configuration's params, tags and resume folder (a second one's inside the first's)."""
    return [
        {
            "params_path": str(c.params_path),
            "tags": {**tags, CONFIGURATION_TAG: c.name} if c.name else dict(tags),
            "resume_root": str(store.root if c.first else ResumeStore.open(store.root, c.label).root),
        }
        for c, _ in configs
    ]


def publish_folds(
    configs: list[tuple[Configuration, Params]], jobs: list[FoldJob], record: RunRecord, store: ResumeStore
) -> None:
    """Every configuration's folds and the run record into models/folds, in one rename."""
    folds = configs[0][1].folds

    def extra(tmp: Path) -> None:
        record.save(tmp / layout.RUN_RECORD.name)
        for (c, _), job in zip(configs[1:], jobs[1:], strict=True):
            ResumeStore(Path(job["resume_root"])).place(folds, tmp / c.folds_dir.relative_to(layout.FOLDS))

    store.publish(folds, layout.FOLDS, extra)
