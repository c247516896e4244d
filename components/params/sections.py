"""The sections of params.yaml, one per stage (and the plan's budget), as typed frozen models."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from components.core.layout import RAW_DATA
from components.params.base import AUTO, LossTerm, Named, _Frozen, known

# Mirrors of constants of higher layers (config imports nothing of them); tests check they agree.
MAX_CLASSES = 255  # components.data.regions: mask value 255 marks ignored pixels
NEAR_DUPLICATE_THRESHOLD = 0.82  # components.validation.near_duplicates.DEFAULT_THRESHOLD


class SyntheticConfig(_Frozen):
    """Default dataset: deterministic multi-class phantoms."""

    n_cases: int = Field(default=60, ge=8)
    image_size: int = Field(default=96, ge=32)
    seed: int = 0
    n_patients: int | None = None


class DataConfig(_Frozen):
    """Where the dataset lives and what its labels mean."""

    dir: str = RAW_DATA.as_posix()
    classes: dict[str, int]
    channels: int = Field(default=1, ge=1, le=64)  # 2D: 1 gray or 3 RGB; volumes: modalities
    ignore_label: int | None = Field(default=None, ge=0, le=65535)  # mask value: not annotated
    synthetic: SyntheticConfig = SyntheticConfig()

    @model_validator(mode="after")
    def _ignore_label_free(self) -> DataConfig:
        if not known(self.classes):
            return self
        if self.ignore_label is not None and self.ignore_label in self.classes.values():
            raise ValueError(
                f"data.ignore_label {self.ignore_label} is also a class value; give the ignore label "
                "a mask value that no class uses (e.g. 255)"
            )
        return self

    @field_validator("classes")
    @classmethod
    def _classes_ok(cls, v: dict[str, int]) -> dict[str, int]:
        if not known(v):
            return v
        values = list(v.values())
        if len(values) < 2:
            raise ValueError("declare at least two classes (background and one foreground)")
        if sorted(values) != list(range(len(values))):
            raise ValueError(f"class values must be 0..{len(values) - 1} without gaps, got {sorted(values)}")
        if len(values) > MAX_CLASSES:
            raise ValueError(f"at most {MAX_CLASSES} classes (mask value 255 marks ignored pixels)")
        return v

    @property
    def class_names(self) -> list[str]:
        """Class names ordered by class value."""
        return [n for n, _ in sorted(self.classes.items(), key=lambda kv: kv[1])]

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.classes)


class ValidateConfig(_Frozen):
    """Dataset checks beyond the per-file ones: near-duplicate images (flipped, rotated,
    re-encoded or slightly cropped copies of one case)."""

    near_duplicates: Literal["group", "fail", "ignore"] = "group"  # group: one patient in the splits
    near_duplicate_threshold: float = Field(default=NEAR_DUPLICATE_THRESHOLD, gt=0, le=1)


class IntensityConfig(_Frozen):
    """Intensity normalisation (see components.preprocessing.intensity)."""

    method: Literal["zscore", "minmax", "ct_window", "dtype", "ct"] = "zscore"
    kwargs: dict[str, float] = Field(default_factory=dict)


class SplitConfig(_Frozen):
    """Held-out test set and k folds."""

    n_folds: int = Field(default=5, ge=2)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    seed: int = 0


class ClaheConfig(_Frozen):
    """Contrast-limited adaptive histogram equalisation applied after intensity normalisation."""

    clip_limit: float = Field(default=2.0, gt=0)
    tile_grid: int = Field(default=8, ge=1)


class PreprocessConfig(_Frozen):
    """Spatial handling (network size, or native resolution in patches) and intensity normalisation.

    ``image_size`` applies to resize/pad/letterbox; ``patch`` keeps every image or volume at its
    own resolution (volumes resampled to ``target_spacing``) and trains on ``train.patch_size``.
    """

    image_size: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (96, 96)  # (H, W) px
    spatial_mode: Literal["resize", "pad", "letterbox", "patch"] = "resize"
    target_spacing: Literal["median"] | list[Annotated[float, Field(gt=0)]] | None = None
    crop_nonzero: bool = False
    slice_axis: Literal["coarsest"] | Annotated[int, Field(ge=0, le=2)] = "coarsest"
    intensity: IntensityConfig = IntensityConfig()
    clahe: ClaheConfig | None = None
    splits: SplitConfig = SplitConfig()


class AugmentConfig(_Frozen):
    """albumentations pipeline by transform name + kwargs."""

    seed: int = 0
    transforms: list[Named] = Field(default_factory=list)


class EarlyStoppingConfig(_Frozen):
    """Stop a fold when ``monitor`` has not improved for ``patience`` epochs (0 = off)."""

    monitor: str = "val_dice"
    mode: Literal["max", "min"] = "max"
    patience: int = Field(default=0, ge=0)
    min_delta: float = 0.0


class DDPConfig(_Frozen):
    """Data-parallel training inside each fold (torchrun, one process per GPU; gloo on the CPU)."""

    nproc_per_node: int = Field(default=1, ge=1)  # 1: one process, no DDP
    backend: Literal["auto", "nccl", "gloo"] = "auto"  # auto: nccl with CUDA, else gloo


class TrainConfig(_Frozen):
    """Model, loss, optimisation and loop settings for every fold."""

    model: Named
    loss: list[LossTerm]
    optimizer: Named
    scheduler: Named = Named(name="none")
    augment: AugmentConfig = AugmentConfig()
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=8, ge=1)
    patch_size: list[Annotated[int, Field(ge=4)]] | None = None  # patch mode: 2 or 3 ints
    iterations_per_epoch: int | None = Field(default=None, ge=1)  # patch mode; default 250
    foreground_fraction: float = Field(default=0.333, ge=0, le=1)  # patches forced onto a class (as shipped)
    grad_clip: float | None = Field(default=1.0, gt=0)
    grad_accum: int = Field(default=1, ge=1)
    class_aware_sampling: bool = False
    folds: list[int] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = False  # bf16 autocast in training, on CUDA or the CPU (float32 master weights)
    num_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"  # auto: from cores and device
    val_every: int = Field(default=1, ge=1)  # validate every N epochs (and after the last one)
    channels_last: bool = False  # channels-last memory format (faster convolutions on some devices)
    compile: bool = False  # torch.compile the training forward pass (validation stays eager)
    # where the folds train: one after another, or as task runs on a Dask cluster (its address
    # is environment, SEGFLOW_DASK_ADDRESS; none: a LocalCluster, one worker per fold and core)
    executor: Literal["sequential", "dask"] = "sequential"
    ddp: DDPConfig = DDPConfig()
    seed: int = 0

    @field_validator("loss")
    @classmethod
    def _loss_non_empty(cls, v: list[LossTerm]) -> list[LossTerm]:
        if known(v) and not v:
            raise ValueError("give at least one loss term, e.g. [{name: dice}, {name: ce}]")
        return v

    @model_validator(mode="after")
    def _ddp_compatible(self) -> TrainConfig:
        n = self.ddp.nproc_per_node
        if n == 1 or not known(self.batch_size):
            return self
        if self.batch_size % n:
            raise ValueError(
                f"train.batch_size {self.batch_size} must be a multiple of train.ddp.nproc_per_node {n} "
                "(each process takes batch_size / nproc_per_node items per step)"
            )
        if self.executor != "sequential":
            raise ValueError(
                "train.ddp.nproc_per_node > 1 needs train.executor 'sequential': a fold's DDP processes "
                "take the host's GPUs, which Dask would also hand out one per fold; choose one"
            )
        if self.class_aware_sampling:
            raise ValueError("train.class_aware_sampling is not supported with train.ddp.nproc_per_node > 1")
        return self


class EvaluateConfig(_Frozen):
    """Fold evaluation settings."""

    connectivity: int = Field(default=1, ge=1, le=3)
    surface_tolerance: float = Field(default=1.0, ge=0)
    # mm per pixel (H, W) or voxel (Z, Y, X); None: the files' own spacing (volumes) or pixels (2D)
    spacing: list[Annotated[float, Field(gt=0)]] | None = Field(default=None, min_length=2, max_length=3)
    worst_cases: int = Field(default=6, ge=0)
    overlap: float = Field(default=0.5, ge=0, lt=1)  # patch mode: sliding windows (fold and test scoring)
    window_batch: int = Field(default=4, ge=1)  # patch mode: windows per forward pass
    postprocess: Literal["cv", "none"] = "cv"  # cv: connected-component rules kept where CV Dice gains


class EnsembleConfig(_Frozen):
    """Fold ensembling, TTA and the promotion gate."""

    tta: bool = True
    tta_axes: list[Annotated[int, Field(ge=0, le=2)]] | None = None  # patch mode; None = every axis
    mode: Literal["mean", "vote"] = "mean"  # fold ensemble: mean probabilities or majority vote
    registered_model: str = "segflow"
    gate_metric: Literal["dice"] = "dice"


DURATION = re.compile(
    r"^\s*(?:(?P<h>\d+(?:\.\d+)?)\s*h)?\s*(?:(?P<m>\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(?P<s>\d+(?:\.\d+)?)\s*s)?\s*$"
)


def duration_seconds(text: str) -> float:
    """``"90m"``, ``"2h"``, ``"1h30m"``, ``"45s"`` -> seconds.

    Raises:
        ValueError: Not a duration of that form, or zero.
    """
    match = DURATION.match(text)
    if not text.strip() or not match or not any(match.groupdict().values()):
        raise ValueError(f"expected a duration such as 90m, 2h, 1h30m or 45s, got {text!r}")
    hours, minutes, seconds = (float(match[k] or 0) for k in ("h", "m", "s"))
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"a time budget must be longer than zero, got {text!r}")
    return total


class PlanConfig(_Frozen):
    """What the plan stage plans for: the device, its memory and the time the whole run may take.

    ``auto``: the device this machine has (CUDA when available, else the CPU), its memory, and a
    stated default time per device (components/planning/budget.py).
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    memory_gb: Annotated[float, Field(gt=0)] | Literal["auto"] = "auto"
    time_budget: str = "auto"  # e.g. 90m, 2h, 1h30m: the whole run, validate to registration
    configurations: Literal["auto"] | list[Literal["2d", "3d"]] = "auto"  # volumes: which to train

    @field_validator("time_budget")
    @classmethod
    def _duration(cls, v: str) -> str:
        if v != AUTO:
            duration_seconds(v)
        return v

    @field_validator("configurations")
    @classmethod
    def _configurations(cls, v: Any) -> Any:
        if known(v) and (not v or len(set(v)) != len(v)):
            raise ValueError(f"give each configuration once, e.g. [3d] or [3d, 2d]; got {v}")
        return v


class TrackingConfig(_Frozen):
    """MLflow experiment (one per dataset). The tracking URI comes from MLFLOW_TRACKING_URI."""

    experiment: str = "segflow"
