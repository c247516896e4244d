"""NativePredictor: raw image/volume -> probabilities on its own grid, through the recorded steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from components.inference.native_predictor import NativePredictor
from components.inference.options import InferenceOptions
from components.preprocessing.native import NativeSpec, preprocess_case

RNG = np.random.default_rng(0)


class Threshold(nn.Module):
    """Two-class logits from the intensity: class 1 where the input is above 0 (any rank)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, :1] * 10
        return torch.cat([-v, v], dim=1)


class Biased(nn.Module):
    """Always prefers one class (for voting)."""

    def __init__(self, k: int, cls: int) -> None:
        super().__init__()
        self.k, self.cls = k, cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.k, *x.shape[2:])
        out[:, self.cls] = 5.0
        return out


def _blob_volume(shape: tuple[int, int, int] = (10, 24, 20)) -> tuple[np.ndarray, np.ndarray]:
    zz, yy, xx = np.indices(shape)
    inside = ((zz - 5) / 4) ** 2 + ((yy - 12) / 8) ** 2 + ((xx - 10) / 6) ** 2 < 1
    return (inside * 100.0 + RNG.normal(0, 1, shape)).astype(np.float32), inside.astype(np.uint8)


def test_a_volume_comes_back_on_its_own_grid_through_resampling() -> None:
    vol, inside = _blob_volume()
    spec = NativeSpec(
        ndim=3, channels=1, intensity_method="zscore", target_spacing=(2.0, 1.0, 1.0), patch_size=(4, 8, 8)
    )
    pred = NativePredictor([Threshold()], spec, InferenceOptions(tta=True))
    probs = pred.predict_proba(vol, spacing=(1.0, 0.5, 0.5))
    assert probs.shape == (2, *vol.shape)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
    labels = probs.argmax(0)
    dice = 2 * (labels & inside).sum() / (labels.sum() + inside.sum())
    assert dice > 0.85  # the blob is only 4 x 8 x 6 voxels on the 2x coarser network grid


def test_2d_on_3d_predicts_slice_by_slice_along_the_slice_axis() -> None:
    vol, inside = _blob_volume()
    spec = NativeSpec(ndim=3, channels=1, intensity_method="zscore", slice_axis=2, patch_size=(8, 8))
    pred = NativePredictor([Threshold()], spec, InferenceOptions(tta=True, tta_axes=(0, 1)))
    assert pred.window.patch_size == (1, 8, 8) and pred.window.mirror_axes == (1, 2)
    labels = pred.predict_labels(vol, spacing=(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(labels, inside)


def test_2d_images_keep_their_size_and_channels_convert() -> None:
    image = np.zeros((30, 26, 3), np.uint8)
    image[5:20, 4:16] = 200
    spec = NativeSpec(ndim=2, channels=1, intensity_method="zscore", patch_size=(16, 16))
    probs = NativePredictor([Threshold()], spec).predict_proba(image)
    assert probs.shape == (2, 30, 26)
    assert (probs.argmax(0)[5:20, 4:16] == 1).all() and probs.argmax(0)[25:, 20:].max() == 0


def test_majority_vote_over_fold_models() -> None:
    spec = NativeSpec(ndim=3, channels=1, intensity_method="zscore", patch_size=(4, 4, 4))
    vol = RNG.normal(size=(6, 6, 6)).astype(np.float32)
    models = [Biased(3, 2), Biased(3, 2), Biased(3, 1)]
    votes = NativePredictor(models, spec, InferenceOptions(mode="vote")).predict_proba(vol)
    np.testing.assert_allclose(votes[2], 2 / 3, atol=1e-6)
    np.testing.assert_allclose(votes[1], 1 / 3, atol=1e-6)
    mean = NativePredictor(models, spec, InferenceOptions(mode="mean")).predict_proba(vol)
    assert mean.argmax(0).min() == 2 and not np.allclose(mean, votes)


def test_network_input_matches_training_preprocessing() -> None:
    vol, _ = _blob_volume()
    spec = NativeSpec(
        ndim=3, channels=1, intensity_method="zscore", target_spacing=(2.0, 1.0, 1.0), patch_size=(4, 8, 8)
    )
    x, _, _ = preprocess_case(vol[None], (1.0, 0.5, 0.5), spec)
    seen: list[torch.Tensor] = []

    class Spy(Threshold):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            seen.append(t)
            return super().forward(t)

    NativePredictor([Spy()], spec, InferenceOptions(window_batch=64, overlap=0.0)).predict_proba(
        vol, (1.0, 0.5, 0.5)
    )
    values = torch.cat([s.flatten() for s in seen]).numpy()
    assert np.isclose(values.max(), x.max(), atol=1e-4) and np.isclose(values.min(), x.min(), atol=1e-4)


def test_a_spec_without_a_patch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        NativePredictor([Threshold()], NativeSpec(ndim=3, channels=1, intensity_method="zscore"))
