"""Loss registry and the conversions every loss shares (logits -> probabilities, targets -> one-hot).

Conventions: logits (N, C, *S), target int64 class indices (N, *S), S = (H, W) or (Z, Y, X) (every
loss works in 2D and 3D; the docstrings write 2D shapes). With C == 1 the task is binary:
the single channel is the foreground logit (sigmoid) and the target holds 0/1. With C >= 2 softmax is
used and "one-vs-rest" losses (bce, balanced_bce) treat each channel as a sigmoid output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss")


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
    if logits.shape[1] == 1:
        return torch.sigmoid(logits), (target == 1).unsqueeze(1).float()
    p, g = logits.softmax(dim=1), one_hot(target, logits.shape[1])
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    return p, g


def binary_targets(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targets for sigmoid outputs: (target == 1) for C == 1, else one-vs-rest one-hot.

    Shape:
        logits (N, C, H, W), target (N, H, W) -> (N, C, H, W) float.
    """
    check_shapes(logits, target)
    if logits.shape[1] == 1:
        return (target == 1).unsqueeze(1).float()
    return one_hot(target, logits.shape[1])
