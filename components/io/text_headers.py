"""Text headers of NRRD and MetaImage files: their lines, their fields, and MetaImage headers that
would crash SimpleITK.

SimpleITK's MetaImage reader trusts ``NDims``: a header saying ``NDims = 83`` over three sizes
corrupts the heap and aborts the whole process (glibc's "corrupted size vs. prev_size", found by
corrupting files at random). :func:`meta_header_problems` checks the fields that ``NDims`` sizes
before SimpleITK reads the header, so such a file is one refusal naming the field instead.
"""

from __future__ import annotations

import re
from pathlib import Path

HEADER_LIMIT = 1 << 20  # bytes: a text header longer than this is not one
META_END = re.compile(r"^\s*ElementDataFile\s*=", re.IGNORECASE)
# MetaImage fields with one value per dimension, or NDims x NDims (matrices)
_PER_AXIS = ("dimsize", "elementspacing", "elementsize", "offset", "position", "origin", "centerofrotation")
_MATRICES = ("transformmatrix", "rotation", "orientation")
MAX_META_DIMS = 10  # a generous bound: medical images have 2 to 4 (5 with vector time series)


def text_header(path: Path, stop: re.Pattern[str], to_end: bool = False) -> tuple[list[str], int] | None:
    """Header lines up to (and including) the first line matching ``stop``, and the byte offset
    just after it; None when no such line comes within the header limit (or before the end of
    the file, unless ``to_end``: a detached NRRD header may end without its blank line)."""
    lines: list[str] = []
    with path.open("rb") as fh:
        pos = 0
        while pos < HEADER_LIMIT:
            raw = fh.readline(HEADER_LIMIT)
            if not raw:
                return (lines, pos) if to_end else None
            pos += len(raw)
            line = raw.decode("latin-1").rstrip("\r\n")
            lines.append(line)
            if stop.match(line):
                return lines, pos
    return None


def meta_fields(path: Path) -> tuple[dict[str, str], int] | None:
    """A MetaImage header's ``Key = Value`` fields (keys lower-cased) and where its data begins;
    None when no ``ElementDataFile`` line ends the header."""
    found = text_header(path, META_END)
    if found is None:
        return None
    lines, end = found
    fields: dict[str, str] = {}
    for line in lines:
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip().lower()] = value.strip()
    return fields, end


def _numbers(value: str) -> list[float] | None:
    try:
        return [float(v) for v in value.split()]
    except ValueError:
        return None


def leading_fields(path: Path, limit: int = 1 << 16) -> dict[str, str]:
    """``Key = Value`` lines from the file's start up to ``ElementDataFile`` or the first line that
    is not one (the data, or a header whose last line was corrupted)."""
    with path.open("rb") as fh:
        head = fh.read(limit)
    fields: dict[str, str] = {}
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1").rstrip("\r")
        if "=" not in line or any(ord(c) < 32 and c != "\t" for c in line):
            break
        key, value = line.split("=", 1)
        fields[key.strip().lower()] = value.strip()
        if META_END.match(line):
            break
    return fields


def meta_header_problems(path: Path) -> list[str]:
    """What in a MetaImage header disagrees with its ``NDims`` (empty when nothing does, or when
    the file holds no ``NDims``: SimpleITK refuses that itself)."""
    try:
        fields = leading_fields(path)
    except OSError:
        return []
    if "ndims" not in fields:
        return []
    try:
        ndims = int(fields["ndims"])
    except ValueError:
        ndims = -1
    if not 1 <= ndims <= MAX_META_DIMS:
        shown = fields["ndims"]
        return [f"MetaImage header: NDims {shown!r}; expected a number of dimensions, 1 to {MAX_META_DIMS}"]
    problems = []
    for key, count in [(k, ndims) for k in _PER_AXIS] + [(k, ndims * ndims) for k in _MATRICES]:
        if key not in fields:
            continue
        values = _numbers(fields[key])
        if values is None or len(values) != count:
            problems.append(f"{key} {fields[key]!r} does not hold {count} numbers for NDims {ndims}")
    orientation = fields.get("anatomicalorientation")
    if orientation is not None and orientation != "?" and len(orientation) != ndims:
        problems.append(f"AnatomicalOrientation {orientation!r} does not name {ndims} axes for NDims {ndims}")
    return [f"MetaImage header: {p}; expected a header whose fields agree with NDims" for p in problems]
