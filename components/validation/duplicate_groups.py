"""Near-duplicates as manifest columns.

- ``dup_group``: the group of copies a case belongs to (what the splits keep together);
- ``dup_partners``: its copies, each with the transform, the image similarity and the masks'
  agreement (``b (flip_h, r=0.990, masks 0.97)``);
- ``dup_lookalikes``: cases whose image matched but whose mask disagreed: look-alikes kept apart;
- ``dup_mask_agreement``: the lowest mask agreement with a copy (a labelling warning under
  ``near_duplicates.MASK_AGREEMENT``);
- ``dup_pairs``: every pair of the case as JSON (what ``duplicate_report`` reads).

``near_duplicates`` (params ``validate.near_duplicates``):

- ``group`` (default): each group is treated like one patient by the splits;
- ``fail``: the validate stage stops and names the groups (the suite's ``no_near_duplicates``);
- ``ignore``: nothing is searched, the columns stay empty.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.validation.content import ImageThumbnail, MaskThumbnail
from components.validation.near_duplicates import (
    DEFAULT_THRESHOLD,
    NearDuplicatePair,
    find_near_duplicates,
    near_duplicate_groups,
)

DUPLICATE_COLUMNS: tuple[str, ...] = (
    "dup_group",
    "dup_partners",
    "dup_lookalikes",
    "dup_mask_agreement",
    "dup_pairs",
)
Mode = Literal["group", "fail", "ignore"]
MaskPair = tuple[MaskThumbnail, "MaskThumbnail | None"]  # on the content box, on the whole frame


@dataclass(frozen=True)
class NearDuplicateOptions:
    """How near-duplicates are searched for and used (params ``validate``)."""

    mode: Mode = "group"
    threshold: float = DEFAULT_THRESHOLD


def search(
    thumbs: Mapping[str, ImageThumbnail], mask_thumbs: Mapping[str, MaskPair], threshold: float
) -> list[NearDuplicatePair]:
    """Near-duplicate pairs among the cases with a thumbnail; a case without a mask thumbnail is
    judged on its image alone."""
    ids = sorted(thumbs)
    if len(ids) < 2 or len({thumbs[c].content.shape for c in ids}) != 1:  # 2D and 3D mixed: refused
        return []
    shape = thumbs[ids[0]].content.shape
    masks: list[MaskPair | None] = [mask_thumbs.get(c) for c in ids]
    masks = [m if m is not None and m[0].fractions.shape[1:] == shape else None for m in masks]
    frames = [
        None if t.frame is None else (t.frame, None if m is None else m[1])
        for t, m in zip((thumbs[c] for c in ids), masks, strict=True)
    ]
    contents = np.stack([thumbs[c].content for c in ids])
    return find_near_duplicates(
        ids, contents, threshold, [None if m is None else m[0] for m in masks], frames
    )


def _described(other: str, p: NearDuplicatePair) -> str:
    masks = "" if p.mask_agreement is None else f", masks {p.mask_agreement:.2f}"
    frame = " of the whole frame" if p.view == "frame" else ""
    return f"{other} ({p.transform}{frame}, r={p.similarity:.3f}{masks})"


def pair_record(p: NearDuplicatePair) -> dict[str, Any]:
    """A pair as the JSON of ``dup_pairs`` and the near-duplicate report hold it."""
    return {
        "a": p.a,
        "b": p.b,
        "transform": p.transform,
        "view": p.view,
        "image_similarity": round(p.similarity, 4),
        "mask_agreement": None if p.mask_agreement is None else round(p.mask_agreement, 4),
        "copy": p.copy,
        "masks_disagree": p.masks_disagree,
    }


def add_duplicate_columns(
    meta: pd.DataFrame,
    thumbs: Mapping[str, ImageThumbnail],
    mask_thumbs: Mapping[str, MaskPair],
    options: NearDuplicateOptions,
) -> pd.DataFrame:
    """``meta`` with :data:`DUPLICATE_COLUMNS` filled for the cases in a near-duplicate pair.

    Args:
        meta: The metadata table (``case_id`` column).
        thumbs: Case id -> image thumbnails (``content.image_thumbnail``) of every readable case.
        mask_thumbs: Case id -> its mask's thumbnails (``content.mask_thumbnails``).
        options: Mode and similarity threshold.
    """
    out = meta.copy()
    for col in DUPLICATE_COLUMNS:
        out[col] = pd.Series([None] * len(out), index=out.index, dtype=object)
    out["dup_mask_agreement"] = out["dup_mask_agreement"].astype("float64")
    if options.mode == "ignore":
        return out
    pairs = search(thumbs, mask_thumbs, options.threshold)
    if not pairs:
        return out
    groups = near_duplicate_groups(sorted(thumbs), pairs)
    partners: dict[str, list[str]] = defaultdict(list)
    lookalikes: dict[str, list[str]] = defaultdict(list)
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    agreement: dict[str, float] = {}
    for p in pairs:
        for case, other in ((p.a, p.b), (p.b, p.a)):
            (partners if p.copy else lookalikes)[case].append(_described(other, p))
            records[case].append(pair_record(p))
            if p.copy and p.mask_agreement is not None:
                agreement[case] = min(agreement.get(case, 1.0), float(p.mask_agreement))
    ids = out["case_id"].astype(str)
    out["dup_group"] = [groups.get(c) for c in ids]
    out["dup_partners"] = ["; ".join(partners[c]) if c in partners else None for c in ids]
    out["dup_lookalikes"] = ["; ".join(lookalikes[c]) if c in lookalikes else None for c in ids]
    out["dup_mask_agreement"] = pd.Series([agreement.get(c) for c in ids], index=out.index, dtype="float64")
    out["dup_pairs"] = [json.dumps(records[c]) if c in records else None for c in ids]
    return out
