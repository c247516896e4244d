"""Per-item augmentation seeds: item ``i`` of epoch ``e`` is augmented alike wherever it is drawn.

A sequential random stream would give different augmentations with and without DataLoader worker
processes (each worker holds a copy of the stream) and would need its state saved to resume. With
a seed per (pipeline seed, epoch, index), the worker count changes speed only and a resumed epoch
draws what an uninterrupted one draws.
"""

from __future__ import annotations

import random
from typing import Any

import albumentations as A
import numpy as np


def augment_holder(augment: Any) -> Any:
    """The object that holds an augmentation's generators: an ``A.Compose``, an ``Augment3D``, or
    the ``A.Compose`` a patch-mode wrapper function closes over (None: no randomness to keep)."""
    if augment is None or isinstance(augment, A.Compose) or hasattr(augment, "random_state"):
        return augment
    for cell in getattr(augment, "__closure__", None) or ():
        content = cell.cell_contents
        if isinstance(content, A.Compose) or hasattr(content, "set_random_state"):
            return content
    return None


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one item of one epoch (independent streams for neighbouring items)."""
    return int(np.random.SeedSequence([int(seed) % 2**32, int(epoch), int(index)]).generate_state(1)[0])


def _compose_owners(aug: Any) -> list[Any]:
    out = [aug]
    for t in getattr(aug, "transforms", []):
        out += _compose_owners(t)
    return out


def reseed(augment: Any, seed: int) -> None:
    """Restart the augmentation's random streams from ``seed``: one distinct stream per transform.

    (albumentations' own ``set_random_seed`` gives every transform the same seed, so their first
    draws, e.g. each ``p`` test, would coincide on every item.)
    """
    holder = augment_holder(augment)
    if holder is None:
        return
    if not isinstance(holder, A.Compose):
        holder.reseed(seed)  # the 3D pipeline draws one seed per transform itself
        return
    owners = _compose_owners(holder)
    for owner, s in zip(owners, np.random.SeedSequence(seed).generate_state(len(owners)), strict=True):
        owner.random_generator = np.random.default_rng(int(s))
        owner.py_random = random.Random(int(s))
