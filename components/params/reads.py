"""Record which params keys a stage reads, to check them against the stage's ``params:`` in dvc.yaml.

DVC re-runs a stage only when a key listed under its ``params:`` changes; a key the stage reads
but does not list would silently keep stale outputs. With ``SEGFLOW_PARAMS_READS=<file>`` in the
environment, :func:`components.params.config.load_params` returns a read-through view that appends each
dotted key read (a section read whole, e.g. by ``model_dump()``, counts as that section) to
``<file>`` as JSON lines ``{"stage": $DVC_STAGE, "key": ...}``. The integration test reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

PARAMS_READS_ENV = "SEGFLOW_PARAMS_READS"


class _Sink:
    """Appends each distinct key once."""

    def __init__(self, log: Path, stage: str) -> None:
        self.log, self.stage, self.seen = log, stage, set[str]()

    def __call__(self, key: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            with self.log.open("a") as fh:
                fh.write(json.dumps({"stage": self.stage, "key": key}) + "\n")


class RecordedView:
    """Read-through view of a pydantic model that reports the dotted path of every field read.

    Properties are evaluated on the view, so ``data.class_names`` records ``data.classes``;
    methods (``model_dump`` ...) record the whole object they are called on.
    """

    def __init__(self, obj: BaseModel, prefix: str, sink: _Sink) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_sink", sink)

    def __getattr__(self, name: str) -> Any:
        obj: BaseModel = object.__getattribute__(self, "_obj")
        prefix: str = object.__getattribute__(self, "_prefix")
        sink: _Sink = object.__getattribute__(self, "_sink")
        attr = getattr(type(obj), name, None)
        if isinstance(attr, property) and attr.fget is not None:
            return attr.fget(self)
        value = getattr(obj, name)
        field = type(obj).model_fields.get(name)
        if field is not None:
            key = field.alias or name  # the params.yaml key (``validate_`` is read as ``validate``)
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, BaseModel):
                return RecordedView(value, path, sink)
            sink(path)
            return value
        sink(prefix or "*")  # a method or other attribute: it may read everything below
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("params are frozen")


def record_reads(params: BaseModel, log: Path, stage: str) -> Any:
    """A view of ``params`` that appends every key read to ``log`` (see the module docstring)."""
    return RecordedView(params, "", _Sink(Path(log), stage))
