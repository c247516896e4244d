"""The Dask worker plugin that prepares each worker for folds (flows/runtime/fold_executor.py registers it).

Its own module, so that ``distributed`` is imported only when folds go to Dask (0.6 s of every
train stage's start-up otherwise, measured here)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from distributed.diagnostics.plugin import WorkerPlugin


def _worker_index(name: object) -> int:
    """A worker's number from its name (LocalCluster: 0, 1, ...; the stack: ``dask-worker-<i>``)."""
    tail = str(name).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class FoldWorkerSetup(WorkerPlugin):
    """Prepares each Dask worker for folds: torch threads, its GPU, the client environment."""

    name = "segflow-fold-setup"

    def __init__(self, env: Mapping[str, str], folds_per_host: Mapping[str, int] | None = None) -> None:
        self.env = dict(env)
        self.folds_per_host = dict(folds_per_host or {})  # host -> folds it runs at once (threads rule)

    def __repr__(self) -> str:  # the values may be credentials: names only
        return f"FoldWorkerSetup(env={sorted(self.env)})"

    def setup(self, worker: Any) -> None:
        """Set the environment, torch's thread count (the host's cores shared by the folds it runs at
        once: components/core/threads.py), and the worker's GPU."""
        os.environ.update(self.env)
        from components.core.threads import PROCESSES_ENV, apply_threads

        host = urlsplit(str(worker.address)).hostname or ""
        os.environ[PROCESSES_ENV] = str(max(1, self.folds_per_host.get(host, int(worker.state.nthreads))))
        apply_threads()
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 1:
            torch.cuda.set_device(_worker_index(worker.name) % torch.cuda.device_count())
