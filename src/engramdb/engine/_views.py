"""Immutable dense-index snapshots: a base index plus the changes logged after it.

A :class:`DenseView` answers searches for exactly one change-log position (``seq``): its
base (exact vectors in RAM, or a SPANN index) reflects ``base_seq``; the ids added after it
are searched exactly from ``delta``, and the base's ids deleted (or replaced) after it are in
``dead`` and never returned. Views are never changed: a catch-up (:meth:`DenseView.apply`)
returns a new view, so a reader holding one never sees half an update.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engramdb.ann.flat import top_k
from engramdb.ann.spann import SpannIndex
from engramdb.types import IdMatrix, Matrix

__all__ = [
    "Base",
    "DenseView",
    "FlatBase",
    "RWLock",
    "SpannBase",
    "StaleViewError",
    "VectorSource",
]

_Ints = npt.NDArray[np.int64]
VectorSource = Callable[[_Ints], tuple[_Ints, Matrix]]
"""Vectors of memory ids, ``(ids found, vectors)``, as of the caller's read snapshot."""


class StaleViewError(Exception):
    """The base of a view was folded into after the view was made: read again with a fresh
    snapshot (the view's delta and tombstones no longer match its base)."""


class RWLock:
    """Many readers or one writer (the writer waits for readers in flight; new readers
    wait while a writer waits, so a fold is never starved)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class Base(Protocol):
    """What a view needs of its base index."""

    @property
    def kind(self) -> str: ...

    @property
    def epoch(self) -> int: ...

    def __len__(self) -> int: ...

    def contains(self, ids: _Ints) -> npt.NDArray[np.bool_]: ...

    def search(
        self, queries: Matrix, k: int, allow: _Ints | None, deny: _Ints | None, epoch: int
    ) -> tuple[IdMatrix, Matrix]:
        """Search as of ``epoch``.

        Raises:
            StaleViewError: the base changed since ``epoch``.
        """
        ...

    def vectors(self, epoch: int) -> tuple[_Ints, Matrix]:
        """Every vector as of ``epoch``.

        Raises:
            StaleViewError: the base changed since ``epoch``.
        """
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, eq=False)
class FlatBase:
    """Exact vectors in RAM (immutable arrays; a fold makes a new base)."""

    ids: _Ints
    matrix: Matrix
    kind: str = "flat"
    epoch: int = 0  # never changes: a fold makes a new base
    _sorted: _Ints = field(init=False, repr=False)
    _order: _Ints = field(init=False, repr=False)

    def __post_init__(self) -> None:
        order = np.argsort(self.ids, kind="stable")
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_sorted", self.ids[order])

    def __len__(self) -> int:
        return int(self.ids.size)

    def rows(self, ids: _Ints) -> _Ints:
        """Row of each id, ``-1`` where absent."""
        out = np.full(ids.shape, -1, dtype=np.int64)
        if self._sorted.size and ids.size:
            pos = np.minimum(np.searchsorted(self._sorted, ids), self._sorted.size - 1)
            hit = self._sorted[pos] == ids
            out[hit] = self._order[pos[hit]]
        return out

    def contains(self, ids: _Ints) -> npt.NDArray[np.bool_]:
        return np.asarray(self.rows(ids) >= 0)

    def search(
        self, queries: Matrix, k: int, allow: _Ints | None, deny: _Ints | None, epoch: int
    ) -> tuple[IdMatrix, Matrix]:
        if allow is None:
            scores = queries @ self.matrix.T
            if deny is not None and deny.size:
                rows = self.rows(deny)
                scores[:, rows[rows >= 0]] = -np.inf
            ids, out = top_k(scores, self.ids, k)
            out_ids = np.where(np.isfinite(out), ids, -1)
            return out_ids, out
        if deny is not None and deny.size:
            allow = np.setdiff1d(allow, deny)
        rows = self.rows(allow)
        rows = np.sort(rows[rows >= 0])
        return top_k(queries @ self.matrix[rows].T, self.ids[rows], k)

    def vectors(self, epoch: int) -> tuple[_Ints, Matrix]:
        return self.ids, self.matrix

    def close(self) -> None:
        """Nothing to release (the arrays go with the last view that holds them)."""


class SpannBase:
    """A SPANN index as a view's base; searches share it, a fold changes it exclusively."""

    kind = "spann"

    def __init__(self, index: SpannIndex, lock: RWLock):
        self.index = index
        self.lock = lock
        self.epoch = 0  # bumped by every change of the index (under the exclusive lock)

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Hold the index exclusively to change it; views made before become stale."""
        with self.lock.write():
            self.epoch += 1
            yield

    def follow(self, upto: int) -> bool:
        """Apply the commits another process made to the index's folder (those up to store
        version ``upto``), in place (:meth:`SpannIndex.refresh`); views made before become
        stale when anything changed. ``False``: the folder's history cannot be followed, and
        nothing changed.

        Raises:
            IndexFormatError: the folder is torn or corrupt (the index may be half-changed).
        """
        with self.lock.write():
            before = self.index.generation
            try:
                return self.index.refresh(upto=upto)
            finally:
                if self.index.generation != before:
                    self.epoch += 1

    def __len__(self) -> int:
        return len(self.index)

    def contains(self, ids: _Ints) -> npt.NDArray[np.bool_]:
        with self.lock.read():
            return self.index.contains(ids)

    def search(
        self, queries: Matrix, k: int, allow: _Ints | None, deny: _Ints | None, epoch: int
    ) -> tuple[IdMatrix, Matrix]:
        with self.lock.read():
            if epoch != self.epoch:
                raise StaleViewError
            return self.index.search(queries, k, allow=allow, deny=deny)

    def vectors(self, epoch: int) -> tuple[_Ints, Matrix]:
        with self.lock.read():
            if epoch != self.epoch:
                raise StaleViewError
            return self.index.vectors()

    def close(self) -> None:
        with self.lock.write():
            self.index.close()


_NO_IDS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class DenseView:
    """The dense index as of change-log position ``seq`` (see the module docstring)."""

    base: Base
    base_seq: int
    seq: int
    dim: int
    delta_ids: _Ints = field(default_factory=lambda: _NO_IDS)
    delta: Matrix | None = None
    dead: _Ints = field(default_factory=lambda: _NO_IDS)  # sorted base ids that are hidden
    epoch: int = -1  # the base's epoch the delta and tombstones match (-1: the base's now)

    def __post_init__(self) -> None:
        if self.epoch < 0:
            object.__setattr__(self, "epoch", self.base.epoch)

    def __len__(self) -> int:
        return len(self.base) - int(self.dead.size) + int(self.delta_ids.size)

    @property
    def pending(self) -> int:
        """Changes since the base: vectors added plus base ids hidden."""
        return int(self.delta_ids.size + self.dead.size)

    def search(
        self, queries: Matrix, k: int, *, allow: _Ints | None = None
    ) -> tuple[IdMatrix, Matrix]:
        """The ``k`` best ids per query; ``allow`` restricts results to those ids."""
        deny = self.dead if self.dead.size else None
        if len(self.base):
            ids, scores = self.base.search(queries, k, allow, deny, self.epoch)
        else:
            ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
            scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
        if not self.delta_ids.size or self.delta is None:
            return ids, scores
        rows = np.arange(self.delta_ids.size)
        if allow is not None:
            rows = rows[np.isin(self.delta_ids, allow)]
        if not rows.size:
            return ids, scores
        d_ids, d_scores = top_k(queries @ self.delta[rows].T, self.delta_ids[rows], k)
        merged = np.concatenate([scores, d_scores], axis=1)
        merged_ids = np.concatenate([ids, d_ids], axis=1)
        merged[merged_ids < 0] = -np.inf
        out_ids = np.full((queries.shape[0], k), -1, dtype=np.int64)
        out_scores = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
        for row in range(queries.shape[0]):
            top_ids, top_scores = top_k(merged[row : row + 1], merged_ids[row], 2 * k)
            row_ids, row_scores = top_ids[0], top_scores[0]
            # during a fold a vector can be both in the base and in the delta: keep one
            _, first = np.unique(row_ids, return_index=True)
            keep = np.sort(first[row_ids[first] >= 0])[:k]
            out_ids[row, : keep.size] = row_ids[keep]
            out_scores[row, : keep.size] = row_scores[keep]
        return out_ids, out_scores

    def vectors(self) -> tuple[_Ints, Matrix]:
        """Every live ``(ids, vectors)``.

        Raises:
            StaleViewError: the base was folded into since this view was made.
        """
        ids, vecs = self.base.vectors(self.epoch)
        if self.dead.size:
            keep = ~np.isin(ids, self.dead)
            ids, vecs = ids[keep], vecs[keep]
        if self.delta_ids.size and self.delta is not None:
            ids = np.concatenate([ids, self.delta_ids])
            vecs = np.concatenate([vecs, self.delta])
        return ids, vecs

    def apply(self, ids: _Ints, ops: _Ints, seq: int, source: VectorSource) -> DenseView:
        """The view after the logged changes ``(ids, ops)`` that lead to ``seq``.

        ``source`` gives the vectors of the ids added (as of the same snapshot)."""
        if not ids.size:
            return dataclasses.replace(self, seq=seq)
        last: dict[int, int] = {}
        for memory_id, op in zip(ids.tolist(), ops.tolist(), strict=True):
            last[memory_id] = op
        touched = np.fromiter(last, dtype=np.int64, count=len(last))
        in_base = self.base.contains(touched)
        dead = np.union1d(self.dead, touched[in_base])
        added = np.asarray([i for i, op in last.items() if op == 1], dtype=np.int64)
        keep = ~np.isin(self.delta_ids, touched)
        delta_ids = self.delta_ids[keep]
        delta = self.delta[keep] if self.delta is not None else np.empty((0, self.dim), np.float32)
        if added.size:
            found, vectors = source(added)
            delta_ids = np.concatenate([delta_ids, found])
            delta = np.concatenate([delta, np.asarray(vectors, dtype=np.float32)])
        return dataclasses.replace(self, seq=seq, delta_ids=delta_ids, delta=delta, dead=dead)

    def folded(self) -> FlatBase:
        """A flat base holding exactly this view's vectors."""
        ids, vecs = self.vectors()
        return FlatBase(np.ascontiguousarray(ids), np.ascontiguousarray(vecs))
