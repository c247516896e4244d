"""The residual-encoder candidate's patch rules (components/planning/encoder.py)."""

from __future__ import annotations

import math

from components.planning import encoder


def test_the_whole_patch_rounds_each_axis_up_to_the_encoders_divisor() -> None:
    assert encoder.whole_patch([500.0, 330.0]) == (512, 352)
    assert encoder.whole_patch([512.0, 512.0]) == (512, 512)


def test_only_2d_images_of_at_least_64_pixels_a_side_get_the_encoder() -> None:
    assert encoder.applies([512.0, 384.0])
    assert not encoder.applies([40.0, 56.0])  # its deepest features would be under 2 pixels
    assert not encoder.applies([64.0, 128.0, 128.0])  # volumes: the encoder is 2D


def test_a_patch_shrunk_for_time_reaches_the_target_in_multiples_of_32() -> None:
    patch = encoder.time_patch((512, 512), steps=800, target=1000)
    assert all(p % encoder.DIVISOR == 0 for p in patch)
    assert 800 * math.prod((512, 512)) / math.prod(patch) >= 1000
    one_larger = (patch[0] + encoder.DIVISOR, patch[1])
    assert 800 * math.prod((512, 512)) / math.prod(one_larger) < 1000  # no smaller than it needs


def test_a_patch_shrunk_for_time_keeps_half_the_image_per_axis() -> None:
    assert encoder.time_patch((512, 512), steps=10, target=1000) == (256, 256)
    assert encoder.time_patch((96, 96), steps=10, target=1000) == (64, 64)  # and 64 pixels


def test_a_patch_shrunk_for_memory_fits_by_its_pixels_or_is_none() -> None:
    patch = encoder.memory_patch((512, 512), measured_bytes=4e9, budget_bytes=1e9)
    assert patch is not None and math.prod(patch) <= math.prod((512, 512)) / 4
    assert encoder.memory_patch((512, 512), measured_bytes=1e12, budget_bytes=1e9) is None
