"""The artifact layout: every path a stage writes or reads, named once.

Paths are relative to the project root (the folder holding ``dvc.yaml``), which is the working
directory of every stage. ``dvc.yaml`` declares the same paths as stage outputs; a test
(tests/unit/architecture/test_dvc_contract.py) checks that the two agree, so a path changes in one place.
"""

from __future__ import annotations

from pathlib import Path

# the input: the default dataset folder (data.dir), DVC-added by `make run`
RAW_DATA = Path("data/raw")

# validate
MANIFEST = Path("data/manifest.parquet")
VALIDATION_REPORTS = Path("reports/validation")
FINGERPRINT = VALIDATION_REPORTS / "fingerprint.json"
DATASET_REPORT = VALIDATION_REPORTS / "dataset.md"  # layout, classes and channels as read, and notes
NEAR_DUPLICATES = VALIDATION_REPORTS / "near_duplicates.json"  # groups, look-alikes kept apart, warnings

# plan: every planned value with its reason, and the resolved params the later stages read
PLANS = Path("plans")
PLAN_JSON = PLANS / "plan.json"
PLAN_MD = PLANS / "plan.md"
RESOLVED_PARAMS = PLANS / "params.yaml"
# the 2D configuration's resolved params when the plan trains it beside a 3D one (else a copy of
# RESOLVED_PARAMS, so that dvc.yaml can list its keys in every run)
RESOLVED_PARAMS_2D = PLANS / "params-2d.yaml"

# preprocess
PREPARED = Path("data/prepared")
SPLITS = PREPARED / "splits.json"
PREPARED_INFO = PREPARED / "prepared.json"
PREPARED_ARRAYS = PREPARED / "arrays"

# train
FOLDS = Path("models/folds")  # the first (or only) configuration's fold_<k>/; a second one's in FOLDS/<name>/
RUN_RECORD = FOLDS / "run.json"

# evaluate / ensemble: one report layout, written under CV_REPORTS and TEST_REPORTS
CV_REPORTS = Path("reports/cv")
TEST_REPORTS = Path("reports/test")
PER_CASE_FILE = "per_case.csv"
HEADLINE_FILE = "summary.json"  # the DVC metrics file: per class mean ± sd of the headline metrics
STATISTICS_FILE = "statistics.json"
ROC_FILE = "roc.csv"
PLOTS_DIR = "plots"
POSTPROCESSING = CV_REPORTS / "postprocessing.json"  # evaluate: the rules chosen on the folds' cases
CONFIGURATIONS = CV_REPORTS / "configurations.json"  # evaluate: each configuration's CV score, the choice

# ensemble
ENSEMBLE = Path("models/ensemble")
ENSEMBLE_MODEL = ENSEMBLE / "model"
REGISTRATION = ENSEMBLE / "registration.json"
CHAMPION_COMPARISON = ENSEMBLE / "comparison_with_champion.json"
REPORT_INDEX = Path("reports/index.html")  # links every report of the run (written last)

# not a stage output (git- and dvc-ignored, and outside every `outs`, which DVC deletes before it
# re-runs a stage): resumable training state, one folder per configuration (flows/train.py)
RESUME = Path(".segflow") / "resume"

# not a stage output: measurements of this machine the plan stage reuses (components/planning/measure.py)
PLAN_CACHE = Path(".segflow") / "plan-cache"

# not a stage output: `segflow augment-preview`'s default
AUGMENT_PREVIEW = Path("reports/augment_preview.png")


BEST_CHECKPOINT = "best.pt"  # inside a fold's folder: the best validation score (evaluate, ensemble)
LAST_CHECKPOINT = "last.pt"  # the state after the fold's last epoch
HISTORY = "history.csv"  # per-epoch metrics


def configuration_folds(name: str, first: bool) -> Path:
    """The train stage's folder of one configuration's folds: FOLDS for the first (a
    single-configuration run's layout), ``FOLDS/<name>`` for a second one."""
    return FOLDS if first else FOLDS / name


def configuration_params(name: str, first: bool, resolved: Path = RESOLVED_PARAMS) -> Path:
    """A configuration's resolved params: ``resolved`` for the first, ``<stem>-<name>.yaml`` beside
    it for a second one (plans/params-2d.yaml)."""
    return Path(resolved) if first else Path(resolved).with_name(f"{Path(resolved).stem}-{name}.yaml")


def fold_dir(fold: int, folds_dir: Path = FOLDS) -> Path:
    """The train stage's folder for one fold."""
    return Path(folds_dir) / f"fold_{fold}"


def best_checkpoint(fold: int, folds_dir: Path = FOLDS) -> Path:
    """The fold's checkpoint with the best validation score (what evaluate and ensemble use)."""
    return fold_dir(fold, folds_dir) / BEST_CHECKPOINT


def case_arrays(prepared_dir: Path, case_id: str) -> Path:
    """Where the preprocess stage caches one case's arrays inside ``prepared_dir``."""
    return Path(prepared_dir) / PREPARED_ARRAYS.relative_to(PREPARED) / f"{case_id}.npz"


def report_outputs(report_dir: Path) -> dict[str, list[Path]]:
    """The files of one evaluation report, as dvc.yaml declares them (``outs`` and ``metrics``)."""
    return {
        "outs": [
            report_dir / PER_CASE_FILE,
            report_dir / STATISTICS_FILE,
            report_dir / ROC_FILE,
            report_dir / PLOTS_DIR,
        ],
        "metrics": [report_dir / HEADLINE_FILE],
    }


def stage_outputs() -> dict[str, dict[str, list[Path]]]:
    """What each DVC stage writes: ``{stage: {"outs": [...], "metrics": [...]}}``."""
    cv, test = report_outputs(CV_REPORTS), report_outputs(TEST_REPORTS)
    return {
        "validate": {"outs": [MANIFEST, VALIDATION_REPORTS], "metrics": []},
        "plan": {"outs": [PLAN_JSON, PLAN_MD, RESOLVED_PARAMS, RESOLVED_PARAMS_2D], "metrics": []},
        "preprocess": {"outs": [PREPARED], "metrics": []},
        "train": {"outs": [FOLDS], "metrics": []},
        "evaluate": {"outs": [*cv["outs"], POSTPROCESSING, CONFIGURATIONS], "metrics": cv["metrics"]},
        "ensemble": {"outs": [*test["outs"], ENSEMBLE, REPORT_INDEX], "metrics": test["metrics"]},
    }
