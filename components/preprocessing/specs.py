"""Which preprocessing a run uses: the network-size 2D spec or the native (patch mode) spec."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core import layout
from components.preprocessing.native import NativeSpec, native_spec_from_params
from components.preprocessing.pipeline import PreprocessSpec, spec_from_params

if TYPE_CHECKING:
    from components.params.config import Params

AnySpec = PreprocessSpec | NativeSpec


def read_fingerprint(path: Path = layout.FINGERPRINT) -> dict[str, Any]:
    """The validate stage's dataset fingerprint.

    Raises:
        FileNotFoundError: Not written yet (run the validate stage).
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the validate stage first (dvc repro validate)")
    fp: dict[str, Any] = json.loads(path.read_text())
    return fp


def expected_spec(params: Params, prepared_dir: Path) -> AnySpec:
    """The spec params.yaml asks for, resolved against the fingerprint the prepared data recorded
    (so training can check its prepared data without reading the validate stage's reports)."""
    if params.preprocess.spatial_mode != "patch":
        return spec_from_params(params)
    path = Path(prepared_dir) / layout.PREPARED_INFO.name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; run the preprocess stage first (dvc repro preprocess)")
    fingerprint = json.loads(path.read_text()).get("fingerprint")
    if fingerprint is None:
        raise FileNotFoundError(f"{path}: made without patch mode; re-run the preprocess stage")
    return native_spec_from_params(params, fingerprint)


def spec_from_dict(d: Mapping[str, Any]) -> AnySpec:
    """A spec read back from a checkpoint or prepared.json."""
    return NativeSpec.from_dict(d) if d.get("spatial_mode") == "patch" else PreprocessSpec.from_dict(d)


def prepared_spec(prepared_dir: Path) -> AnySpec:
    """The spec the prepared data was made with (``prepared.json``)."""
    info = json.loads((Path(prepared_dir) / layout.PREPARED_INFO.name).read_text())
    return spec_from_dict(info["preprocess"])


def prepared_info(prepared_dir: Path) -> dict[str, Any]:
    """The whole ``prepared.json``."""
    info: dict[str, Any] = json.loads((Path(prepared_dir) / layout.PREPARED_INFO.name).read_text())
    return info
