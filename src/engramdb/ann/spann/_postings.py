"""On-disk posting lists: row-aligned files read through mmap, written with pwrite.

``vectors.e<E>.f32`` holds float32 rows of ``dim`` values; ``entries.e<E>.i64`` holds one int64
per row, ``(version << 32) | vid``. Two smaller codes of each row (see :mod:`._quant`) let
search read less than the float32 rows: ``codes.e<E>.i8`` its int8 code and scale,
``signs.e<E>.b1`` its sign bits. ``E`` is the epoch: compaction writes a new set of files. A
folder written before the codes existed opens without them (search scans what it has) until
compaction rewrites it.

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

from engramdb.ann.spann._quant import code_width, decode, encode, sign_width, signs
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


def posting_names(epoch: int) -> tuple[str, str, str, str]:
    """The vector, entry, int8 code and sign file names of ``epoch``."""
    return (
        f"vectors.e{epoch}.f32",
        f"entries.e{epoch}.i64",
        f"codes.e{epoch}.i8",
        f"signs.e{epoch}.b1",
    )


class PostingFile:
    """The row files of one index folder: float32 vectors, entries and the two codes.

    The signs file starts with a header: the float32 centre the sign bits are taken around
    (``sign(x - centre)``), given at creation or else the mean of the first rows written
    (compaction passes the old file's centre on).

    Args:
        folder: the index folder.
        dim: vector dimension.
        end: the first row past every committed region (rows from here on are free).
        epoch: which set of files.
        create: create empty files (else open existing ones and check their size; a missing
            codes or signs file means a folder from before them: :attr:`codes` or
            :attr:`signs` is then ``None``).
        centre: with ``create``, the centre of the sign bits.

    Raises:
        IndexFormatError: the files are missing or shorter than ``end`` rows (torn).
    """

    def __init__(
        self,
        folder: Path,
        dim: int,
        end: int,
        *,
        epoch: int = 0,
        create: bool = False,
        centre: Matrix | None = None,
    ):
        self.dim, self.epoch = dim, epoch
        self.row_bytes = 4 * dim
        self.align = _PAGE // math.gcd(_PAGE, self.row_bytes)
        self.end = end
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        widths = (self.row_bytes, 8, code_width(dim), sign_width(dim))
        files = [
            (folder / name, width, 4 * dim if i == 3 else 0)
            for i, (name, width) in enumerate(zip(posting_names(epoch), widths, strict=True))
            if i < 2 or create or (folder / name).exists()
        ]
        self._kinds = [path.name.split(".")[0] for path, _, _ in files]
        self._widths = [width for _, width, _ in files]
        self._heads = [head for _, _, head in files]
        self._fds: list[int] = []
        try:
            for path, _, _ in files:
                self._fds.append(os.open(path, flags, 0o644))
        except OSError as exc:
            self.close()
            raise IndexFormatError(f"cannot open posting files in {folder}: {exc}") from exc
        rows = [max(os.fstat(fd).st_size - head, 0) // width for fd, width, head in self._files()]
        if min(rows) < end:
            self.close()
            raise IndexFormatError(
                f"{folder}: posting files are shorter than the manifest says ({rows} rows, "
                f"{end} expected); the index is torn, rebuild it"
            )
        self._rows = 0
        self.vectors: Matrix = np.empty((0, dim), dtype=np.float32)
        self.entries: _Ints = np.empty(0, dtype=np.int64)
        self.code_rows: npt.NDArray[np.uint8] | None = None
        self.codes: npt.NDArray[np.int8] | None = None
        self.scales: Matrix | None = None
        self.signs: npt.NDArray[np.uint8] | None = None
        self.centre: Matrix | None = None
        if self.has_signs and not create:
            head = os.pread(self._fds[self._kinds.index("signs")], 4 * dim, 0)
            self.centre = np.frombuffer(head, dtype=np.float32).copy()
        elif self.has_signs and centre is not None:
            self._set_centre(np.asarray(centre, dtype=np.float32).reshape(dim))
        self._map(max(end, min(rows)))

    def _files(self) -> zip[tuple[int, int, int]]:
        return zip(self._fds, self._widths, self._heads, strict=True)

    def _set_centre(self, centre: Matrix) -> None:
        self.centre = np.ascontiguousarray(centre, dtype=np.float32)
        os.pwrite(self._fds[self._kinds.index("signs")], self.centre.tobytes(), 0)

    @property
    def has_codes(self) -> bool:
        """Whether the rows have int8 codes (folders written before codes existed do not)."""
        return "codes" in self._kinds

    @property
    def has_signs(self) -> bool:
        """Whether the rows have sign bits (folders written before them do not)."""
        return "signs" in self._kinds

    def _map(self, rows: int) -> None:
        """Make every file at least ``rows`` rows long and map it."""
        rows = max(rows, self.align)
        maps: dict[str, npt.NDArray[np.uint8]] = {}
        for kind, (fd, width, head) in zip(self._kinds, self._files(), strict=True):
            size = head + rows * width
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            buf = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
            maps[kind] = np.frombuffer(buf, dtype=np.uint8, offset=head).reshape(rows, width)
        self.vectors = maps["vectors"].view(np.float32)
        self.entries = maps["entries"].view(np.int64)[:, 0]
        if "codes" in maps:
            self.code_rows = maps["codes"]
            self.codes, self.scales = decode(maps["codes"], self.dim)
        if "signs" in maps:
            self.signs = maps["signs"]
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
        if self.has_signs and self.centre is None and vecs.shape[0]:
            self._set_centre(vecs.mean(axis=0))
        rows: dict[str, npt.NDArray[np.generic] | None] = {
            "vectors": vecs,
            "entries": np.ascontiguousarray(entries, dtype=np.int64),
            "codes": encode(vecs) if self.has_codes else None,
            "signs": signs(vecs, self.centre) if self.centre is not None else None,
        }
        for kind, (fd, width, head) in zip(self._kinds, self._files(), strict=True):
            data = rows[kind]
            assert data is not None
            os.pwrite(fd, data.tobytes(), head + start * width)

    def trim(self) -> None:
        """Cut every file back to ``end`` rows (the mapping stays; it is never read past it)."""
        for fd, width, head in self._files():
            os.ftruncate(fd, head + self.end * width)

    def sync(self) -> None:
        """Flush every file to stable storage."""
        for fd in self._fds:
            os.fsync(fd)

    def close(self) -> None:
        """Drop the maps and close the files."""
        self.vectors = np.empty((0, self.dim), dtype=np.float32)
        self.entries = np.empty(0, dtype=np.int64)
        self.code_rows = self.signs = None
        self.codes = self.scales = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []
