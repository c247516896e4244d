"""Build everything params.yaml names, cheaply on the CPU, before a run writes or deletes anything.

``segflow run`` and the Prefect pipeline flow call :func:`preflight` on the merged params before
params.yaml is written and before ``dvc repro`` starts: an unknown model name, a bad optimiser
argument or a missing dataset folder is then one error naming the params key, instead of a train
stage failure after validate and preprocess have replaced their outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from components.core.registry import RegistryError
from components.data.discovery import CasePair, DiscoveryError, discover
from components.data.raw_layout import dataset_folders
from components.io import IMAGE_SUFFIXES, is_volume, read_volume_header
from components.losses import build_loss
from components.models import build_model
from components.params.config import ConfigError, Params, known
from components.preprocessing.augment import build_augmentation, build_transform
from components.training.native_data import native_model_kwargs
from components.training.optim import build_optimizer
from components.training.schedulers import build_scheduler


def _listing(paths: list[Path], root: Path) -> str:
    shown = [p.relative_to(root).as_posix() for p in paths[:5]]
    return ", ".join(shown) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")


def _spatial_shape(path: Path) -> tuple[int, ...] | None:
    """An image's spatial shape from its header only ((H, W) or (Z, Y, X)); None when unreadable."""
    from PIL import Image

    try:
        if is_volume(path):
            shape = read_volume_header(path)[0]
            return shape[-3:]
        with Image.open(path) as im:
            return (im.height, im.width)
    except Exception:  # unreadable: the validate stage names it
        return None


def _patch_problems(pairs: list[CasePair], params: Params) -> list[str]:
    """Patch mode: a ``train.patch_size`` that fits no image (read from the headers)."""
    patch = params.train.patch_size
    if not known(patch, params.preprocess.spatial_mode, params.preprocess.target_spacing):
        return []  # the plan chooses: the plan stage checks what it chose
    if params.preprocess.spatial_mode != "patch" or not patch or params.preprocess.target_spacing:
        return []  # resampled volumes change size: the preprocess stage knows
    shapes = [s for s in (_spatial_shape(p.image) for p in pairs) if s is not None and len(s) == len(patch)]
    if not shapes or any(all(p <= d for p, d in zip(patch, s, strict=True)) for s in shapes):
        return []
    largest = max(shapes, key=lambda s: int(np.prod(s)))
    fitting = [min(p, d) for p, d in zip(patch, largest, strict=True)]
    return [
        f"train.patch_size: {list(patch)} is larger than every image in data.dir (the largest is "
        f"{' x '.join(map(str, largest))}); expected a patch no larger than the images, e.g. {fitting}"
    ]


def _pairing_problems(path: Path, params: Params) -> list[str]:
    """What file listing alone shows (nothing decoded): pairing, cases.csv, links, too few cases."""
    try:
        found = discover(path)
    except DiscoveryError as err:
        return [f"data.dir: {err}"]
    problems: list[str] = []
    folders = dataset_folders(path)  # images/ + masks/, or an MSD / nnU-Net imagesTr/ + labelsTr/
    images, masks = folders.images, folders.masks
    if found.unpaired_images:
        mask = ".nii.gz" if all(is_volume(p) for p in found.unpaired_images) else ".png"  # the image's kind
        channel = " (less an nnU-Net _0000 channel suffix)" if folders.layout != "plain" else ""
        problems.append(
            f"data.dir: {len(found.unpaired_images)} image(s) without a mask: "
            f"{_listing(found.unpaired_images, path)}; expected {masks}/<stem>{mask} with the image's file "
            f"stem{channel} for every image (or remove the image)"
            + (f"; {found.skipped_masks}" if found.skipped_masks else "")
        )
    if found.unpaired_masks:
        problems.append(
            f"data.dir: {len(found.unpaired_masks)} mask(s) without an image: "
            f"{_listing(found.unpaired_masks, path)}; expected {images}/<stem>.<png|jpg|tif|nii.gz|...> with "
            "the mask's file stem for every mask (or remove the mask)"
        )
    if not found.pairs:
        if not problems:
            problems.append(
                f"data.dir: {path} holds no image/mask pairs ({images}/ and {masks}/ are empty or hold no "
                f"accepted files: {', '.join(IMAGE_SUFFIXES)}); expected {images}/<case>.png with "
                f"{masks}/<case>.png"
            )
        return problems
    problems += _patch_problems(found.pairs, params)
    split = params.preprocess.splits
    official = any(pair.split == "test" for pair in found.pairs)
    patients = {pair.patient_id for pair in found.pairs if pair.split != "test"}
    with_test = split.test_fraction > 0 and not official
    needed = split.n_folds + int(with_test)
    if len(patients) < needed:
        problems.append(
            f"preprocess.splits.n_folds: {split.n_folds} folds"
            + (f" plus a test set (test_fraction {split.test_fraction})" if with_test else "")
            + f" need at least {needed} patients, but {path} holds {len(found.pairs)} case(s) from "
            f"{len(patients)} patient(s) for them; lower preprocess.splits.n_folds / test_fraction "
            "or add data"
        )
    return problems


def check_data_dir(params: Params, root: Path | None = None) -> list[str]:
    """Problems with ``data.dir`` that listing its files shows (relative paths are taken from
    ``root``, default the cwd): a missing folder, images/ or masks/ (imagesTr/ or labelsTr/ in an
    MSD / nnU-Net folder), both layouts at once; unpaired files, two files with one stem, a
    malformed ``cases.csv``, links out of the folder (see ``discover``); fewer patients than folds
    (+ test set). Decoding the files is the validate stage's job."""
    raw = Path(params.data.dir)
    path = raw if raw.is_absolute() or root is None else root / raw
    expected = (
        "a dataset folder holding images/ and masks/ (paired by file stem), or an MSD / nnU-Net "
        "folder's imagesTr/ and labelsTr/"
    )
    if not path.exists():
        return [f"data.dir: {path} does not exist; expected {expected}"]
    if not path.is_dir():
        return [f"data.dir: {path} is not a folder; expected {expected}"]
    try:
        folders = dataset_folders(path)
    except DiscoveryError as err:
        return [f"data.dir: {err}"]
    missing = [f"{sub}/" for sub in (folders.images, folders.masks) if not (path / sub).is_dir()]
    if missing:
        return [f"data.dir: {path} has no {' or '.join(missing)}; expected {expected}"]
    return _pairing_problems(path, params)


def _lookup(tree: Any, dotted: str) -> tuple[bool, Any]:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def dvc_params(dvc_yaml: Path) -> dict[str, list[str]]:
    """Stage -> the params.yaml keys its ``params:`` lists (dotted; sections as their name)."""
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return {}
    keys: dict[str, list[str]] = {}
    for name, stage in stages.items():
        for entry in (stage or {}).get("params") or []:
            if isinstance(entry, str):
                keys.setdefault(str(name), []).append(entry)
            elif isinstance(entry, dict):  # {params.yaml: [keys]} (other files are not ours)
                keys.setdefault(str(name), []).extend(str(k) for k in entry.get("params.yaml") or [])
    return keys


def check_params_keys(raw: Mapping[str, Any], params: Params, dvc_yaml: Path) -> list[str]:
    """Keys that dvc.yaml's stages read but the params file lacks (an older params.yaml).

    The typed params fill defaults, DVC does not: it stops with "Parameters ... are missing".
    Each problem names the key, the stage and the line to add (the default).
    """
    defaults = params.model_dump(mode="json", by_alias=True)
    problems: list[str] = []
    seen: set[str] = set()
    for stage, keys in dvc_params(dvc_yaml).items():
        for key in keys:
            present, _ = _lookup(raw, key)
            if present or key in seen:
                continue
            seen.add(key)
            known, default = _lookup(defaults, key)
            shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("\n...")
            hint = f"; add it with its default: {key}: {shown}" if known else ""
            problems.append(
                f"{key}: missing from the params file, and dvc.yaml's stage {stage} reads it{hint}"
            )
    return problems


def _text_values(kwargs: Mapping[str, Any] | None) -> str:
    """A hint naming kwargs given as text where the builder wanted something else (e.g. a number)."""
    texts = {k: v for k, v in (kwargs or {}).items() if isinstance(v, str)}
    if not texts:
        return ""
    shown = ", ".join(f"{k}={v!r}" for k, v in texts.items())
    return f" ({shown}: given as text; expected a number or a list, e.g. lr: 0.001)"


def _attempt(
    problems: list[str],
    key: str,
    build: Callable[[], Any],
    arg_key: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """``build()``, or None with ``"<key>.name: ..."`` (unknown name) or ``"<arg_key>: ..."`` (default
    ``<key>.kwargs``: anything else) appended to ``problems``.

    Any exception counts: what the registries, torch, smp or albumentations raise for a bad name
    or argument varies (RegistryError, ValueError, TypeError, KeyError, AssertionError...). A
    ``TypeError`` names the ``kwargs`` values given as text, the usual cause (``lr: fast``).
    """
    try:
        return build()
    except RegistryError as err:
        problems.append(f"{key}.name: {err}")
    except Exception as err:
        hint = _text_values(kwargs) if isinstance(err, TypeError) else ""
        problems.append(f"{arg_key or key + '.kwargs'}: {type(err).__name__}: {err}{hint}")
    return None


def _parameters(model: nn.Module | None) -> Iterable[nn.Parameter]:
    """The model's parameters, or a stand-in when the model could not be built."""
    return model.parameters() if model is not None else [nn.Parameter(torch.zeros(1))]


def preflight(params: Params, root: Path | None = None, raw: Mapping[str, Any] | None = None) -> None:
    """Build the model, loss, optimiser, scheduler and augmentation that ``params`` names.

    Everything is built on the CPU with random weights (``encoder_weights`` forced to None, so
    nothing is downloaded); nothing is trained or written.

    Args:
        params: Validated params (e.g. :func:`components.params.edit.merged_params`).
        root: Folder that a relative ``data.dir`` is relative to (the workspace; default cwd).
        raw: The params file's own mapping; with it, keys that ``root/dvc.yaml`` lists but the
            file lacks are problems too (:func:`check_params_keys`).

    Raises:
        ConfigError: One line per problem, each naming the params key (``train.model.name``,
            ``train.optimizer.kwargs``, ``train.loss[1].name``, ``data.dir``...) and the message.
    """
    problems = check_data_dir(params, root)
    dvc_yaml = (root or Path()) / "dvc.yaml"
    if raw is not None and dvc_yaml.is_file():
        problems += check_params_keys(raw, params, dvc_yaml)
    problems += _build_problems(params)
    if problems:
        raise ConfigError(
            "params check failed: " + problems[0]
            if len(problems) == 1
            else "params check failed:\n" + "\n".join(f"  - {p}" for p in problems)
        )


def _build_problems(params: Params) -> list[str]:
    """Build what params names; keys that say ``auto`` are the plan's (it checks its own choices),
    and stand-ins (1 channel, 2 classes, an SGD) take the place of planned values others need."""
    problems: list[str] = []
    tc = params.train
    k = params.data.num_classes if known(params.data.classes) else 2
    channels = params.data.channels if known(params.data.channels) else 1
    patch = tc.patch_size if known(tc.patch_size) and tc.patch_size else []
    model = None
    if known(tc.model):
        kwargs = {**tc.model.kwargs, "encoder_weights": None}

        def _model() -> nn.Module:
            extra = native_model_kwargs(tc.model.name, kwargs, patch, None) if patch else kwargs
            return build_model(tc.model.name, channels, k, **extra)

        model = _attempt(problems, "train.model", _model, kwargs=tc.model.kwargs)
    uniform = [1.0 / k] * k  # stand-in class frequencies (weighted CE)
    for i, term in enumerate(tc.loss if known(tc.loss) else []):
        build = partial(build_loss, [term.model_dump()], k, uniform)
        _attempt(problems, f"train.loss[{i}]", build, kwargs=term.kwargs)
    optimizer: Any = None
    if known(tc.optimizer):
        optimizer = _attempt(
            problems,
            "train.optimizer",
            lambda: build_optimizer(tc.optimizer.name, _parameters(model), **tc.optimizer.kwargs),
            kwargs=tc.optimizer.kwargs,
        )
    elif known(tc.scheduler):
        optimizer = torch.optim.SGD(_parameters(model), lr=0.01)
    epochs = tc.epochs if known(tc.epochs) else 1
    if optimizer is not None and known(tc.scheduler):  # the schedule depends on the optimiser
        _attempt(
            problems,
            "train.scheduler",
            lambda: build_scheduler(
                tc.scheduler.name, optimizer, epochs=epochs, steps_per_epoch=1, **tc.scheduler.kwargs
            ),
            kwargs=tc.scheduler.kwargs,
        )
    if not known(tc.augment.transforms):
        return problems
    specs = [t.model_dump() for t in tc.augment.transforms]
    if len(patch) == 3:  # 3D patches: the albumentations 3D + MONAI pipeline (names its own index)
        key = "train.augment.transforms"
        from components.preprocessing.augment3d import build_augmentation_3d

        _attempt(problems, key, lambda: build_augmentation_3d(specs, tc.augment.seed), arg_key=key)
        specs = []
    before = len(problems)
    for i, spec in enumerate(specs):
        _attempt(problems, f"train.augment.transforms[{i}]", partial(build_transform, spec, i))
    if len(problems) == before:
        _attempt(
            problems,
            "train.augment.transforms",
            lambda: build_augmentation(specs, tc.augment.seed),
            arg_key="train.augment.transforms",
        )
    return problems
