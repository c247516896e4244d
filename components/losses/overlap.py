"""Region-overlap losses on soft predictions: Dice, log-Dice, Jaccard, Tversky, focal Tversky.

All share the soft counts TP = sum(p g), FP = sum(p (1 - g)), FN = sum((1 - p) g) per class, summed
over the whole batch (``batch_dice=True``, nnU-Net's choice for 2D: stable for classes absent from an
image) or per image, then averaged over classes (and images). ``smooth`` is added to numerator and
denominator, so a class absent from both prediction and target scores 1 (no loss).
"""

from __future__ import annotations

import torch
from torch import nn

from components.losses.base import LOSSES, probs_and_onehot, spatial_dims


class _Overlap(nn.Module):
    """Shared options and soft counts.

    Args:
        include_background: Keep class 0 (multi-class only). Default False: background dominates.
        smooth: Added to numerator and denominator.
        batch_dice: Sum counts over the batch (True) or score each image separately (False).
    """

    def __init__(
        self, include_background: bool = False, smooth: float = 1.0, batch_dice: bool = True
    ) -> None:
        super().__init__()
        self.include_background, self.smooth, self.batch_dice = include_background, smooth, batch_dice

    def _pg(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        p, g = probs_and_onehot(logits, target, self.include_background)
        dims = spatial_dims(p)
        return p, g, ((0, *dims) if self.batch_dice else dims)

    def counts(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Soft (TP, FP, FN), each (K,) with batch_dice else (N, K).

        Shape:
            logits (N, C, H, W), target (N, H, W).
        """
        p, g, dims = self._pg(logits, target)
        tp = (p * g).sum(dims)
        return tp, (p * (1 - g)).sum(dims), ((1 - p) * g).sum(dims)


@LOSSES.register("dice", "Soft Dice loss 1 - mean Dice (plain or squared denominator)")
class Dice(_Overlap):
    """1 - mean_c (2 TP + s) / (|P| + |G| + s).

    Args:
        squared: Denominator sum(p^2) + sum(g^2) (Milletari's V-Net form) instead of sum(p) + sum(g).
        include_background, smooth, batch_dice: See the module docstring.
    """

    def __init__(
        self,
        include_background: bool = False,
        smooth: float = 1.0,
        batch_dice: bool = True,
        squared: bool = False,
    ) -> None:
        super().__init__(include_background, smooth, batch_dice)
        self.squared = squared

    def coefficient(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean soft Dice coefficient (a scalar in [0, 1])."""
        p, g, dims = self._pg(logits, target)
        inter = (p * g).sum(dims)
        den = (p * p).sum(dims) + g.sum(dims) if self.squared else p.sum(dims) + g.sum(dims)
        return ((2 * inter + self.smooth) / (den + self.smooth)).mean()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1 - self.coefficient(logits, target)


@LOSSES.register("log_dice", "-log(mean soft Dice): with bce gives 'BCE - log(Dice)'")
class LogDice(Dice):
    """-log(mean soft Dice), same options as ``dice``."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -torch.log(self.coefficient(logits, target).clamp_min(1e-7))


@LOSSES.register("jaccard", "Soft Jaccard (IoU) loss 1 - mean IoU")
class Jaccard(_Overlap):
    """1 - mean_c (TP + s) / (TP + FP + FN + s)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tp, fp, fn = self.counts(logits, target)
        return 1 - ((tp + self.smooth) / (tp + fp + fn + self.smooth)).mean()


class _TverskyBase(_Overlap):
    def __init__(
        self,
        alpha: float = 0.3,
        beta: float = 0.7,
        include_background: bool = False,
        smooth: float = 1.0,
        batch_dice: bool = True,
    ) -> None:
        super().__init__(include_background, smooth, batch_dice)
        self.alpha, self.beta = alpha, beta

    def index(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-class Tversky index (TP + s) / (TP + alpha FP + beta FN + s)."""
        tp, fp, fn = self.counts(logits, target)
        return (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)


@LOSSES.register("tversky", "Tversky loss 1 - mean TI; alpha weighs FP, beta FN (0.3 / 0.7)")
class Tversky(_TverskyBase):
    """1 - mean_c TI_c. alpha = beta = 0.5 is Dice; beta > alpha favours recall."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1 - self.index(logits, target).mean()


@LOSSES.register("focal_tversky", "Focal Tversky loss mean (1 - TI)^gamma, gamma=0.75")
class FocalTversky(_TverskyBase):
    """mean_c (1 - TI_c)^gamma (Abraham & Khan 2019; their 1/γ with γ = 4/3 is gamma = 0.75 here)."""

    def __init__(
        self,
        gamma: float = 0.75,
        alpha: float = 0.3,
        beta: float = 0.7,
        include_background: bool = False,
        smooth: float = 1.0,
        batch_dice: bool = True,
    ) -> None:
        super().__init__(alpha, beta, include_background, smooth, batch_dice)
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # clamp: d/dx x^0.75 is infinite at 0 (a perfectly predicted or absent class)
        return ((1 - self.index(logits, target)).clamp_min(1e-6) ** self.gamma).mean()
