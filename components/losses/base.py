"""Loss registry and the conversions every loss shares (logits -> probabilities, targets -> one-hot).

Conventions: logits (N, C, *S), target int64 class indices (N, *S), S = (H, W) or (Z, Y, X) (every
loss works in 2D and 3D; the docstrings write 2D shapes). With C == 1 the task is binary:
the single channel is the foreground logit (sigmoid) and the target holds 0/1. With C >= 2 softmax is
used and "one-vs-rest" losses (bce, balanced_bce) treat each channel as a sigmoid output.

Ignored pixels: target pixels equal to ``IGNORE_INDEX`` (outside the region of interest, or the
dataset's ignore label) count in no loss. Every loss gives exactly the same value (and zero
gradient there) whatever the logits at those pixels: overlap losses zero both probabilities and
one-hot targets there, pixel-wise losses average over the valid pixels only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.core.registry import Registry
from components.data.regions import IGNORE_INDEX

LOSSES: Registry[nn.Module] = Registry("loss")


def split_ignore(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The target with ignored pixels set to 0, and the valid-pixel mask (None when none is ignored).

    Shape:
        (N, *S) int -> (N, *S) int64 and (N, 1, *S) float or None.
    """
    ignored = target == IGNORE_INDEX
    if not bool(ignored.any()):
        return target.long(), None
    return target.long().masked_fill(ignored, 0), (~ignored).unsqueeze(1).float()


def masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-pixel ``values`` over the valid pixels (all pixels when ``valid`` is None).

    Shape:
        values (N, K, *S), valid (N, 1, *S) or None -> scalar.
    """
    if valid is None:
        return values.mean()
    weights = valid.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def check_shapes(logits: torch.Tensor, target: torch.Tensor) -> None:
    """Raise ValueError unless logits are (N, C, *S) and target (N, *S), S two or three axes."""
    if logits.ndim not in (4, 5) or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"expected logits (N, C, H, W) / (N, C, Z, Y, X) and target (N, H, W) / (N, Z, Y, X); got "
            f"{tuple(logits.shape)} and "
            f"{tuple(target.shape)}"
        )


def one_hot(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class indices to a float one-hot map.

    Shape:
        (N, H, W) int64 -> (N, num_classes, H, W) float.
    """
    return torch.movedim(F.one_hot(target.long(), num_classes), -1, 1).float()


def spatial_dims(x: torch.Tensor) -> tuple[int, ...]:
    """The spatial axes of an (N, C, *S) tensor: (2, 3) in 2D, (2, 3, 4) in 3D."""
    return tuple(range(2, x.ndim))


def probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor, include_background: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class probabilities and matching one-hot targets.

    C == 1: sigmoid foreground probability vs ``target == 1`` (``include_background`` ignored).
    C >= 2: softmax over classes vs one-hot; channel 0 dropped when ``include_background`` is False.

    Shape:
        logits (N, C, H, W), target (N, H, W) -> two (N, K, H, W) tensors, K = C or C - 1.
    """
    check_shapes(logits, target)
    target, valid = split_ignore(target)
    if logits.shape[1] == 1:
        p, g = torch.sigmoid(logits), (target == 1).unsqueeze(1).float()
    else:
        p, g = logits.softmax(dim=1), one_hot(target, logits.shape[1])
        if not include_background:
            p, g = p[:, 1:], g[:, 1:]
    if valid is not None:  # ignored pixels: no probability mass, no target
        p, g = p * valid, g * valid
    return p, g


def binary_targets(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Targets for sigmoid outputs: (target == 1) for C == 1, else one-vs-rest one-hot; and the
    valid-pixel mask (None when no pixel is ignored).

    Shape:
        logits (N, C, H, W), target (N, H, W) -> (N, C, H, W) float and (N, 1, H, W) float or None.
    """
    check_shapes(logits, target)
    target, valid = split_ignore(target)
    if logits.shape[1] == 1:
        return (target == 1).unsqueeze(1).float(), valid
    return one_hot(target, logits.shape[1]), valid
