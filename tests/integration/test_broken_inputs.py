"""A corpus of broken datasets and params: each `segflow run` fails with one clear message and
leaves the workspace exactly as it was.

The workspace starts with earlier outputs of a real run (validate, preprocess and one fold of
train on a tiny phantom set, through ``dvc repro``) and a registered model version with the alias
``champion`` in the SQLite registry. Each row breaks a fresh copy of the good dataset (or the
params) and runs ``segflow run`` in-process (the real CLI, Prefect flow, ``dvc repro`` and stage
processes); it then checks the exit code, that the message names the offending file or params key
and says what was expected, that no traceback or raw ``[Errno`` text reached the console, and that
params.yaml, dvc.lock, every earlier output and the registry are byte-for-byte as before and no
downstream output appeared. Listing-level problems fail in the preflight (no DVC stage runs);
content problems (decoding, labels, sizes) fail in the validate stage process; one row fails in
preprocess after validate succeeded with new data, so the restore of dvc.lock and of the earlier
outputs (``dvc checkout``) is exercised.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.integration.conftest import BIN, copy_project, project_env, run

pytestmark = pytest.mark.slow

MODEL = "segflow-broken"
ODD = "caso ñ 11"  # a case name with a space and non-ASCII letters: must work like any other
TINY = {
    "data.classes": {"background": 0, "organ_a": 1, "organ_b": 2, "lesion": 3, "ghost": 4},
    "preprocess.image_size": [32, 32],
    "preprocess.splits.n_folds": 2,
    "preprocess.splits.test_fraction": 0.2,
    "train.epochs": 1,
    "train.batch_size": 4,
    "train.folds": [0],
    "train.augment.transforms": [],
    "ensemble.registered_model": MODEL,
    "tracking.experiment": MODEL,
}
EARLIER_OUTPUTS = ("dvc.lock", "params.yaml", "data/manifest.parquet", "data/prepared", "reports", "models")


@dataclass
class Workspace:
    """The shared workspace: its root, the good dataset and what a run must leave unchanged."""

    root: Path
    good: Path
    env: dict[str, str]
    earlier_run: subprocess.CompletedProcess[str]
    hashes: dict[str, str] = field(default_factory=dict)
    registry: tuple[object, ...] = ()


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under the earlier outputs (paths relative to ``root``)."""
    out: dict[str, str] = {}
    for rel in EARLIER_OUTPUTS:
        base = root / rel
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for f in files:
            out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def registry_state(tracking_uri: str) -> tuple[object, ...]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    models = sorted((m.name, tuple(sorted(m.aliases.items()))) for m in client.search_registered_models())
    versions = sorted((v.name, v.version, v.source) for v in client.search_model_versions())
    return (tuple(models), tuple(versions))


def _phantoms(dest: Path) -> None:
    from components.data.synthetic import generate_phantoms

    generate_phantoms(dest, n_cases=12, size=32, seed=3, n_patients=12)
    for sub in ("images", "masks"):
        (dest / sub / "case_011.png").rename(dest / sub / f"{ODD}.png")
    csv = dest / "cases.csv"
    csv.write_text(csv.read_text().replace("case_011,", f"{ODD},"), encoding="utf-8")


@pytest.fixture(scope="module")
def ws(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One project with earlier outputs (validate, preprocess, train fold 0) and a registry entry."""
    from mlflow.tracking import MlflowClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect binds its console handler to sys.stderr when it sets up logging; import it here, so
    # that is pytest's stream and not that of the first CliRunner call (closed after it).
    import flows.pipeline  # noqa: F401

    base = tmp_path_factory.mktemp("broken_inputs")
    root, good = base / "proj", base / "good"
    root.mkdir()
    copy_project(root)
    _phantoms(good)
    env = project_env(root, prefect_api)
    uri = env["MLFLOW_TRACKING_URI"]
    with pytest.MonkeyPatch.context() as mp:
        for key in (
            "PATH",
            "PREFECT_API_URL",
            "MLFLOW_TRACKING_URI",
            "DVC_NO_ANALYTICS",
            "NO_ALBUMENTATIONS_UPDATE",
        ):
            mp.setenv(key, env[key])
        mp.chdir(root)
        run(["git", "init", "-q", "-b", "main"], root, env)
        run([str(BIN / "dvc"), "init", "-q"], root, env)
        from components.params.edit import apply_overrides

        apply_overrides(root / "params.yaml", {**TINY, "data.dir": str(good)})
        earlier = run([str(BIN / "dvc"), "repro", "train"], root, env)
        client = MlflowClient(tracking_uri=uri)
        client.create_registered_model(MODEL)
        version = client.create_model_version(MODEL, source=str(root / "models" / "folds"))
        client.set_registered_model_alias(MODEL, "champion", version.version)
        with temporary_settings(updates={PREFECT_API_URL: prefect_api}):
            state = Workspace(root, good, env, earlier, tree_hashes(root), registry_state(uri))
            yield state


# ---------------------------------------------------------------------------------------- builders


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)


def _mask(data: Path, case: str) -> np.ndarray:
    return np.asarray(Image.open(data / "masks" / f"{case}.png"))


def _rm(data: Path, *rels: str) -> None:
    for rel in rels:
        (data / rel).unlink()


def combine(*builders: Callable[[Path], None]) -> Callable[[Path], None]:
    """Apply several builders to one dataset."""

    def build(data: Path) -> None:
        for b in builders:
            b(data)

    return build


def zero_byte(data: Path) -> None:
    (data / "images/case_004.png").write_bytes(b"")


def truncated(data: Path) -> None:
    path = data / "masks/case_005.png"
    path.write_bytes(path.read_bytes()[:60])


def text_as_png(data: Path) -> None:
    (data / "images/case_006.png").write_text("this is a text file, not an image\n")


def undeclared_8bit(data: Path) -> None:
    m = _mask(data, "case_007").copy()
    m[:4, :4] = 9
    _png(data / "masks/case_007.png", m)


def undeclared_16bit_and_float(data: Path) -> None:
    m16 = _mask(data, "case_008").astype(np.uint16)
    m16[:3, :3] = 300
    _png(data / "masks/case_008.png", m16)  # mode I;16
    import tifffile

    mf = _mask(data, "case_009").astype(np.float32)
    mf[:3, :3] = 0.5
    _rm(data, "masks/case_009.png")
    tifffile.imwrite(data / "masks/case_009.tif", mf)


def rgb_mask(data: Path) -> None:
    m = _mask(data, "case_010")
    colour = np.repeat(m[..., None], 3, axis=2)
    colour[..., 2] = m == 0  # colour-coded (a gray mask saved as RGB, equal channels, is read as gray)
    _png(data / "masks/case_010.png", colour)


def palette_mask(data: Path) -> None:
    m = (_mask(data, "case_003") > 0).astype(np.uint8) * 20  # colour indices 0 and 20
    im = Image.fromarray(m, mode="P")
    im.putpalette([0, 0, 0] * 20 + [255, 0, 0] + [0, 0, 0] * 235)
    im.save(data / "masks/case_003.png")


def size_mismatch(data: Path) -> None:
    _png(data / "masks/case_002.png", _mask(data, "case_002")[:16])


def nan_inf(data: Path) -> None:
    import tifffile

    for case, bad in (("case_001", np.nan), ("case_004", np.inf)):
        img = np.asarray(Image.open(data / "images" / f"{case}.png")).astype(np.float32)
        img[5, 5] = bad
        _rm(data, f"images/{case}.png")
        tifffile.imwrite(data / "images" / f"{case}.tif", img)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb(data: Path) -> None:
    """A 100-byte PNG whose header claims 30000 x 30000 pixels (900 Mpx)."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
    (data / "images/case_005.png").write_bytes(png + _chunk(b"IEND", b""))


def absurd_nifti(data: Path) -> None:
    """A NIfTI image whose header claims 30000^3 voxels (a few hundred bytes on disk)."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.uint8)
    hdr["vox_offset"] = 352
    (data / "images/vol.nii").write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), data / "masks/vol.nii.gz")
    (data / "cases.csv").write_text((data / "cases.csv").read_text() + "vol,vol\n")


def all_masks_empty(data: Path) -> None:
    for path in (data / "masks").iterdir():
        _png(path, np.zeros_like(np.asarray(Image.open(path))))


def near_duplicates_only(data: Path) -> None:
    """Valid files, but every image is a flipped/rotated copy of one of two cases: validate passes
    (and groups them), preprocess cannot make 2 folds + a test set from 2 groups."""

    def d4(a: np.ndarray, k: int) -> np.ndarray:
        a = np.rot90(a, k % 4)
        return np.ascontiguousarray(np.fliplr(a) if k >= 4 else a)

    targets = iter([f"case_{i:03d}" for i in range(2, 11)] + [ODD])
    for src, ks in (("case_000", range(1, 8)), ("case_001", range(1, 4))):
        img = np.asarray(Image.open(data / "images" / f"{src}.png"))
        msk = _mask(data, src)
        for k in ks:
            case = next(targets)
            _png(data / "images" / f"{case}.png", d4(img, k))
            _png(data / "masks" / f"{case}.png", d4(msk, k))


def no_subfolders(data: Path) -> None:
    shutil.rmtree(data / "images")
    shutil.rmtree(data / "masks")
    _rm(data, "cases.csv")


def empty_subfolders(data: Path) -> None:
    for sub in ("images", "masks"):
        shutil.rmtree(data / sub)
        (data / sub).mkdir()
    _rm(data, "cases.csv")


def image_without_mask(data: Path) -> None:
    _rm(data, "masks/case_001.png")


def mask_without_image(data: Path) -> None:
    _rm(data, "images/case_002.png")


def two_files_one_stem(data: Path) -> None:
    Image.open(data / "images/case_003.png").convert("L").save(data / "images/case_003.jpg")


def csv_unknown_ids(data: Path) -> None:
    csv = data / "cases.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    csv.write_text("\n".join([lines[0], *(f"{ln.split(',')[0]}.png,{ln.split(',')[1]}" for ln in lines[1:])]))


def csv_ghost_case(data: Path) -> None:
    """A case in the table whose files went missing on the way (it was ignored, and the run trained)."""
    csv = data / "cases.csv"
    csv.write_text(csv.read_text(encoding="utf-8") + "ghost_case,ghost_patient\n", encoding="utf-8")


def csv_wrong_columns(data: Path) -> None:
    csv = data / "cases.csv"
    csv.write_text("id,patient\n" + "\n".join(csv.read_text().splitlines()[1:]) + "\n")


def csv_path_ids(data: Path) -> None:
    csv = data / "cases.csv"
    csv.write_text(csv.read_text().replace("case_000,", "../../x,"))


def symlink_out(data: Path) -> None:
    """Two links out of the dataset folder: one to an existing file (read through it, fine), one to
    a file that is gone (a moved data store): the case would silently vanish, so it is refused."""
    outside = data.parent / "store"
    outside.mkdir()
    for case in ("case_004", "case_005"):
        shutil.move(data / "images" / f"{case}.png", outside / f"{case}.png")
        (data / "images" / f"{case}.png").symlink_to(outside / f"{case}.png")
    (outside / "case_005.png").unlink()


def odd_name_unpaired(data: Path) -> None:
    shutil.copy(data / "images/case_000.png", data / "images/día 1 ü.png")


def too_few_cases(data: Path) -> None:
    for case in [f"case_{i:03d}" for i in range(2, 11)] + [ODD]:
        _rm(data, f"images/{case}.png", f"masks/{case}.png")
    _rm(data, "cases.csv")


def old_params(text: str) -> str:
    """params.yaml of an older segflow: no data.ignore_label, no validate section."""
    lines = text.splitlines(keepends=True)
    out, skip = [], False
    for line in lines:
        if line.startswith("validate:"):
            skip = True
            continue
        if skip and (line.startswith(" ") or not line.strip()):
            continue
        skip = False
        if line.strip().startswith("ignore_label:"):
            continue
        out.append(line)
    return "".join(out)


@dataclass(frozen=True)
class Row:
    """One broken input: how to break it, the exit code, what the message must say."""

    build: Callable[[Path], None] | None = None
    sets: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    code: int = 1
    data: str = "copy"  # copy: a broken copy of the good set; missing: a folder that does not exist
    params: Callable[[str], str] | None = None  # the params file the workspace starts with
    process: bool = False  # run `segflow run` in its own process: its whole console is checked


ROWS: dict[str, Row] = {
    # the validate stage process (content: decoding, values, sizes); each row costs a stage run,
    # so defects with one kind of fix share a row (every file must be named)
    "unreadable_files": Row(
        combine(zero_byte, truncated, text_as_png),
        process=True,
        expect=(
            "images/case_004.png",
            "masks/case_005.png",
            "images/case_006.png",
            "cannot be read as an image",
            "can be decoded",
            "re-export",
        ),
    ),
    "mask_values_and_colour_masks": Row(
        combine(undeclared_8bit, undeclared_16bit_and_float, rgb_mask, palette_mask),
        expect=(
            "masks/case_007.png",
            "masks/case_008.png",
            "300",
            "masks/case_009.tif",
            "declared class values",
            "masks/case_010.png",
            "3 channels",
            "single-channel",
            "masks/case_003.png",
            "values 0,20",
        ),
    ),
    "image_content_and_absurd_headers": Row(
        combine(size_mismatch, nan_inf, bomb, absurd_nifti),
        expect=(
            "masks/case_002.png",
            "same shape",
            "images/case_001.tif",
            "images/case_004.tif",
            "NaN/Inf",
            "images/case_005.png",
            "900000000 pixels",
            "images/vol.nii",
            "voxels, over the limit",
        ),
    ),
    "all_masks_empty": Row(all_masks_empty, expect=("masks", "background only", "data.classes")),
    "later_stage_fails": Row(
        near_duplicates_only,
        expect=(
            "preprocess",
            "preprocess.splits.n_folds",
            "near-duplicate",
            "validate.near_duplicate_threshold",
        ),
    ),
    # the preflight (listing the files; params)
    "missing_data_dir": Row(
        data="missing", expect=("data.dir", "does not exist", "holding images/ and masks/")
    ),
    "empty_folder": Row(
        no_subfolders, expect=("data.dir", "has no images/ or masks/", "paired by file stem")
    ),
    "empty_subfolders": Row(
        empty_subfolders, expect=("data.dir", "no image/mask pairs", "images/<case>.png")
    ),
    "image_without_mask": Row(
        image_without_mask, expect=("images/case_001.png", "without a mask", "masks/<stem>")
    ),
    "mask_without_image": Row(
        mask_without_image, expect=("masks/case_002.png", "without an image", "images/<stem>")
    ),
    "two_files_one_stem": Row(
        two_files_one_stem, expect=("case_003.jpg", "case_003.png", "share the stem", "keep one")
    ),
    "cases_csv_unknown_ids": Row(
        csv_unknown_ids, expect=("cases.csv", "case_000.png", "match no file", "file stem")
    ),
    "cases_csv_ghost_case": Row(
        csv_ghost_case, expect=("cases.csv", "ghost_case", "listed without an image or mask file")
    ),
    "cases_csv_wrong_columns": Row(
        csv_wrong_columns, expect=("cases.csv", "expected columns case_id, patient_id")
    ),
    "cases_csv_path_ids": Row(csv_path_ids, expect=("cases.csv", "../../x", "not a file stem")),
    "symlink_out_of_dataset": Row(
        symlink_out,
        expect=("images/case_005.png", "store/case_005.png", "does not exist", "restore the link"),
    ),
    "odd_name_unpaired": Row(odd_name_unpaired, expect=("images/día 1 ü.png", "without a mask")),
    "fewer_cases_than_folds": Row(
        too_few_cases, expect=("preprocess.splits.n_folds", "need at least 3 patients")
    ),
    "more_folds_than_cases": Row(
        sets=("preprocess.splits.n_folds=20",), expect=("preprocess.splits.n_folds", "need at least 21")
    ),
    "negative_epochs": Row(sets=("train.epochs=-1",), expect=("train.epochs", "greater than or equal to 1")),
    "zero_batch_size": Row(
        sets=("train.batch_size=0",), expect=("train.batch_size", "greater than or equal to 1")
    ),
    "non_numeric_epochs": Row(sets=("train.epochs=ten",), expect=("train.epochs", "valid integer")),
    "non_numeric_lr": Row(
        sets=("train.optimizer.kwargs.lr=fast",),
        expect=("train.optimizer.kwargs", "lr='fast'", "given as text; expected a number"),
    ),
    "negative_lr": Row(
        sets=("train.optimizer.kwargs.lr=-0.1",), expect=("train.optimizer.kwargs", "learning rate")
    ),
    "zero_image_size": Row(
        sets=("preprocess.image_size=[0, 32]",), expect=("preprocess.image_size", "greater than")
    ),
    "test_fraction_too_big": Row(
        sets=("preprocess.splits.test_fraction=1.5",), expect=("preprocess.splits.test_fraction", "less than")
    ),
    "unknown_key": Row(sets=("train.epoch=3",), expect=("train.epoch", "unknown key")),
    "unknown_section": Row(sets=("trian.epochs=3",), expect=("trian", "no section")),
    "unknown_model": Row(sets=("train.model.name=unetx",), expect=("train.model.name", "Did you mean")),
    "unknown_loss": Row(sets=("train.loss=[{name: dicee}]",), expect=("train.loss[0].name", "dice")),
    "unknown_transform": Row(
        sets=("train.augment.transforms=[{name: HorizontalFlipp}]",),
        expect=("train.augment.transforms[0]", "HorizontalFlip"),
    ),
    "unknown_scheduler": Row(
        sets=("train.scheduler.name=cosinee",), expect=("train.scheduler.name", "cosine")
    ),
    "folds_out_of_range": Row(sets=("train.folds=[5]",), expect=("train.folds", "out of range", "n_folds=2")),
    "patch_mode_without_patch": Row(
        sets=("preprocess.spatial_mode=patch",), expect=("train.patch_size", "2 ints")
    ),
    "patch_larger_than_every_image": Row(
        sets=("preprocess.spatial_mode=patch", "train.patch_size=[512, 512]"),
        expect=("train.patch_size", "larger than every image", "32 x 32", "[32, 32]"),
    ),
    "ignore_label_is_a_class": Row(sets=("data.ignore_label=1",), expect=("data.ignore_label", "255")),
    "classes_with_gap": Row(
        sets=("data.classes={background: 0, a: 2}",), expect=("data.classes", "without gaps")
    ),
    "reserved_key_name": Row(sets=("train.model.kwargs.size=3",), expect=("size", "Rename the key")),
    "old_params_missing_keys": Row(
        params=old_params,
        expect=("data.ignore_label", "validate", "add it with its default: data.ignore_label: null"),
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_broken_input_is_refused_and_leaves_the_workspace_as_it_was(
    ws: Workspace, name: str, tmp_path: Path
) -> None:
    from flows.cli import app

    row = ROWS[name]
    root = ws.root
    baseline = (root / "params.yaml").read_bytes()
    if row.params is not None:
        (root / "params.yaml").write_text(row.params(baseline.decode()))
    params_before = (root / "params.yaml").read_bytes()
    hashes_before = tree_hashes(root)
    data = tmp_path / "data"
    if row.data == "copy":
        shutil.copytree(ws.good, data)
        if row.build is not None:
            row.build(data)
    args = ["run", "--data", str(data)]
    for s in row.sets:
        args += ["--set", s]
    try:
        if row.process:
            proc = run([str(BIN / "segflow"), *args], root, ws.env, check=False)
            code, output = proc.returncode, proc.stdout + proc.stderr
        else:
            result = CliRunner().invoke(app, args, catch_exceptions=False)
            code, output = result.exit_code, result.output
    finally:
        params_after, hashes_after = (root / "params.yaml").read_bytes(), tree_hashes(root)
        (root / "params.yaml").write_bytes(baseline)
    assert code == row.code, output[-3000:]
    assert "segflow run: " in output, output[-3000:]
    message = output[output.rindex("segflow run: ") :]
    for text in row.expect:
        assert text in message, (text, message)
    if row.process:  # the console: progress lines and the one message; no Prefect failure records
        for noise in ("Traceback", "Task run failed", "Finished in state Failed", "failed to reproduce"):
            assert noise not in output, (noise, output)
        assert len(output.splitlines()) <= 30, output
    assert "(log: .segflow/logs/" in message
    assert len(message.splitlines()) <= 14, message
    assert "Traceback" not in output and "[Errno" not in output, output[-3000:]
    log = root / message.split("(log: ")[1].split(")")[0]
    assert "Traceback (most recent call last)" in log.read_text(encoding="utf-8")

    assert params_after == params_before
    assert hashes_after == hashes_before
    assert tree_hashes(root) == ws.hashes
    assert registry_state(ws.env["MLFLOW_TRACKING_URI"]) == ws.registry
    for downstream in ("reports/cv", "reports/test", "models/ensemble"):
        assert not (root / downstream).exists(), downstream


def test_a_class_declared_but_absent_is_a_warning_and_training_works(ws: Workspace) -> None:
    """The earlier run declared ``ghost: 4``, which no phantom mask holds: validate warned, and
    validate, preprocess and training (fold 0, one epoch) finished; the odd case name worked too."""
    out = ws.earlier_run.stdout + ws.earlier_run.stderr
    assert ws.earlier_run.returncode == 0
    assert "warning: data.classes declares mask value 4, but none of the 12 masks contains it" in out
    assert (ws.root / "models/folds/fold_0/best.pt").is_file()
    import pandas as pd

    assert ODD in set(pd.read_parquet(ws.root / "data/manifest.parquet")["case_id"])
