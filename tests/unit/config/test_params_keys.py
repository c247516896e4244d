"""Params keys DVC's run cache cannot see: found at any depth, rejected before validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.params.config import ConfigError, load_params, parse_params
from components.params.keys import DVC_RESERVED_KEYS, reserved_key_paths
from tests.data import HANDSET_PARAMS

REPO = Path(__file__).resolve().parents[3]


def shipped() -> dict[str, Any]:
    return yaml.safe_load(HANDSET_PARAMS.read_text())


# ----------------------------------------------------------------------------- reserved_key_paths


def test_the_shipped_params_have_no_reserved_key() -> None:
    assert reserved_key_paths(shipped()) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, []),
        ({"size": 3}, ["size"]),
        ({"nfiles": 3}, ["nfiles"]),
        ({"preprocess": {"size": [64, 64], "image_size": [64, 64]}}, ["preprocess.size"]),
        ({"a": {"b": {"c": {"nfiles": 1}}}}, ["a.b.c.nfiles"]),
        # A reserved name as a value, or inside a longer name, is harmless.
        ({"name": "size", "step_size": 2, "sizes": [1], "image_size": 9, "n_files": 2}, []),
        # Mappings inside lists (DVC filters through lists too).
        (
            {"train": {"augment": {"transforms": [{"name": "A"}, {"name": "B", "kwargs": {"size": 4}}]}}},
            ["train.augment.transforms[1].kwargs.size"],
        ),
        ({"x": [[{"size": 1}]]}, ["x[0][0].size"]),
        # A reserved section is reported, and so is every reserved key below it, in document order.
        ({"size": {"nfiles": 1}, "b": {"size": 2}}, ["size", "size.nfiles", "b.size"]),
    ],
)
def test_reserved_key_paths(raw: dict[str, Any], expected: list[str]) -> None:
    assert reserved_key_paths(raw) == expected


def test_reserved_keys_are_exactly_what_the_installed_dvc_leaves_out_of_the_run_cache_hash() -> None:
    """Pins DVC_RESERVED_KEYS to DVC itself: a DVC upgrade that changes the set fails here.

    Every output-metadata and output-option name DVC knows (plus a few ordinary names) is put
    in a lock entry's params, nested in a section as a dvc.yaml ``params: [section]`` records
    it; the names whose value does not change the run-cache key are the reserved ones.
    """
    from dvc.output import Output
    from dvc.stage.cache import _get_cache_hash
    from dvc_data.hashfile.meta import Meta

    def names(cls: type) -> set[str]:
        return {v for k, v in vars(cls).items() if k.startswith("PARAM_") and isinstance(v, str)}

    candidates = (
        names(Meta) | names(Output) | {"hash", "md5", "cmd", "deps", "outs", "params", "lr", "image_size"}
    )

    def key(name: str, value: int) -> str:
        lock = {
            "cmd": "python -m flows.preprocess",
            "deps": [{"path": "data/manifest.parquet", "hash": "md5", "md5": "0" * 32, "size": 1}],
            "params": {"params.yaml": {"preprocess": {name: value, "seed": 0}}},
            "outs": [{"path": "data/prepared", "hash": "md5", "md5": "1" * 32 + ".dir", "nfiles": 2}],
        }
        return _get_cache_hash(copy.deepcopy(lock), key=True)

    ignored = {name for name in candidates if key(name, 1) == key(name, 2)}
    assert ignored == DVC_RESERVED_KEYS


# ----------------------------------------------------------------------------- parse_params


def test_a_reserved_key_is_a_config_error_that_names_it_and_says_why_and_what_to_do() -> None:
    raw = shipped()
    raw["preprocess"]["size"] = raw["preprocess"].pop("image_size")
    with pytest.raises(ConfigError) as info:
        parse_params(raw, "my.yaml")
    msg = str(info.value)
    assert msg.startswith("my.yaml: params keys named like DVC output metadata (nfiles, size)")
    assert "  - preprocess.size\n" in msg
    assert "run cache ignores" in msg and "treeverse/dvc#10296" in msg
    assert "Rename the key" in msg and "image_size" in msg
    # Checked before pydantic: not reported as a mere unknown key.
    assert "unknown key" not in msg


def test_every_reserved_key_at_any_depth_is_named() -> None:
    raw = shipped()
    raw["data"]["synthetic"]["size"] = raw["data"]["synthetic"].pop("image_size")
    raw["train"]["model"]["kwargs"]["nfiles"] = 3
    raw["train"]["augment"]["transforms"][1]["kwargs"]["size"] = [32, 32]
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    listed = [line[4:] for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert listed == [
        "data.synthetic.size",
        "train.model.kwargs.nfiles",
        "train.augment.transforms[1].kwargs.size",
    ]


def test_load_params_rejects_a_reserved_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(HANDSET_PARAMS.read_text().replace("  image_size: [64, 64]", "  size: [64, 64]"))
    with pytest.raises(
        ConfigError, match=r"(?s)params keys named like DVC output metadata.*- preprocess\.size"
    ):
        load_params(path)


def test_renamed_keys_are_read() -> None:
    raw = shipped()
    raw["preprocess"]["image_size"] = [32, 48]
    raw["data"]["synthetic"]["image_size"] = 40
    params = parse_params(raw)
    assert params.preprocess.image_size == (32, 48) and params.data.synthetic.image_size == 40
