"""Masks named after their image plus a suffix: ``<stem>_segmentation.png`` (ISIC), ``<stem>_mask.png``.

Images and masks pair by file stem. Many photograph datasets name each mask after its image with
one suffix added; read by the plain rule, none of them would pair. :func:`mask_suffix` finds that
suffix from the names alone, without a list of known words: the ending every mask stem shares, cut
at one of its separators (``_``, ``-``, ``.`` or a space; the cut that pairs the most masks, so
``a_0_mask`` pairs with the image ``a_0`` by ``_mask``), when no mask stem is an image stem as it is
and the cut pairs more than half of the masks. Discovery then pairs by the stem before it and says
so in a note (masks the cut does not pair are reported unpaired, as any).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

SEPARATORS = "_-. "


def _shared_ending(stems: Sequence[str]) -> str:
    """The longest string every stem ends with (``""`` when there is none)."""
    shortest = min(stems, key=len)
    n = 0
    while n < len(shortest) and all(s[-1 - n] == shortest[-1 - n] for s in stems):
        n += 1
    return shortest[len(shortest) - n :]


def mask_suffix(image_stems: Collection[str], mask_stems: Sequence[str]) -> str | None:
    """The suffix that, cut off every mask stem, gives its image's stem; None where the stems pair
    as they are, or no such suffix pairs more than half of the masks."""
    if not mask_stems or not image_stems or any(s in image_stems for s in mask_stems):
        return None
    ending = _shared_ending(mask_stems)
    best, best_paired = None, 0
    for cut in (i for i, c in enumerate(ending) if c in SEPARATORS):  # the longest first
        suffix = ending[cut:]
        paired = sum(len(s) > len(suffix) and s[: -len(suffix)] in image_stems for s in mask_stems)
        if paired > best_paired:
            best, best_paired = suffix, paired
    return best if 2 * best_paired > len(mask_stems) else None
