"""Apply ``key=value`` overrides to params.yaml, keeping its comments and layout.

Used by ``segflow run --set`` and the Prefect deployment's ``overrides`` parameter, so that the
file DVC reads (and records in dvc.lock) is exactly what ran. The merged result is validated
before anything is written; a bad override leaves params.yaml untouched. ``merged_params`` computes
the result without writing (so a run can check it first) and ``params_transaction`` puts the original
bytes back when what follows the write fails.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from components.params.config import AUTO, ConfigError, Params, load_yaml
from components.params.user import parse_user_params


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
        if node[part] == AUTO:  # a key the plan chooses: only its name can be set alone
            _set_under_auto(node, part, parts[: i + 1], parts[i + 1 :], value, dotted)
            return
        node = node[part]
    if not isinstance(node, MutableMapping):  # ruamel's sections are (mutable) CommentedMaps
        raise ConfigError(f"override '{dotted}': '{'.'.join(parts[:-1])}' is not a section")
    node[parts[-1]] = value


def _set_under_auto(node: Any, part: str, head: list[str], rest: list[str], value: Any, dotted: str) -> None:
    """``train.model.name=unet`` while ``train.model`` is ``auto``: ``{name: unet}`` (its arguments
    take their defaults); anything deeper needs the whole value, which the error shows."""
    key = ".".join(head)
    if rest == ["name"]:
        node[part] = {"name": value}
        return
    raise ConfigError(
        f"override '{dotted}': {key} is auto (the plan chooses it, arguments and all); set it whole, "
        f"e.g. --set '{key}={{name: adamw, kwargs: {{lr: 0.001}}}}' (or --set {key}.name=NAME alone)"
    )


def merged_params(path: Path, overrides: Mapping[str, Any]) -> tuple[str, Params]:
    """The text params.yaml would have with ``overrides`` set, and its validated params (as written:
    plannable keys may be ``auto``, see components/params/user.py); writes nothing.

    Without overrides the text is the file's own, byte for byte.

    Raises:
        ConfigError: Unknown section, or the merged params are invalid.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run from the project root or pass --params")
    if not overrides:
        text = path.read_text()
        return text, parse_user_params(load_yaml(text) or {}, str(path))
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
    return text, parse_user_params(load_yaml(text), f"{path} with overrides {dict(overrides)}")


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text`` (temp file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def apply_overrides(path: Path, overrides: Mapping[str, Any]) -> Params:
    """Set dotted keys in params.yaml (atomically) and return the validated params.

    Raises:
        ConfigError: Unknown section, or the merged params are invalid; the file is unchanged.
    """
    text, params = merged_params(path, overrides)
    if overrides:
        write_atomically(path, text)
    return params


@contextmanager
def params_transaction(path: Path) -> Iterator[None]:
    """Snapshot ``path``'s bytes; if the block raises (KeyboardInterrupt included), put them back.

    On success whatever the block wrote stays. The exception is re-raised after the restore.
    """
    original = path.read_bytes()
    try:
        yield
    except BaseException:
        if not path.is_file() or path.read_bytes() != original:
            tmp = path.with_suffix(path.suffix + ".restore")
            tmp.write_bytes(original)
            os.replace(tmp, path)
        raise
