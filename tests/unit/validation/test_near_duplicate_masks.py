"""Masks as evidence: look-alike patients whose masks disagree are kept apart, one image labelled twice
is grouped with a labelling warning, and cases without masks are judged on their images alone."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from components.data.synthetic import _patient_anatomy, _render_case
from components.validation.alignment import mask_agreement
from components.validation.content import mask_thumbnail
from components.validation.near_duplicates import (
    DEFAULT_THRESHOLD,
    EXACT_SIMILARITY,
    MASK_AGREEMENT,
    near_duplicate_groups,
)
from tests.data.near_duplicate_sets import brain, crop, fundus, search

IDENTITY = (np.ones(2), np.zeros(2))


def lookalike_phantoms() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Five patients of one anatomy (one body, organ layout and contrast), scanned at 192 px by a
    scanner a little smoother than the phantoms' default: each their own jitter, lesions and noise."""
    anatomy = _patient_anatomy(np.random.default_rng([0, 1, 3]))
    out = {}
    for k in range(5):
        image, mask = _render_case(anatomy, np.random.default_rng([0, 2, 10 + k]), 192)
        out[f"patient_{k}"] = (np.round(ndi.gaussian_filter(image, 1.0) * 255).astype(np.uint8), mask)
    return out


def test_two_phantom_patients_with_similar_images_but_different_masks_are_not_grouped() -> None:
    cases = lookalike_phantoms()
    blind = search(cases, masks=False)  # the images alone: look-alike patients pass the threshold
    alike = [(p.a, p.b) for p in blind]
    assert alike and all(p.similarity >= DEFAULT_THRESHOLD and p.copy for p in blind)
    pairs = search(cases)
    assert [(p.a, p.b) for p in pairs] == alike  # the same pairs, now weighed with their masks
    for p in pairs:
        assert p.similarity < EXACT_SIMILARITY and p.mask_agreement is not None
        assert p.mask_agreement < MASK_AGREEMENT and not p.copy, p
    assert near_duplicate_groups(sorted(cases), pairs) == {}
    assert near_duplicate_groups(sorted(cases), blind) != {}  # what the masks prevented


def test_copies_of_the_lookalike_patients_are_still_grouped() -> None:
    cases = lookalike_phantoms()
    rng = np.random.default_rng(1)
    for k in (0, 3):
        image, mask = cases[f"patient_{k}"]
        cropped = crop(image[:, ::-1], mask[:, ::-1], rng)
        cases[f"patient_{k}_copy"] = cropped
    groups = near_duplicate_groups(sorted(cases), search(cases))
    assert groups == {
        "patient_0": "patient_0",
        "patient_0_copy": "patient_0",
        "patient_3": "patient_3",
        "patient_3_copy": "patient_3",
    }


def test_brain_patients_from_one_template_kept_apart_only_with_their_masks() -> None:
    """Six patients whose brains are registered to one atlas: images alike, tumours their own."""
    rng = np.random.default_rng(0)
    cases = {f"pat{k}": brain(rng, (40, 64, 56), template=7, individuality=0.2) for k in range(6)}
    with_masks = search(cases)
    assert with_masks and not any(p.copy for p in with_masks)
    blind = {k: (v[0], None) for k, v in cases.items()}
    assert any(p.copy for p in search(blind))  # without masks the images alone cannot tell them


def test_one_image_labelled_twice_is_a_copy_with_a_labelling_warning() -> None:
    rng = np.random.default_rng(5)
    image, mask = brain(rng, (160, 192))
    relabelled = np.where(mask > 0, 3 - mask, 0).astype(np.uint8)  # core and edema swapped
    others = {f"o{k}": brain(rng, (160, 192)) for k in range(3)}
    (pair,) = search({"a": (image, mask), "b": (image[::-1].copy(), relabelled[::-1].copy()), **others})
    assert pair.similarity >= EXACT_SIMILARITY and pair.copy and pair.masks_disagree


def test_a_case_without_a_mask_is_judged_on_its_image() -> None:
    rng = np.random.default_rng(6)
    image, mask = brain(rng, (160, 192))
    other = brain(rng, (160, 192))
    pairs = search({"a": (image, mask), "b": (np.rot90(image).copy(), None), "c": other})
    assert [(p.a, p.b, p.copy, p.mask_agreement) for p in pairs] == [("a", "b", True, None)]


def test_mask_agreement_of_thin_vessels_survives_a_crop_and_tells_eyes_apart() -> None:
    rng = np.random.default_rng(2)
    _, vessels = fundus(rng)
    h, w = vessels.shape
    top, left, ch, cw = 11, 17, h - 25, w - 21  # a crop of 3-7 % a side
    a = mask_thumbnail(vessels).dense((1,))
    b = mask_thumbnail(vessels[top : top + ch, left : left + cw]).dense((1,))
    # the crop placed where it lies in the original (what the images' alignment finds): a's grid
    # position maps to b's by this per-axis scale and shift (``alignment.coords``)
    scale = np.array([h / ch, w / cw])
    shift = np.array([(h / 2 - top - ch / 2) / ch, (w / 2 - left - cw / 2) / cw])
    assert mask_agreement(a, b, scale, shift) > 0.9
    assert mask_agreement(a, b, *IDENTITY) < mask_agreement(a, b, scale, shift)  # misplaced: worse
    others = [mask_thumbnail(fundus(rng)[1]).dense((1,)) for _ in range(5)]
    assert max(mask_agreement(a, o, *IDENTITY) for o in others) < 0.5  # other eyes' vessels
    assert mask_agreement(a, np.zeros_like(a), *IDENTITY) == 0.0  # a label the other lacks
    empty = np.zeros((0, *a.shape[1:]), np.float32)
    assert mask_agreement(empty, empty, *IDENTITY) == 1.0  # no foreground in either
