"""Apply ``key=value`` overrides to params.yaml, keeping its comments and layout.

Used by ``segflow run --set`` and the Prefect deployment's ``overrides`` parameter, so that the
file DVC reads (and records in dvc.lock) is exactly what ran. The merged result is validated
before anything is written; a bad override leaves params.yaml untouched.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from components.config import ConfigError, Params, load_yaml, parse_params


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ``("train.epochs", 3)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY=VALUE, e.g. train.epochs=20")
    key, raw = text.split("=", 1)
    return key.strip(), load_yaml(raw) if raw.strip() else None


def _set(tree: Any, dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"override '{dotted}': no section '{'.'.join(parts[: i + 1])}' in params.yaml")
        node = node[part]
    if not isinstance(node, MutableMapping):  # ruamel's sections are (mutable) CommentedMaps
        raise ConfigError(f"override '{dotted}': '{'.'.join(parts[:-1])}' is not a section")
    node[parts[-1]] = value


def apply_overrides(path: Path, overrides: Mapping[str, Any]) -> Params:
    """Set dotted keys in params.yaml (atomically) and return the validated params.

    Raises:
        ConfigError: Unknown section, or the merged params are invalid; the file is unchanged.
    """
    ry = YAML()
    ry.preserve_quotes = True
    ry.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    doc = ry.load(path.read_text())
    for key, value in overrides.items():
        _set(doc, key, value)
    buf = io.StringIO()
    ry.dump(doc, buf)
    text = buf.getvalue()
    params = parse_params(load_yaml(text), f"{path} with overrides {dict(overrides)}")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return params
