"""ClassLayout: the pairwise order of class centres, counted per axis."""

from __future__ import annotations

import numpy as np

from components.validation.class_layout import ClassLayout


def _case(
    first: tuple[slice, ...], second: tuple[slice, ...], shape: tuple[int, ...] = (8, 10, 12)
) -> np.ndarray:
    mask = np.zeros(shape, np.int64)
    mask[first] = 1
    mask[second] = 2
    return mask


def test_counts_which_class_comes_first_along_each_axis() -> None:
    layout = ClassLayout(["background", "head", "tail", "other"], 3)
    layout.add(_case((slice(0, 2), slice(0, 4), slice(5, 7)), (slice(5, 8), slice(0, 4), slice(0, 2))))
    layout.add(_case((slice(1, 3), slice(6, 9), slice(5, 7)), (slice(6, 8), slice(0, 3), slice(5, 7))))
    layout.add(_case((slice(0, 2), slice(0, 2), slice(0, 2)), (slice(0, 0),) * 3))  # tail absent
    s = layout.summary()
    assert s["pairs"] == [["head", "tail"], ["head", "other"], ["tail", "other"]]
    assert s["cases"] == [2, 0, 0]  # only the pair present together counts
    assert s["before"][0] == [2, 0, 0]  # head before tail along axis 0 in both cases
    assert s["after"][0] == [0, 1, 1]  # axes 1 and 2: once after, once level (counted in neither)


def test_a_single_foreground_class_has_no_pairs() -> None:
    layout = ClassLayout(["background", "organ"], 2)
    layout.add(np.ones((4, 4), np.int64))
    assert layout.summary() == {"pairs": [], "cases": [], "before": [], "after": []}
