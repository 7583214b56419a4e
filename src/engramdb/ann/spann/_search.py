"""Search: prune probed lists, scan them in place, drop stale entries, dedupe, rank.

Lists are scanned where they lie in the mapped files; nothing is copied but the scores. Three
scans, each reading fewer bytes per row than the last (see :mod:`._quant` for the codes):

* **float32**: ``vectors[start:start + rows] @ q``, exact from the start.
* **int8** (when the rows have codes): the lists' int8 codes are scanned with a compiled
  kernel (a quarter of the float32 bytes); the best ``k + spare + rescore`` rows by that score
  are validated, deduplicated and re-scored with their float32 rows, so the scores returned
  are exact.
* **signs, then int8** (one query, when the rows have sign bits and ``prefilter > 0``): the
  lists' sign bits (1/32 of the float32 bytes) are scanned by Hamming distance; the int8 codes
  of the nearest ``prefilter`` fraction of the rows are gathered and scored, and those rows
  go on as in the int8 scan.

One query scans list by list into one score buffer; a batch groups its (query, list) pairs by
list so each list is read once per batch (a small matrix product; int8 or float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._postings import unpack_version, unpack_vid
from engramdb.ann.spann._quant import (
    SCALE_BYTES,
    decode,
    dot_blocks,
    encode_queries,
    kernel,
    signs,
)
from engramdb.types import IdMatrix, Matrix

__all__ = ["FLOOR", "Lists", "Scan", "prune"]

_Ints = npt.NDArray[np.int64]
_Mask = npt.NDArray[np.bool_]
_Codes = npt.NDArray[np.int8]
_BATCH = 256
"""Queries scanned together (bounds the candidate buffers to a few tens of MB)."""
FLOOR = 8
"""The prefilter keeps at least this many times the rows a query re-scores."""


@dataclass(frozen=True, slots=True)
class Lists:
    """What a scan needs: the mapped rows, the list directory and the version map.

    ``codes`` are the rows' code rows (int8 code and scale, see :mod:`._quant`; ``None``: scan
    float32),
    ``signs`` their sign bits around ``centre`` (``None``: no prefilter).
    """

    vectors: Matrix
    entries: _Ints
    start: _Ints
    rows: _Ints
    version: npt.NDArray[np.uint8]
    ext: _Ints
    codes: npt.NDArray[np.uint8] | None = None
    signs: npt.NDArray[np.uint8] | None = None
    centre: Matrix | None = None


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
class _Cands:
    """One query's candidates: ``scores[p]`` scores posting row ``rows[p]``."""

    scores: Matrix
    rows: _Ints


def _row_index(starts: _Ints, counts: _Ints) -> _Ints:
    """The posting rows of lists laid end to end: ``starts[j] + 0 .. counts[j] - 1``."""
    first = np.cumsum(counts) - counts
    out: _Ints = np.repeat(starts - first, counts) + np.arange(int(counts.sum()))
    return out


@dataclass(frozen=True, slots=True)
class Scan:
    """One search call: the lists, ``k``, an optional vid filter and the candidate margins.

    Attributes:
        lists: the mapped lists and version map.
        k: results per query.
        allow: boolean mask over vids; others are never returned.
        spare: extra candidates ranked before validation (replicas, stale entries); more are
            taken only when too few of them are valid.
        rescore: scan the int8 codes and re-score this many more rows (beyond ``k + spare``)
            with float32; ``None`` scans the float32 rows.
        prefilter: with ``rescore`` and sign bits, one query's int8 codes are read only for
            this fraction of its candidate rows (at least :data:`FLOOR` times the rows
            re-scored), those nearest by Hamming distance of their sign bits among the rows
            ``allow`` lets through; ``0`` reads every candidate's code.
    """

    lists: Lists
    k: int
    allow: _Mask | None = None
    spare: int = 32
    rescore: int | None = None
    prefilter: float = 0.0

    def _depth(self) -> int:
        """Candidates a query ranks first (more only when too few of them are valid)."""
        return self.k + self.spare + (self.rescore or 0 if self.quantized else 0)

    @property
    def quantized(self) -> bool:
        """Whether this scan reads int8 codes (asked for, and the codes and kernel exist)."""
        return self.rescore is not None and self.lists.codes is not None and kernel() is not None

    def run(self, queries: Matrix, probes: _Ints, keep: _Mask) -> tuple[IdMatrix, Matrix]:
        """Scan the kept probes of every query; ``(ids, scores)`` of shape ``(n, k)``.

        ``probes`` holds ``(n, K)`` head ids per query and ``keep`` which ones to scan.
        """
        n = queries.shape[0]
        out_ids = np.full((n, self.k), -1, dtype=np.int64)
        out_scores = np.full((n, self.k), -np.inf, dtype=np.float32)
        q8 = encode_queries(queries) if self.quantized else None
        if n <= 2:
            for i in range(n):
                cands = self._scan_one(
                    queries[i], None if q8 is None else q8[i], probes[i][keep[i]]
                )
                self._fill(out_ids[i], out_scores[i], cands, queries[i])
            return out_ids, out_scores
        for c in range(0, n, _BATCH):
            sl = slice(c, c + _BATCH)
            qc = None if q8 is None else q8[sl]
            for i, cands in enumerate(self._scan_grouped(queries[sl], qc, probes[sl], keep[sl])):
                self._fill(out_ids[c + i], out_scores[c + i], cands, queries[c + i])
        return out_ids, out_scores

    def _fill(self, ids_row: _Ints, scores_row: Matrix, cands: _Cands, q: Matrix) -> None:
        if cands.scores.size == 0:
            return
        ids, sc = self._rank(cands, q)
        ids_row[: ids.size] = ids
        scores_row[: sc.size] = sc

    def _rank(self, cands: _Cands, q: Matrix) -> tuple[_Ints, Matrix]:
        """Top ``k`` valid, distinct vids of one query's candidates as ``(ext ids, scores)``."""
        scores = cands.scores
        m = scores.shape[0]
        quantized = self.quantized
        take = min(m, self._depth())
        lists = self.lists
        while True:
            top = np.argpartition(-scores, take - 1)[:take] if take < m else np.arange(m)
            rows = cands.rows[top]
            ents = lists.entries[rows]
            vids = unpack_vid(ents)
            ok = lists.version[vids] == unpack_version(ents)
            if self.allow is not None:
                ok &= self.allow[vids]
            if quantized:  # a vid's valid rows hold one vector: score one of them
                sel_v, first = np.unique(vids[ok], return_index=True)
                sel_s = lists.vectors[rows[ok][first]] @ q
                order = np.lexsort((lists.ext[sel_v], -sel_s))
                sel_s, sel_v = sel_s[order], sel_v[order]
                keep = np.arange(min(self.k, sel_v.size))
            else:
                sel_s, sel_v = scores[top][ok], vids[ok]
                order = np.lexsort((lists.ext[sel_v], -sel_s))
                sel_s, sel_v = sel_s[order], sel_v[order]
                _, first = np.unique(sel_v, return_index=True)
                keep = np.sort(first)[: self.k]
            if keep.size >= self.k or take >= m:
                return lists.ext[sel_v[keep]], sel_s[keep]
            take = m

    def _scan_one(self, q: Matrix, q8: _Codes | None, probe: _Ints) -> _Cands:
        """Score every row of the probed lists, in file order, into one buffer."""
        lists = self.lists
        probe = probe[lists.rows[probe] > 0]
        starts = lists.start[probe]
        order = np.argsort(starts)
        starts, counts = starts[order], lists.rows[probe][order]
        rows = _row_index(starts, counts)
        scores = np.empty(rows.size, dtype=np.float32)
        if rows.size == 0:
            return _Cands(scores, rows)
        ends = np.cumsum(counts)
        spans = zip(starts.tolist(), (ends - counts).tolist(), ends.tolist(), strict=True)
        if q8 is None:
            vecs = lists.vectors
            for s, a, b in spans:
                np.dot(vecs[s : s + b - a], q, out=scores[a:b])
            return _Cands(scores, rows)
        codes, scales = self._codes()
        module = self._module()
        if self.prefilter > 0 and lists.signs is not None and lists.centre is not None:
            bits, hamming = lists.signs, module.hamming
            q1 = signs(q[None, :], lists.centre)[0]
            for s, a, b in spans:
                scores[a:b] = hamming(q1, bits[s : s + b - a], "bin8")
            if self.allow is not None:  # rows it may not return must not take the places
                scores[~self.allow[unpack_vid(lists.entries[rows])]] = np.inf
            take = max(int(self.prefilter * rows.size), FLOOR * self._depth())
            if take < rows.size:
                rows = rows[np.argpartition(scores, take - 1)[:take]]
            picked, scales = decode(self._code_rows()[rows], codes.shape[1])  # one gather
            scores = np.asarray(module.dot(q8, picked), dtype=np.float32)
            scores *= scales
            return _Cands(scores, rows)
        dot = module.dot
        for s, a, b in spans:
            scores[a:b] = dot(q8, codes[s : s + b - a])
        scores *= scales[rows]  # one gather: cheaper than a multiply per list
        return _Cands(scores, rows)

    def _scan_grouped(
        self, queries: Matrix, q8: _Codes | None, probes: _Ints, keep: _Mask
    ) -> list[_Cands]:
        """Scan a batch's probed lists, each once; one :class:`_Cands` per query."""
        lists = self.lists
        qi, kj = np.nonzero(keep)
        pl = probes[qi, kj]
        counts = lists.rows[pl]
        pair_off = np.concatenate([[0], np.cumsum(counts)])
        scores = np.empty(int(pair_off[-1]), dtype=np.float32)
        order = np.argsort(pl, kind="stable")
        bounds = np.flatnonzero(np.diff(pl[order])) + 1
        for group in np.split(order, bounds) if order.size else []:
            head = int(pl[group[0]])
            s, r = int(lists.start[head]), int(lists.rows[head])
            if r == 0:
                continue
            pos = pair_off[group][:, None] + np.arange(r)[None, :]
            scores[pos] = self._block(queries, q8, qi[group], s, r)
        first = np.searchsorted(qi, np.arange(queries.shape[0] + 1), side="left")
        rows = _row_index(lists.start[pl], counts)
        return [
            _Cands(scores[pair_off[a] : pair_off[b]], rows[pair_off[a] : pair_off[b]])
            for a, b in zip(first[:-1].tolist(), first[1:].tolist(), strict=True)
        ]

    def _block(self, queries: Matrix, q8: _Codes | None, which: _Ints, s: int, r: int) -> Matrix:
        """Scores of queries ``which`` against rows ``[s, s + r)``, shape ``(len(which), r)``."""
        if q8 is None:
            block: Matrix = queries[which] @ self.lists.vectors[s : s + r].T
            return block
        codes, scales = self._codes()
        block = dot_blocks(q8[which], codes[s : s + r])
        block *= scales[None, s : s + r]
        return block

    @staticmethod
    def _module() -> Any:
        module = kernel()
        assert module is not None
        return module

    def _code_rows(self) -> npt.NDArray[np.uint8]:
        rows = self.lists.codes
        assert rows is not None
        return rows

    def _codes(self) -> tuple[_Codes, Matrix]:
        rows = self._code_rows()
        return decode(rows, rows.shape[1] - SCALE_BYTES)
