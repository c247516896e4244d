"""Does a volume file hold what its name says? A renamed PNG is no NIfTI.

SimpleITK picks its reader by the file's content, not its name: a PNG saved as ``case.nii.gz`` is
read as a 2D image without a word, and an empty file gets "Unable to determine ImageIO reader".
:func:`content_problem` looks at the first bytes (after gunzip for NIfTI) and says what the file
is instead, so the refusal tells the user what happened (a renamed or mislabelled export).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from components.io.text_headers import leading_fields
from components.io.volume_headers import GZIP_MAGIC

# the formats a mislabelled volume usually is: first bytes -> name
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"NRRD", "an NRRD volume"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF", "a PDF document"),
    (b"<", "an HTML or XML page (a download that returned a web page?)"),
)


def _what(head: bytes) -> str:
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "a DICOM file"
    if head.startswith(GZIP_MAGIC):
        return "a gzip file"
    return "no known format"


def content_problem(path: Path) -> str | None:
    """Why ``path`` does not hold the volume format its suffix names, or None when it does (or
    when the suffix is not one of NIfTI, NRRD, MetaImage)."""
    name = path.name.lower()
    with path.open("rb") as fh:
        head = fh.read(4096)
    if not head:
        return "the file is empty (0 bytes); copy it again from its source"
    if name.endswith((".nii", ".nii.gz")):
        inner = head
        if head.startswith(GZIP_MAGIC):
            try:
                with gzip.open(path, "rb") as fh:
                    inner = fh.read(4)
            except (OSError, EOFError, zlib.error):
                return None  # a damaged gzip stream: the stream check names it
        if len(inner) >= 4 and 348 in (int.from_bytes(inner[:4], "little"), int.from_bytes(inner[:4], "big")):
            return None
        if len(inner) >= 4 and 540 in (int.from_bytes(inner[:4], "little"), int.from_bytes(inner[:4], "big")):
            return None  # NIfTI-2: named as such by the NIfTI checks
        kind = "NIfTI"
    elif name.endswith(".nrrd"):
        if head.startswith(b"NRRD"):
            return None
        kind = "NRRD"
    elif name.endswith(".mha"):
        if "ndims" in leading_fields(path) or head.startswith(b"ObjectType"):
            return None
        kind = "MetaImage"
    else:
        return None
    return (
        f"not a {kind} file: it holds {_what(head)} (a renamed or mislabelled export?); expected a "
        f"{kind} volume: re-export it, or give it the suffix of what it is"
    )
