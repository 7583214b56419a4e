"""On-disk posting lists: two row-aligned files read through mmap, written with pwrite.

``vectors.e<E>.f32`` holds float32 rows of ``dim`` values; ``entries.e<E>.i64`` holds one int64
per row, ``(version << 32) | vid``. ``E`` is the epoch: compaction writes a new pair of files.
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


def posting_names(epoch: int) -> tuple[str, str]:
    """The vector and entry file names of ``epoch``."""
    return f"vectors.e{epoch}.f32", f"entries.e{epoch}.i64"


class PostingFile:
    """The pair of row files of one index folder.

    Args:
        folder: the index folder.
        dim: vector dimension.
        end: the first row past every committed region (rows from here on are free).
        epoch: which pair of files.
        create: create empty files (else open existing ones and check their size).

    Raises:
        IndexFormatError: the files are missing or shorter than ``end`` rows (torn).
    """

    def __init__(self, folder: Path, dim: int, end: int, *, epoch: int = 0, create: bool = False):
        self.dim, self.epoch = dim, epoch
        self.row_bytes = 4 * dim
        self.align = _PAGE // math.gcd(_PAGE, self.row_bytes)
        self.end = end
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        paths = tuple(folder / name for name in posting_names(epoch))
        try:
            self._fds = [os.open(p, flags, 0o644) for p in paths]
        except OSError as exc:
            raise IndexFormatError(f"cannot open posting files in {folder}: {exc}") from exc
        sizes = [os.fstat(fd).st_size for fd in self._fds]
        if sizes[0] < end * self.row_bytes or sizes[1] < end * 8:
            self.close()
            raise IndexFormatError(
                f"{folder}: posting files are shorter than the manifest says ({sizes[0]} and "
                f"{sizes[1]} bytes for {end} rows); the index is torn, rebuild it"
            )
        self._rows = 0
        self.vectors: Matrix = np.empty((0, dim), dtype=np.float32)
        self.entries: _Ints = np.empty(0, dtype=np.int64)
        self._map(max(end, min(sizes[0] // self.row_bytes, sizes[1] // 8)))

    def _map(self, rows: int) -> None:
        """Make both files at least ``rows`` rows long and map them."""
        rows = max(rows, self.align)
        for fd, width in zip(self._fds, (self.row_bytes, 8), strict=True):
            if os.fstat(fd).st_size < rows * width:
                os.ftruncate(fd, rows * width)
        vmap = mmap.mmap(self._fds[0], rows * self.row_bytes, access=mmap.ACCESS_READ)
        emap = mmap.mmap(self._fds[1], rows * 8, access=mmap.ACCESS_READ)
        self.vectors = np.frombuffer(vmap, dtype=np.float32).reshape(rows, self.dim)
        self.entries = np.frombuffer(emap, dtype=np.int64)
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
        """Write rows at ``start`` (which must lie in a reserved region)."""
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        ents = np.ascontiguousarray(entries, dtype=np.int64)
        os.pwrite(self._fds[0], vecs.tobytes(), start * self.row_bytes)
        os.pwrite(self._fds[1], ents.tobytes(), start * 8)

    def trim(self) -> None:
        """Cut both files back to ``end`` rows (the mapping stays; it is never read past it)."""
        os.ftruncate(self._fds[0], self.end * self.row_bytes)
        os.ftruncate(self._fds[1], self.end * 8)

    def sync(self) -> None:
        """Flush both files to stable storage."""
        for fd in self._fds:
            os.fsync(fd)

    def close(self) -> None:
        """Drop the maps and close the files."""
        self.vectors = np.empty((0, self.dim), dtype=np.float32)
        self.entries = np.empty(0, dtype=np.int64)
        for fd in self._fds:
            os.close(fd)
        self._fds = []
