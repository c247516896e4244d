"""Predictor: raw image -> probabilities at the original size; TTA; averaging over models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from components.inference.predictor import Predictor
from components.models import build_model
from components.preprocessing.pipeline import PreprocessSpec

RNG = np.random.default_rng(5)


def spec(mode: str = "resize", size: tuple[int, int] = (32, 32), channels: int = 1) -> PreprocessSpec:
    return PreprocessSpec(size, mode, "minmax", {}, channels)


def pointwise(seed: int, k: int = 3) -> nn.Module:
    """A 1x1 convolution: commutes with a horizontal flip."""
    torch.manual_seed(seed)
    return nn.Conv2d(1, k, 1)


class Ramp(nn.Module):
    """Logits that depend on the column index: NOT flip-equivariant."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = pointwise(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(-2.0, 2.0, x.shape[-1])
        return self.conv(x) + torch.stack([ramp, 0 * ramp, -ramp])[None, :, None, :]


class Constant(nn.Module):
    """The same logits everywhere, whatever the input."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return self.logits[None, :, None, None].expand(n, -1, h, w)


@pytest.mark.parametrize("mode", ["resize", "pad", "letterbox"])
@pytest.mark.parametrize("shape", [(37, 29), (29, 37), (33, 33)])
def test_probabilities_at_the_original_odd_size_sum_to_one(mode: str, shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_model("unet", 1, 3, base_channels=8, depth=2)
    pred = Predictor([model], spec(mode), tta=True)
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    probs = pred.predict_proba(image)
    assert probs.shape == (3, *shape) and probs.dtype == np.float32
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    labels = pred.predict_labels(image)
    assert labels.shape == shape and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, probs.argmax(0))


def test_rgb_image_with_a_gray_network() -> None:
    pred = Predictor([pointwise(0)], spec())
    probs = pred.predict_proba(RNG.integers(0, 256, (21, 19, 3), dtype=np.uint8))
    assert probs.shape == (3, 21, 19)


def test_models_are_put_in_eval_mode() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.Dropout(0.5))
    model.train()
    pred = Predictor([model], spec())
    assert not model.training
    x = RNG.random((2, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(pred.predict_network(x), pred.predict_network(x))  # no dropout


def test_constant_model_gives_its_softmax_everywhere() -> None:
    logits = [0.5, 2.0, -1.0]
    expected = torch.tensor(logits).softmax(0).numpy()
    probs = Predictor([Constant(logits)], spec("letterbox")).predict_proba(RNG.random((25, 41)))
    np.testing.assert_allclose(probs, np.broadcast_to(expected[:, None, None], probs.shape), atol=1e-6)


def test_pad_mode_fills_the_cropped_border_with_background() -> None:
    """An image larger than the network size loses its border; that border is predicted background."""
    probs = Predictor([Constant([0.0, 3.0])], spec("pad", size=(8, 8))).predict_proba(RNG.random((12, 10)))
    assert probs.shape == (2, 12, 10)
    np.testing.assert_allclose(probs[0, :2], 1.0)  # the rows cropped away above
    assert probs[1, 2:10, 1:9].min() > 0.9  # the kept centre is the model's class 1


def test_tta_of_a_flip_equivariant_model_equals_no_tta() -> None:
    model = pointwise(3)
    x = RNG.random((2, 1, 16, 20)).astype(np.float32)
    plain = Predictor([model], spec(), tta=False).predict_network(x)
    tta = Predictor([model], spec(), tta=True).predict_network(x)
    np.testing.assert_allclose(tta, plain, atol=1e-6)
    image = RNG.random((23, 17))
    np.testing.assert_allclose(
        Predictor([model], spec(), tta=True).predict_proba(image),
        Predictor([model], spec(), tta=False).predict_proba(image),
        atol=1e-6,
    )


def test_tta_averages_with_the_unflipped_prediction_of_the_flipped_input() -> None:
    model = Ramp().eval()
    x = RNG.random((1, 1, 6, 9)).astype(np.float32)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        p = model(xt).softmax(1)
        pf = torch.flip(model(torch.flip(xt, dims=[-1])).softmax(1), dims=[-1])
    plain = Predictor([model], spec(), tta=False).predict_network(x)
    tta = Predictor([model], spec(), tta=True).predict_network(x)
    np.testing.assert_allclose(plain, p.numpy(), atol=1e-6)
    np.testing.assert_allclose(tta, ((p + pf) / 2).numpy(), atol=1e-6)
    assert np.abs(tta - plain).max() > 0.1  # the model is not equivariant, so TTA matters here


def test_ensemble_averages_the_models_probabilities() -> None:
    a, b = pointwise(0), pointwise(1)
    x = RNG.random((2, 1, 10, 12)).astype(np.float32)
    pa = Predictor([a], spec()).predict_network(x)
    pb = Predictor([b], spec()).predict_network(x)
    both = Predictor([a, b], spec()).predict_network(x)
    assert not np.allclose(pa, pb)
    np.testing.assert_allclose(both, (pa + pb) / 2, atol=1e-6)
    np.testing.assert_allclose(both.sum(1), 1.0, atol=1e-5)
    image = RNG.random((15, 13))
    np.testing.assert_allclose(
        Predictor([a, b], spec()).predict_proba(image),
        (Predictor([a], spec()).predict_proba(image) + Predictor([b], spec()).predict_proba(image)) / 2,
        atol=1e-6,
    )


def test_no_models_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        Predictor([], spec())


class Blobs(nn.Module):
    """Class 1 on a big square and on one far pixel, whatever the input (a spurious component)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        logits = torch.zeros(n, 2, h, w)
        logits[:, 1, 4:20, 4:20] = 5.0
        logits[:, 1, h - 2, w - 2] = 5.0
        return logits


def test_label_maps_carry_the_postprocessing_and_it_survives_the_packaged_json() -> None:
    from components.inference.options import InferenceOptions
    from components.postprocessing import Postprocessing, Rule

    image = RNG.integers(0, 255, (32, 32)).astype(np.uint8)
    plain = Predictor([Blobs()], spec(size=(32, 32)))
    assert plain.predict_labels(image)[30, 30] == 1  # the spurious pixel
    pp = Postprocessing({1: Rule("largest_component")})
    kept = Predictor([Blobs()], spec(size=(32, 32)), postprocessing=pp)
    labels = kept.predict_labels(image)
    assert labels[30, 30] == 0 and labels[10, 10] == 1
    options = InferenceOptions.from_json(InferenceOptions(tta=True, postprocessing=pp).to_json())
    assert options.postprocessing == pp
    np.testing.assert_array_equal(options.labels(kept.predict_proba(image)), labels)


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_batched_prediction_equals_image_by_image(batch_size: int) -> None:
    """Images of different sizes through batched forward passes (chunks of ``batch_size``, the last
    one short): each image's probabilities equal its own ``predict_proba``."""
    torch.manual_seed(0)
    models = [build_model("unet", 1, 3, base_channels=8, depth=2) for _ in range(2)]
    pred = Predictor(models, spec("letterbox"), tta=True)
    images = [RNG.integers(0, 256, shape, dtype=np.uint8) for shape in [(37, 29), (32, 32), (20, 45)]]
    batched = pred.predict_proba_batch(images, batch_size=batch_size)
    assert [p.shape for p in batched] == [(3, *img.shape) for img in images]
    for img, probs in zip(images, batched, strict=True):
        np.testing.assert_allclose(probs, pred.predict_proba(img), atol=1e-5)
