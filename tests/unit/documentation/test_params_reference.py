"""The params reference is generated from params.yaml (docs/gen/params_ref.py): every key has its
comment there, every key appears in the reference, and a changed comment changes the page."""

from __future__ import annotations

from pathlib import Path

import pytest

from docs.gen import params_ref

REPO = Path(__file__).resolve().parents[3]
PARAMS = REPO / "params.yaml"


def test_every_params_key_has_a_comment() -> None:
    missing = params_ref.undocumented(PARAMS)
    assert missing == [], (
        f"params.yaml keys without a comment: {missing}; write what each is beside it (`key: value  # ...`) "
        "or on the line above: the params reference (docs) is generated from these comments"
    )


def test_every_params_key_is_in_the_generated_reference_with_its_comment() -> None:
    page = params_ref.render(PARAMS, REPO / "dvc.yaml")
    keys = params_ref.parse_keys(PARAMS.read_text())
    assert len(keys) > 50
    assert params_ref.unknown_keys(PARAMS) == []
    for key in keys:
        if "." in key.path:  # a section's comment is its heading's text
            assert f'<a id="{key.path}"></a>`{key.path}`' in page, key.path
        assert params_ref._cell(" ".join(key.comment)) in page, key.path


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = PARAMS.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_a_changed_comment_changes_the_reference(tmp_path: Path) -> None:
    line = next(k for k in params_ref.parse_keys(PARAMS.read_text()) if k.path == "train.grad_accum")
    edited = _edited(tmp_path, line.comment[0], "accumulate gradients, a comment changed in a test")
    page = params_ref.render(edited, REPO / "dvc.yaml")
    assert "accumulate gradients, a comment changed in a test" in page
    assert line.comment[0] not in page


@pytest.mark.parametrize("where", ["inline", "continuation"])
def test_a_key_without_a_comment_is_named(tmp_path: Path, where: str) -> None:
    keys = {k.path: k for k in params_ref.parse_keys(PARAMS.read_text())}
    key = keys["train.grad_clip"] if where == "inline" else keys["data.classes"]
    line = PARAMS.read_text().splitlines()[key.line - 1]
    if where == "inline":
        edited = _edited(tmp_path, line, line.split("#")[0].rstrip())
    else:  # a key whose comment runs over several lines loses them all
        lines = PARAMS.read_text().splitlines()
        end = key.line
        while lines[end].strip().startswith("#"):
            end += 1
        body = "\n".join([*lines[: key.line - 1], line.split("#")[0].rstrip(), *lines[end:]])
        edited = tmp_path / "params.yaml"
        edited.write_text(body + "\n")
    assert params_ref.undocumented(edited) == [f"{key.path} (line {key.line})"]


def test_comment_parsing_keeps_quoted_hashes_and_block_values(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "# header\n\n# the data\ndata:\n  dir: 'a # b'   # where\n  classes:     # names\n"
        "    background: 0\n    fg: 1\n"
    )
    keys = {k.path: k for k in params_ref.parse_keys(path.read_text())}
    assert set(keys) == {"data", "data.dir", "data.classes"}  # background / fg are a value, not keys
    assert keys["data.dir"].value_text == "'a # b'" and keys["data.dir"].comment == ["where"]
    assert keys["data"].comment == ["the data"]


def test_stages_reading_a_key_come_from_dvc_yaml() -> None:
    reads = params_ref.stage_reads(REPO / "dvc.yaml")
    assert "train" in params_ref.readers("train.epochs", reads)
    assert "validate" not in params_ref.readers("train.epochs", reads)
    assert "validate" in params_ref.readers("validate.near_duplicates", reads)
    assert "evaluate" in params_ref.readers("preprocess.splits.n_folds", reads)  # under plans/params.yaml:
