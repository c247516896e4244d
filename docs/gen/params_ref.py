"""The params reference, generated from ``params.yaml`` itself (docs/reference/params.md).

Every key of params.yaml with its value as shipped, its type (from the typed config,
components/params/user.py), the stages that read it (dvc.yaml's ``params:`` lists) and the comment
written beside it in params.yaml. Nothing here is written by hand, so a changed comment or default
changes the page with no edit; :func:`undocumented` names the keys a test refuses (no comment).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from components.params.config import load_yaml
from components.params.user import PLANNABLE, UserParams
from docs.gen.code_ref import md_text

REPO = Path(__file__).resolve().parents[2]
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


@dataclass
class Key:
    """One params.yaml key as written: dotted path, line, inline value text and comment."""

    path: str
    line: int
    indent: int
    value_text: str
    comment: list[str] = field(default_factory=list)


def split_comment(text: str) -> tuple[str, str | None]:
    """``value  # comment`` -> (value, comment); a ``#`` inside quotes is part of the value."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), None


def _field(path: str) -> Any:
    """The pydantic field of a dotted key in :data:`UserParams`, or None where there is none."""
    model: Any = UserParams
    info = None
    for part in path.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        info = fields.get(part)
        if info is None:
            return None
        model = info.annotation
    return info


def _is_section(path: str) -> bool:
    info = _field(path)
    return info is not None and isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)


def parse_keys(text: str) -> list[Key]:
    """The keys of params.yaml's text, in order, each with its comment.

    A key's comment is the comment at the end of its line, the comment-only lines right below it
    that are indented past the key (continuations), and comment-only lines right above it at its
    own indentation (a heading comment). Lines below a key that is not a section of the config
    (a mapping or list value written in block style) are its value, not keys.
    """
    keys: list[Key] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] = []  # comment-only lines waiting for the key below them
    last: Key | None = None  # the key a comment-only line may continue
    value_indent: int | None = None  # inside a block value: lines indented past this are its value
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip(" "))
        if not stripped:
            pending, last = [], None
            continue
        if value_indent is not None and indent > value_indent and not stripped.startswith("#"):
            continue
        value_indent = None
        if stripped.startswith("#"):
            comment = stripped.lstrip("#").strip()
            if last is not None and indent > last.indent:
                last.comment.append(comment)
            else:
                pending.append(comment)
                last = None
            continue
        match = _KEY.match(raw)
        if match is None:  # a list item or a flow value's continuation
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(k for _, k in stack), match["key"]])
        value, inline = split_comment(match["rest"])
        key = Key(path, lineno, indent, value, [*pending, *([inline] if inline else [])])
        keys.append(key)
        pending, last = [], key
        if not value:
            if _is_section(path):
                stack.append((indent, match["key"]))
            else:
                value_indent = indent
    return keys


def header(text: str) -> list[str]:
    """params.yaml's opening comment block (up to the first blank line)."""
    out = []
    for raw in text.splitlines():
        if not raw.strip().startswith("#"):
            break
        out.append(raw.strip().lstrip("#").strip())
    return out


def stage_reads(dvc_yaml: Path) -> dict[str, list[str]]:
    """``{stage: [params entries]}`` from dvc.yaml (entries under ``plans/params.yaml:`` included)."""
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    out: dict[str, list[str]] = {}
    for name, stage in stages.items():
        entries: list[str] = []
        for item in stage.get("params", []) or []:
            if isinstance(item, dict):
                for listed in item.values():
                    entries.extend(str(k) for k in listed or [])
            else:
                entries.append(str(item))
        out[name] = entries
    return out


def readers(path: str, reads: dict[str, list[str]]) -> list[str]:
    """The stages that read ``path`` (a listed key, a section above it, or a key inside it)."""
    return [
        stage
        for stage, entries in reads.items()
        if any(e == path or path.startswith(e + ".") or e.startswith(path + ".") for e in entries)
    ]


def _constraint(meta: Any) -> str:
    for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if getattr(meta, attr, None) is not None:
            return f"{sign} {getattr(meta, attr):g}"
    for attr, word in (("min_length", "at least"), ("max_length", "at most")):
        if getattr(meta, attr, None) is not None:
            return f"{word} {getattr(meta, attr)} items"
    return ""


def type_text(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> str:
    """A readable type: ``int (≥ 1)``, ``zscore | minmax``, ``list[int] | null``, ``{name, kwargs}``."""
    own = [c for c in (_constraint(m) for m in metadata) if c]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner_meta = [m for a in args[1:] for m in (getattr(a, "metadata", None) or [a])]
        text = type_text(args[0], inner_meta)
    elif origin is typing.Union or origin is types.UnionType:
        text = " | ".join(type_text(a) for a in args)
    elif origin is typing.Literal:
        text = " | ".join(str(a) for a in args)
    elif origin is list:
        text = f"list[{type_text(args[0])}]"
    elif origin is tuple:
        text = "[" + ", ".join(type_text(a) for a in args) + "]"
    elif origin is dict:
        text = f"mapping {type_text(args[0])} → {type_text(args[1])}"
    elif annotation is type(None):
        text = "null"
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        names = [f.alias or n for n, f in annotation.model_fields.items()]
        text = "{" + ", ".join(names) + "}"
    else:
        text = getattr(annotation, "__name__", str(annotation))
    return f"{text} ({', '.join(own)})" if own else text


def _cell(text: str) -> str:
    return md_text(text.replace("\n", " "))


def _yaml_text(value: Any) -> str:
    """A value as one line of YAML (``[96, 96]``, ``null``, ``auto``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _value(tree: Any, path: str) -> Any:
    for part in path.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def undocumented(params_yaml: Path = REPO / "params.yaml") -> list[str]:
    """Keys of params.yaml with no comment (``path (line N)``): each must say what it is."""
    return [f"{k.path} (line {k.line})" for k in parse_keys(params_yaml.read_text()) if not k.comment]


def unknown_keys(params_yaml: Path = REPO / "params.yaml") -> list[str]:
    """Keys of params.yaml the typed config does not know (the reference could not type them)."""
    return [k.path for k in parse_keys(params_yaml.read_text()) if _field(k.path) is None]


def _model_keys(model: type[BaseModel] = UserParams, prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        out.append(path)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out += _model_keys(info.annotation, path + ".")
    return out


def render(params_yaml: Path = REPO / "params.yaml", dvc_yaml: Path = REPO / "dvc.yaml") -> str:
    """The params reference page (markdown)."""
    text = params_yaml.read_text()
    values = load_yaml(text) or {}
    reads = stage_reads(dvc_yaml)
    keys = parse_keys(text)
    lines = [
        "# Params reference",
        "",
        "<!-- generated by docs/gen/params_ref.py from params.yaml, dvc.yaml and the typed config: "
        "edit those, not this page -->",
        "",
        "Generated from `params.yaml` at each docs build: the value each key ships with, its type, the",
        "stages that read it (their `params:` in `dvc.yaml`) and the comment written beside it. The stages",
        "after `plan` read the resolved file `plans/params.yaml` (every `auto` replaced by its planned",
        "value; see [the plan](../plan.md)). Keys marked **plannable** may say `auto`.",
        "",
        "From the head of `params.yaml`:",
        "",
        *[f"> {line}" if line else ">" for line in header(text)],
        "",
    ]
    for top in [k for k in keys if "." not in k.path]:
        lines += [f"## `{top.path}`", "", " ".join(top.comment), ""]
        lines += ["| key | value | type | read by | what it is |", "|---|---|---|---|---|"]
        for k in (k for k in keys if k.path.startswith(top.path + ".")):
            info = _field(k.path)
            kind = type_text(info.annotation, info.metadata) if info is not None else "**not in the config**"
            if _is_section(k.path):
                shown, kind = "(section)", "section"
            else:
                shown = f"`{_cell(_yaml_text(_value(values, k.path)))}`"
            plannable = " **plannable**" if k.path in PLANNABLE else ""
            lines.append(
                f'| <a id="{k.path}"></a>`{k.path}`{plannable} | {shown} | {_cell(kind)} | '
                f"{', '.join(readers(k.path, reads)) or '—'} | {_cell(' '.join(k.comment))} |"
            )
        lines.append("")
    written = {k.path for k in keys}
    # keys of the config params.yaml does not write, inside sections it does write
    left_out = [p for p in _model_keys() if p not in written and "." in p and p.rsplit(".", 1)[0] in written]
    if left_out:
        lines += [
            "## Keys params.yaml leaves out",
            "",
            "The typed config accepts these too; left out, they take the default shown.",
            "",
            "| key | default | type | read by |",
            "|---|---|---|---|",
        ]
        for path in left_out:
            info = _field(path)
            default = info.get_default(call_default_factory=True)
            default = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
            lines.append(
                f"| `{path}` | `{_cell(repr(default))}` | {_cell(type_text(info.annotation, info.metadata))} "
                f"| {', '.join(readers(path, reads)) or '—'} |"
            )
        lines.append("")
    return "\n".join(lines)
