"""Intensity rules: how each case is normalised, and whether volumes are cropped to their non-zero box.

- CT (a channel named CT in ``dataset.json``, or integer voxels reaching Hounsfield air and bone):
  clip to the foreground's 0.5/99.5 percentiles and z-score with the foreground's mean and sd, over
  the whole dataset (``ct``): Hounsfield units mean the same in every scan, so one mapping fits all.
- 8-bit RGB photographs keep their range (``dtype``: value / 255): colour carries meaning.
- Everything else (MRI, microscopy, gray 2D): z-score per case (``zscore``): their intensities have
  no absolute scale.
- Volumes are cropped to the bounding box of their non-zero voxels when that keeps less than 3/4 of
  a median case (skull-stripped or masked scans); the crop is undone at inference.
"""

from __future__ import annotations

import numpy as np

from components.planning.decision import Decision
from components.planning.facts import DatasetFacts

HU_AIR = -500.0  # a CT scan holds air (about -1000 HU) below this
HU_DENSE = 500.0  # ... and bone or contrast above this
CROP_KEEPS_BELOW = 0.75  # nnU-Net: crop when the non-zero box keeps less than this of a case


def _ct_by_name(names: tuple[str, ...]) -> list[bool]:
    return [n.strip().lower() in {"ct", "ct scan", "computed tomography"} for n in names]


def looks_like_ct(facts: DatasetFacts) -> tuple[bool, str]:
    """Whether the volumes are CT, and what says so."""
    if facts.ndim != 3:
        return False, "2D images"
    named = _ct_by_name(facts.channel_names)
    if any(named):
        return all(named), "dataset.json names the channel CT"
    integer = all(d.startswith(("int", "uint")) for d in facts.dtypes)
    lo, hi = float(np.median(facts.intensity_min)), float(np.median(facts.intensity_max))
    if integer and lo <= HU_AIR and hi >= HU_DENSE and facts.channels == 1:
        return True, f"integer voxels from {lo:g} to {hi:g} (Hounsfield air and bone)"
    return False, "not CT"


def plan_intensity(facts: DatasetFacts) -> Decision:
    """``preprocess.intensity``."""
    ct, why = looks_like_ct(facts)
    if ct:
        return Decision(
            {"method": "ct", "kwargs": {}},
            f"CT ({why}): clip to the foreground's 0.5-99.5 percentiles, z-score with its mean and sd",
        )
    photo = facts.ndim == 2 and facts.channels == 3 and all(d == "uint8" for d in facts.dtypes)
    if photo:
        return Decision(
            {"method": "dtype", "kwargs": {}}, "8-bit RGB photographs: keep the colour range (/255)"
        )
    kind = "volumes" if facts.ndim == 3 else "images"
    return Decision({"method": "zscore", "kwargs": {}}, f"{kind} without an absolute scale: z-score per case")


def plan_crop_nonzero(facts: DatasetFacts) -> Decision:
    """``preprocess.crop_nonzero`` (volumes only)."""
    if facts.ndim != 3:
        return Decision(False, "2D images are used whole")
    kept = float(facts.fingerprint.get("nonzero_fraction", {}).get("median", 1.0))
    if kept < CROP_KEEPS_BELOW:
        return Decision(True, f"the non-zero box keeps {kept:.0%} of a median case (< 75 %): crop to it")
    return Decision(False, f"the non-zero box keeps {kept:.0%} of a median case (>= 75 %): no crop")
