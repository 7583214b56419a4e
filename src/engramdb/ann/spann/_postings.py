"""On-disk posting lists: two row-aligned files read through mmap, written with pwrite.

``vectors.e<E>.f32`` holds float32 rows of ``dim`` values; ``entries.e<E>.i64`` holds one int64
per row, ``(version << 32) | vid``; ``codes.e<E>.i8`` holds each row's int8 code (see
:mod:`._quant`), which search scans instead of the float32 row. ``E`` is the epoch: compaction
writes a new set of files. A folder written before codes existed has no codes file: it opens
without codes (search scans the float32 rows) until compaction rewrites it.
A posting list is a contiguous run of rows ``[start, start + rows)`` inside a region of ``cap``
rows whose start is page-aligned in the vector file, so reading a list is one contiguous read.

The files are log-structured: rows referenced by a committed directory are never overwritten.
Appends go to a list's free tail (rows the committed directory does not count) or to a new
region past ``end``; a list that outgrows its region moves. A crash therefore leaves the last
committed directory pointing at intact rows; whatever was written after it is ignored.
"""

from __future__ import annotations

import math
import mmap
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._quant import code_width, decode, encode
from engramdb.errors import IndexFormatError
from engramdb.types import Matrix

__all__ = ["PostingFile", "pack", "posting_names", "unpack_vid", "unpack_version"]

_PAGE = 4096
_GROW = 64 << 20
_VID_MASK = np.int64(0xFFFFFFFF)

_Ints = npt.NDArray[np.int64]


def pack(vids: _Ints, versions: npt.NDArray[np.uint8]) -> _Ints:
    """Entries for ``vids`` at ``versions``."""
    return (versions.astype(np.int64) << 32) | vids.astype(np.int64)


def unpack_vid(entries: _Ints) -> _Ints:
    """The vids of packed entries."""
    return entries & _VID_MASK


def unpack_version(entries: _Ints) -> _Ints:
    """The versions of packed entries."""
    return entries >> 32


def posting_names(epoch: int) -> tuple[str, str, str]:
    """The vector, entry and code file names of ``epoch``."""
    return f"vectors.e{epoch}.f32", f"entries.e{epoch}.i64", f"codes.e{epoch}.i8"


class PostingFile:
    """The row files of one index folder: float32 vectors, entries and int8 codes.

    Args:
        folder: the index folder.
        dim: vector dimension.
        end: the first row past every committed region (rows from here on are free).
        epoch: which set of files.
        create: create empty files (else open existing ones and check their size; a missing
            codes file means a folder from before codes: :attr:`codes` is then ``None``).

    Raises:
        IndexFormatError: the files are missing or shorter than ``end`` rows (torn).
    """

    def __init__(self, folder: Path, dim: int, end: int, *, epoch: int = 0, create: bool = False):
        self.dim, self.epoch = dim, epoch
        self.row_bytes = 4 * dim
        self.align = _PAGE // math.gcd(_PAGE, self.row_bytes)
        self.end = end
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        paths = [folder / name for name in posting_names(epoch)]
        if not create and not paths[2].exists():
            paths.pop()
        self._widths = (self.row_bytes, 8, code_width(dim))[: len(paths)]
        self._coded = len(paths) == 3
        self._fds: list[int] = []
        try:
            for path in paths:
                self._fds.append(os.open(path, flags, 0o644))
        except OSError as exc:
            self.close()
            raise IndexFormatError(f"cannot open posting files in {folder}: {exc}") from exc
        sizes = [os.fstat(fd).st_size for fd in self._fds]
        if any(size < end * width for size, width in zip(sizes, self._widths, strict=True)):
            self.close()
            raise IndexFormatError(
                f"{folder}: posting files are shorter than the manifest says ({sizes} bytes "
                f"for {end} rows); the index is torn, rebuild it"
            )
        self._rows = 0
        self.vectors: Matrix = np.empty((0, dim), dtype=np.float32)
        self.entries: _Ints = np.empty(0, dtype=np.int64)
        self.codes: npt.NDArray[np.int8] | None = None
        self.scales: Matrix | None = None
        self._map(max(end, min(s // w for s, w in zip(sizes, self._widths, strict=True))))

    @property
    def has_codes(self) -> bool:
        """Whether the rows have int8 codes (folders written before codes existed do not)."""
        return self._coded

    def _map(self, rows: int) -> None:
        """Make every file at least ``rows`` rows long and map it."""
        rows = max(rows, self.align)
        maps = []
        for fd, width in zip(self._fds, self._widths, strict=True):
            if os.fstat(fd).st_size < rows * width:
                os.ftruncate(fd, rows * width)
            maps.append(mmap.mmap(fd, rows * width, access=mmap.ACCESS_READ))
        self.vectors = np.frombuffer(maps[0], dtype=np.float32).reshape(rows, self.dim)
        self.entries = np.frombuffer(maps[1], dtype=np.int64)
        if self.has_codes:
            raw = np.frombuffer(maps[2], dtype=np.uint8).reshape(rows, self._widths[2])
            self.codes, self.scales = decode(raw, self.dim)
        self._rows = rows

    def aligned(self, rows: int) -> int:
        """``rows`` rounded up to the row alignment (whole pages of vectors)."""
        return -(-rows // self.align) * self.align

    def alloc(self, cap: int) -> int:
        """Reserve a region of ``cap`` rows (rounded up) past ``end``; returns its start."""
        start = self.end
        self.end += self.aligned(max(cap, 1))
        if self.end > self._rows:
            grow = max(self.end, self._rows + max(_GROW // self.row_bytes, self._rows // 8))
            self._map(grow)
        return start

    def write(self, start: int, vectors: Matrix, entries: _Ints) -> None:
        """Write rows (and their codes) at ``start``, which must lie in a reserved region."""
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        ents = np.ascontiguousarray(entries, dtype=np.int64)
        os.pwrite(self._fds[0], vecs.tobytes(), start * self.row_bytes)
        os.pwrite(self._fds[1], ents.tobytes(), start * 8)
        if self.has_codes:
            os.pwrite(self._fds[2], encode(vecs).tobytes(), start * self._widths[2])

    def trim(self) -> None:
        """Cut every file back to ``end`` rows (the mapping stays; it is never read past it)."""
        for fd, width in zip(self._fds, self._widths, strict=True):
            os.ftruncate(fd, self.end * width)

    def sync(self) -> None:
        """Flush every file to stable storage."""
        for fd in self._fds:
            os.fsync(fd)

    def close(self) -> None:
        """Drop the maps and close the files."""
        self.vectors = np.empty((0, self.dim), dtype=np.float32)
        self.entries = np.empty(0, dtype=np.int64)
        self.codes = self.scales = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []
