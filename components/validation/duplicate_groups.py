"""Near-duplicate groups as manifest columns: ``dup_group`` (what the splits keep together),
``dup_partners`` (who matches whom, under which transform) and ``dup_mask_dice`` (how well the
masks of a case's near-duplicates agree with its own: a low value is a labelling warning).

``near_duplicates`` (params ``validate.near_duplicates``):

- ``group`` (default): each group is treated like one patient by the splits;
- ``fail``: the validate stage stops and names the groups (the suite's ``no_near_duplicates``);
- ``ignore``: nothing is searched, the columns stay empty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from components.validation.near_duplicates import (
    DEFAULT_THRESHOLD,
    NearDuplicatePair,
    find_near_duplicates,
    near_duplicate_groups,
)

DUPLICATE_COLUMNS: tuple[str, ...] = ("dup_group", "dup_partners", "dup_mask_dice")
# mean foreground Dice of two near-duplicates' masks below which they disagree (identical ragged
# masks of a cropped copy reach about 0.7 at the 64^2 thumbnail side)
MASK_AGREEMENT = 0.7
LARGE_GROUP_FRACTION = 0.1  # a group holding more than this share of the cases is reported as suspect
Mode = Literal["group", "fail", "ignore"]


@dataclass(frozen=True)
class NearDuplicateOptions:
    """How near-duplicates are searched for and used (params ``validate``)."""

    mode: Mode = "group"
    threshold: float = DEFAULT_THRESHOLD


def _stack(ids: list[str], thumbs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    shapes = {thumbs[c].shape for c in ids}
    if len(shapes) != 1:  # 2D and 3D mixed: the suite refuses the dataset anyway
        return None
    return np.stack([thumbs[c] for c in ids])


def search(
    thumbs: Mapping[str, np.ndarray], mask_thumbs: Mapping[str, np.ndarray], threshold: float
) -> list[NearDuplicatePair]:
    """Near-duplicate pairs among the cases with a thumbnail (masks compared where every case has one)."""
    ids = sorted(thumbs)
    if len(ids) < 2:
        return []
    images = _stack(ids, thumbs)
    if images is None:
        return []
    masks = _stack(ids, mask_thumbs) if all(c in mask_thumbs for c in ids) else None
    if masks is not None and masks.shape != images.shape:
        masks = None
    return find_near_duplicates(ids, images, threshold, masks)


def add_duplicate_columns(
    meta: pd.DataFrame,
    thumbs: Mapping[str, np.ndarray],
    mask_thumbs: Mapping[str, np.ndarray],
    options: NearDuplicateOptions,
) -> pd.DataFrame:
    """``meta`` with :data:`DUPLICATE_COLUMNS` filled for the cases in a near-duplicate group.

    Args:
        meta: The metadata table (``case_id`` column).
        thumbs: Case id -> image thumbnail (``near_duplicates.image_thumbnail``) of every readable case.
        mask_thumbs: Case id -> mask thumbnail.
        options: Mode and similarity threshold.
    """
    out = meta.copy()
    for col in DUPLICATE_COLUMNS:
        out[col] = pd.Series([None] * len(out), index=out.index, dtype=object)
    if options.mode == "ignore":
        return out
    pairs = search(thumbs, mask_thumbs, options.threshold)
    if not pairs:
        out["dup_mask_dice"] = out["dup_mask_dice"].astype("float64")
        return out
    groups = near_duplicate_groups(sorted(thumbs), pairs)
    partners: dict[str, list[str]] = defaultdict(list)
    agreement: dict[str, float] = {}
    for p in pairs:
        partners[p.a].append(f"{p.b} ({p.transform}, r={p.similarity:.3f})")
        partners[p.b].append(f"{p.a} ({p.transform}, r={p.similarity:.3f})")
        if p.mask_dice is not None:
            for c in (p.a, p.b):
                agreement[c] = min(agreement.get(c, 1.0), float(p.mask_dice))
    ids = out["case_id"].astype(str)
    out["dup_group"] = [groups.get(c) for c in ids]
    out["dup_partners"] = ["; ".join(partners[c]) if c in partners else None for c in ids]
    out["dup_mask_dice"] = pd.Series([agreement.get(c) for c in ids], index=out.index, dtype="float64")
    return out


def duplicate_summary(meta: pd.DataFrame) -> list[str]:
    """One line per near-duplicate group (members), and one per pair of disagreeing masks."""
    if "dup_group" not in meta.columns:
        return []
    lines = []
    rows = meta[meta["dup_group"].notna()]
    n = int(meta["has_image"].sum()) if "has_image" in meta.columns else len(meta)
    for gid, members in rows.groupby("dup_group")["case_id"]:
        names = sorted(map(str, members))
        shown = ", ".join(names[:12]) + (f" ... ({len(names)} cases)" if len(names) > 12 else "")
        lines.append(f"near-duplicate group {gid}: {shown}")
        if len(names) > max(4, LARGE_GROUP_FRACTION * n):
            lines.append(
                f"warning: near-duplicate group {gid} holds {len(names)} of {n} cases: more than copies "
                "of one case usually are; look at a few of them, and if they are distinct cases raise "
                "validate.near_duplicate_threshold (or set validate.near_duplicates: ignore)"
            )
    low = meta[meta["dup_mask_dice"].notna() & (meta["dup_mask_dice"] < MASK_AGREEMENT)]
    for case_id, dice, partners in zip(
        low["case_id"], low["dup_mask_dice"], low["dup_partners"], strict=True
    ):
        lines.append(
            f"warning: {case_id}: its near-duplicate's mask disagrees (mask Dice "
            f"{float(dice):.2f} < {MASK_AGREEMENT}): {partners}"
        )
    return lines
