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
    payload           a fixed header (generation, store version, counts, end, epoch, the
                      checksum of the posting rows written, whether the posting files were
                      synced first, array lengths), then the arrays, int64 first, then
                      float32, then uint8

Reading stops at the first record that is incomplete, fails its checksum or does not carry
the next generation: a torn tail (a crash in the middle of an append) is ignored, and the
next append writes over it. An append is ``pwrite`` then ``fdatasync``; until it returns,
the previous commit stands.

The posting rows a commit wrote are not synced with every commit (the posting files are four,
the log one): a record lists the row ranges its commit wrote with their CRC-32, and the
posting files are synced before a record now and then (``synced``; always at a checkpoint).
Opening checks the rows of the records after the last synced one and replays only up to the
first whose rows are not intact (power lost before the page cache reached the disk): the
index is then as of an earlier commit, never half of one.
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

__all__ = ["Batch", "LogWriter", "Record", "last_commit", "log_name", "read_log"]

_Ints = npt.NDArray[np.int64]
_MAGIC = b"SWAL"
_FRAME = struct.Struct("<4sII")
_HEADER_FIELDS = 16
_HEADER = struct.Struct(f"<{_HEADER_FIELDS}q")


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
        written: ``(k, 2)`` start and length of the posting row ranges the commit wrote.
        rows_crc: the CRC-32 of those rows (see ``State.rows_crc``).
        synced: whether the posting files were synced before the record was written.
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
    written: _Ints
    rows_crc: int
    synced: bool
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
            self.rows_crc,
            int(self.synced),
            self.vids.size,
            self.slots.size,
            self.written.shape[0],
            self.new_heads.shape[0],
            self.moved.size,
            self.killed.size,
            dim,
        )
        ints = [self.vids, self.ext, self.loc, self.slots, self.directory, self.written]
        ints += [self.moved, self.killed]
        parts = [np.ascontiguousarray(a, dtype=np.int64).tobytes() for a in ints]
        parts += [np.ascontiguousarray(self.new_heads, dtype=np.float32).tobytes()]
        parts += [np.ascontiguousarray(self.moved_heads, dtype=np.float32).tobytes()]
        parts += [np.ascontiguousarray(self.version, dtype=np.uint8).tobytes()]
        payload = b"".join([header, *parts])
        return _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """Consecutive committed records of one log, decoded together (see :func:`read_log`).

    The per-vid and per-slot arrays of all records are gathered with a few array operations
    (a log may hold tens of thousands of small records); head changes, which are rare, are
    decoded record by record.

    Attributes:
        header: ``(records, 7)`` int64: generation, store version (``-1``: none), vids, head
            slots, end, count and epoch after each record.
        rows_crc, synced: each record's posting-row checksum and whether it was synced.
        written_counts, written: the row ranges each record wrote, concatenated in order.
        ends: the log offset just past each record.
        vid_counts, slot_counts: how many vids and head slots each record changed.
        vids, ext, version, loc: the vids every record changed, concatenated in order.
        slots, directory: the head slots every record changed, concatenated in order.
        heads: ``(record, new_heads, moved, moved_heads, killed)`` of each record that
            changed heads, in order.
    """

    header: _Ints
    rows_crc: _Ints
    synced: npt.NDArray[np.bool_]
    written_counts: _Ints
    written: _Ints
    ends: _Ints
    vid_counts: _Ints
    slot_counts: _Ints
    vids: _Ints
    ext: _Ints
    version: npt.NDArray[np.uint8]
    loc: _Ints
    slots: _Ints
    directory: _Ints
    heads: list[tuple[int, Matrix, _Ints, Matrix, _Ints]]

    def __len__(self) -> int:
        return int(self.header.shape[0])

    def ranges(self, j: int) -> _Ints:
        """The posting row ranges record ``j`` wrote, ``(k, 2)`` start and length."""
        at = int(self.written_counts[:j].sum())
        return self.written[at : at + int(self.written_counts[j])]

    def last(self, field: str) -> int | None:
        """``field`` (``generation``, ``store_version``, ``vids``, ``heads``, ``end``,
        ``count`` or ``epoch``) after the last record (``None``: no record or no store
        version)."""
        if not len(self):
            return None
        value = int(self.header[-1, _FIELDS.index(field)])
        return None if field == "store_version" and value < 0 else value

    def prefix(self, k: int) -> Batch:
        """The first ``k`` records."""
        nv, ns = int(self.vid_counts[:k].sum()), int(self.slot_counts[:k].sum())
        nw = int(self.written_counts[:k].sum())
        return Batch(
            header=self.header[:k],
            rows_crc=self.rows_crc[:k],
            synced=self.synced[:k],
            written_counts=self.written_counts[:k],
            written=self.written[:nw],
            ends=self.ends[:k],
            vid_counts=self.vid_counts[:k],
            slot_counts=self.slot_counts[:k],
            vids=self.vids[:nv],
            ext=self.ext[:nv],
            version=self.version[:nv],
            loc=self.loc[:nv],
            slots=self.slots[:ns],
            directory=self.directory[:ns],
            heads=[h for h in self.heads if h[0] < k],
        )


_FIELDS = ("generation", "store_version", "vids", "heads", "end", "count", "epoch")


def read_log(path: Path, *, after: int, offset: int = 0) -> Batch | None:
    """The committed records of the log at ``path`` from byte ``offset`` on, where the state
    at ``offset`` is generation ``after``.

    A missing log holds no records. ``None``: the log is not the one read before (missing or
    shorter than ``offset``, so another writer checkpointed and removed it).

    Raises:
        IndexFormatError: a record passes its checksum but its lengths do not add up.
    """
    found = _frames(path, after, offset)
    if found is None:
        return None
    data, frames, ends = found
    n = len(frames)
    header = np.array([h for _, _, h in frames], dtype=np.int64).reshape(n, _HEADER_FIELDS)
    starts = np.array([at for at, _, _ in frames], dtype=np.int64) + _HEADER.size
    lengths = np.array([length for _, length, _ in frames], dtype=np.int64)
    n_v, n_s, n_w, n_new, n_moved, n_killed, dim = header[:, 9:].T
    need = 8 * (3 * n_v + 4 * n_s + 2 * n_w + n_moved + n_killed)
    need += 4 * dim * (n_new + n_moved) + n_v
    bad = np.flatnonzero(need + _HEADER.size != lengths)
    if bad.size:
        raise IndexFormatError(
            f"{path}: record {int(header[bad[0], 0])} is malformed (its lengths do not add "
            "up); rebuild the index"
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    slots_at = starts + 24 * n_v
    written_at = slots_at + 32 * n_s
    heads_at = written_at + 16 * n_w
    heads: list[tuple[int, Matrix, _Ints, Matrix, _Ints]] = []
    for j in np.flatnonzero(n_new + n_moved + n_killed).tolist():
        at, d = int(heads_at[j]), int(dim[j])
        moved = np.frombuffer(data, np.int64, int(n_moved[j]), at).copy()
        at += 8 * moved.size
        killed = np.frombuffer(data, np.int64, int(n_killed[j]), at).copy()
        at += 8 * killed.size
        new_heads = np.frombuffer(data, np.float32, int(n_new[j]) * d, at).reshape(-1, d)
        at += new_heads.nbytes
        moved_heads = np.frombuffer(data, np.float32, moved.size * d, at).reshape(-1, d)
        heads.append((j, new_heads.copy(), moved, moved_heads.copy(), killed))
    version_at = heads_at + 8 * (n_moved + n_killed) + 4 * dim * (n_new + n_moved)
    return Batch(
        header=header[:, :7],
        rows_crc=header[:, 7],
        synced=header[:, 8] != 0,
        written_counts=n_w,
        written=_gather(buf, written_at, 2 * n_w, 8).view(np.int64).reshape(-1, 2),
        ends=np.asarray(ends, dtype=np.int64),
        vid_counts=n_v,
        slot_counts=n_s,
        vids=_gather(buf, starts, n_v, 8).view(np.int64).ravel(),
        ext=_gather(buf, starts + 8 * n_v, n_v, 8).view(np.int64).ravel(),
        loc=_gather(buf, starts + 16 * n_v, n_v, 8).view(np.int64).ravel(),
        version=_gather(buf, version_at, n_v, 1).ravel(),
        slots=_gather(buf, slots_at, n_s, 8).view(np.int64).ravel(),
        directory=_gather(buf, slots_at + 8 * n_s, 3 * n_s, 8).view(np.int64).reshape(-1, 3),
        heads=heads,
    )


def _gather(
    buf: npt.NDArray[np.uint8], starts: _Ints, counts: _Ints, width: int
) -> npt.NDArray[np.uint8]:
    """``counts[j]`` items of ``width`` bytes from byte ``starts[j]`` of ``buf``, for every
    ``j``, concatenated: ``(items, width)`` bytes."""
    total = int(counts.sum())
    first = np.repeat(starts - width * (np.cumsum(counts) - counts), counts)
    at = first + width * np.arange(total, dtype=np.int64)
    out: npt.NDArray[np.uint8] = buf[at[:, None] + np.arange(width)]
    return out


def last_commit(path: Path, *, after: int) -> dict[str, int | None] | None:
    """The counts of the last committed record of the log (``None``: it holds none), read
    without decoding the arrays."""
    found = _frames(path, after, 0)
    if found is None or not found[1]:
        return None
    gen, store, n_vids, _, end, count = found[1][-1][2][:6]
    return {
        "generation": gen,
        "store_version": None if store < 0 else store,
        "vids": n_vids,
        "end": end,
        "count": count,
    }


def _frames(
    path: Path, after: int, offset: int
) -> tuple[bytes, list[tuple[int, int, tuple[int, ...]]], list[int]] | None:
    """The log's bytes from ``offset`` on; per checked record of consecutive generations its
    payload's position in them, its length and its header; and the log offset past each
    (see :func:`read_log`)."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return (b"", [], []) if offset == 0 else None
    if size < offset:
        return None
    frames: list[tuple[int, int, tuple[int, ...]]] = []
    ends: list[int] = []
    at = 0
    view = memoryview(data)
    while at + _FRAME.size + _HEADER.size <= len(data):
        magic, length, crc = _FRAME.unpack_from(data, at)
        start = at + _FRAME.size
        if magic != _MAGIC or start + length > len(data) or length < _HEADER.size:
            break
        header = _HEADER.unpack_from(data, start)
        if header[0] != after + 1 or zlib.crc32(view[start : start + length]) != crc:
            break
        frames.append((start, length, header))
        after += 1
        at = start + length
        ends.append(offset + at)
    return data, frames, ends


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
