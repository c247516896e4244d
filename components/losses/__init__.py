"""Segmentation losses selected by name and combined from params (``train.loss``).

``build_loss`` returns the weighted sum of its terms. Common compound forms:

* Dice + CE (nnU-Net): ``[{"name": "dice"}, {"name": "ce"}]``.
* "1 + BCE - Dice": ``[{"name": "bce"}, {"name": "dice"}]`` (the dice term is 1 - Dice, so the sum is
  exactly 1 + BCE - Dice).
* "BCE - log(Dice)": ``[{"name": "bce"}, {"name": "log_dice"}]``.
* Weights may be negative; a constant offset never changes gradients, so "BCE - Dice" and
  "1 + BCE - Dice" train identically.

Deep supervision: pass a list of logits (main output first); term losses are averaged with weights
1/2**i normalised to sum 1 (nnU-Net), targets nearest-downsampled to any lower-resolution output.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from components.losses import boundary, lovasz, overlap, pixelwise  # noqa: F401  (register)
from components.losses.base import LOSSES

__all__ = ["LOSSES", "CompoundLoss", "build_loss"]

_TERM_KEYS = {"name", "weight", "kwargs"}


class CompoundLoss(nn.Module):
    """Weighted sum of loss terms, with optional deep-supervision averaging.

    Args:
        terms: (name, weight, module) triples.
        deep_supervision_weights: Weights for the outputs of a list input (default 1/2**i, normalised).

    Attributes:
        last_values: Unweighted value (detached tensor) of each term at the last call (main output).
    """

    def __init__(
        self,
        terms: Sequence[tuple[str, float, nn.Module]],
        deep_supervision_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.names = [n for n, _, _ in terms]
        self.weights = [float(w) for _, w, _ in terms]
        self.terms = nn.ModuleList(m for _, _, m in terms)
        self.ds_weights = None if deep_supervision_weights is None else list(deep_supervision_weights)
        self.last_values: dict[str, torch.Tensor] = {}

    def _single(self, logits: torch.Tensor, target: torch.Tensor, record: bool) -> torch.Tensor:
        # losses are computed in float32 even under bf16 autocast: soft Dice sums over many pixels and
        # sigmoid / products are not autocast to float32 by torch
        logits = logits.float()
        total = logits.new_zeros(())
        for name, w, term in zip(self.names, self.weights, self.terms, strict=True):
            value = term(logits, target)
            if record:
                self.last_values[name] = value.detach()  # no host sync here; float() when logging
            total = total + w * value
        return total

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Loss of one logits tensor, or the weighted mean over deep-supervision outputs.

        Shape:
            outputs (N, C, H, W) or list of (N, C, h_i, w_i); target (N, H, W) int64 -> scalar.
        """
        if isinstance(outputs, torch.Tensor):
            return self._single(outputs, target, True)
        outputs = list(outputs)
        ws = self.ds_weights or [0.5**i for i in range(len(outputs))]
        if len(ws) != len(outputs):
            raise ValueError(f"{len(outputs)} deep-supervision outputs but {len(ws)} weights")
        norm, total = sum(ws), outputs[0].new_zeros(())
        for i, (w, out) in enumerate(zip(ws, outputs, strict=True)):
            t = target
            if i > 0 and out.shape[2:] != target.shape[1:]:  # auxiliary output at lower resolution
                t = F.interpolate(target[:, None].float(), size=out.shape[2:], mode="nearest")[:, 0].long()
            total = total + (w / norm) * self._single(out, t, i == 0)
        return total


def _build_term(
    index: int, term: Mapping[str, Any], num_classes: int, freqs: Sequence[float] | None
) -> tuple:
    where = f"loss term {index}"
    if not isinstance(term, Mapping) or "name" not in term:
        raise ValueError(
            f"{where}: expected a mapping with 'name' (and optional 'weight', 'kwargs'), got {term!r}"
        )
    extra = set(term) - _TERM_KEYS
    if extra:
        raise ValueError(
            f"{where} ('{term['name']}'): unknown key(s) {sorted(extra)}; allowed {sorted(_TERM_KEYS)}"
        )
    name, weight, kwargs = term["name"], term.get("weight", 1.0), dict(term.get("kwargs") or {})
    if not isinstance(weight, int | float) or not math.isfinite(weight):
        raise ValueError(f"{where} ('{name}'): weight must be a finite number, got {weight!r}")
    cls = LOSSES.get(name)
    params = inspect.signature(cls).parameters
    auto = {"num_classes": num_classes, "class_frequencies": freqs}
    unknown = sorted(set(kwargs) - set(params) | (set(kwargs) & set(auto)))
    if unknown:
        accepted = sorted(set(params) - set(auto))
        raise ValueError(f"{where} ('{name}'): unknown argument(s) {unknown}; accepted: {accepted}")
    kwargs.update({k: v for k, v in auto.items() if k in params})
    return str(name), float(weight), cls(**kwargs)


def build_loss(
    terms: Sequence[Mapping[str, Any]],
    num_classes: int,
    class_frequencies: Sequence[float] | None = None,
    deep_supervision_weights: Sequence[float] | None = None,
) -> CompoundLoss:
    """Build the weighted sum of registered losses.

    Args:
        terms: ``[{"name": "dice", "weight": 1.0, "kwargs": {...}}, ...]``.
        num_classes: Number of logit channels C (1 = binary sigmoid output).
        class_frequencies: Per-class pixel fraction of the training split (for weighted CE).
        deep_supervision_weights: Optional weights of deep-supervision outputs (main first).

    Returns:
        A module: ``loss(logits_or_list, target) -> scalar``.

    Raises:
        ValueError: Empty terms, malformed term, bad weight or unknown argument (naming the term).
        RegistryError: Unknown loss name.
    """
    if isinstance(terms, Mapping) or not terms:
        raise ValueError(f"loss terms must be a non-empty list of mappings, got {terms!r}")
    built = [_build_term(i, t, num_classes, class_frequencies) for i, t in enumerate(terms)]
    return CompoundLoss(built, deep_supervision_weights)
