"""The per-image preprocessing shared by training and inference: channels, unit range, network input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from components.params.config import parse_params
from components.preprocessing.pipeline import (
    PreprocessSpec,
    match_channels,
    spec_from_params,
    to_network_input,
    to_unit_image,
)
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]
RNG = np.random.default_rng(3)


def spec(**kw: object) -> PreprocessSpec:
    base: dict = {
        "size": (16, 24),
        "spatial_mode": "resize",
        "intensity_method": "minmax",
        "intensity_kwargs": {},
        "channels": 1,
    }
    return PreprocessSpec(**{**base, **kw})


# ----------------------------------------------------------------------------- match_channels


def test_gray_to_one_channel_adds_the_axis_only() -> None:
    g = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    out = match_channels(g, 1)
    assert out.shape == (5, 7, 1) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], g)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_gray_to_rgb_copies_the_channel(shape: tuple[int, ...]) -> None:
    g = RNG.integers(0, 65536, shape, dtype=np.uint16)
    out = match_channels(g, 3)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint16
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g.reshape(5, 7))


def test_rgb_to_gray_uses_luminance_weights() -> None:
    rgb = np.zeros((1, 4, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[0, 3] = (255, 255, 255)
    out = match_channels(rgb, 1)
    assert out.shape == (1, 4, 1)
    np.testing.assert_array_equal(out[0, :, 0], [76, 150, 29, 255])  # 0.299/0.587/0.114 x 255, rounded

    f = rgb.astype(np.float32) / 255
    out_f = match_channels(f, 1)
    assert out_f.dtype == np.float32
    np.testing.assert_allclose(out_f[0, :, 0], [0.299, 0.587, 0.114, 1.0], atol=1e-6)


def test_integer_rgb_to_gray_keeps_dtype() -> None:
    """Regression: the gray copy of a uint8 RGB image was float32 in 0..255, so "dtype" failed."""
    rgb = RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    out = match_channels(rgb, 1)
    assert out.dtype == np.uint16
    expected = np.round(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))
    np.testing.assert_array_equal(out[..., 0], expected)


def test_alpha_channel_is_dropped() -> None:
    rgba = RNG.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(match_channels(rgba, 3), rgba[..., :3])
    np.testing.assert_array_equal(match_channels(rgba, 1), match_channels(rgba[..., :3], 1))


# ----------------------------------------------------------------------------- to_unit_image


@pytest.mark.parametrize("mode", ["resize", "pad", "letterbox"])
@pytest.mark.parametrize("channels", [1, 3])
def test_unit_image_shapes_dtype_and_range(mode: str, channels: int) -> None:
    image = RNG.integers(0, 4096, (37, 29), dtype=np.uint16)
    mask = RNG.integers(0, 3, (37, 29), dtype=np.uint8)
    unit, m, sp = to_unit_image(image, mask, spec(spatial_mode=mode, channels=channels))
    assert unit.shape == (16, 24, channels) and unit.dtype == np.float32
    assert unit.min() >= 0.0 and unit.max() <= 1.0
    assert m is not None and m.shape == (16, 24) and m.dtype == np.uint8
    assert set(np.unique(m)) <= {0, 1, 2}
    assert sp.original_shape == (37, 29) and sp.size == (16, 24) and sp.mode == mode
    if channels == 3:
        np.testing.assert_array_equal(unit[..., 0], unit[..., 2])


def test_without_mask_returns_none() -> None:
    _, m, _ = to_unit_image(RNG.random((10, 10)), None, spec())
    assert m is None


def test_pad_mode_places_the_normalised_image_in_the_centre() -> None:
    image = RNG.integers(0, 256, (7, 9), dtype=np.uint8)
    image[0, 0], image[0, 1] = 0, 255
    unit, _, sp = to_unit_image(image, None, spec(spatial_mode="pad", size=(11, 15)))
    assert sp.resized_shape == (7, 9) and sp.offset == (2, 3)
    np.testing.assert_allclose(unit[2:9, 3:12, 0], image / 255.0, atol=1e-6)  # min-max: 0 -> 0, 255 -> 1
    assert unit[:2].max() == 0 and unit[9:].max() == 0 and unit[:, :3].max() == 0 and unit[:, 12:].max() == 0


def test_letterbox_keeps_the_aspect_ratio() -> None:
    image = RNG.random((20, 40)).astype(np.float32)
    _, _, sp = to_unit_image(image, None, spec(spatial_mode="letterbox", size=(16, 16)))
    assert sp.resized_shape == (8, 16) and sp.offset == (4, 0)


def test_dtype_method_on_integer_rgb_with_gray_network() -> None:
    """RGB uint8 -> 1 channel -> divided by 255 (raised a ValueError before the fix)."""
    rgb = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    unit, _, _ = to_unit_image(rgb, None, spec(spatial_mode="pad", size=(8, 8), intensity_method="dtype"))
    np.testing.assert_allclose(unit[..., 0], match_channels(rgb, 1)[..., 0] / 255.0, atol=1e-6)


def test_clahe_is_applied_when_configured() -> None:
    yy, xx = np.mgrid[0:32, 0:32]
    image = (100 + 20 * np.sin(xx / 3.0) + yy).astype(np.uint8)
    plain, _, _ = to_unit_image(image, None, spec(size=(32, 32)))
    eq, _, _ = to_unit_image(image, None, spec(size=(32, 32), clahe=(2.0, 4)))
    assert eq.shape == plain.shape and eq.min() >= 0 and eq.max() <= 1
    assert not np.allclose(eq, plain)


# ----------------------------------------------------------------------------- to_network_input


def test_network_input_is_channels_first_and_identity_without_zscore() -> None:
    unit = RNG.random((6, 8, 3)).astype(np.float32)
    x = to_network_input(unit, spec(channels=3))
    assert x.shape == (3, 6, 8) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(x, np.moveaxis(unit, -1, 0))


def test_network_input_zscore_when_method_is_zscore() -> None:
    unit = (0.2 + 0.1 * RNG.random((10, 12, 1))).astype(np.float32)
    x = to_network_input(unit, spec(intensity_method="zscore"))
    assert x.shape == (1, 10, 12)
    assert abs(float(x.mean())) < 1e-5 and float(x.std()) == pytest.approx(1.0, abs=1e-4)
    # A constant image does not divide by zero.
    z = to_network_input(np.full((4, 4, 1), 0.5, np.float32), spec(intensity_method="zscore"))
    np.testing.assert_array_equal(z, 0.0)


# ----------------------------------------------------------------------------- PreprocessSpec


@pytest.mark.parametrize("clahe", [None, (2.5, 4)])
def test_spec_dict_round_trip_through_json(clahe: tuple[float, int] | None) -> None:
    s = spec(
        size=(32, 48),
        spatial_mode="letterbox",
        intensity_method="ct_window",
        intensity_kwargs={"center": 40.0, "width": 400.0},
        channels=3,
        clahe=clahe,
    )
    d = json.loads(json.dumps(s.to_dict()))
    back = PreprocessSpec.from_dict(d)
    assert back == s
    assert back.size == (32, 48) and back.clahe == clahe
    assert isinstance(back.size, tuple)


def test_spec_from_params_includes_clahe() -> None:
    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["preprocess"].update(
        image_size=[40, 24], spatial_mode="pad", clahe={"clip_limit": 3.0, "tile_grid": 4}
    )
    raw["preprocess"]["intensity"] = {"method": "zscore", "kwargs": {}}
    raw["data"]["channels"] = 3
    s = spec_from_params(parse_params(raw))
    assert s == PreprocessSpec((40, 24), "pad", "zscore", {}, 3, (3.0, 4))
    raw["preprocess"]["clahe"] = None
    assert spec_from_params(parse_params(raw)).clahe is None


def test_prepared_data_made_with_other_params_is_refused(tmp_path: Path) -> None:
    import dataclasses

    from components.data.discovery import discover
    from components.data.synthetic import generate_phantoms
    from components.preprocessing.prepare import (
        PreparedDataMismatch,
        check_prepared_matches,
        prepare_dataset,
    )
    from components.validation import build_metadata

    raw = yaml.safe_load(HANDSET_PARAMS.read_text())
    raw["preprocess"]["image_size"] = [32, 32]
    params = parse_params(raw)
    data = generate_phantoms(tmp_path / "raw", n_cases=12, size=40)
    meta = build_metadata(discover(data), [0, 1, 2, 3], root=data)
    spec = spec_from_params(params)
    prepare_dataset(meta, data, params, spec, tmp_path / "prepared")
    check_prepared_matches(tmp_path / "prepared", spec, params.data.class_names)  # same params: fine
    other = dataclasses.replace(spec, size=(48, 48), spatial_mode="pad")
    with pytest.raises(PreparedDataMismatch, match=r"size: prepared with \[32, 32\], params give \[48, 48\]"):
        check_prepared_matches(tmp_path / "prepared", other, params.data.class_names)
    with pytest.raises(PreparedDataMismatch, match="class_names"):
        check_prepared_matches(tmp_path / "prepared", spec, ["background", "a", "b", "c"])
    with pytest.raises(FileNotFoundError, match="run the preprocess stage"):
        check_prepared_matches(tmp_path / "nowhere", spec, params.data.class_names)
