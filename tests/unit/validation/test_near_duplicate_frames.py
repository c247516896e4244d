"""Content, not frames: copies turned inside a letterbox frame or padded differently are grouped
(2D and 3D), and a frame is found where one was written, not in a noisy dark background."""

from __future__ import annotations

import numpy as np
import pytest

from components.data.synthetic import _patient_anatomy, _render_case
from components.validation.content import image_thumbnail
from components.validation.content_box import find_content_box
from components.validation.near_duplicates import near_duplicate_groups
from components.validation.symmetries import inverses, symmetries
from tests.data.near_duplicate_sets import brain, in_frame, jpeg, letterbox, search, wound_photo

TURNS = ("flip_h", "flip_v", "rot180")


def phantom(i: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    img, mask = _render_case(
        _patient_anatomy(np.random.default_rng([5, 1, i])), np.random.default_rng([5, 2, i]), size
    )
    return np.round(img * 255).astype(np.uint8), mask


def groups_of(pairs: list, ids: list[str]) -> list[list[str]]:
    groups = near_duplicate_groups(ids, pairs)
    return sorted(sorted(c for c in groups if groups[c] == g) for g in set(groups.values()))


def test_phantoms_flipped_inside_a_frame_are_grouped_four_by_four() -> None:
    """The issue's set: phantoms atop a 128 x 96 frame (black band below), each as it is and flipped
    inside the frame (left-right, upside down, both). No symmetry of the whole frame maps them."""
    frame = lambda a: np.pad(a, ((0, 32), (0, 0)))  # noqa: E731
    cases = {}
    for i in range(4):
        image, mask = phantom(i)
        cases[f"p{i}_none"] = (frame(image), frame(mask))
        for turn in TURNS:
            cases[f"p{i}_{turn}"] = in_frame((image, mask), frame, turn)
    pairs = search(cases)
    assert groups_of(pairs, sorted(cases)) == [
        sorted(c for c in cases if c.startswith(f"p{i}_")) for i in range(4)
    ]
    by_pair = {(p.a, p.b): p for p in pairs}
    assert by_pair[("p0_flip_h", "p0_none")].transform == "flip_h"  # of the content: the band stays below
    assert all(p.view == "content" and p.copy and p.similarity > 0.99 for p in pairs)


def test_wound_photos_in_letterbox_frames_the_issues_four_variants() -> None:
    """Original, whole-frame mirror, and two in-frame flips (one re-encoded as JPEG), RGB."""
    rng = np.random.default_rng(3)
    cases = {}
    for k in range(5):
        image, mask = wound_photo(rng)
        framed = (letterbox(image), letterbox(mask))
        flipped = in_frame((image, mask), letterbox, "flip_v")
        cases[f"w{k}_a"] = framed
        cases[f"w{k}_b"] = (framed[0][:, ::-1], framed[1][:, ::-1])
        cases[f"w{k}_c"] = flipped
        cases[f"w{k}_d"] = jpeg(*flipped, rng)
    assert groups_of(search(cases), sorted(cases)) == [[f"w{k}_{v}" for v in "abcd"] for k in range(5)]


def test_volumes_flipped_inside_a_padded_frame_or_padded_differently_are_grouped() -> None:
    rng = np.random.default_rng(4)
    cases = {}
    for k in range(3):
        vol, mask = brain(rng, (24, 40, 36))
        spec = ((2, 6), (4, 4), (0, 7))
        cases[f"b{k}_framed"] = (np.pad(vol, spec), np.pad(mask, spec))
        cases[f"b{k}_inframe_flip"] = (np.pad(vol[:, :, ::-1], spec), np.pad(mask[:, :, ::-1], spec))
        cases[f"b{k}_bare"] = (vol, mask)
        other = ((5, 0), (1, 9), (3, 3))
        cases[f"b{k}_padded_otherwise"] = (
            np.pad(np.rot90(vol, 1, (1, 2)), other),
            np.pad(np.rot90(mask, 1, (1, 2)), other),
        )
    pairs = search(cases)
    assert groups_of(pairs, sorted(cases)) == [
        sorted(c for c in cases if c.startswith(f"b{k}_")) for k in range(3)
    ]
    by_pair = {(p.a, p.b): p for p in pairs}
    assert by_pair[("b0_framed", "b0_inframe_flip")].transform == "flip_x"
    assert by_pair[("b0_bare", "b0_padded_otherwise")].transform.startswith("transpose_yx")


def test_content_box_cuts_written_padding_and_leaves_noisy_backgrounds() -> None:
    image, _ = phantom(7)  # a noisy dark background around the body: not a frame
    assert find_content_box(image.astype(np.float32)) == ((0.0, 1.0), (0.0, 1.0))
    padded = np.pad(image, ((10, 30), (0, 20)))  # written padding: cut to the pixel
    assert find_content_box(padded.astype(np.float32)) == ((10 / 136, 106 / 136), (0.0, 96 / 116))
    rng = np.random.default_rng(0)
    photo, _ = wound_photo(rng)
    framed = jpeg(letterbox(photo), np.zeros(1), rng)[0].mean(axis=-1).astype(np.float32)  # band rings
    (top, bottom), (left, right) = find_content_box(framed)
    h, w = photo.shape[:2]
    assert top == 0 and bottom * framed.shape[0] == pytest.approx(h, abs=2)
    assert (left * framed.shape[1], right * framed.shape[1]) == pytest.approx(
        ((framed.shape[1] - w) // 2, (framed.shape[1] + w) // 2), abs=2
    )
    turned = find_content_box(
        np.ascontiguousarray(np.rot90(padded)).astype(np.float32)
    )  # commutes with symmetries
    assert turned == ((20 / 116, 1.0), (10 / 136, 106 / 136))


def test_a_copy_framed_in_one_version_only_is_matched_by_its_whole_frame() -> None:
    """Noise over a padded copy hides its frame: its whole image is compared with the other's frame."""
    rng = np.random.default_rng(2)
    vol, mask = brain(rng, (24, 40, 36))
    noisy = (vol + rng.normal(0, 0.05, vol.shape)).astype(np.float32)
    thumbs = [image_thumbnail(v[None]) for v in (vol, noisy)]
    assert thumbs[0].framed and not thumbs[1].framed
    others = {f"o{k}": brain(rng, (24, 40, 36)) for k in range(3)}
    pairs = search({"a": (vol, mask), "b": (noisy, mask), **others})
    assert [(p.a, p.b, p.view, p.copy) for p in pairs if p.copy] == [("a", "b", "frame", True)]


def test_symmetries_and_their_inverses() -> None:
    for ndim, count in ((2, 8), (3, 16)):
        syms = symmetries(ndim)
        assert len(syms) == count and syms[0].name == "identity" and len({s.name for s in syms}) == count
        x = np.random.default_rng(0).normal(size=(1, *(5,) * ndim))
        for s, k in zip(syms, inverses(syms, ndim), strict=True):
            np.testing.assert_array_equal(syms[k].apply(s.apply(x)), x)
    names = {s.name: s for s in symmetries(2)}
    grid = np.arange(6).reshape(1, 2, 3)
    np.testing.assert_array_equal(names["rot90"].apply(grid)[0], np.rot90(grid[0]))
