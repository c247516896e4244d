"""Refuse a volume whose voxel data does not end where its header says, before it is decoded.

:func:`check_stream` walks the data that :func:`components.io.volume_headers.data_stream` located,
in chunks, without keeping it:

- raw data must be exactly the header's size (shorter: truncated; longer: the header's shape
  does not describe the file);
- a compressed stream (gzip or zlib) must inflate to exactly that size and then end, and no
  bytes may follow it: a stream that ends early is truncated (an interrupted copy or download),
  one that inflates further is corrupt or a decompression bomb, and is stopped one chunk past
  the header's size, never decoded in full;
- the header's size must fit in this machine's memory (a few-byte file can claim terabytes).

It also counts NaN/Inf voxels where the format's reader would replace them without a word
(NIfTI floats: nifti_io turns them into 0), so the reader can put them back.

Every refusal is a :class:`StreamError` naming the file, what the header expects and what was found.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from components.io.volume_headers import GZIP_MAGIC, DataStream

CHUNK = 1 << 22  # bytes decoded at a time (4 MiB): memory stays flat whatever the file claims
_RECOPY = "copy the file again from its source"


class StreamError(ValueError):
    """The voxel data does not match the header (the message names the file and both sizes)."""


@dataclass(frozen=True)
class StreamFacts:
    """What walking the data found.

    Attributes:
        nonfinite: NaN/Inf voxels among data whose reader would hide them (0 when not counted).
        data: The voxel bytes, when asked to keep them.
    """

    nonfinite: int = 0
    data: bytearray | None = None


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(stream: DataStream, where: Path) -> None:
    """Refuse a header whose voxel data alone would not fit in this machine's memory.

    Raises:
        StreamError: ``stream.size`` exceeds the physical memory.
    """
    ram = physical_memory()
    if ram is not None and stream.size > ram:
        raise StreamError(
            f"{where}: header claims {stream.describe()} = {stream.size / 2**30:,.1f} GiB, more than this "
            f"machine's memory ({ram / 2**30:,.1f} GiB); refusing to decode it (a corrupt or malicious "
            "header?): expected a volume whose header shape matches its data"
        )


def check_stream(stream: DataStream, where: Path, keep: bool = False) -> StreamFacts:
    """Walk the voxel data of ``stream``; refuse it unless it is exactly the header's size.

    Args:
        stream: Where the data lies and its expected size.
        where: The volume file the user named (the header's file), for messages.
        keep: Keep the decoded voxel bytes (``StreamFacts.data``), so the caller need not decode
            the file a second time; NaN/Inf are then not counted (they are kept as stored).

    Returns:
        The NaN/Inf count (when ``stream.float_dtype`` is set and not ``keep``), the kept bytes.

    Raises:
        StreamError: Missing data file, truncated data, data beyond the header's size, trailing
            bytes after a compressed stream, corrupt compressed data, or more than the memory.
    """
    check_memory(stream, where)
    if not stream.path.is_file():
        raise StreamError(f"{where}: its data file {stream.path} does not exist; {_RECOPY}")
    counter = _NonFinite(None if keep else stream.float_dtype)
    buffer = bytearray(stream.size) if keep else None  # within the memory checked above
    try:
        if stream.encoding == "raw":
            _check_raw(stream, where, counter, buffer)
        else:
            _check_compressed(stream, where, counter, buffer)
    except OSError as exc:  # a data file that cannot be opened or read (permissions, I/O errors)
        raise StreamError(f"{where}: cannot read {stream.path} ({exc.strerror or exc}); {_RECOPY}") from None
    return StreamFacts(counter.count, buffer)


class _NonFinite:
    """Counts NaN/Inf values in a byte stream fed in arbitrary pieces."""

    def __init__(self, dtype: np.dtype | None) -> None:
        self.dtype, self.count, self._rest = dtype, 0, b""

    def feed(self, data: bytes | memoryview) -> None:
        if self.dtype is None or not data:
            return
        size = self.dtype.itemsize
        start = 0
        if self._rest:  # complete the value split across the previous piece
            start = size - len(self._rest)
            head = self._rest + bytes(data[:start])
            self._rest = b""
            if len(head) < size:
                self._rest = head
                return
            self._count(np.frombuffer(head, dtype=self.dtype))
        n = (len(data) - start) // size
        self._count(np.frombuffer(data, dtype=self.dtype, count=n, offset=start))
        self._rest = bytes(data[start + n * size :])

    def _count(self, values: np.ndarray) -> None:
        # a float64 sum is finite exactly when no value is NaN/Inf (no overflow from float32
        # values; float64 data near 1e308 falls through to the exact count)
        if values.size and not np.isfinite(values.sum(dtype=np.float64)):
            self.count += int(values.size - np.count_nonzero(np.isfinite(values)))


def _truncated(stream: DataStream, where: Path, got: int, what: str) -> StreamError:
    pct = 100.0 * got / stream.size if stream.size else 0.0
    return StreamError(
        f"{where}: truncated: expected {stream.size:,} bytes of voxel data ({stream.describe()}) but "
        f"the {what} ends after {got:,} ({pct:.1f} %); the file was cut short (an interrupted copy or "
        f"download?): {_RECOPY}"
    )


def _read_chunks(path: Path, start: int, limit: int | None = None) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        left = limit
        while left is None or left > 0:
            block = fh.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                return
            if left is not None:
                left -= len(block)
            yield block


def _check_raw(stream: DataStream, where: Path, counter: _NonFinite, buffer: bytearray | None) -> None:
    total = stream.path.stat().st_size
    start = total - stream.size if stream.offset < 0 else stream.offset
    held = total - max(start, 0) if stream.offset >= 0 else total
    if held < stream.size:
        raise _truncated(stream, where, max(held, 0), "file" if stream.path == where else "data file")
    if stream.offset >= 0 and held > stream.size:
        raise StreamError(
            f"{where}: expected {stream.size:,} bytes of voxel data ({stream.describe()}) but the "
            f"{'file' if stream.path == where else 'data file'} holds {held:,} after its header; the "
            "header's shape or type does not describe the data (a corrupt header, or two files joined?)"
        )
    if buffer is not None:
        with stream.path.open("rb") as fh:
            fh.seek(start)
            got = fh.readinto(buffer)
        if got != stream.size:  # the file changed under us
            raise _truncated(stream, where, got, "file" if stream.path == where else "data file")
    elif counter.dtype is not None:
        for block in _read_chunks(stream.path, start, stream.size):
            counter.feed(block)


def _decoder() -> _Decoder:
    return zlib.decompressobj(47)  # 32 + 15: a gzip or a zlib header (MetaImage writes zlib)


class _Inflater:
    """Decodes a compressed data stream chunk by chunk: one or more gzip members (bgzf and
    concatenated gzip are legal), or one zlib stream, and nothing after it."""

    def __init__(
        self, stream: DataStream, where: Path, counter: _NonFinite, buffer: bytearray | None = None
    ) -> None:
        self.stream, self.where, self.counter, self.buffer = stream, where, counter, buffer
        self.need = stream.skip + stream.size  # decoded bytes the header accounts for
        self.got = 0
        self.decoder: _Decoder | None = None

    def feed(self, block: bytes) -> None:
        pending = block
        while True:
            if self.decoder is None or self.decoder.eof:
                if not pending:
                    return
                if self.decoder is not None and (self.stream.encoding != "gzip" or pending[:2] != GZIP_MAGIC):
                    raise self._trailing(len(pending))
                self.decoder = _decoder()
            room = min(CHUNK, self.need + 1 - self.got)
            out = self.decoder.decompress(pending, room)
            self._count(out)
            if self.decoder.eof:
                pending = self.decoder.unused_data
                continue
            pending = getattr(self.decoder, "unconsumed_tail", b"")
            if not pending and len(out) < room:
                return  # needs the next block

    def _count(self, out: bytes) -> None:
        end = self.got + len(out)
        if end > self.need:
            self.got = end
            raise StreamError(
                f"{self.where}: the compressed data inflates beyond the {self.stream.size:,} bytes of voxel "
                f"data its header describes ({self.stream.describe()}); stopped there without decoding the "
                "rest: a corrupt file or a decompression bomb, not a volume to read"
            )
        skip = self.stream.skip
        if end > skip:
            first = max(self.got, skip)
            piece = memoryview(out)[first - self.got :]
            self.counter.feed(piece)
            if self.buffer is not None:
                self.buffer[first - skip : end - skip] = piece
        self.got = end

    def _trailing(self, n: int) -> StreamError:
        what = "file" if self.stream.path == self.where else "data file"
        return StreamError(
            f"{self.where}: {n:,} or more bytes follow the end of its compressed voxel data; expected "
            f"the {what} to end there (two files joined, or a corrupt file?): {_RECOPY}"
        )

    def finish(self) -> None:
        """Refuse a stream that ended before the header's size (or never began)."""
        if self.decoder is None or not self.decoder.eof or self.got < self.need:
            ended = self.decoder is not None and not self.decoder.eof
            what = "compressed stream" if ended else "decompressed data"
            raise _truncated(self.stream, self.where, max(self.got - self.stream.skip, 0), what)


def _check_compressed(
    stream: DataStream, where: Path, counter: _NonFinite, buffer: bytearray | None = None
) -> None:
    inflater = _Inflater(stream, where, counter, buffer)
    try:
        for block in _read_chunks(stream.path, stream.offset):
            inflater.feed(block)
    except (zlib.error, EOFError) as exc:
        what = (
            "its checksum (CRC) does not match the data"
            if "data check" in str(exc)
            else "it cannot be inflated"
        )
        raise StreamError(
            f"{where}: corrupt compressed data: {what} ({exc}); expected a gzip/zlib stream of "
            f"{stream.size:,} bytes of voxel data ({stream.describe()}): {_RECOPY}"
        ) from None
    inflater.finish()


def restore_nonfinite(arr: np.ndarray, stream: DataStream, count: int, where: Path) -> np.ndarray:
    """Put back the NaN/Inf voxels that the format's reader replaced (NIfTI: with 0).

    The stored values are read again, in file order; that is the order of ``arr`` (NIfTI keeps x
    fastest and any time or vector axis slowest, as ``(C, Z, Y, X)`` does). Only called when
    :func:`check_stream` counted such voxels, so clean files never pay for it.

    Shape:
        arr ``(Z, Y, X)`` or ``(C, Z, Y, X)`` -> the same.

    Raises:
        StreamError: The stored values do not line up with ``arr`` (then the NaN/Inf voxels cannot
            be placed, and the volume is refused rather than read with zeros in their place).
    """
    dtype = stream.float_dtype
    if dtype is not None and stream.encoding == "gzip":
        with gzip.open(stream.path, "rb") as fh:
            fh.seek(stream.skip)
            data = fh.read(stream.size)
    else:
        with stream.path.open("rb") as fh:
            fh.seek(stream.offset)
            data = fh.read(stream.size)
    values = np.frombuffer(data, dtype=dtype) if dtype is not None else np.empty(0)
    bad = ~np.isfinite(values)
    if values.size != arr.size or not np.issubdtype(arr.dtype, np.floating) or int(bad.sum()) != count:
        raise StreamError(
            f"{where}: {count:,} voxels are NaN or infinite; expected finite numbers: replace them "
            "(e.g. by the background value) or remove the case"
        )
    out = np.array(arr, copy=True)
    out.reshape(-1)[bad] = values[bad]
    return out
