"""Pixel-wise losses: cross-entropy (plain and class-weighted), BCE, balanced BCE and focal loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from components.losses.base import (
    IGNORE_INDEX,
    LOSSES,
    binary_targets,
    check_shapes,
    masked_mean,
    spatial_dims,
    split_ignore,
)


def class_weights(
    weights: Sequence[float] | str, num_classes: int, class_frequencies: Sequence[float] | None
) -> torch.Tensor:
    """Resolve per-class CE weights.

    Args:
        weights: Explicit per-class weights, "inverse_frequency" (w_c = 1 / (C f_c)) or
            "median_frequency" (SegNet's w_c = median(f) / f_c).
        num_classes: C.
        class_frequencies: Pixel fraction f_c of each class in the training split.

    Raises:
        ValueError: Wrong length, non-positive weights, or frequencies missing for a named scheme.
    """
    if isinstance(weights, str):
        if weights not in ("inverse_frequency", "median_frequency"):
            raise ValueError(
                f"weights must be a list, 'inverse_frequency' or 'median_frequency', got {weights!r}"
            )
        if class_frequencies is None or len(class_frequencies) != num_classes:
            raise ValueError(
                f"weights={weights!r} needs class_frequencies with {num_classes} values (pixel fraction per "
                f"class of the training split), got {class_frequencies!r}"
            )
        f = torch.tensor([float(v) for v in class_frequencies]).clamp_min(1e-6)
        return 1.0 / (num_classes * f) if weights == "inverse_frequency" else f.median() / f
    w = torch.tensor([float(v) for v in weights])
    if w.numel() != num_classes or bool((w < 0).any()):
        raise ValueError(f"weights must be {num_classes} non-negative numbers, got {list(weights)}")
    return w


@LOSSES.register("ce", "Cross-entropy over softmax classes (optional per-class weights)")
class CrossEntropy(nn.Module):
    """Pixel-wise cross-entropy, mean over pixels (weighted mean when weights are given).

    Args:
        num_classes: C (>= 2; use "bce" for a single-channel binary output).
        class_frequencies: Per-class pixel fractions, for named weight schemes.
        weights: None, per-class list, "inverse_frequency" or "median_frequency".
        label_smoothing: As in ``torch.nn.functional.cross_entropy``.
    """

    weight: torch.Tensor | None  # a buffer (moves with .to()), registered in __init__

    def __init__(
        self,
        num_classes: int,
        class_frequencies: Sequence[float] | None = None,
        weights: Sequence[float] | str | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError("cross-entropy needs num_classes >= 2; for one output channel use 'bce'")
        w = None if weights is None else class_weights(weights, num_classes, class_frequencies)
        self.register_buffer("weight", w)
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_shapes(logits, target)
        w = None if self.weight is None else self.weight.to(logits.dtype)
        if not bool((target != IGNORE_INDEX).any()):  # nothing to learn from (F.cross_entropy gives NaN)
            return logits.sum() * 0.0
        return F.cross_entropy(
            logits, target.long(), weight=w, label_smoothing=self.label_smoothing, ignore_index=IGNORE_INDEX
        )


@LOSSES.register("weighted_ce", "Class-weighted cross-entropy (default weights: inverse class frequency)")
class WeightedCrossEntropy(CrossEntropy):
    """Cross-entropy with class weights; defaults to ``weights="inverse_frequency"``."""

    def __init__(
        self,
        num_classes: int,
        class_frequencies: Sequence[float] | None = None,
        weights: Sequence[float] | str = "inverse_frequency",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(num_classes, class_frequencies, weights, label_smoothing)


@LOSSES.register("bce", "Binary cross-entropy with logits (C=1 binary, else one-vs-rest per class)")
class BCE(nn.Module):
    """Sigmoid BCE averaged over pixels and channels.

    Args:
        pos_weight: Optional weight of positive pixels (scalar).
    """

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y, valid = binary_targets(logits, target)
        pw = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=logits.device)
        pix = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw, reduction="none")
        return masked_mean(pix, valid)


@LOSSES.register("balanced_bce", "Class-balanced BCE with logits: positives weighted by negative fraction")
class BalancedBCE(nn.Module):
    """-mean(beta y log p + (1 - beta)(1 - y) log(1 - p)), beta = fraction of negatives per channel.

    Args:
        beta: Fixed positive weight in (0, 1); None computes it from each batch's targets (HED style).
    """

    def __init__(self, beta: float | None = None) -> None:
        super().__init__()
        if beta is not None and not 0.0 < beta < 1.0:
            raise ValueError(f"balanced_bce beta must be in (0, 1), got {beta}")
        self.beta = beta

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        y, valid = binary_targets(logits, target)
        if self.beta is None:
            dims = (0, *spatial_dims(y))
            w = torch.ones_like(y[:, :1]) if valid is None else valid
            beta = 1.0 - (y * w).sum(dim=dims, keepdim=True) / w.sum(dim=dims, keepdim=True).clamp_min(1.0)
        else:
            beta = torch.full((1, y.shape[1], *([1] * (y.ndim - 2))), self.beta, device=y.device)
        pix = beta * y * F.logsigmoid(logits) + (1 - beta) * (1 - y) * F.logsigmoid(-logits)
        return -masked_mean(pix, valid)


@LOSSES.register("focal", "Focal loss (softmax; sigmoid when C=1), gamma=2")
class Focal(nn.Module):
    """-alpha_t (1 - p_t)^gamma log p_t, averaged over pixels.

    Args:
        gamma: Focusing parameter.
        alpha: None, one float (binary: weight of the foreground, 1 - alpha for background) or a
            per-class list.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None) -> None:
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_shapes(logits, target)
        t, valid = split_ignore(target)
        if logits.shape[1] == 1:
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)  # softmax([0, x]) = sigmoid
            t = (t == 1).long()
        logp = logits.log_softmax(dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        if self.alpha is not None:
            a = [1 - self.alpha, self.alpha] if isinstance(self.alpha, int | float) else list(self.alpha)
            loss = loss * torch.tensor(a, dtype=loss.dtype, device=loss.device)[t]
        return masked_mean(loss.unsqueeze(1), valid)
