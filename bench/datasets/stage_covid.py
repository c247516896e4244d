"""Write covid_ct_infnet as a segflow dataset with the source's split: images/, masks/ and a
cases.csv whose ``split`` column is the Inf-Net train/test split (``splits.csv``).

    python bench/datasets/stage_covid.py <out folder> [<dataset folder>]

The dataset folder defaults to ../shared/datasets/covid_ct_infnet beside the repository.
The source does not say which slices share a patient, so each slice is its own patient.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path


def stage(source: Path, out: Path) -> int:
    """Copy the pairs and write cases.csv; returns the number of cases."""
    with (source / "splits.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    with (out / "cases.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case_id", "patient_id", "split"])
        for row in rows:
            case = row["id"]
            for sub in ("images", "masks"):
                shutil.copy2(source / sub / f"{case}.png", out / sub / f"{case}.png")
            writer.writerow([case, case, row["split_in_source"]])
    return len(rows)


SOURCE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "covid_ct_infnet"

if __name__ == "__main__":
    src = Path(sys.argv[2]) if len(sys.argv) > 2 else SOURCE
    n = stage(src, Path(sys.argv[1]))
    print(f"staged {n} cases from {src} into {sys.argv[1]}")
