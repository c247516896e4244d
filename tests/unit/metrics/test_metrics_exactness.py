"""Property tests: the metric panel equals medpy 0.5.2 within 1e-9 on non-empty masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medpy.metric import binary as mb
from scipy import ndimage as ndi

from components.metrics import binary_metrics, border

TOL = 1e-9
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_mask(
    rng: np.random.Generator, shape: tuple[int, ...], smooth: float, density: float
) -> np.ndarray:
    noise = rng.standard_normal(shape)
    if smooth > 0:
        noise = ndi.gaussian_filter(noise, smooth)
    return noise > np.quantile(noise, 1.0 - density)


@st.composite
def mask_pairs(draw: st.DrawFn, ndim: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], int]:
    lo, hi = (4, 28) if ndim == 2 else (3, 11)
    shape = tuple(draw(st.integers(lo, hi)) for _ in range(ndim))
    seed = draw(st.integers(0, 2**32 - 1))
    smooth = draw(st.sampled_from([0.0, 1.0, 2.0]))
    rng = np.random.default_rng(seed)
    pred = _random_mask(rng, shape, smooth, draw(st.floats(0.02, 0.7)))
    ref = _random_mask(rng, shape, smooth, draw(st.floats(0.02, 0.7)))
    spacing = tuple(draw(st.sampled_from([0.3, 0.5, 0.7, 1.0, 1.3, 2.5, 5.0])) for _ in range(ndim))
    connectivity = draw(st.integers(1, ndim))
    return pred, ref, spacing, connectivity


def _check_against_medpy(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], conn: int) -> None:
    assert pred.any() and ref.any()
    got = binary_metrics(pred, ref, spacing=spacing, connectivity=conn)
    assert got["empty"] == "none"
    expected = {
        "dice": mb.dc(pred, ref),
        "iou": mb.jc(pred, ref),
        "sensitivity": mb.sensitivity(pred, ref),
        "precision": mb.precision(pred, ref),
        "rvd": mb.ravd(pred, ref),
        "hd": mb.hd(pred, ref, spacing, conn),
        "hd95": mb.hd95(pred, ref, spacing, conn),
        "asd": mb.asd(pred, ref, spacing, conn),
        "assd": mb.assd(pred, ref, spacing, conn),
    }
    if (~ref).any():  # medpy returns 0 when there are no negatives; our policy says NaN
        expected["specificity"] = mb.specificity(pred, ref)
    else:
        assert np.isnan(got["specificity"])
    for name, value in expected.items():
        assert abs(got[name] - value) <= TOL, (name, got[name], value)
    # surface Dice against an independent computation from full-array scipy EDTs
    fp = ndi.generate_binary_structure(pred.ndim, conn)
    pb, rb = pred ^ ndi.binary_erosion(pred, fp), ref ^ ndi.binary_erosion(ref, fp)
    d_pr = ndi.distance_transform_edt(~rb, sampling=spacing)[pb]
    d_rp = ndi.distance_transform_edt(~pb, sampling=spacing)[rb]
    tau = 1.5 * min(spacing)
    nsd = ((d_pr <= tau).sum() + (d_rp <= tau).sum()) / (d_pr.size + d_rp.size)
    assert (
        binary_metrics(pred, ref, spacing=spacing, connectivity=conn, surface_tolerance=tau)["surface_dice"]
        == nsd
    )
    assert got["ravd"] == abs(got["rvd"])
    assert abs(got["voe"] - (1.0 - got["iou"])) <= TOL


@SETTINGS
@given(mask_pairs(2))
def test_2d_matches_medpy(case: tuple) -> None:
    pred, ref, spacing, conn = case
    _check_against_medpy(pred, ref, spacing, conn)


@SETTINGS
@given(mask_pairs(3))
def test_3d_matches_medpy(case: tuple) -> None:
    pred, ref, spacing, conn = case
    _check_against_medpy(pred, ref, spacing, conn)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 3), st.data())
def test_border_equals_scipy_erosion(seed: int, ndim: int, data: st.DataObject) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 9, size=ndim))
    mask = rng.random(shape) < 0.6
    conn = data.draw(st.integers(1, ndim))
    expected = mask ^ ndi.binary_erosion(mask, ndi.generate_binary_structure(ndim, conn))
    np.testing.assert_array_equal(border(mask, conn), expected)


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [
        ((96, 80), (0.7, 0.7)),
        ((96, 80), (0.5, 2.0)),
        ((30, 26, 28), (2.5, 0.8, 0.8)),
        ((30, 26, 28), (1, 1, 1)),
    ],
)
def test_far_apart_objects_match_medpy(shape: tuple[int, ...], spacing: tuple[float, ...]) -> None:
    """Objects far beyond the offset-search radius take the k-d tree path; still equal to medpy."""
    rng = np.random.default_rng(3)
    pred = np.zeros(shape, bool)
    ref = np.zeros(shape, bool)
    near = tuple(slice(1, 6) for _ in shape)
    far = tuple(slice(n - 7, n - 1) for n in shape)
    pred[near] = rng.random(pred[near].shape) < 0.8
    ref[far] = rng.random(ref[far].shape) < 0.8
    ref[near] |= rng.random(ref[near].shape) < 0.2  # a few close voxels too: both paths in one call
    for conn in range(1, len(shape) + 1):
        _check_against_medpy(pred, ref, spacing, conn)


def test_touching_image_edge_matches_medpy() -> None:
    pred = np.zeros((12, 15), bool)
    ref = np.zeros((12, 15), bool)
    pred[:, :5] = True
    ref[3:, 2:9] = True
    _check_against_medpy(pred, ref, (0.9, 1.7), 1)
    _check_against_medpy(np.ones((6, 7), bool), ref[:6, :7], (1.0, 1.0), 2)
