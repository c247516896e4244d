"""Boundary loss (Kervadec et al. 2019): mean over pixels of softmax probability x signed distance map.

The signed distance map of each class is computed from the target (negative inside the object, zero on
its boundary, positive outside, in pixels), so the loss falls as predicted mass moves into the object.
It is usually combined with a region loss, e.g. terms dice (weight 1) + boundary (weight 0.01).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt
from torch import nn

from components.losses.base import LOSSES, masked_mean, probs_and_onehot, split_ignore


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed Euclidean distance map of a boolean mask (Kervadec's ``one_hot2dist``).

    Outside: distance to the nearest object pixel; inside: -(distance to the nearest background
    pixel - 1), so boundary pixels of the object are 0. Empty or full masks give zeros.

    Shape:
        (H, W) bool -> (H, W) float32.
    """
    if not mask.any() or mask.all():
        return np.zeros(mask.shape, dtype=np.float32)
    neg = ~mask
    out = distance_transform_edt(neg) * neg - (distance_transform_edt(mask) - 1) * mask
    return out.astype(np.float32)


@LOSSES.register("boundary", "Boundary loss: probabilities x signed distance to target boundary")
class Boundary(nn.Module):
    """mean(p_c(x) * phi_c(x)) over pixels and classes.

    Args:
        include_background: Include class 0 (multi-class only; default False as in the paper).
        normalize: Divide distances by the image diagonal (keeps the scale near [-1, 1]).
    """

    def __init__(self, include_background: bool = False, normalize: bool = False) -> None:
        super().__init__()
        self.include_background, self.normalize = include_background, normalize

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p, g = probs_and_onehot(logits, target, self.include_background)  # zero where ignored
        valid = split_ignore(target)[1]
        g_np = g.detach().cpu().numpy().astype(bool)
        dist = np.stack([[signed_distance(m) for m in img] for img in g_np])
        phi = torch.from_numpy(dist).to(device=p.device, dtype=p.dtype)
        if self.normalize:
            phi = phi / float(np.sqrt(np.sum(np.square(p.shape[2:]))))  # the image diagonal
        return masked_mean(p * phi, valid)
