"""The in-memory head index: head vectors (list centroids) and a search over them.

Exact numpy search by default; an HNSW graph (hnswlib, the ``ann`` extra) over the heads when
there are many of them. Head slots are never reused: a split adds a head, a merge kills one
(its squared norm becomes ``+inf`` and it is marked deleted in the graph).

A single query may ask for a ``coarse`` search: the heads' int8 codes (see :mod:`._quant`, a
quarter of the float32 bytes) pick the ``m + 32`` nearest by approximate distance, and those
are ranked by exact distance. A query's search scans every list it probes right after, which
evicts the heads from the cache, so reading fewer bytes of them matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb._optional import require
from engramdb.ann.spann._cluster import BLOCK, top_m_smallest
from engramdb.ann.spann._quant import code_width, decode, encode, kernel, scaled
from engramdb.types import Matrix

__all__ = ["HeadIndex"]

_Ints = npt.NDArray[np.int64]
_MARGIN = 32
"""Extra heads a coarse search ranks exactly beyond the ``m`` asked for."""
_CODE_BLOCK = 256
"""Heads coded at a time when an index is loaded."""


class HeadIndex:
    """Head vectors in RAM plus exact or HNSW nearest-head search (squared L2).

    Args:
        heads: the initial heads, shape ``(h, d)``; rows with ``+inf`` in ``alive=False``
            positions are dead.
        alive: which rows are live heads (default: all).
        hnsw: build an hnswlib graph over the heads (``M``, ``ef_construction``, ``ef``) or
            ``None`` for exact search.
    """

    def __init__(
        self,
        heads: Matrix,
        alive: npt.NDArray[np.bool_] | None = None,
        *,
        hnsw: tuple[int, int, int] | None = None,
    ):
        n, dim = heads.shape
        self.dim = dim
        self._vecs = np.zeros((n + 16, dim), dtype=np.float32)  # add() grows it by half
        self._vecs[:n] = heads
        self._sq = np.full(self._vecs.shape[0], np.inf, dtype=np.float32)
        self._sq[:n] = np.einsum("ij,ij->i", heads, heads)
        self._codes = np.zeros((self._vecs.shape[0], code_width(dim)), dtype=np.uint8)
        for start in range(0, n, _CODE_BLOCK):  # big temporaries would stay in the heap
            end = min(start + _CODE_BLOCK, n)
            self._codes[start:end] = encode(heads[start:end])
        self.n = n
        if alive is not None:
            self._sq[:n][~alive] = np.inf
        self._live = int(np.isfinite(self._sq[:n]).sum())
        self._graph: Any = None
        self._ef = 0
        if hnsw is not None:
            self._build_graph(*hnsw)

    def _build_graph(self, m: int, ef_construction: int, ef: int) -> None:
        hnswlib = require("hnswlib", extra="ann")
        graph = hnswlib.Index(space="l2", dim=self.dim)
        graph.init_index(max_elements=self._vecs.shape[0], M=m, ef_construction=ef_construction)
        live = np.flatnonzero(np.isfinite(self._sq[: self.n]))
        if live.size:
            graph.add_items(self._vecs[live], live)
        self._graph, self._ef = graph, ef

    @property
    def uses_graph(self) -> bool:
        """Whether searches go through the HNSW graph."""
        return self._graph is not None

    @property
    def vectors(self) -> Matrix:
        """All head slots, shape ``(n, d)`` (dead slots included)."""
        return self._vecs[: self.n]

    @property
    def alive(self) -> npt.NDArray[np.bool_]:
        """Which head slots are live."""
        return np.isfinite(self._sq[: self.n])

    @property
    def live_count(self) -> int:
        """The number of live heads."""
        return self._live

    def add(self, vecs: Matrix) -> _Ints:
        """Append heads; returns their slots."""
        b = vecs.shape[0]
        if self.n + b > self._vecs.shape[0]:
            cap = max(self.n + b, self._vecs.shape[0] * 3 // 2)
            grown = np.zeros((cap, self.dim), dtype=np.float32)
            grown[: self.n] = self._vecs[: self.n]
            sq = np.full(cap, np.inf, dtype=np.float32)
            sq[: self.n] = self._sq[: self.n]
            codes = np.zeros((cap, self._codes.shape[1]), dtype=np.uint8)
            codes[: self.n] = self._codes[: self.n]
            self._vecs, self._sq, self._codes = grown, sq, codes
            if self._graph is not None:
                self._graph.resize_index(cap)
        slots = np.arange(self.n, self.n + b, dtype=np.int64)
        self._vecs[slots] = vecs
        self._sq[slots] = np.einsum("ij,ij->i", vecs, vecs)
        self._codes[slots] = encode(vecs)
        self.n += b
        self._live += b
        if self._graph is not None:
            self._graph.add_items(vecs, slots)
        return slots

    def replace(self, slot: int, vec: Matrix) -> None:
        """Move the live head ``slot`` to ``vec`` (shape ``(d,)``)."""
        self._vecs[slot] = vec
        self._live += not np.isfinite(self._sq[slot])
        self._sq[slot] = float(vec @ vec)
        self._codes[slot] = encode(vec[None, :])[0]
        if self._graph is not None:
            self._graph.add_items(vec[None, :], np.array([slot]))

    def kill(self, slot: int) -> None:
        """Remove head ``slot`` from search."""
        self._live -= bool(np.isfinite(self._sq[slot]))
        self._sq[slot] = np.inf
        if self._graph is not None:
            self._graph.mark_deleted(slot)

    def search(
        self, queries: Matrix, m: int, *, threads: int = 1, coarse: bool = False
    ) -> tuple[_Ints, Matrix]:
        """The ``m`` nearest live heads per query, ascending; missing ones are ``-1``/``inf``.

        ``threads`` is for the graph (``-1``: all cores); queries are served on one thread.
        ``coarse``: a single query's candidates come from the heads' int8 codes (distances
        are still exact; a head just past the ``m + 32`` picked by codes could be missed).
        """
        n = queries.shape[0]
        live = self.live_count
        take = min(m, live)
        idx = np.full((n, m), -1, dtype=np.int64)
        d2 = np.full((n, m), np.inf, dtype=np.float32)
        if take == 0 or n == 0:
            return idx, d2
        if self._graph is not None:
            self._graph.set_ef(max(self._ef, take))
            try:
                labels, dist = self._graph.knn_query(queries, k=take, num_threads=threads)
            except RuntimeError:  # too few reachable live heads for k: fall back to a scan
                pass
            else:
                idx[:, :take] = labels.astype(np.int64)
                d2[:, :take] = dist
                return idx, d2
        vecs, sq = self._vecs[: self.n], self._sq[: self.n]
        qsq = np.einsum("ij,ij->i", queries, queries)
        if n == 1 and coarse and take + _MARGIN < live and kernel() is not None:
            return self._coarse(queries[0], take, idx, d2)
        if n == 1:  # the common single-query case, with as few numpy calls as possible
            scores = sq - 2.0 * (vecs @ queries[0])
            part = np.argpartition(scores, take - 1)[:take] if take < self.n else np.arange(take)
            part = part[np.argsort(scores[part], kind="stable")]
            idx[0, :take] = part
            d2[0, :take] = np.maximum(scores[part] + qsq[0], 0.0)
            return idx, d2
        for start in range(0, n, BLOCK):
            qb = queries[start : start + BLOCK]
            scores = sq[None, :] - 2.0 * (qb @ vecs.T)
            i, d = top_m_smallest(scores, take)
            idx[start : start + BLOCK, :take] = i
            d2[start : start + BLOCK, :take] = np.maximum(d + qsq[start : start + BLOCK, None], 0)
        return idx, d2

    def _coarse(self, q: Matrix, take: int, idx: _Ints, d2: Matrix) -> tuple[_Ints, Matrix]:
        """One query: candidates by int8 codes, ranked by exact distance (fills ``idx``/``d2``)."""
        sq = self._sq[: self.n]
        codes, scales = decode(self._codes[: self.n], self.dim)
        q8, q_scale = scaled(q[None, :])
        module: Any = kernel()
        dots = np.asarray(module.dot(q8[0], codes), dtype=np.float32)
        approx = sq - (2.0 * q_scale[0]) * (scales * dots)
        pick = np.argpartition(approx, take + _MARGIN - 1)[: take + _MARGIN]
        exact = sq[pick] - 2.0 * (self._vecs[pick] @ q)
        order = np.argsort(exact, kind="stable")[:take]
        idx[0, :take] = pick[order]
        d2[0, :take] = np.maximum(exact[order] + float(q @ q), 0.0)
        return idx, d2

    def save_graph(self, path: Path) -> bool:
        """Write the HNSW graph to ``path``; returns whether there was one."""
        if self._graph is None:
            return False
        self._graph.save_index(str(path))
        return True

    def load_graph(self, path: Path, ef: int) -> None:
        """Replace the graph by the one saved at ``path``."""
        hnswlib = require("hnswlib", extra="ann")
        graph = hnswlib.Index(space="l2", dim=self.dim)
        graph.load_index(str(path), max_elements=self._vecs.shape[0])
        self._graph, self._ef = graph, ef
