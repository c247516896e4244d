"""Put the pipeline's outputs back as dvc.lock records them when ``dvc repro`` fails.

DVC deletes a stage's outputs before it runs the stage and records the stage in dvc.lock only
when it finished. A stage that fails therefore leaves its outputs gone (or half-written) while
dvc.lock still describes the earlier ones, and stages that finished before it in the same run have
replaced theirs. :func:`snapshot` records what the workspace has before ``dvc repro``;
:func:`restore` then brings it back: dvc.lock's bytes, the cached outputs of every stage that ran
(``dvc checkout <stage>``, from the DVC cache, so nothing is copied beforehand), the uncached ones
(metrics such as ``reports/cv/summary.json``, small files kept in memory) and no outputs that did
not exist before. What the failed stage had written (e.g. its GX result) is moved to a folder
next to the logs, so the user can still read it.

Data tracked by ``.dvc`` files (``data/raw.dvc``) is never checked out: the user's edits to the
dataset stay.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class OutputsSnapshot:
    """The pipeline's outputs before a run.

    Attributes:
        root: The workspace (where dvc.yaml lives).
        lock: dvc.lock's bytes, or None when there was none.
        locked_stages: Stage names dvc.lock recorded.
        uncached: Bytes of the ``cache: false`` outputs (files) that existed.
        existed: Every output path of dvc.yaml that existed.
        outs_by_stage: Stage name -> its output paths (dvc.yaml).
    """

    root: Path
    lock: bytes | None
    locked_stages: list[str]
    uncached: dict[str, bytes] = field(default_factory=dict)
    existed: frozenset[str] = frozenset()
    outs_by_stage: dict[str, list[str]] = field(default_factory=dict)


def _entries(stage: dict[str, Any]) -> Iterable[tuple[str, bool]]:
    """(path, cached) for every output, metric and plot of a dvc.yaml stage."""
    for kind in ("outs", "metrics", "plots"):
        for entry in stage.get(kind) or []:
            if isinstance(entry, str):
                yield entry, True
            elif isinstance(entry, dict):
                for path, opts in entry.items():
                    yield str(path), not (isinstance(opts, dict) and opts.get("cache") is False)


def _outputs(root: Path) -> tuple[dict[str, list[str]], set[str]]:
    """Stage -> output paths, and the uncached paths, of ``root/dvc.yaml`` (templated ones skipped)."""
    try:
        stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return {}, set()
    by_stage: dict[str, list[str]] = {}
    uncached: set[str] = set()
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            continue
        for path, cached in _entries(stage):
            if "${" in path:
                continue
            by_stage.setdefault(str(name), []).append(path)
            if not cached:
                uncached.add(path)
    return by_stage, uncached


def snapshot(root: Path) -> OutputsSnapshot:
    """Record dvc.lock, the uncached outputs and which outputs exist (cheap: no hashing)."""
    root = Path(root)
    lock_path = root / "dvc.lock"
    lock = lock_path.read_bytes() if lock_path.is_file() else None
    locked = list((yaml.safe_load(lock) or {}).get("stages") or {}) if lock else []
    by_stage, uncached_paths = _outputs(root)
    every = {p for paths in by_stage.values() for p in paths}
    existed = frozenset(p for p in every if (root / p).exists() or (root / p).is_symlink())
    uncached = {p: (root / p).read_bytes() for p in uncached_paths if (root / p).is_file()}
    return OutputsSnapshot(root, lock, locked, uncached, existed, by_stage)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def keep_failed_outputs(snap: OutputsSnapshot, stage: str, dest: Path) -> dict[str, str]:
    """Move what ``stage`` wrote before it failed to ``dest``; return old path -> new path."""
    moved: dict[str, str] = {}
    for rel in snap.outs_by_stage.get(stage, []):
        src = snap.root / rel
        if src.exists():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(target))
            moved[rel] = os.path.relpath(target, snap.root)
    return moved


def restore(snap: OutputsSnapshot, ran: Iterable[str] | None, dvc: str = "dvc") -> str | None:
    """Bring the outputs back to the snapshot after a failed ``dvc repro``.

    Args:
        snap: :func:`snapshot` taken before the run (params.yaml already restored by the caller).
        ran: Stages DVC started in the run (None: unknown, every stage is checked).
        dvc: The ``dvc`` executable.

    Returns:
        None when the workspace is as before, else what could not be restored.
    """
    root = snap.root
    lock_path = root / "dvc.lock"
    if snap.lock is None:
        lock_path.unlink(missing_ok=True)
    elif not lock_path.is_file() or lock_path.read_bytes() != snap.lock:
        tmp = lock_path.with_suffix(".lock.restore")
        tmp.write_bytes(snap.lock)
        os.replace(tmp, lock_path)
    stages = list(snap.outs_by_stage) if ran is None else list(ran)
    for stage in stages:
        for rel in snap.outs_by_stage.get(stage, []):
            if rel not in snap.existed:
                _remove(root / rel)
    targets = [s for s in stages if s in snap.locked_stages]
    problem = None
    if targets:
        proc = subprocess.run(
            [dvc, "checkout", "--quiet", *targets], cwd=root, capture_output=True, text=True
        )
        if proc.returncode != 0:
            problem = f"`dvc checkout {' '.join(targets)}` failed: {(proc.stderr or proc.stdout).strip()}"
    for rel, data in snap.uncached.items():
        path = root / rel
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return problem
