"""``dataset.json``: how a dataset describes itself (Medical Segmentation Decathlon and nnU-Net v2).

Two dialects are read, in any dataset folder (segflow's plain layout or an MSD / nnU-Net raw folder)::

    nnU-Net v2:  {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1},
                  "numTraining": 131, "file_ending": ".nii.gz"}
    MSD:         {"modality": {"0": "MRI"}, "labels": {"0": "background", "1": "Anterior"},
                  "numTraining": 260, "training": [...], "test": [...]}

``labels`` maps name -> value (v2) or "value" -> name (MSD); the dialect is told by the values (all
integers: v2; all strings: MSD). nnU-Net v2's ``ignore`` label (unannotated voxels) is kept apart
from the classes; its region-based labels (a name -> a list of values) are refused, because segflow
trains one class per mask value. Channel names come from ``channel_names`` (v2) or ``modality``
(MSD); their keys are the channel indices ``"0"``, ``"1"``, ... Every key is optional; other keys
(``description``, ``licence``, ...) are not read; ``name`` names the dataset (the registered model's
default name).

Reading checks only the file itself; whether it agrees with the images and masks is the validate
stage's check (:mod:`components.validation.dataset_description`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.core.errors import UserError

DATASET_JSON = "dataset.json"
IGNORE_NAME = "ignore"  # nnU-Net v2: the label of unannotated voxels (no loss, no metric)


class DatasetJsonError(UserError, ValueError):
    """``dataset.json`` cannot be read as a dataset description (message names the key and the fix)."""


@dataclass(frozen=True)
class DatasetJson:
    """What a ``dataset.json`` says.

    Attributes:
        path: The file.
        labels: Class name -> mask value (without the ignore label), or None without ``labels``.
        ignore_label: nnU-Net v2's ``ignore`` value, or None.
        channel_names: Channel names in channel order, or None without ``channel_names``/``modality``.
        channel_key: The key they came from (``channel_names`` or ``modality``), or None.
        file_ending: ``file_ending`` (e.g. ``".nii.gz"``), or None.
        num_training: ``numTraining``, or None.
        name: ``name`` (e.g. MSD's ``"Hippocampus"``), or None.
    """

    path: Path
    labels: dict[str, int] | None
    ignore_label: int | None
    channel_names: tuple[str, ...] | None
    channel_key: str | None
    file_ending: str | None
    num_training: int | None
    name: str | None = None


def _fail(path: Path, message: str) -> DatasetJsonError:
    return DatasetJsonError(f"{path}: {message}")


def _value(path: Path, name: str, value: Any) -> int:
    """A mask value given in ``labels`` (an int, or MSD's digit string)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, list):
        raise _fail(
            path,
            f"labels: {name!r} -> {value} is a region (nnU-Net's region-based training), which segflow "
            'does not train; list each mask value as its own class, e.g. "edema": 1',
        )
    raise _fail(path, f"labels: {name!r} -> {value!r}; expected a mask value (an integer >= 0)")


def _labels(path: Path, raw: Any) -> tuple[dict[str, int], int | None]:
    """(class name -> value, ignore value) from either dialect."""
    if not isinstance(raw, Mapping) or not raw:
        raise _fail(path, f"labels must be an object of class names and mask values, got {raw!r}")
    items = [(str(k).strip(), v) for k, v in raw.items()]
    if all(isinstance(v, str) and k.isdigit() for k, v in items):  # MSD: "value" -> name
        pairs = [(str(v), _value(path, str(v), k)) for k, v in items]
    else:  # nnU-Net v2: name -> value
        pairs = [(k, _value(path, k, v)) for k, v in items]
    by_value: dict[int, str] = {}
    for name, value in pairs:
        if value in by_value:
            raise _fail(
                path,
                f"labels: {by_value[value]!r} and {name!r} share the mask value {value}; give each "
                "class its own value",
            )
        by_value[value] = name
    ignore = next((v for n, v in pairs if n == IGNORE_NAME), None)
    return {n: v for n, v in pairs if n != IGNORE_NAME}, ignore


def _channels(path: Path, key: str, raw: Any) -> tuple[str, ...]:
    """Channel names in index order; the keys must be ``"0"..."C-1"``."""
    if not isinstance(raw, Mapping) or not raw:
        raise _fail(
            path, f'{key} must be an object of channel index -> name, e.g. {{"0": "CT"}}, got {raw!r}'
        )
    keys = [str(k).strip() for k in raw]
    expected = [str(i) for i in range(len(keys))]
    if sorted(keys, key=lambda k: (len(k), k)) != expected:
        raise _fail(
            path, f"{key}: keys {', '.join(keys)}; expected the channel indices {', '.join(expected)}"
        )
    names = {str(k).strip(): str(v) for k, v in raw.items()}
    return tuple(names[k] for k in expected)


def parse_dataset_json(raw: Any, path: Path) -> DatasetJson:
    """Read a parsed ``dataset.json`` (see the module docstring).

    Raises:
        DatasetJsonError: Not an object, or a read key of the wrong form.
    """
    if not isinstance(raw, Mapping):
        raise _fail(path, f"expected a JSON object with labels, channel_names, ...; got {type(raw).__name__}")
    labels, ignore = _labels(path, raw["labels"]) if "labels" in raw else (None, None)
    key = next((k for k in ("channel_names", "modality") if k in raw), None)
    channels = _channels(path, key, raw[key]) if key is not None else None
    ending = raw.get("file_ending")
    if ending is not None and not (isinstance(ending, str) and ending.startswith(".") and len(ending) > 1):
        raise _fail(path, f'file_ending {ending!r}; expected the files\' suffix with its dot, e.g. ".nii.gz"')
    count = raw.get("numTraining")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise _fail(path, f"numTraining {count!r}; expected the number of training cases (an integer)")
    name = raw.get("name")
    name = name.strip() if isinstance(name, str) and name.strip() else None
    return DatasetJson(path, labels, ignore, channels, key, ending, count, name)


def read_dataset_json(data_dir: Path) -> DatasetJson | None:
    """``data_dir/dataset.json``, or None when the folder has none.

    Raises:
        DatasetJsonError: The file is not valid JSON, or not a dataset description.
    """
    path = Path(data_dir) / DATASET_JSON
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(path, f"not valid JSON ({exc}); fix the file or remove it") from None
    return parse_dataset_json(raw, path)


def dataset_json_text(
    classes: Mapping[str, int], channel_names: list[str], num_training: int, file_ending: str, name: str
) -> str:
    """A ``dataset.json`` in nnU-Net v2's form (what the phantom generators write)."""
    doc = {
        "name": name,
        "channel_names": {str(i): name for i, name in enumerate(channel_names)},
        "labels": dict(classes),
        "numTraining": num_training,
        "file_ending": file_ending,
    }
    return json.dumps(doc, indent=2) + "\n"
