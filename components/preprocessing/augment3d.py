"""3D augmentation pipelines built from params (``train.augment.transforms`` + a seed).

A pipeline maps one training patch, ``image`` float32 ``(C, Z, Y, X)`` and ``mask`` uint8 class
indices ``(Z, Y, X)``, to a patch of the same shapes and dtypes. Only the transforms registered in
:data:`AUGMENTATIONS_3D` may be named, each under its library's own name with that library's own
arguments (so the library's documentation applies as is):

* albumentations 2's 3D transforms that keep the patch size (``CoarseDropout3D``, ``CubicSymmetry``;
  its 3D crops and pads change the size and are left out). They take ``volume`` ``(D, H, W, C)`` and
  ``mask3d`` ``(D, H, W)``; the axes are moved here. ``CubicSymmetry`` permutes axes, so on a
  non-cubic patch it would silently change the shape: it raises instead.
* MONAI's random transforms for what albumentations lacks in 3D, used as dictionary transforms so
  that image and mask share one random draw. Spatial ones resample the mask with nearest
  interpolation (whatever ``mode`` the image uses) and keep the patch size (``keep_size`` and
  ``spatial_size`` are set here); intensity ones are applied to the image only.

Strictness follows the 2D registry (:mod:`components.preprocessing.augment`): an unknown name, an
argument the constructor does not take, a missing required one or an invalid value is an
:class:`AugmentationError` naming ``train.augment.transforms[i]``, the transform and the accepted
arguments. Arguments segflow sets itself (``keys``, ``strict``, ``lazy``, ``device``, ``dtype``, ...)
are not accepted.

Labels stay labels: nearest interpolation only copies existing values, and the default padding
modes (``border`` / ``edge`` / ``reflection``) do too; ``padding_mode="zeros"`` or a ``fill_mask`` adds
that value (0 is background). Randomness: one ``numpy.random.RandomState(seed)`` draws one seed per
transform (albumentations' ``Compose`` seed, MONAI's ``set_random_state``), so the same seed gives the
same output sequence. DataLoader workers hold copies of one pipeline; give each its own stream with
:meth:`Augment3D.reseed` (e.g. ``seed + worker_id``).
"""

from __future__ import annotations

import copy
import enum
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import albumentations as A
import monai.transforms as mt
import numpy as np
from monai.utils import convert_to_numpy

from components.core.errors import UserError
from components.core.registry import Registry, RegistryError
from components.preprocessing.augment import augmentation_state, set_augmentation_state

_WHERE = "train.augment.transforms"
# Constructor arguments that segflow sets (or leaves at their default) on every transform.
_RESERVED = frozenset({"self", "keys", "allow_missing_keys", "strict", "lazy", "device"})
_SEED_MAX = 2**31 - 1


class AugmentationError(UserError, ValueError):
    """A bad 3D augmentation spec in params, or a patch a transform cannot take."""


class _Step(Protocol):
    """One built transform: maps a patch, re-seeds its random stream, says what it is."""

    entry: dict[str, Any]  # {"name": registered name, "kwargs": resolved arguments}

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def reseed(self, seed: int) -> None: ...

    def random_state(self) -> list[Any]: ...

    def set_random_state(self, state: list[Any]) -> None: ...


@dataclass(frozen=True)
class _Spec:
    """How one registered name is built.

    Attributes:
        name: Registered (library) name.
        cls: albumentations 3D transform or MONAI dictionary transform.
        description: One line for ``segflow list``.
        spatial: MONAI only: the transform moves voxels, so it is applied to the mask too.
        fixed: Arguments segflow sets; not accepted from params.
        label: MONAI per-key arguments whose mask value is forced (``mode="nearest"``).
        cubic: Needs equal spatial sizes (it permutes axes).
    """

    name: str
    cls: type[Any]
    description: str
    spatial: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)
    label: Mapping[str, Any] = field(default_factory=dict)
    cubic: bool = False

    @property
    def is_albumentations(self) -> bool:
        """True for albumentations transforms, False for MONAI ones."""
        return issubclass(self.cls, A.BasicTransform)

    def _params(self) -> dict[str, inspect.Parameter]:
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = inspect.signature(self.cls).parameters.values()
        return {p.name: p for p in params if p.kind in kinds and p.name not in _RESERVED | set(self.fixed)}

    def accepted(self) -> list[str]:
        """Sorted argument names params may set."""
        return sorted(self._params())

    def resolve(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Every accepted argument with its value (given or default), JSON-ready."""
        params = self._params()
        return {
            n: _jsonable(kwargs.get(n, p.default))
            for n, p in params.items()
            if n in kwargs or p.default is not inspect.Parameter.empty
        }

    def __call__(self, kwargs: Mapping[str, Any], where: str) -> _Step:
        """Build the step; ``where`` names the params entry (``train.augment.transforms[i]``) in errors.

        Raises:
            AugmentationError: Unknown or missing argument, or an invalid value.
        """
        where = f"{where} ({self.name})"
        params = self._params()
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise AugmentationError(
                f"{where}: unknown argument(s) {unknown}; accepted arguments: {self.accepted()}"
            )
        missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in kwargs]
        if missing:
            raise AugmentationError(
                f"{where}: missing required argument(s) {missing}; accepted arguments: {self.accepted()}"
            )
        try:
            step = self._construct(dict(kwargs), where)
        except (TypeError, ValueError) as err:
            raise AugmentationError(f"{where}: invalid arguments {dict(kwargs)}: {err}") from err
        step.entry = {"name": self.name, "kwargs": self.resolve(kwargs)}
        return step

    def _construct(self, kwargs: dict[str, Any], where: str) -> _Step:
        signature = inspect.signature(self.cls).parameters
        if self.is_albumentations:
            strict = {"strict": True} if "strict" in signature else {}
            return _AlbumentationsStep(self.cls(**kwargs, **strict, **self.fixed), where, self.cubic)
        keys = ("image", "label") if self.spatial else ("image",)
        for arg, label_value in self.label.items():  # (image value, mask value)
            kwargs[arg] = (kwargs.get(arg, signature[arg].default), label_value)
        extra = {k: v for k, v in (("lazy", False), ("device", None)) if k in signature}
        step = _MonaiStep(self.cls(keys=keys, **kwargs, **extra, **self.fixed), self.spatial)
        step.check()
        return step


def _jsonable(value: Any) -> Any:
    """Plain JSON types for logging (enums by value, tuples as lists, NumPy scalars as Python)."""
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value if value is None or isinstance(value, bool | int | float | str) else repr(value)


class _AlbumentationsStep:
    """An albumentations 3D transform on ``volume`` (D, H, W, C) / ``mask3d`` (D, H, W)."""

    def __init__(self, transform: A.BasicTransform, where: str, cubic: bool) -> None:
        self.entry: dict[str, Any] = {}
        self._compose = A.Compose([transform], strict=True)
        self._where = where
        self._cubic = cubic

    def reseed(self, seed: int) -> None:
        """Restart the random stream from ``seed``."""
        self._compose.set_random_seed(seed)

    def random_state(self) -> list[Any]:
        """The generator states of the compose and its transform, plain data."""
        return augmentation_state(self._compose)

    def set_random_state(self, state: list[Any]) -> None:
        """Restore :meth:`random_state` in place."""
        set_augmentation_state(self._compose, state)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shape: image (C, Z, Y, X), mask (Z, Y, X) -> same."""
        if self._cubic and len(set(mask.shape)) != 1:
            raise AugmentationError(
                f"{self._where}: CubicSymmetry needs a cubic patch (equal Z, Y, X sizes), got {mask.shape}; "
                "use a cubic patch size or RandFlip / RandRotate instead"
            )
        out = self._compose(volume=np.moveaxis(image, 0, -1), mask3d=mask)
        return np.moveaxis(out["volume"], -1, 0), out["mask3d"]


class _MonaiStep:
    """A MONAI dictionary transform on ``image`` (C, Z, Y, X) and, if spatial, ``label`` (1, Z, Y, X)."""

    def __init__(self, transform: mt.RandomizableTransform, spatial: bool) -> None:
        self.entry: dict[str, Any] = {}
        self._transform = transform
        self._spatial = spatial

    def reseed(self, seed: int) -> None:
        """Restart the random stream from ``seed``."""
        self._transform.set_random_state(seed=seed)

    def random_state(self) -> list[Any]:
        """Every ``RandomState`` of the transform and its inner transforms, plain data, in a fixed order."""
        out = []
        for rs in _random_states(self._transform):
            st = rs.get_state(legacy=False)
            out.append({**st, "state": {"key": st["state"]["key"].tolist(), "pos": st["state"]["pos"]}})
        return out

    def set_random_state(self, state: list[Any]) -> None:
        """Restore :meth:`random_state` in place."""
        states = _random_states(self._transform)
        if len(states) != len(state):
            raise ValueError(f"random state of {len(state)} generators for a transform with {len(states)}")
        for rs, st in zip(states, state, strict=True):
            key = np.asarray(st["state"]["key"], dtype=np.uint32)
            rs.set_state({**st, "state": {"key": key, "pos": int(st["state"]["pos"])}})

    def check(self) -> None:
        """Run a copy once on a tiny patch: MONAI checks most values (modes, ...) only when called.

        Raises:
            ValueError: The transform fails with its arguments.
        """
        probe = copy.deepcopy(self._transform)
        probe.prob = 1.0  # the dictionary wrapper draws whether to apply; its inner transform always does
        try:
            _MonaiStep(probe, self._spatial)(
                np.zeros((1, 8, 8, 8), np.float32), np.zeros((8, 8, 8), np.uint8)
            )
        except Exception as err:  # any failure here is a bad argument; the chain keeps the cause
            raise ValueError(f"{type(err).__name__}: {err}") from err

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shape: image (C, Z, Y, X), mask (Z, Y, X) -> same."""
        data = {"image": image, "label": mask[None].astype(np.float32)} if self._spatial else {"image": image}
        out = self._transform(data)
        if self._spatial:
            mask = np.rint(convert_to_numpy(out["label"])[0]).astype(np.uint8)
        return convert_to_numpy(out["image"]), mask


def _random_states(obj: Any, seen: set[int] | None = None) -> list[np.random.RandomState]:
    """The ``RandomState`` objects a MONAI transform holds (``.R`` of it and its inner transforms)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, np.random.RandomState):
        return [obj]
    if isinstance(obj, list | tuple):
        return [rs for v in obj for rs in _random_states(v, seen)]
    if not type(obj).__module__.startswith("monai.") or not hasattr(obj, "__dict__"):
        return []
    return [rs for v in vars(obj).values() for rs in _random_states(v, seen)]


class _CoarseDropout3D(A.CoarseDropout3D):
    """``CoarseDropout3D`` whose ``mask3d`` honours ``fill_mask``.

    albumentations 2.0.8 checks ``fill_mask`` only for the 2D ``mask`` target: ``mask3d`` goes through
    ``apply_to_volume`` and gets the *image's* ``fill``, even with ``fill_mask=None`` (which should
    leave the mask alone), so a fill of 3 would write label 3. Route ``mask3d`` to ``apply_to_mask``.
    """

    def apply_to_mask3d(self, mask3d: np.ndarray, holes: np.ndarray, **params: Any) -> np.ndarray:
        """Fill the holes with ``fill_mask``, or keep the mask when it is None."""
        return self.apply_to_mask(mask3d, holes, **params)


_F32 = {"dtype": np.float32}
_NEAREST = {"mode": "nearest"}
_SPECS: tuple[_Spec, ...] = (
    _Spec("CoarseDropout3D", _CoarseDropout3D, "Blank random cuboids (image only unless fill_mask is set)"),
    _Spec(
        "CubicSymmetry", A.CubicSymmetry, "Random one of the 48 cube symmetries (cubic patches)", cubic=True
    ),
    _Spec("RandFlip", mt.RandFlipd, "Mirror along spatial_axis (0=Z, 1=Y, 2=X; None: all)", spatial=True),
    _Spec(
        "RandRotate",
        mt.RandRotated,
        "Rotate: range_x / range_y / range_z radians about axis Z / Y / X (range_x is in-plane)",
        spatial=True,
        fixed={"keep_size": True, **_F32},
        label=_NEAREST,
    ),
    _Spec(
        "RandZoom",
        mt.RandZoomd,
        "Scale by a random factor, cropped / padded back to the patch size",
        spatial=True,
        fixed={"keep_size": True, **_F32},
        label={**_NEAREST, "align_corners": None},
    ),
    _Spec(
        "Rand3DElastic",
        mt.Rand3DElasticd,
        "Elastic deformation (sigma_range, magnitude_range in voxels) with an optional affine",
        spatial=True,
        fixed={"spatial_size": None},
        label=_NEAREST,
    ),
    _Spec(
        "RandAffine",
        mt.RandAffined,
        "Rotate, shear, translate and scale in one resampling",
        spatial=True,
        fixed={"spatial_size": None, "cache_grid": False},
        label=_NEAREST,
    ),
    _Spec("RandAdjustContrast", mt.RandAdjustContrastd, "Random gamma curve (image only)"),
    _Spec("RandGaussianNoise", mt.RandGaussianNoised, "Additive Gaussian noise (image only)", fixed=_F32),
    _Spec(
        "RandGaussianSmooth",
        mt.RandGaussianSmoothd,
        "Gaussian blur, random per-axis sigma in voxels (image only)",
    ),
    _Spec(
        "RandScaleIntensity",
        mt.RandScaleIntensityd,
        "Brightness: multiply by 1 + factor (image only)",
        fixed=_F32,
    ),
    _Spec(
        "RandShiftIntensity",
        mt.RandShiftIntensityd,
        "Add a random offset (image only)",
        fixed={"factor_key": None, "meta_keys": None, "meta_key_postfix": "meta_dict"},
    ),
    _Spec(
        "RandSimulateLowResolution",
        mt.RandSimulateLowResolutiond,
        "Downsample by zoom_range, upsample back (image only)",
    ),
)

AUGMENTATIONS_3D: Registry[_Step] = Registry("3D augmentation")
for _spec in _SPECS:
    AUGMENTATIONS_3D.add(_spec.name, _spec, _spec.description)


class Augment3D:
    """A built 3D augmentation pipeline; call it as ``aug(image, mask)``.

    Attributes:
        seed: The seed the pipeline was built with.
    """

    def __init__(self, steps: Sequence[_Step], seed: int) -> None:
        self._steps = list(steps)
        self.seed = int(seed)
        self.reseed(self.seed)

    @property
    def transforms(self) -> list[dict[str, Any]]:
        """Resolved ``[{"name", "kwargs"}]`` in order, every argument (defaults included)."""
        return [{"name": s.entry["name"], "kwargs": dict(s.entry["kwargs"])} for s in self._steps]

    def reseed(self, seed: int) -> None:
        """Restart every transform's random stream from ``seed`` (one RandomState draws their seeds)."""
        rs = np.random.RandomState(int(seed))
        for step in self._steps:
            step.reseed(int(rs.randint(_SEED_MAX)))

    def random_state(self) -> list[list[Any]]:
        """Where every transform's random stream has got to, as plain data (per step, in order)."""
        return [step.random_state() for step in self._steps]

    def set_random_state(self, state: list[list[Any]]) -> None:
        """Restore :meth:`random_state` (of a pipeline built from the same transforms)."""
        if len(state) != len(self._steps):
            raise ValueError(f"random state of {len(state)} steps for a pipeline of {len(self._steps)}")
        for step, st in zip(self._steps, state, strict=True):
            step.set_random_state(st)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augment one patch.

        Shape:
            image (C, Z, Y, X) float32, mask (Z, Y, X) uint8 -> same shapes and dtypes.

        Raises:
            ValueError: Shapes that do not match.
            AugmentationError: A transform cannot take the patch (CubicSymmetry on a non-cubic one).
        """
        if image.ndim != 4 or mask.ndim != 3 or image.shape[1:] != mask.shape:
            raise ValueError(
                f"expected image (C, Z, Y, X) and mask (Z, Y, X), got {image.shape} and {mask.shape}"
            )
        img = np.ascontiguousarray(image, dtype=np.float32)
        msk = np.ascontiguousarray(mask, dtype=np.uint8)
        for step in self._steps:
            img, msk = step(img, msk)
            img = np.ascontiguousarray(img, dtype=np.float32)
            msk = np.ascontiguousarray(msk, dtype=np.uint8)
        return img, msk


def build_augmentation_3d(transforms: Sequence[Mapping[str, Any]], seed: int) -> Augment3D:
    """Build the 3D training augmentation pipeline.

    Args:
        transforms: ``[{"name": "RandFlip", "kwargs": {"prob": 0.5, "spatial_axis": 2}}, ...]``
            (empty: identity), applied in order.
        seed: Random seed (the same seed gives the same output sequence for the same inputs).

    Returns:
        An :class:`Augment3D`.

    Raises:
        AugmentationError: Malformed entry, unknown name (lists the valid names, suggests close
            ones), unknown / missing argument (lists the accepted ones) or invalid value.
    """
    if isinstance(transforms, Mapping | str):
        raise AugmentationError(f"{_WHERE} must be a list of {{name, kwargs}} mappings, got {transforms!r}")
    steps = []
    for i, spec in enumerate(transforms):
        where = f"{_WHERE}[{i}]"
        if not isinstance(spec, Mapping) or "name" not in spec or set(spec) - {"name", "kwargs"}:
            raise AugmentationError(f"{where}: expected {{name: <transform>, kwargs: {{...}}}}, got {spec!r}")
        kwargs = spec.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise AugmentationError(f"{where}: kwargs must be a mapping, got {kwargs!r}")
        try:
            factory = AUGMENTATIONS_3D.get(spec["name"])
        except RegistryError as err:
            raise AugmentationError(f"{where}: {err}") from None
        steps.append(factory(kwargs, where))
    return Augment3D(steps, seed)


def describe_augmentation_3d(aug: Augment3D) -> dict[str, Any]:
    """Resolved transforms (every argument, defaults included) plus seed, JSON-serialisable.

    ``build_augmentation_3d(d["transforms"], d["seed"])`` rebuilds the same pipeline.
    """
    return {"transforms": aug.transforms, "seed": aug.seed}
