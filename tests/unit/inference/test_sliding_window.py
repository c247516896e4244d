"""Sliding-window prediction: equals a whole-image pass, seamless stitching, mirroring, ensembles."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from components.windowing.sliding_window import (
    SliceWise,
    WindowSettings,
    count_windows,
    mirror_variants,
    sliding_window_probabilities,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(dims: int, seed: int, c_in: int = 2, k: int = 3) -> nn.Module:
    """A small conv net with random weights: neither flip-invariant nor translation-free at borders."""
    torch.manual_seed(seed)
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return nn.Sequential(conv(c_in, 4, 3, padding=1), nn.ReLU(), conv(4, k, 3, padding=1)).eval()


def _whole(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax of one forward pass over the whole image; ``(C, *S) -> (K, *S)``."""
    with torch.no_grad():
        return model(x[None]).softmax(1)[0]


class _ConstantLogits(nn.Module):
    """Ignores the input: the same logits everywhere; counts the windows it sees."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.logits = torch.tensor([1.0, -2.0, 0.5])
        self.dims = dims
        self.windows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.windows += x.shape[0]
        return self.logits.view(1, 3, *[1] * self.dims).expand(x.shape[0], 3, *x.shape[2:])


@pytest.mark.parametrize("shape", [(16, 20), (6, 10, 8)])
def test_single_window_equals_whole_image_pass(shape: tuple[int, ...]) -> None:
    model = _net(len(shape), seed=0)
    x = torch.randn(2, *shape)
    out = sliding_window_probabilities([model], x, WindowSettings(patch_size=shape))
    assert out.shape == (3, *shape) and out.dtype == torch.float32 and out.device.type == "cpu"
    torch.testing.assert_close(out, _whole(model, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("shape", "patch"), [((7, 30), (16, 16)), ((3, 20, 5), (4, 8, 8))])
def test_output_shape_when_image_smaller_or_larger_than_patch(
    shape: tuple[int, ...], patch: tuple[int, ...]
) -> None:
    x = torch.randn(2, *shape).numpy()  # numpy input works too
    out = sliding_window_probabilities([_net(len(shape), 1)], x, WindowSettings(patch_size=patch))
    assert out.shape == (3, *shape)
    torch.testing.assert_close(out.sum(0), torch.ones(shape), atol=1e-5, rtol=0)


@pytest.mark.parametrize("overlap", [0.5, 0.25])
@pytest.mark.parametrize(("shape", "patch"), [((30, 27), (8, 8)), ((13, 17, 11), (4, 6, 6))])
def test_gaussian_stitching_has_no_seams(
    overlap: float, shape: tuple[int, ...], patch: tuple[int, ...]
) -> None:
    model = _ConstantLogits(len(shape))
    settings = WindowSettings(patch_size=patch, overlap=overlap, batch_size=8)
    out = sliding_window_probabilities([model], torch.randn(1, *shape), settings)
    expected = model.logits.softmax(0).view(3, *[1] * len(shape)).expand(3, *shape)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert model.windows == count_windows(shape, settings) > 8


@pytest.mark.parametrize(("shape", "axes"), [((12, 10), (0, 1)), ((6, 8, 10), (0, 2)), ((6, 8, 10), (1,))])
def test_mirror_tta_is_mean_of_flipped_predictions(shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    model = _net(len(shape), seed=2)
    x = torch.randn(2, *shape)
    out = sliding_window_probabilities([model], x, WindowSettings(patch_size=shape, mirror_axes=axes))
    flips = [[a + 1 for a in v] for r in range(len(axes) + 1) for v in itertools.combinations(axes, r)]
    manual = torch.stack([_whole(model, x.flip(d)).flip(d) for d in flips]).mean(0)
    torch.testing.assert_close(out, manual, atol=1e-5, rtol=0)
    assert (out - _whole(model, x)).abs().max() > 1e-3  # the model really is not flip-invariant


def test_ensemble_is_mean_of_members() -> None:
    models = [_net(2, seed=3), _net(2, seed=4)]
    x = torch.randn(2, 20, 18)
    settings = WindowSettings(patch_size=(8, 8), overlap=0.5, mirror_axes=(1,))
    singles = [sliding_window_probabilities([m], x, settings) for m in models]
    both = sliding_window_probabilities(models, x, settings)
    torch.testing.assert_close(both, (singles[0] + singles[1]) / 2, atol=1e-6, rtol=0)


def test_slicewise_equals_per_slice_2d_predictions() -> None:
    model = _net(2, seed=5)
    vol = torch.randn(2, 5, 12, 10)
    plain = sliding_window_probabilities([SliceWise(model)], vol, WindowSettings(patch_size=(1, 12, 10)))
    per_slice = torch.stack([_whole(model, vol[:, z]) for z in range(5)], dim=1)
    torch.testing.assert_close(plain, per_slice, atol=1e-5, rtol=0)
    # mirror axes refer to the in-plane axes (1, 2) of the volume
    settings = WindowSettings(patch_size=(1, 12, 10), mirror_axes=(1, 2), batch_size=3)
    mirrored = sliding_window_probabilities([SliceWise(model)], vol, settings)
    flips = [[], [1], [2], [1, 2]]
    manual = torch.stack(
        [torch.stack([_whole(model, vol[:, z].flip(d)).flip(d) for d in flips]).mean(0) for z in range(5)], 1
    )
    torch.testing.assert_close(mirrored, manual, atol=1e-5, rtol=0)


def test_slicewise_shape_with_thicker_windows() -> None:
    out = SliceWise(_net(2, seed=6))(torch.randn(3, 2, 4, 8, 6))
    assert out.shape == (3, 3, 4, 8, 6)


def test_count_windows_and_variants() -> None:
    assert count_windows((16, 16), WindowSettings(patch_size=(16, 16))) == 1
    assert count_windows((5, 5), WindowSettings(patch_size=(16, 16))) == 1  # padded
    assert count_windows((32, 16), WindowSettings(patch_size=(16, 16), overlap=0.5)) == 3
    assert count_windows((4, 9, 9), WindowSettings(patch_size=(1, 9, 9))) == 4
    assert mirror_variants(()) == [()]
    assert mirror_variants((0, 2)) == [(), (0,), (2,), (0, 2)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patch_size": (8,)}, "patch_size"),
        ({"patch_size": (8, 8), "overlap": 1.0}, "overlap"),
        ({"patch_size": (8, 8), "mirror_axes": (2,)}, "mirror_axes"),
        ({"patch_size": (8, 8), "mirror_axes": (0, 0)}, "mirror_axes"),
        ({"patch_size": (8, 8), "mode": "gauss"}, "mode"),
        ({"patch_size": (8, 8), "batch_size": 0}, "batch_size"),
    ],
)
def test_settings_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WindowSettings(**kwargs)


def test_input_errors_and_bf16_ignored_on_cpu() -> None:
    settings = WindowSettings(patch_size=(8, 8))
    with pytest.raises(ValueError, match="at least one model"):
        sliding_window_probabilities([], torch.zeros(1, 8, 8), settings)
    with pytest.raises(ValueError, match="spatial axes"):
        sliding_window_probabilities([_net(2, 7)], torch.zeros(2, 1, 8, 8), settings)
    x = torch.randn(2, 8, 8)
    model = _net(2, 7)
    assert torch.equal(
        sliding_window_probabilities([model], x, settings, bf16=True),
        sliding_window_probabilities([model], x, settings),
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_windows_cpu_output() -> None:
    model = _net(3, seed=8)
    x = torch.randn(2, 12, 20, 18)
    settings = WindowSettings(patch_size=(8, 8, 8), mirror_axes=(0, 1, 2))
    ref = sliding_window_probabilities([model], x, settings)
    for bf16, atol in ((False, 1e-4), (True, 3e-2)):
        out = sliding_window_probabilities([model], x, settings, device="cuda", bf16=bf16)
        assert out.device.type == "cpu" and out.dtype == torch.float32
        torch.testing.assert_close(out, ref.to(out.device), atol=atol, rtol=0)
        model.cpu()
