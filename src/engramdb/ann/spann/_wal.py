"""The write-ahead log of a SPANN index folder: one record per commit since the checkpoint.

A commit used to re-save every in-memory array (about 17 bytes per vector: 17 MB at a
million vectors); now it appends what changed since the previous commit — the vids whose
id, version or row changed, the head slots whose list changed, the heads added, moved or
killed — and the arrays are re-saved (a *checkpoint*, see :mod:`._manifest`) only once the
log has grown past a bound, so their cost is spread over many commits.

``wal.g<N>.log`` follows checkpoint generation ``N`` (``state.g<N>.npz``); its records are
the commits ``N + 1, N + 2, ...`` in order. A record::

    magic    4 bytes  b"SWAL"
    length   u32      payload bytes
    crc32    u32      of the payload
    payload           a fixed header (generation, store version, counts, end, epoch, array
                      lengths), then the arrays, int64 first, then float32, then uint8

Reading stops at the first record that is incomplete, fails its checksum or does not carry
the next generation: a torn tail (a crash in the middle of an append) is ignored, and the
next append writes over it. An append is ``pwrite`` then ``fdatasync``, after the posting
rows it refers to were synced; until it returns, the previous commit stands.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engramdb.errors import IndexFormatError
from engramdb.types import Matrix

__all__ = ["LogWriter", "Record", "last_commit", "log_name", "read_log"]

_Ints = npt.NDArray[np.int64]
_MAGIC = b"SWAL"
_FRAME = struct.Struct("<4sII")
_HEADER = struct.Struct("<13q")


def log_name(generation: int) -> str:
    """The log file that follows checkpoint ``generation``."""
    return f"wal.g{generation}.log"


@dataclass(frozen=True, slots=True, eq=False)
class Record:
    """One commit: the state's counts after it and the values that changed.

    Attributes:
        generation: the commit's generation (the previous one plus one).
        store_version: the store version recorded with it (``None``: none).
        n_vids, n_heads, end, count, epoch: vids, head slots, posting rows in use, live
            vectors and posting epoch after the commit.
        vids: the vids that changed, with their ``ext``, ``version`` and ``loc``.
        slots: the head slots whose list changed, with their ``directory`` rows
            (``start, rows, cap``).
        new_heads: the vectors of the head slots added (``n_heads`` minus those before).
        moved: head slots that existed before and were moved, to ``moved_heads``.
        killed: head slots removed.
    """

    generation: int
    store_version: int | None
    n_vids: int
    n_heads: int
    end: int
    count: int
    epoch: int
    vids: _Ints
    ext: _Ints
    version: npt.NDArray[np.uint8]
    loc: _Ints
    slots: _Ints
    directory: _Ints
    new_heads: Matrix
    moved: _Ints
    moved_heads: Matrix
    killed: _Ints

    def encode(self) -> bytes:
        """The record as it is written to the log (frame included)."""
        dim = self.new_heads.shape[1] if self.new_heads.ndim == 2 else 0
        header = _HEADER.pack(
            self.generation,
            -1 if self.store_version is None else self.store_version,
            self.n_vids,
            self.n_heads,
            self.end,
            self.count,
            self.epoch,
            self.vids.size,
            self.slots.size,
            self.new_heads.shape[0],
            self.moved.size,
            self.killed.size,
            dim,
        )
        ints = (self.vids, self.ext, self.loc, self.slots, self.directory, self.moved, self.killed)
        parts = [np.ascontiguousarray(a, dtype=np.int64).tobytes() for a in ints]
        parts += [np.ascontiguousarray(self.new_heads, dtype=np.float32).tobytes()]
        parts += [np.ascontiguousarray(self.moved_heads, dtype=np.float32).tobytes()]
        parts += [np.ascontiguousarray(self.version, dtype=np.uint8).tobytes()]
        payload = b"".join([header, *parts])
        return _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> Record:
        """The record of a checked payload.

        Raises:
            ValueError: the payload's lengths do not add up.
        """
        head = _HEADER.unpack_from(payload, 0)
        gen, store, n_vids, n_heads, end, count, epoch = head[:7]
        n_v, n_s, n_new, n_moved, n_killed, dim = head[7:]
        at = _HEADER.size
        need = at + 8 * (3 * n_v + 4 * n_s + n_moved + n_killed) + 4 * dim * (n_new + n_moved)
        if need + n_v != len(payload):
            raise ValueError("record lengths do not add up")

        def take(dtype: type, count: int) -> npt.NDArray[np.generic]:
            nonlocal at
            out: npt.NDArray[np.generic] = np.frombuffer(
                payload, dtype=dtype, count=count, offset=at
            )
            at += out.nbytes
            return out

        vids, ext, loc = take(np.int64, n_v), take(np.int64, n_v), take(np.int64, n_v)
        slots = take(np.int64, n_s)
        directory = take(np.int64, 3 * n_s).reshape(n_s, 3)
        moved, killed = take(np.int64, n_moved), take(np.int64, n_killed)
        new_heads = take(np.float32, n_new * dim).reshape(n_new, dim)
        moved_heads = take(np.float32, n_moved * dim).reshape(n_moved, dim)
        version = take(np.uint8, n_v)
        return cls(
            generation=gen,
            store_version=None if store < 0 else store,
            n_vids=n_vids,
            n_heads=n_heads,
            end=end,
            count=count,
            epoch=epoch,
            vids=vids,  # type: ignore[arg-type]
            ext=ext,  # type: ignore[arg-type]
            version=version,  # type: ignore[arg-type]
            loc=loc,  # type: ignore[arg-type]
            slots=slots,  # type: ignore[arg-type]
            directory=directory,  # type: ignore[arg-type]
            new_heads=new_heads,  # type: ignore[arg-type]
            moved=moved,  # type: ignore[arg-type]
            moved_heads=moved_heads,  # type: ignore[arg-type]
            killed=killed,  # type: ignore[arg-type]
        )


def read_log(path: Path, *, after: int, offset: int = 0) -> tuple[list[Record], list[int]] | None:
    """The committed records of the log at ``path`` from byte ``offset`` on, where the state
    at ``offset`` is generation ``after``; and the offset just past each of them.

    A missing log holds no records. ``None``: the log is not the one read before (missing or
    shorter than ``offset``, so another writer checkpointed and removed it).

    Raises:
        IndexFormatError: a record passes its checksum but does not decode (corrupt).
    """
    found = _frames(path, after, offset)
    if found is None:
        return None
    payloads, ends = found
    try:
        return [Record.decode(p) for p in payloads], ends
    except ValueError as exc:
        raise IndexFormatError(
            f"{path} holds a malformed record ({exc}); rebuild the index"
        ) from exc


def last_commit(path: Path, *, after: int) -> dict[str, int | None] | None:
    """The counts of the last committed record of the log (``None``: it holds none), read
    without decoding the arrays."""
    found = _frames(path, after, 0)
    if found is None or not found[0]:
        return None
    gen, store, n_vids, _, end, count = _HEADER.unpack_from(found[0][-1], 0)[:6]
    return {
        "generation": gen,
        "store_version": None if store < 0 else store,
        "vids": n_vids,
        "end": end,
        "count": count,
    }


def _frames(path: Path, after: int, offset: int) -> tuple[list[memoryview], list[int]] | None:
    """The checked payloads of consecutive generations from ``offset`` on, and the offset
    past each (see :func:`read_log`)."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return ([], []) if offset == 0 else None
    if size < offset:
        return None
    view = memoryview(data)
    payloads: list[memoryview] = []
    ends: list[int] = []
    at = 0
    while at + _FRAME.size + _HEADER.size <= len(view):
        magic, length, crc = _FRAME.unpack_from(view, at)
        start = at + _FRAME.size
        payload = view[start : start + length]
        if magic != _MAGIC or len(payload) != length or length < _HEADER.size:
            break
        if zlib.crc32(payload) != crc or _HEADER.unpack_from(payload, 0)[0] != after + 1:
            break
        payloads.append(payload)
        after += 1
        at = start + length
        ends.append(offset + at)
    return payloads, ends


class LogWriter:
    """Appends records to one log file, each synced before :meth:`append` returns.

    Args:
        path: the log file.
        offset: where the committed records end (a torn tail past it is cut off first).
    """

    def __init__(self, path: Path, offset: int):
        self.path, self.offset = path, offset
        self._fd = -1

    def append(self, record: Record) -> None:
        """Write ``record`` durably after the committed ones."""
        data = record.encode()
        if self._fd < 0:
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            if os.fstat(self._fd).st_size != self.offset:
                os.ftruncate(self._fd, self.offset)
            if created:
                _fsync_dir(self.path.parent)
        os.pwrite(self._fd, data, self.offset)
        os.fdatasync(self._fd)
        self.offset += len(data)

    def close(self) -> None:
        """Close the file (the records stay)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
