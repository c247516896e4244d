"""Write a generated dataset folder all at once: a temporary sibling replaces the target when complete."""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def patient_count(n_cases: int, n_patients: int | None) -> int:
    """Patients to spread ``n_cases`` over (None: one per case).

    Raises:
        ValueError: Not between 1 and ``n_cases``.
    """
    n_pat = n_cases if n_patients is None else n_patients
    if not 1 <= n_pat <= n_cases:
        raise ValueError(f"n_patients must be between 1 and n_cases={n_cases}, got {n_patients}")
    return n_pat


@contextmanager
def staged_dataset(out_dir: Path) -> Iterator[Path]:
    """A temporary folder (with ``images/`` and ``masks/``) that becomes ``out_dir`` on success.

    An existing ``out_dir`` is swapped out and removed only after the new folder is in place; on any
    error (Ctrl-C included) the temporary folder is removed and ``out_dir`` is left as it was.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        yield tmp
        tmp.chmod(0o755)  # mkdtemp creates 0o700
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.{tmp.name}.old")
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_cases_csv(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    """``cases.csv``: a ``case_id,patient_id`` header, then one row per case."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("case_id", "patient_id"))
        writer.writerows(rows)
