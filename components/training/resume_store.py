"""The train stage's resume folder: ``.segflow/resume/train/<key>/``, outside the stage's DVC outs.

``<key>`` is a hash of what determines the training (the params the stage reads and the identity
of the prepared data and splits), so a resume never mixes two configurations. The folder holds

* ``runs.json``: the MLflow parent and fold run ids (and the Prefect flow run) of the attempt,
  so a rerun continues those runs instead of starting new ones;
* ``fold_<k>/``: the fold's resumable state (``state.pt``), its final files (``best.pt``,
  ``last.pt``, ``history.csv``) and, once the fold is done, ``result.json``.

When every fold is done the final files are published into ``models/folds`` in one rename
(:meth:`ResumeStore.publish`), so the stage's output is either absent or complete, and the
folder is removed. Folders of other keys are stale: their runs are ended and they are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.core import layout

RUNS_FILE = "runs.json"
RUNS_LOCK = "runs.lock"
DONE_FILE = "result.json"
FOLD_FILES = (layout.BEST_CHECKPOINT, layout.LAST_CHECKPOINT, layout.HISTORY)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resume_key(stage_params: Mapping[str, Any], prepared_dir: Path) -> str:
    """A short hash of the stage's params and the prepared data's identity (prepared.json, splits.json)."""
    h = hashlib.sha256(json.dumps(stage_params, sort_keys=True, default=str).encode())
    for rel in (layout.PREPARED_INFO, layout.SPLITS):
        h.update(_file_digest(Path(prepared_dir) / rel.relative_to(layout.PREPARED)).encode())
    return h.hexdigest()[:16]


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic JSON write (temp file, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created) for the block; a no-op where fcntl is missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fcntl.lockf(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(fh, fcntl.LOCK_UN)


def read_runs(folder: Path) -> dict[str, Any]:
    """A resume folder's ``runs.json``: ``{"parent": id, "folds": {k: id}, "flow_run": id}`` (ids or None)."""
    path = Path(folder) / RUNS_FILE
    runs: dict[str, Any] = {"parent": None, "folds": {}, "flow_run": None}
    if path.exists():
        with contextlib.suppress(json.JSONDecodeError):  # written atomically: only a hand edit breaks it
            runs.update(json.loads(path.read_text()))
    return runs


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link (no copy of large checkpoints), else copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@dataclass(frozen=True)
class ResumeStore:
    """One configuration's resume folder."""

    root: Path

    @classmethod
    def open(cls, base: Path, key: str) -> ResumeStore:
        """The folder of ``key`` under ``base`` (created)."""
        root = Path(base) / key
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def stale(self) -> list[Path]:
        """Resume folders of other keys next to this one (another configuration's leftovers)."""
        return sorted(p for p in self.root.parent.iterdir() if p.is_dir() and p != self.root)

    def fold_dir(self, fold: int) -> Path:
        """The fold's folder: its resumable state and final files."""
        return self.root / f"fold_{fold}"

    def runs(self) -> dict[str, Any]:
        """The run ids recorded so far (see :func:`read_runs`)."""
        return read_runs(self.root)

    def update_runs(self, **changes: Any) -> None:
        """Record run ids: ``parent=``, ``flow_run=``, or ``fold=(k, run_id)``.

        Folds training at once in other processes (Dask workers) record theirs at the same time:
        the read-modify-write holds an exclusive lock on ``runs.lock`` (POSIX record locks, which
        a shared NFS filesystem honours too), so no fold's id is lost.
        """
        with _locked(self.root / RUNS_LOCK):
            runs = self.runs()
            fold = changes.pop("fold", None)
            if fold is not None:
                runs["folds"][str(fold[0])] = fold[1]
            runs.update(changes)
            _write_json(self.root / RUNS_FILE, runs)

    def finished(self, fold: int) -> dict[str, Any] | None:
        """The result of a fold that finished earlier (None unless it and its final files exist)."""
        folder = self.fold_dir(fold)
        done = folder / DONE_FILE
        if not done.exists() or not all((folder / f).exists() for f in FOLD_FILES):
            return None
        return dict(json.loads(done.read_text()))

    def mark_finished(self, fold: int, result: Mapping[str, Any]) -> None:
        """Record that the fold is done (its run ended, its files final)."""
        _write_json(self.fold_dir(fold) / DONE_FILE, result)

    def publish(self, folds: Sequence[int], dest: Path, extra: Callable[[Path], None]) -> None:
        """Put the folds' final files into ``dest`` (``fold_<k>/``) in one rename.

        Args:
            folds: Fold indices, all finished.
            dest: ``models/folds``; replaced as a whole.
            extra: Writes further files into the folder before it is renamed (the run record).
        """
        dest = Path(dest)
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            self.place(folds, tmp)
            extra(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)

    def place(self, folds: Sequence[int], dest: Path) -> None:
        """Link (or copy) the folds' final files into ``dest/fold_<k>/`` (a second configuration's
        into the first one's folder before it is published)."""
        for k in folds:
            out = layout.fold_dir(k, dest)
            out.mkdir(parents=True)
            for name in FOLD_FILES:
                _link_or_copy(self.fold_dir(k) / name, out / name)

    def remove(self) -> None:
        """Delete the folder (after the stage succeeded)."""
        shutil.rmtree(self.root, ignore_errors=True)
