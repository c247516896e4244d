"""``ensemble.registered_model`` and ``tracking.experiment``: the MLflow registered model a
dataset's runs register into and the experiment they are logged in.

One of each per dataset: the champion gate compares a new ensemble with the champion on the same
test cases, so a model of another dataset must never be its champion, and an experiment's runs are
compared side by side in the MLflow UI. The name is ``segflow-`` and the dataset's own name
(``dataset.json``'s ``name``, as MSD and nnU-Net datasets carry it), else the data folder's name,
lower-cased, with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``.
"""

from __future__ import annotations

import re

from components.planning.decision import Decision

PREFIX = "segflow-"
FALLBACK = "segflow"  # no name known (a dataset described by its fingerprint alone)
WHY = {
    "model": "one registered model per dataset, so its champion only meets models of the same data",
    "experiment": "one MLflow experiment per dataset, so its runs are compared with runs of the same data",
}


def dataset_name(dataset: str | None, folder: str | None, what: str) -> Decision:
    """The ``what`` (``model`` or ``experiment``) name for a dataset named ``dataset`` in folder
    ``folder``."""
    for source, text in (("dataset.json's name", dataset), ("the data folder's name", folder)):
        slug = re.sub(r"[^a-z0-9._-]+", "-", (text or "").lower()).strip("-.")
        if slug:
            return Decision(PREFIX + slug, f"{source} ({text}): {WHY[what]}")
    return Decision(FALLBACK, "no dataset name known (no dataset.json name, no folder)")


def registered_name(dataset: str | None, folder: str | None) -> Decision:
    """``ensemble.registered_model`` for a dataset."""
    return dataset_name(dataset, folder, "model")


def experiment_name(dataset: str | None, folder: str | None) -> Decision:
    """``tracking.experiment`` for a dataset."""
    return dataset_name(dataset, folder, "experiment")
