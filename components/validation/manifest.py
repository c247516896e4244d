"""The data manifest: the validated metadata table, written once as parquet for later stages.

Also the atomic JSON writer of the validate stage's other outputs (GX result, fingerprint).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON to ``path`` via a temporary file in the same folder.

    Values JSON does not know are written as ``str(value)``; on any error the temporary file is
    removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(meta: pd.DataFrame, path: Path) -> None:
    """Write the metadata table to ``path`` (parquet) atomically.

    The table is written to a temporary file in the same folder and renamed over ``path``, so
    readers never see a half-written manifest and a failed write leaves the old one in place.

    Args:
        meta: Output of ``build_metadata`` (any DataFrame works).
        path: Destination, e.g. ``data/manifest.parquet``; parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        meta.reset_index(drop=True).to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest written by ``write_manifest``.

    Raises:
        FileNotFoundError: ``path`` does not exist (run the validate stage first).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found; run the validate stage to create it")
    return pd.read_parquet(path)
