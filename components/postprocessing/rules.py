"""Connected-component postprocessing rules per foreground class, and the chosen decision.

A rule acts on one foreground class ``c`` of an integer label map: the voxels of ``c`` are split
into connected components (``scipy.ndimage.label`` with ``generate_binary_structure(ndim,
connectivity)``), and the components the rule drops become background 0. Rules:

- ``none``: keep everything.
- ``largest_component``: keep only the largest component (ties: the first in C scan order).
- ``min_size:N``: drop every component of fewer than ``N`` voxels.

Component sizes are counted on the whole map (a region-of-interest mask plays no part in the
decision; it only limits which voxels a metric counts). Classes do not interact: a rule only
removes voxels of its own class, so the order in which classes are processed does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
from scipy import ndimage

RuleKind = Literal["none", "largest_component", "min_size"]
RULE_KINDS: tuple[str, ...] = ("none", "largest_component", "min_size")
# Candidate minimum component sizes, in voxels of the model's grid. Roughly x4-5 apart so that each
# candidate removes a clearly different kind of debris: isolated speckle (10 voxels, about a
# 2x2x2 block), small spurious blobs (50), lesion-sized false positives (200) and detached
# organ-sized fragments (1000, about a 10x10x10 block). Few candidates keep the choice on the
# out-of-fold cases from over-fitting their noise. Voxel counts depend on the resolution: pass
# other sizes to :func:`candidate_rules` for very fine or coarse grids.
DEFAULT_MIN_SIZES: tuple[int, ...] = (10, 50, 200, 1000)


@dataclass(frozen=True)
class Rule:
    """One postprocessing rule for one class.

    Attributes:
        kind: ``"none"``, ``"largest_component"`` or ``"min_size"``.
        min_size: Smallest kept component size in voxels (>= 1) for ``min_size``; 0 otherwise.
    """

    kind: RuleKind
    min_size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"rule kind {self.kind!r} is not one of {list(RULE_KINDS)}")
        size_ok = isinstance(self.min_size, int | np.integer) and not isinstance(self.min_size, bool)
        if self.kind == "min_size" and not (size_ok and self.min_size >= 1):
            raise ValueError(f"min_size rule needs an integer min_size >= 1 voxels, got {self.min_size!r}")
        if self.kind != "min_size" and self.min_size != 0:
            raise ValueError(f"rule {self.kind!r} takes no min_size (got {self.min_size!r})")

    @property
    def name(self) -> str:
        """Short name: ``"none"``, ``"largest_component"`` or ``"min_size:N"``."""
        return f"min_size:{int(self.min_size)}" if self.kind == "min_size" else self.kind

    @property
    def rank(self) -> tuple[int, int]:
        """Simplicity order for ties: none, then min_size by increasing N, then largest_component."""
        return {"none": (0, 0), "min_size": (1, int(self.min_size)), "largest_component": (2, 0)}[self.kind]

    @classmethod
    def parse(cls, name: str) -> Rule:
        """The rule named ``name`` (see :attr:`name`).

        Raises:
            ValueError: Unknown name or a bad size.
        """
        if not isinstance(name, str):
            raise ValueError(f"a rule name must be a string, got {name!r}")
        text = name.strip()
        if text in ("none", "largest_component"):
            return cls(cast(RuleKind, text))
        kind, sep, size = text.partition(":")
        if kind == "min_size" and sep and size.strip().isdigit():
            return cls("min_size", int(size))
        raise ValueError(
            f"unknown postprocessing rule {name!r}; expected 'none', 'largest_component' or 'min_size:N' "
            "with N >= 1 voxels"
        )


def candidate_rules(min_sizes: tuple[int, ...] | list[int] = DEFAULT_MIN_SIZES) -> list[Rule]:
    """The rules tried on cross-validation: none, largest_component and min_size:N for each N.

    Args:
        min_sizes: Minimum component sizes in voxels (each >= 1; duplicates dropped).
    """
    sizes = sorted({int(n) for n in min_sizes})
    return [Rule("none"), Rule("largest_component"), *(Rule("min_size", n) for n in sizes)]


def structure(ndim: int, connectivity: int) -> np.ndarray:
    """The neighbourhood of ``scipy.ndimage.label`` for the given connectivity.

    Raises:
        ValueError: ``connectivity`` not an integer in 1..ndim.
    """
    if isinstance(connectivity, bool) or not isinstance(connectivity, int | np.integer):
        raise ValueError(f"connectivity={connectivity!r} must be an integer in 1..{ndim}")
    if not 1 <= connectivity <= max(ndim, 1):
        raise ValueError(f"connectivity={connectivity} must be in 1..{ndim} for {ndim}D label maps")
    return ndimage.generate_binary_structure(ndim, int(connectivity))


def label_components(mask: np.ndarray, connectivity: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a binary mask and their sizes.

    Returns:
        ``(components, sizes)``: component id per voxel (0 = outside the mask, ids 1..n) and the
        voxel count per id (``sizes[0]`` = 0).

    Shape: mask (*S) bool -> components (*S) int, sizes (n + 1,) int64.
    """
    components, n = ndimage.label(mask, structure=structure(mask.ndim, connectivity))
    sizes = np.bincount(components.reshape(-1), minlength=n + 1).astype(np.int64)
    sizes[0] = 0
    return components, sizes


def kept_components(sizes: np.ndarray, rule: Rule) -> np.ndarray:
    """Which components a rule keeps, from their sizes.

    Args:
        sizes: Voxel count per component id, ``sizes[0]`` (background) ignored.
        rule: The rule.

    Returns:
        bool per component id; ``keep[0]`` is always False.

    Shape: sizes (n + 1,) -> (n + 1,).
    """
    keep = np.ones(sizes.shape, dtype=bool)
    if rule.kind == "largest_component" and sizes.size > 1:
        keep[:] = False
        keep[1 + int(np.argmax(sizes[1:]))] = True
    elif rule.kind == "min_size":
        keep = sizes >= rule.min_size
    keep[0] = False
    return keep


def _check_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.asarray(labels)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise ValueError(f"labels must be an integer label map, got dtype {arr.dtype}")
    return arr


def _check_class(cls: int) -> int:
    if isinstance(cls, bool) or not isinstance(cls, int | np.integer) or cls < 1:
        raise ValueError(f"class {cls!r} must be a foreground class index >= 1")
    return int(cls)


def _apply_in_place(out: np.ndarray, cls: int, rule: Rule, connectivity: int) -> None:
    if rule.kind == "none":
        return
    components, sizes = label_components(out == cls, connectivity)
    keep = kept_components(sizes, rule)
    out[~keep[components] & (components > 0)] = 0


def apply_rule(labels: np.ndarray, cls: int, rule: Rule, connectivity: int = 1) -> np.ndarray:
    """Apply one rule to one class; dropped components become background 0.

    Args:
        labels: Integer label map.
        cls: Foreground class (>= 1).
        rule: The rule.
        connectivity: Neighbourhood of a component, 1..ndim.

    Returns:
        A new label map (the input is not modified).

    Raises:
        ValueError: Non-integer labels, class < 1 or bad connectivity.

    Shape: labels (*S) -> (*S).
    """
    out = _check_labels(labels).copy()
    structure(out.ndim, connectivity)
    _apply_in_place(out, _check_class(cls), rule, connectivity)
    return out


@dataclass(frozen=True)
class Postprocessing:
    """The postprocessing decision: one rule per foreground class (a missing class = ``none``).

    Attributes:
        rules: Class index -> rule.
        connectivity: Neighbourhood of a component, 1..ndim of the maps it is applied to.
    """

    rules: dict[int, Rule] = field(default_factory=dict)
    connectivity: int = 1

    def __post_init__(self) -> None:
        for c, rule in self.rules.items():
            _check_class(c)
            if not isinstance(rule, Rule):
                raise ValueError(f"rule for class {c} must be a Rule, got {rule!r}")
        if isinstance(self.connectivity, bool) or not isinstance(self.connectivity, int | np.integer):
            raise ValueError(f"connectivity={self.connectivity!r} must be an integer >= 1")
        if self.connectivity < 1:
            raise ValueError(f"connectivity={self.connectivity} must be >= 1")

    def apply(self, labels: np.ndarray) -> np.ndarray:
        """Apply every class's rule.

        Returns:
            A new label map (the input is not modified).

        Raises:
            ValueError: Non-integer labels or a connectivity above the map's ndim.

        Shape: labels (*S) -> (*S).
        """
        out = _check_labels(labels).copy()
        structure(out.ndim, self.connectivity)
        for c in sorted(self.rules):
            _apply_in_place(out, c, self.rules[c], self.connectivity)
        return out

    def to_json(self) -> dict[str, Any]:
        """``{"connectivity": k, "rules": {"<class>": "<rule name>"}}``."""
        return {
            "connectivity": int(self.connectivity),
            "rules": {str(c): self.rules[c].name for c in sorted(self.rules)},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Postprocessing:
        """Read what :meth:`to_json` wrote.

        Raises:
            ValueError: Not a mapping with exactly ``connectivity`` and ``rules``, a class key
                that is not an integer >= 1, an unknown rule name or a bad connectivity.
        """
        if not isinstance(data, dict) or set(data) != {"connectivity", "rules"}:
            got = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"postprocessing JSON must have exactly the keys ['connectivity', 'rules'], got {got}"
            )
        if not isinstance(data["rules"], dict):
            raise ValueError(
                f"postprocessing JSON: 'rules' must map class -> rule name, got {data['rules']!r}"
            )
        rules: dict[int, Rule] = {}
        for key, name in data["rules"].items():
            text = str(key).strip()
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"postprocessing JSON: class key {key!r} must be an integer >= 1")
            if int(text) in rules:
                raise ValueError(f"postprocessing JSON: class {int(text)} is given twice")
            try:
                rules[int(text)] = Rule.parse(name)
            except ValueError as err:
                raise ValueError(f"postprocessing JSON: class {text}: {err}") from err
        try:
            return cls(rules, data["connectivity"])
        except ValueError as err:
            raise ValueError(f"postprocessing JSON: {err}") from err
