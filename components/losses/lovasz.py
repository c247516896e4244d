"""Lovász losses (Berman et al. 2018): a convex surrogate of the Jaccard index optimised directly.

Lovász-softmax for C >= 2 (over classes present in the target), Lovász hinge for C == 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from components.losses.base import IGNORE_INDEX, LOSSES, check_shapes


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing order.

    Shape:
        (P,) float 0/1 -> (P,).
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax_flat(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over present classes of the Lovász extension of (1 - IoU_c).

    Shape:
        probs (P, C), labels (P,) -> scalar.
    """
    losses = []
    for c in labels.unique():
        fg = (labels == c).to(probs.dtype)
        errors = (fg - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean()


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary Lovász hinge.

    Shape:
        logits (P,), labels (P,) 0/1 -> scalar.
    """
    labels = labels.to(logits.dtype)
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, descending=True)
    return torch.dot(F.relu(errors_sorted), lovasz_grad(labels[perm]))


@LOSSES.register("lovasz", "Lovász-softmax (C>=2) / Lovász hinge (C=1): direct IoU optimisation")
class Lovasz(nn.Module):
    """Lovász loss over the whole batch, or averaged per image.

    Args:
        per_image: Compute per image and average (False: all pixels of the batch together).
    """

    def __init__(self, per_image: bool = False) -> None:
        super().__init__()
        self.per_image = per_image

    def _flat(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c = logits.shape[1]
        keep = target.reshape(-1) != IGNORE_INDEX  # ignored pixels are left out of the sorted errors
        if not bool(keep.any()):
            return logits.sum() * 0.0
        if c == 1:
            return lovasz_hinge_flat(logits.reshape(-1)[keep], (target == 1).reshape(-1)[keep])
        probs = torch.movedim(logits.softmax(dim=1), 1, -1).reshape(-1, c)
        return lovasz_softmax_flat(probs[keep], target.reshape(-1).long()[keep])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_shapes(logits, target)
        if self.per_image:
            return torch.stack(
                [self._flat(lg[None], t[None]) for lg, t in zip(logits, target, strict=True)]
            ).mean()
        return self._flat(logits, target)
