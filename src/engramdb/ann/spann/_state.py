"""The mutable state of a SPANN index: heads, list directory, version map, posting rows.

Per head slot ``h``: the list occupies rows ``[start[h], start[h] + rows[h])`` of the posting
files inside a region of ``cap[h]`` rows. Per vid: its external id, its version (``DELETED``
once deleted or replaced) and ``loc``, one row holding its vector. A posting entry is valid
iff its packed version equals the vid's current version.

Every change is tracked until the next commit (:meth:`State.changes`): the vids whose id,
version or row changed, the head slots whose list or liveness changed, the heads added,
moved or killed. A commit writes just that to the folder's write-ahead log
(:mod:`~engramdb.ann.spann._wal`), and opening replays it (:meth:`State.replay`).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._heads import HeadIndex
from engramdb.ann.spann._ids import IdMap
from engramdb.ann.spann._postings import PostingFile, pack, unpack_version, unpack_vid
from engramdb.ann.spann._search import Lists
from engramdb.ann.spann._wal import Batch, Record
from engramdb.types import Matrix

__all__ = ["DELETED", "State", "rows_crc"]

DELETED = 255
"""The version of a deleted vid; live versions cycle through 0..254."""

_Ints = npt.NDArray[np.int64]


def _grow(arr: npt.NDArray[np.generic], size: int, fill: int) -> npt.NDArray[np.generic]:
    if size <= arr.shape[0]:
        return arr
    out = np.full(max(size, arr.shape[0] * 3 // 2), fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class State:
    """Everything a SPANN index holds, in RAM and in its posting files.

    Args:
        post: the open posting files.
        heads: the head index.
        directory: ``(h, 3)`` int64 ``start, rows, cap`` per head slot.
        ext: external id per vid.
        version: version per vid (``DELETED`` for dead vids).
        loc: a posting row per vid.
            (``ext``, ``version`` and ``loc`` are taken over, not copied.)
        slack: spare capacity fraction given to a list when it is (re)written.
    """

    def __init__(
        self,
        post: PostingFile,
        heads: HeadIndex,
        directory: _Ints,
        vids: tuple[_Ints, npt.NDArray[np.uint8], _Ints],
        slack: float,
    ):
        self.post, self.heads, self.slack = post, heads, slack
        self.start = np.ascontiguousarray(directory[:, 0])
        self.rows = np.ascontiguousarray(directory[:, 1])
        self.cap = np.ascontiguousarray(directory[:, 2])
        self.ext, self.version, self.loc = vids
        self.n_vids = int(self.ext.shape[0])
        live = self.version != DELETED
        self.n_live = int(live.sum())
        self.ids = IdMap(self.ext, live)
        self.clean()

    # ----- change tracking
    def clean(self) -> None:
        """Forget the tracked changes: the state as it is now is committed."""
        self._base_vids, self._base_heads = self.n_vids, self.heads.n
        self._vid_parts: list[_Ints] = []
        self._head_parts: set[int] = set()
        self._moved: set[int] = set()
        self._killed: set[int] = set()
        self._written: list[tuple[int, int]] = []

    @property
    def dirty(self) -> bool:
        """Whether anything changed since the last commit."""
        return bool(
            self.n_vids != self._base_vids
            or self.heads.n != self._base_heads
            or self._vid_parts
            or self._head_parts
            or self._moved
            or self._killed
        )

    def _touch(self, vids: _Ints) -> None:
        if vids.size:
            self._vid_parts.append(np.asarray(vids, dtype=np.int64))

    def touched_heads(self) -> _Ints:
        """The live head slots whose lists changed since the last commit, plus the lists
        that hold the latest rows of the vids that changed (merge candidates)."""
        vids = self.changed_vids()
        heads = np.fromiter(self._head_parts, dtype=np.int64, count=len(self._head_parts))
        heads = np.union1d(heads, self.lists_of(vids))
        heads = heads[heads >= 0]
        return heads[self.heads.alive[heads]]

    def changed_vids(self) -> _Ints:
        """The vids whose id, version or row changed since the last commit (sorted)."""
        parts = [*self._vid_parts, np.arange(self._base_vids, self.n_vids, dtype=np.int64)]
        return np.unique(np.concatenate(parts))

    def changes(self, generation: int, store_version: int | None, *, synced: bool) -> Record:
        """Everything changed since the last commit, as a log record (``synced``: the
        posting files are synced before it is written)."""
        vids = self.changed_vids()
        slots = np.union1d(
            np.fromiter(self._head_parts, dtype=np.int64, count=len(self._head_parts)),
            np.arange(self._base_heads, self.heads.n, dtype=np.int64),
        )
        moved = np.array(sorted(h for h in self._moved if h < self._base_heads), dtype=np.int64)
        written = np.array(self._written, dtype=np.int64).reshape(-1, 2)
        return Record(
            generation=generation,
            store_version=store_version,
            n_vids=self.n_vids,
            n_heads=self.heads.n,
            end=self.post.end,
            count=self.n_live,
            epoch=self.post.epoch,
            written=written,
            rows_crc=rows_crc(self.post, written),
            synced=synced,
            vids=vids,
            ext=self.ext[vids],
            version=self.version[vids],
            loc=self.loc[vids],
            slots=slots,
            directory=np.stack([self.start[slots], self.rows[slots], self.cap[slots]], axis=1),
            new_heads=self.heads.vectors[self._base_heads :].copy(),
            moved=moved,
            moved_heads=self.heads.vectors[moved].copy(),
            killed=np.array(sorted(self._killed), dtype=np.int64),
        )

    def replay(self, batch: Batch) -> None:
        """Apply committed log records (read together, oldest first) to this state; it stays
        clean.

        Head changes are applied record by record (they are rare); per vid and per head
        slot only the last record's values count, so a long log is applied in a few array
        operations. The id map is updated from the difference between the state before and
        after (a vid never comes back to life, and its id never changes).
        """
        if not len(batch):
            return
        for _, new_heads, moved, moved_heads, killed in batch.heads:
            if new_heads.shape[0]:
                self.heads.add(new_heads)
            for slot, vec in zip(moved.tolist(), moved_heads, strict=True):
                self.heads.replace(slot, vec)
            for slot in killed.tolist():
                self.heads.kill(slot)
        self.add_head_slots(0)
        slots, rows = _last_wins(batch.slots)
        self.start[slots], self.rows[slots], self.cap[slots] = batch.directory[rows].T
        vids, rows = _last_wins(batch.vids)
        n_old, n_new = self.n_vids, int(batch.last("vids") or 0)
        self.ext = _grow(self.ext, n_new, -1)  # type: ignore[assignment]
        self.version = _grow(self.version, n_new, DELETED)  # type: ignore[assignment]
        self.loc = _grow(self.loc, n_new, -1)  # type: ignore[assignment]
        ext, version = batch.ext[rows], batch.version[rows]
        was_live = np.zeros(vids.shape, dtype=bool)
        old = vids < n_old
        was_live[old] = self.version[vids[old]] != DELETED
        now_live = version != DELETED
        self.ids.remove(ext[was_live & ~now_live])
        self.ext[vids] = ext
        self.version[vids] = version
        self.loc[vids] = batch.loc[rows]
        self.n_vids = n_new
        born = now_live & ~was_live
        self.ids.insert(ext[born], vids[born])
        self.n_live = int(batch.last("count") or 0)
        self.clean()

    # ----- views
    def lists(self) -> Lists:
        """A snapshot for searching."""
        return Lists(
            self.post.vectors, self.post.entries, self.start, self.rows, self.version, self.ext
        )

    def directory(self) -> _Ints:
        """``(h, 3)`` start, rows, cap of every head slot."""
        n = self.heads.n
        return np.stack([self.start[:n], self.rows[:n], self.cap[:n]], axis=1)

    def list_rows(self, h: int) -> tuple[Matrix, _Ints]:
        """The rows of list ``h`` (views into the mapped files)."""
        s, r = int(self.start[h]), int(self.rows[h])
        return self.post.vectors[s : s + r], self.post.entries[s : s + r]

    def lists_of(self, vids: _Ints) -> _Ints:
        """The live list holding each vid's latest copy (``loc``), ``-1`` if none does."""
        n = self.heads.n
        live = np.flatnonzero(self.heads.alive & (self.rows[:n] > 0))
        if live.size == 0 or vids.size == 0:
            return np.full(vids.shape, -1, dtype=np.int64)
        order = live[np.argsort(self.start[live], kind="stable")]
        row = self.loc[vids]
        pos = np.searchsorted(self.start[order], row, side="right") - 1
        head = order[np.maximum(pos, 0)]
        inside = (pos >= 0) & (row < self.start[head] + self.rows[head])
        return np.where(inside, head, -1)

    def valid(self, entries: _Ints) -> npt.NDArray[np.bool_]:
        """Which entries are current."""
        ok: npt.NDArray[np.bool_] = self.version[unpack_vid(entries)] == unpack_version(entries)
        return ok

    # ----- vids
    def new_vids(self, ext_ids: _Ints) -> _Ints:
        """Allocate vids (version 0) for new external ids and map them."""
        b = ext_ids.shape[0]
        vids = np.arange(self.n_vids, self.n_vids + b, dtype=np.int64)
        need = self.n_vids + b
        self.ext = _grow(self.ext, need, -1)  # type: ignore[assignment]
        self.version = _grow(self.version, need, DELETED)  # type: ignore[assignment]
        self.loc = _grow(self.loc, need, -1)  # type: ignore[assignment]
        self.ext[vids] = ext_ids
        self.version[vids] = 0
        self.loc[vids] = -1
        self.n_vids = need
        self.n_live += b
        self.ids.insert(ext_ids, vids)
        return vids

    def kill_vids(self, vids: _Ints) -> None:
        """Tombstone live vids and unmap their ids."""
        vids = vids[self.version[vids] != DELETED]
        self.ids.remove(self.ext[vids])
        self.version[vids] = DELETED
        self.n_live -= int(vids.size)
        self._touch(vids)

    def bump(self, vids: _Ints) -> None:
        """Give live ``vids`` a new version: their rows so far go stale."""
        self.version[vids] = (self.version[vids].astype(np.int64) + 1) % DELETED
        self._touch(vids)

    def vectors_of(self, vids: _Ints) -> Matrix:
        """The stored vectors of ``vids`` (a copy)."""
        return np.asarray(self.post.vectors[self.loc[vids]], dtype=np.float32)

    # ----- lists
    def add_head_slots(self, count: int) -> None:
        """Make room in the directory for ``count`` more head slots (empty lists)."""
        need = self.heads.n + count
        self.start = _grow(self.start, need, 0)  # type: ignore[assignment]
        self.rows = _grow(self.rows, need, 0)  # type: ignore[assignment]
        self.cap = _grow(self.cap, need, 0)  # type: ignore[assignment]

    def add_head(self, vector: Matrix) -> int:
        """A new head at ``vector`` (shape ``(d,)``) with an empty list; returns its slot."""
        self.add_head_slots(1)
        return int(self.heads.add(vector[None, :])[0])

    def move_head(self, h: int, vector: Matrix) -> None:
        """Move head ``h`` to ``vector``."""
        self.heads.replace(h, vector)
        self._moved.add(h)

    def kill_head(self, h: int) -> None:
        """Remove head ``h`` and empty its list (the rows stay in the file)."""
        self.heads.kill(h)
        self.rows[h] = 0
        self._killed.add(h)
        self._head_parts.add(h)

    def write_list(self, h: int, vectors: Matrix, entries: _Ints) -> None:
        """Replace list ``h`` by these rows, in a fresh region with slack."""
        n = entries.shape[0]
        cap = self.post.aligned(int(n * (1.0 + self.slack)) + 1)
        start = self.post.alloc(cap)
        if n:
            self.post.write(start, vectors, entries)
        self.start[h], self.rows[h], self.cap[h] = start, n, cap
        self._head_parts.add(h)
        if n:
            self._written.append((start, n))
            vids = unpack_vid(entries)
            self.loc[vids] = start + np.arange(n)
            self._touch(vids)

    def append(self, h: int, vectors: Matrix, entries: _Ints) -> None:
        """Append rows to list ``h``: into its free tail, else by moving it (garbage dropped)."""
        r, n = int(self.rows[h]), entries.shape[0]
        if r + n <= self.cap[h]:
            at = int(self.start[h]) + r
            self.post.write(at, vectors, entries)
            self.rows[h] = r + n
            self._written.append((at, n))
            vids = unpack_vid(entries)
            self.loc[vids] = at + np.arange(n)
            self._head_parts.add(h)
            self._touch(vids)
            return
        old_v, old_e = self.list_rows(h)
        keep = self.valid(old_e)
        self.write_list(
            h,
            np.concatenate([old_v[keep], vectors]),
            np.concatenate([old_e[keep], entries]),
        )

    def append_pairs(self, heads_of: _Ints, vids: _Ints, vectors: Matrix) -> None:
        """Append ``vectors[j]`` as vid ``vids[j]`` to list ``heads_of[j]`` for every ``j``."""
        ents = pack(vids, self.version[vids])
        order = np.argsort(heads_of, kind="stable")
        hs = heads_of[order]
        bounds = np.flatnonzero(np.diff(hs)) + 1
        for group in np.split(order, bounds):
            if group.size:
                self.append(int(heads_of[group[0]]), vectors[group], ents[group])


def rows_crc(post: PostingFile, ranges: _Ints) -> int:
    """The CRC-32 of the posting rows in ``ranges`` (``(k, 2)`` start, length), gathered in
    that order: their vectors, then their entries, then their codes where the files have
    them."""
    counts = ranges[:, 1]
    if not counts.sum():
        return 0
    first = np.repeat(ranges[:, 0] - (np.cumsum(counts) - counts), counts)
    rows = first + np.arange(int(counts.sum()), dtype=np.int64)
    crc = 0
    parts: list[npt.NDArray[Any] | None] = [post.vectors, post.entries]
    parts += [getattr(post, name, None) for name in ("codes", "scales", "signs")]
    for arr in parts:
        if arr is not None:
            crc = zlib.crc32(np.ascontiguousarray(arr[rows]).data, crc)
    return crc


def _last_wins(keys: _Ints) -> tuple[_Ints, _Ints]:
    """The distinct ``keys`` and, per key, the position of its last occurrence."""
    uniq, first = np.unique(keys[::-1], return_index=True)
    return uniq, keys.size - 1 - first
