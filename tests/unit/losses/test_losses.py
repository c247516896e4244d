"""Loss values against hand-computed cases, finite gradients, and compound/deep-supervision building."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from components.core.registry import RegistryError
from components.losses import LOSSES, build_loss
from components.losses.boundary import signed_distance

LN2, LN3 = math.log(2), math.log(3)


def one(name: str, num_classes: int, freqs=None, **kwargs) -> torch.nn.Module:
    return build_loss([{"name": name, "kwargs": kwargs}], num_classes, freqs)


def px(*values: float) -> torch.Tensor:
    """Binary logits (1, 1, 1, P)."""
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 1, -1)


def lbl(*values: int) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, -1)


def two_class(*pairs: tuple[float, float]) -> torch.Tensor:
    """Two-class logits (1, 2, 1, P) from (class0, class1) pairs."""
    return torch.tensor(pairs, dtype=torch.float64).T.reshape(1, 2, 1, -1)


# binary case used below: p = sigmoid(+-ln3) = 0.75 / 0.25, target (1, 0) -> TP .75, FP .25, FN .25
P_BIN, T_BIN = px(LN3, -LN3), lbl(1, 0)


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("dice", {"smooth": 0.0}, 1 - 1.5 / 2.0),
        ("dice", {"smooth": 1.0}, 1 - 2.5 / 3.0),
        ("dice", {"smooth": 0.0, "squared": True}, 1 - 1.5 / (0.5625 + 0.0625 + 1)),
        ("log_dice", {"smooth": 0.0}, -math.log(0.75)),
        ("jaccard", {"smooth": 0.0}, 1 - 0.75 / 1.25),
        ("tversky", {"smooth": 0.0, "alpha": 0.3, "beta": 0.7}, 1 - 0.75 / (0.75 + 0.3 * 0.25 + 0.7 * 0.25)),
        ("bce", {}, -math.log(0.75)),
        ("balanced_bce", {}, 0.5 * -math.log(0.75)),  # beta = 0.5 (half the pixels negative)
        ("balanced_bce", {"beta": 0.8}, (0.8 + 0.2) / 2 * -math.log(0.75)),
        ("focal", {}, 0.25**2 * -math.log(0.75)),
        ("focal", {"alpha": 0.25}, (0.25 + 0.75) / 2 * 0.25**2 * -math.log(0.75)),
    ],
)
def test_binary_hand_values(name: str, kwargs: dict, expected: float) -> None:
    assert float(one(name, 1, **kwargs)(P_BIN, T_BIN)) == pytest.approx(expected, rel=1e-6)


def test_tversky_and_focal_tversky_asymmetric() -> None:
    logits, target = px(LN3, LN3), lbl(1, 0)  # TP .75, FP .75, FN .25
    ti = 0.75 / (0.75 + 0.3 * 0.75 + 0.7 * 0.25)
    assert float(one("tversky", 1, smooth=0.0)(logits, target)) == pytest.approx(1 - ti)
    assert float(one("focal_tversky", 1, smooth=0.0)(logits, target)) == pytest.approx((1 - ti) ** 0.75)


def test_cross_entropy_and_class_weights() -> None:
    logits, target = two_class((0.0, 0.0), (LN3, 0.0)), lbl(1, 0)  # -log p_t = ln2, ln(4/3)
    assert float(one("ce", 2)(logits, target)) == pytest.approx((LN2 + math.log(4 / 3)) / 2)
    weighted = (3 * LN2 + 1 * math.log(4 / 3)) / 4  # torch's weighted mean: divide by sum of weights
    assert float(one("ce", 2, weights=[1.0, 3.0])(logits, target)) == pytest.approx(weighted)
    for scheme in ("inverse_frequency", "median_frequency"):  # both give weights in ratio 1:3 here
        assert float(one("weighted_ce", 2, [0.75, 0.25], weights=scheme)(logits, target)) == pytest.approx(
            weighted
        )


def test_multiclass_dice_background_switch() -> None:
    # pixel A: p = (.75, .25), target 0; pixel B: p = (.5, .5), target 1
    logits, target = two_class((LN3, 0.0), (0.0, 0.0)), lbl(0, 1)
    d0, d1 = 1.5 / 2.25, 1.0 / 1.75
    assert float(one("dice", 2, smooth=0.0, include_background=True)(logits, target)) == pytest.approx(
        1 - (d0 + d1) / 2
    )
    assert float(one("dice", 2, smooth=0.0)(logits, target)) == pytest.approx(1 - d1)


def test_lovasz_hand_values() -> None:
    # hinge: errors 1 - x*sign = (0.5, 1.5); sorted gt (0, 1) -> Lovász gradient (0.5, 0.5)
    assert float(one("lovasz", 1)(px(0.5, 0.5), lbl(1, 0))) == pytest.approx(1.0)
    # softmax: class 0 errors (.25, .5) -> 0.375; class 1 errors (.25, .5), sorted gt (1, 0) -> 0.5
    logits, target = two_class((LN3, 0.0), (0.0, 0.0)), lbl(0, 1)
    assert float(one("lovasz", 2)(logits, target)) == pytest.approx((0.375 + 0.5) / 2)


def test_boundary_hand_values() -> None:
    mask = np.array([[0, 1, 1, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(signed_distance(mask), [[1, 0, -1, 0, 1]])
    # p = 0.5 everywhere: mean(0.5 * phi) = 0.5 * 1 / 5
    assert float(one("boundary", 1)(px(0, 0, 0, 0, 0), lbl(0, 1, 1, 1, 0))) == pytest.approx(0.1)
    assert float(one("boundary", 1)(px(0, 0), lbl(0, 0))) == 0.0  # no object: no boundary signal


def test_compound_forms() -> None:
    bce = float(one("bce", 1)(P_BIN, T_BIN))
    dice_coef = 0.75
    one_plus = build_loss([{"name": "bce"}, {"name": "dice", "kwargs": {"smooth": 0.0}}], 1)
    assert float(one_plus(P_BIN, T_BIN)) == pytest.approx(1 + bce - dice_coef)  # "1 + BCE - Dice"
    log_form = build_loss([{"name": "bce"}, {"name": "log_dice", "kwargs": {"smooth": 0.0}}], 1)
    assert float(log_form(P_BIN, T_BIN)) == pytest.approx(bce - math.log(dice_coef))  # "BCE - log(Dice)"
    neg = build_loss([{"name": "bce", "weight": 2.0}, {"name": "jaccard", "weight": -0.5}], 1)
    jac = float(one("jaccard", 1)(P_BIN, T_BIN))
    assert float(neg(P_BIN, T_BIN)) == pytest.approx(2 * bce - 0.5 * jac)
    assert set(neg.last_values) == {"bce", "jaccard"}


def test_deep_supervision_weights_and_downsampled_targets() -> None:
    torch.manual_seed(0)
    loss = build_loss([{"name": "ce"}, {"name": "dice"}], 3)
    target = torch.randint(0, 3, (2, 8, 8))
    full, half = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4)
    half_target = target[:, ::2, ::2]  # nearest downsampling by 2 picks the top-left pixel
    expected = (2 / 3) * loss(full, target) + (1 / 3) * loss(half, half_target)
    assert float(loss([full, half], target)) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("num_classes", [1, 3])
@pytest.mark.parametrize("name", LOSSES.names())
def test_finite_value_and_gradient(name: str, num_classes: int) -> None:
    if name in ("ce", "weighted_ce") and num_classes == 1:
        with pytest.raises(ValueError, match="bce"):
            one(name, 1)
        return
    torch.manual_seed(0)
    freqs = [0.6, 0.3, 0.1] if num_classes == 3 else None
    target = torch.randint(0, max(num_classes, 2), (2, 9, 7))
    target[1] = 0  # an image without foreground
    for logits in (
        torch.randn(2, num_classes, 9, 7),
        30.0 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2)[:, :num_classes].float(),
    ):  # random, and (near) perfect
        logits.requires_grad_(True)
        value = one(name, num_classes, freqs)(logits, target)
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(value) and torch.isfinite(grad).all(), name


def test_building_errors() -> None:
    with pytest.raises(RegistryError, match="Did you mean: dice"):
        build_loss([{"name": "dise"}], 2)
    with pytest.raises(ValueError, match=r"loss term 0 \('dice'\).*'smoth'"):
        build_loss([{"name": "dice", "kwargs": {"smoth": 1}}], 2)
    with pytest.raises(ValueError, match="unknown key"):
        build_loss([{"name": "dice", "wieght": 1}], 2)
    with pytest.raises(ValueError, match="finite"):
        build_loss([{"name": "dice", "weight": float("nan")}], 2)
    with pytest.raises(ValueError, match="class_frequencies"):
        build_loss([{"name": "weighted_ce"}], 2)
    with pytest.raises(ValueError, match="non-empty"):
        build_loss([], 2)
    with pytest.raises(ValueError, match="target"):
        build_loss([{"name": "dice"}], 2)(torch.randn(1, 2, 4, 4), torch.zeros(1, 5, 4, dtype=torch.long))
