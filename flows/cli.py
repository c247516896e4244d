"""The ``segflow`` command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from components.core import layout
from flows.commands.compare import compare_command
from flows.commands.doctor import DOCTOR_HELP, doctor_command
from flows.commands.metrics import metrics_command
from flows.commands.serve import SERVE_HELP, serve_command
from flows.commands.warm import WARM_HELP, warm_command
from flows.commands.zoo import augment_preview_command, list_command

app = typer.Typer(
    name="segflow",
    help="Reproducible medical image segmentation: validate, preprocess, k-fold train, evaluate, "
    "ensemble and register, as one DVC + Prefect + MLflow pipeline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _defaults_env() -> None:
    """Quiet, offline-safe defaults for the libraries (the Makefile sets the same)."""
    for key, value in {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }.items():
        os.environ.setdefault(key, value)


@app.callback()
def _main() -> None:
    _defaults_env()


def _fail(command: str, exc: BaseException) -> typer.Exit:
    """Print a user error (no traceback) and return the exit to raise."""
    typer.secho(f"segflow {command}: {exc}", fg="red", err=True)
    return typer.Exit(1)


DATA_HELP = "Dataset folder: images/ + masks/, or MSD / nnU-Net imagesTr/ + labelsTr/ (sets data.dir)."
SET_HELP = "Override a params key, e.g. --set train.epochs=20 (repeatable)."
BUDGET_HELP = "Time for the whole run, e.g. 90m, 2h, 1h30m (sets plan.time_budget)."
DEVICE_HELP = "Device to plan and train for: auto, cpu or cuda (sets plan.device)."
MEMORY_HELP = "Memory training may use, in GB (sets plan.memory_gb; default: the device's)."


@app.command()
def run(
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    time_budget: Annotated[str | None, typer.Option(help=BUDGET_HELP)] = None,
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP)] = None,
    memory_gb: Annotated[float | None, typer.Option(help=MEMORY_HELP)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    force: Annotated[
        bool, typer.Option(help="Re-run every stage even when DVC finds it up to date.")
    ] = False,
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Run the whole pipeline (dvc repro inside a Prefect flow) and print the summary.

    With only --data (and a --time-budget), the plan stage chooses every training setting from the
    dataset, the device and the time; values set in params.yaml or with --set win over the plan.
    Ctrl-C or SIGTERM stops it: every stage process ends within 10 s (training keeps its last
    complete epoch and ends its MLflow runs KILLED; the Prefect flow runs end Crashed), the Prefect
    server the run started stops, the workspace lock is released, and the same command resumes.
    """
    from flows.commands.drive import budget_overrides, drive

    overrides = _overrides("run", set_) | budget_overrides(time_budget, device, memory_gb)
    drive("run", params, data, overrides, force=force)


@app.command()
def plan(
    data: Annotated[Path | None, typer.Option(help=DATA_HELP)] = None,
    time_budget: Annotated[str | None, typer.Option(help=BUDGET_HELP)] = None,
    device: Annotated[str | None, typer.Option(help=DEVICE_HELP)] = None,
    memory_gb: Annotated[float | None, typer.Option(help=MEMORY_HELP)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    params: Annotated[Path, typer.Option(help="params file")] = Path("params.yaml"),
) -> None:
    """Validate the dataset and plan every training choice, then print the plan; nothing is trained.

    The plan (plans/plan.md, plans/plan.json) states each planned value with its reason, your values
    beside it, the network measured on this device and the expected time per stage; `segflow run`
    with the same options trains exactly this plan.
    """
    from flows.commands.drive import budget_overrides, drive
    from flows.commands.plan_table import print_plan

    overrides = _overrides("plan", set_) | budget_overrides(time_budget, device, memory_gb)
    result = drive("plan", params, data, overrides, target="plan")
    if result.get("plan"):
        print_plan(result["plan"])


def _overrides(command: str, set_: list[str] | None) -> dict[str, object]:
    """``--set key=value`` pairs as a mapping (a malformed one is a one-line error)."""
    from components.core.errors import UserError
    from components.params.edit import parse_assignment

    try:
        return dict(parse_assignment(s) for s in set_ or [])
    except UserError as exc:
        raise _fail(command, exc) from None


@app.command()
def generate(
    out: Annotated[
        Path, typer.Option(help="Output folder (images/, masks/, cases.csv, dataset.json).")
    ] = layout.RAW_DATA,
    params: Annotated[Path, typer.Option(help="params file (data.synthetic section)")] = Path("params.yaml"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset.")] = False,
    dims: Annotated[
        int,
        typer.Option(min=2, max=3, help="2: PNG phantoms; 3: NIfTI volumes (tubes and blobs, anisotropic)."),
    ] = 2,
    channels: Annotated[int, typer.Option(min=1, help="3D only: channels per case (<case>_0000, ...).")] = 1,
) -> None:
    """Write the default synthetic phantom dataset (deterministic for the configured seed)."""
    import shutil

    from components.data.synthetic import generate_phantoms
    from components.data.synthetic3d import CLASSES_3D, generate_volumes
    from components.params.config import ConfigError
    from components.params.user import load_user_params

    try:
        syn = load_user_params(params).data.synthetic
    except ConfigError as exc:
        raise _fail("generate", exc) from None
    if out.exists():
        if not overwrite:
            typer.echo(f"{out} exists; keeping it (use --overwrite to regenerate)")
            return
        shutil.rmtree(out)
    n, seed, n_pat = syn.n_cases, syn.seed, syn.n_patients
    try:
        if dims == 3:
            generate_volumes(out, n_cases=n, seed=seed, n_channels=channels, n_patients=n_pat)
            typer.echo(f"wrote {n} synthetic volumes to {out} (classes in its dataset.json: {CLASSES_3D})")
            return
        generate_phantoms(out, n_cases=n, size=syn.image_size, seed=seed, n_patients=n_pat)
    except ValueError as exc:  # e.g. data.synthetic.n_patients above n_cases
        raise _fail("generate", ValueError(f"data.synthetic: {exc}")) from None
    typer.echo(f"wrote {n} synthetic cases to {out}")


@app.command()
def summary(root: Annotated[Path, typer.Option(help="project root")] = Path()) -> None:
    """Print the last run's CV and test Dice per class and the registered model version and alias."""
    from rich.console import Console
    from rich.markdown import Markdown

    from components.evaluation.last_run import last_run_markdown, last_run_results

    Console().print(Markdown(last_run_markdown(last_run_results(root))))


@app.command()
def predict(
    model: Annotated[
        str, typer.Option(help="MLflow model URI, e.g. models:/segflow-synthetic@champion, or a folder.")
    ],
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            help="Folder of images (PNG/JPG/TIFF) or volumes (NIfTI/NRRD/MHA; channels as <case>_0000, ...).",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            help="Output folder: <stem>.png masks and overlays/, or volumes with the inputs' geometry."
        ),
    ],
    overlays: Annotated[bool, typer.Option(help="Also write colour overlays.")] = True,
    rois: Annotated[
        Path | None,
        typer.Option(
            help="Folder of regions of interest (same stems, non-zero = inside): outside is background."
        ),
    ] = None,
    no_rois: Annotated[
        bool,
        typer.Option(
            "--no-rois",
            help="Label every pixel on purpose (no warning for a model trained inside regions of interest).",
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Refuse inputs far outside the data the model was trained on (spacing, size, channels, "
            "intensity range); without it they are segmented with a warning.",
        ),
    ] = False,
) -> None:
    """Segment new images with a registered (packaged) model (its CV-chosen postprocessing included)."""
    from components.ensembling.predict_folder import predict_folder
    from components.io import ImageReadError, VolumeReadError

    if rois is not None and no_rois:
        raise _fail("predict", ValueError("--rois and --no-rois contradict each other; give one"))

    def warn(message: str) -> None:
        typer.secho(f"segflow predict: {message}", fg="yellow", err=True)

    try:
        n = predict_folder(
            model, input, output, overlays=overlays, rois_dir=rois, no_rois=no_rois, warn=warn, strict=strict
        )
    except (
        FileNotFoundError,
        ImageReadError,
        VolumeReadError,
        ValueError,
    ) as exc:  # no folder/images, unreadable
        raise _fail("predict", exc) from None
    wrote_overlays = overlays and (output / "overlays").is_dir()  # volumes get none
    typer.echo(
        f"wrote {n} label masks to {output}"
        + (f" and overlays to {output / 'overlays'}" if wrote_overlays else "")
    )


app.command("metrics", help="Score a folder of predicted masks against references (full metric panel).")(
    metrics_command
)
app.command("compare", help="Paired statistics of two per-case result tables (e.g. challenger vs champion).")(
    compare_command
)
app.command(
    "list",
    help="List registered models, losses, optimizers, schedulers, augmentations (2D) or augmentations3d.",
)(list_command)
app.command("augment-preview", help="Render a grid of augmented samples with their masks.")(
    augment_preview_command
)
app.command("serve", help=SERVE_HELP)(serve_command)
app.command("doctor", help=DOCTOR_HELP)(doctor_command)
app.command("warm", help=WARM_HELP)(warm_command)
