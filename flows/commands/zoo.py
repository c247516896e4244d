"""``segflow list <family>`` and ``segflow augment-preview``: browse the registries, preview augmentations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from components.core import layout

if TYPE_CHECKING:
    from components.core.registry import Registry

FAMILIES = ("models", "losses", "optimizers", "schedulers", "augmentations", "augmentations3d")


def _registry(family: str) -> Registry[Any]:
    reg: Registry[Any]
    if family == "models":
        from components.models import MODELS as reg
    elif family == "losses":
        from components.losses import LOSSES as reg
    elif family == "optimizers":
        from components.training.optim import OPTIMIZERS as reg
    elif family == "schedulers":
        from components.training.schedulers import SCHEDULERS as reg
    elif family == "augmentations3d":
        from components.preprocessing.augment3d import AUGMENTATIONS_3D as reg
    else:
        from components.preprocessing.augment import AUGMENTATIONS as reg
    return reg


def list_command(
    family: Annotated[str, typer.Argument(help=f"One of: {', '.join(FAMILIES)}.")],
) -> None:
    """Print the registered names of a family with a one-line description each."""
    from rich.console import Console
    from rich.table import Table

    if family not in FAMILIES:
        raise typer.BadParameter(f"{family!r} is not one of {', '.join(FAMILIES)}", param_hint="FAMILY")
    table = Table(title=f"segflow {family}")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, description in _registry(family).describe():
        table.add_row(name, description)
    Console().print(table)


def augment_preview_command(
    n: Annotated[int, typer.Option("--n", help="Number of samples (rows).", min=1)] = 4,
    out: Annotated[Path, typer.Option(help="Output PNG.")] = layout.AUGMENT_PREVIEW,
    params: Annotated[
        Path, typer.Option(help="params.yaml to read train.augment and preprocess from.")
    ] = Path("params.yaml"),
    data: Annotated[
        Path | None, typer.Option(help="Dataset folder (images/ + masks/); default: data.dir of params.")
    ] = None,
) -> None:
    """Render the configured augmentation pipeline on the first N samples of a dataset."""
    from components.params.config import known
    from components.params.user import load_user_params
    from components.preprocessing.augment import build_augmentation
    from components.preprocessing.pipeline import spec_from_params
    from components.preprocessing.preview import load_samples, render_preview

    cfg = load_user_params(params)
    if not known(cfg.preprocess.spatial_mode, cfg.train.augment.transforms, cfg.data.classes):
        raise typer.BadParameter(
            f"{params} leaves the augmentation or the spatial mode to the plan (auto): run `segflow plan` "
            "and pass --params plans/params.yaml, the planned values",
            param_hint="--params",
        )
    if cfg.preprocess.spatial_mode == "patch":
        raise typer.BadParameter(
            "augment-preview renders the 2D network-size pipeline; in patch mode (preprocess.spatial_mode: "
            "patch) it is not available yet: set spatial_mode to resize to preview the 2D transforms",
            param_hint="--params",
        )
    spec = spec_from_params(cfg)
    aug = build_augmentation([t.model_dump() for t in cfg.train.augment.transforms], cfg.train.augment.seed)
    samples = load_samples(data if data is not None else Path(cfg.data.dir), spec, n)
    path = render_preview(samples, aug, n, out)
    typer.echo(f"wrote {path} ({len(samples)} samples)")
