"""Search: prune probed lists, scan them in place, drop stale entries, dedupe, rank.

Lists are scanned where they lie in the mapped file (``vectors[start:start + rows] @ q``);
nothing is copied but the scores. One query scans list by list; a batch groups its
(query, list) pairs by list so each list is read once per batch (a small matrix product).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._postings import unpack_version, unpack_vid
from engramdb.types import IdMatrix, Matrix

__all__ = ["Lists", "Scan", "prune"]

_Ints = npt.NDArray[np.int64]
_Mask = npt.NDArray[np.bool_]
_BATCH = 256
"""Queries scanned together (bounds the candidate buffers to a few tens of MB)."""


@dataclass(frozen=True, slots=True)
class Lists:
    """What a scan needs: the mapped rows, the list directory and the version map."""

    vectors: Matrix
    entries: _Ints
    start: _Ints
    rows: _Ints
    version: npt.NDArray[np.uint8]
    ext: _Ints


def prune(idx: _Ints, d2: Matrix, eps: float | None) -> _Mask:
    """Which of the nearest heads to probe: ``d²(q, c_i) <= (1 + eps) · d²(q, c_1)``.

    ``idx``/``d2`` are ascending per row; ``-1`` entries are never probed.
    """
    keep = idx >= 0
    if eps is not None:
        keep &= d2 <= (1.0 + eps) * d2[:, :1]
        keep[:, 0] = idx[:, 0] >= 0
    return keep


@dataclass(frozen=True, slots=True)
class Scan:
    """One search call: the lists, ``k``, an optional vid filter and the candidate margin.

    Attributes:
        lists: the mapped lists and version map.
        k: results per query.
        allow: boolean mask over vids; others are never returned.
        spare: extra candidates ranked before validation (replicas, stale entries); more are
            taken only when too few of them are valid.
    """

    lists: Lists
    k: int
    allow: _Mask | None = None
    spare: int = 32

    def run(self, queries: Matrix, probes: _Ints, keep: _Mask) -> tuple[IdMatrix, Matrix]:
        """Scan the kept probes of every query; ``(ids, scores)`` of shape ``(n, k)``.

        ``probes`` holds ``(n, K)`` head ids per query and ``keep`` which ones to scan.
        """
        n = queries.shape[0]
        out_ids = np.full((n, self.k), -1, dtype=np.int64)
        out_scores = np.full((n, self.k), -np.inf, dtype=np.float32)
        if n <= 2:
            for i in range(n):
                scores, entries = self._scan_one(queries[i], probes[i][keep[i]])
                self._fill(out_ids[i], out_scores[i], scores, entries)
            return out_ids, out_scores
        for c in range(0, n, _BATCH):
            sl = slice(c, c + _BATCH)
            scores, entries, off = self._scan_grouped(queries[sl], probes[sl], keep[sl])
            for i in range(off.size - 1):
                a, b = int(off[i]), int(off[i + 1])
                self._fill(out_ids[c + i], out_scores[c + i], scores[a:b], entries[a:b])
        return out_ids, out_scores

    def _fill(self, ids_row: _Ints, scores_row: Matrix, scores: Matrix, entries: _Ints) -> None:
        if scores.size == 0:
            return
        ids, sc = self._rank(scores, entries)
        ids_row[: ids.size] = ids
        scores_row[: sc.size] = sc

    def _rank(self, scores: Matrix, entries: _Ints) -> tuple[_Ints, Matrix]:
        """Top ``k`` valid, distinct vids of one query's candidates as ``(ext ids, scores)``."""
        m = scores.shape[0]
        take = min(m, self.k + self.spare)
        lists = self.lists
        while True:
            top = np.argpartition(-scores, take - 1)[:take] if take < m else np.arange(m)
            ents = entries[top]
            vids = unpack_vid(ents)
            ok = lists.version[vids] == unpack_version(ents)
            if self.allow is not None:
                ok &= self.allow[vids]
            sel_s, sel_v = scores[top][ok], vids[ok]
            order = np.lexsort((lists.ext[sel_v], -sel_s))
            sel_s, sel_v = sel_s[order], sel_v[order]
            _, first = np.unique(sel_v, return_index=True)
            if first.size >= self.k or take >= m:
                keep = np.sort(first)[: self.k]
                return lists.ext[sel_v[keep]], sel_s[keep]
            take = m

    def _scan_one(self, q: Matrix, probe: _Ints) -> tuple[Matrix, _Ints]:
        lists = self.lists
        probe = np.sort(probe)  # lists lie in head order: read the file forwards
        spans = [
            (s, s + r)
            for s, r in zip(lists.start[probe].tolist(), lists.rows[probe].tolist(), strict=True)
            if r
        ]
        if not spans:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        vecs, ents = lists.vectors, lists.entries
        scores = np.concatenate([vecs[a:b] @ q for a, b in spans])
        return scores, np.concatenate([ents[a:b] for a, b in spans])

    def _scan_grouped(
        self, queries: Matrix, probes: _Ints, keep: _Mask
    ) -> tuple[Matrix, _Ints, _Ints]:
        """Scan a batch's probed lists, each once; query ``i``'s candidates are
        ``scores[off[i]:off[i + 1]]`` (and the same slice of the entries)."""
        lists = self.lists
        qi, kj = np.nonzero(keep)
        pl = probes[qi, kj]
        pair_off = np.concatenate([[0], np.cumsum(lists.rows[pl])])
        off = pair_off[np.searchsorted(qi, np.arange(queries.shape[0] + 1), side="left")]
        scores = np.empty(int(pair_off[-1]), dtype=np.float32)
        entries = np.empty(int(pair_off[-1]), dtype=np.int64)
        order = np.argsort(pl, kind="stable")
        bounds = np.flatnonzero(np.diff(pl[order])) + 1
        for group in np.split(order, bounds) if order.size else []:
            head = int(pl[group[0]])
            s, r = int(lists.start[head]), int(lists.rows[head])
            if r == 0:
                continue
            pos = pair_off[group][:, None] + np.arange(r)[None, :]
            scores[pos] = queries[qi[group]] @ lists.vectors[s : s + r].T
            entries[pos] = lists.entries[s : s + r][None, :]
        return scores, entries, off
