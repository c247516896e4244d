"""``ensemble.registered_model``: the MLflow registered model a dataset's runs register into.

One registered model per dataset: the champion gate compares a new ensemble with the champion on
the same test cases, so a model of another dataset must never be its champion. The name is
``segflow-`` and the dataset's own name (``dataset.json``'s ``name``, as MSD and nnU-Net datasets
carry it), else the data folder's name, lower-cased, with anything but letters, digits, ``.``,
``_`` and ``-`` replaced by ``-``.
"""

from __future__ import annotations

import re

from components.planning.decision import Decision

PREFIX = "segflow-"
FALLBACK = "segflow"  # no name known (a dataset described by its fingerprint alone)


def registered_name(dataset_name: str | None, folder: str | None) -> Decision:
    """The registered model's name for a dataset named ``dataset_name`` in folder ``folder``."""
    for source, text in (("dataset.json's name", dataset_name), ("the data folder's name", folder)):
        slug = re.sub(r"[^a-z0-9._-]+", "-", (text or "").lower()).strip("-.")
        if slug:
            return Decision(
                PREFIX + slug,
                f"{source} ({text}): one registered model per dataset, so its champion is only ever "
                "compared with models of the same data",
            )
    return Decision(FALLBACK, "no dataset name known (no dataset.json name, no folder)")
