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

__all__ = ["Lists", "prune", "search_batch"]

_Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Lists:
    """What a scan needs: the mapped rows, the list directory and the version map."""

    vectors: Matrix
    entries: _Ints
    start: _Ints
    rows: _Ints
    version: npt.NDArray[np.uint8]
    ext: _Ints


def prune(idx: _Ints, d2: Matrix, eps: float | None) -> npt.NDArray[np.bool_]:
    """Which of the nearest heads to probe: ``d²(q, c_i) <= (1 + eps) · d²(q, c_1)``.

    ``idx``/``d2`` are ascending per row; ``-1`` entries are never probed.
    """
    keep = idx >= 0
    if eps is not None:
        keep &= d2 <= (1.0 + eps) * d2[:, :1]
        keep[:, 0] = idx[:, 0] >= 0
    return keep


def _rank(
    scores: Matrix,
    entries: _Ints,
    lists: Lists,
    k: int,
    allow: npt.NDArray[np.bool_] | None,
    spare: int,
) -> tuple[_Ints, Matrix]:
    """Top ``k`` valid, distinct vids of one query's candidates; returns ``(ext ids, scores)``."""
    m = scores.shape[0]
    take = min(m, k + spare)
    while True:
        top = np.argpartition(-scores, take - 1)[:take] if take < m else np.arange(m)
        ents = entries[top]
        vids = unpack_vid(ents)
        ok = lists.version[vids] == unpack_version(ents)
        if allow is not None:
            ok &= allow[vids]
        sel_s, sel_v = scores[top][ok], vids[ok]
        order = np.lexsort((sel_v, -sel_s))
        sel_s, sel_v = sel_s[order], sel_v[order]
        _, first = np.unique(sel_v, return_index=True)
        if first.size >= k or take >= m:
            keep = np.sort(first)[:k]
            return lists.ext[sel_v[keep]], sel_s[keep]
        take = m


def _scan_one(q: Matrix, probe: _Ints, lists: Lists) -> tuple[Matrix, _Ints]:
    starts, rows = lists.start[probe].tolist(), lists.rows[probe].tolist()
    vecs, ents = lists.vectors, lists.entries
    score_parts = [vecs[s : s + r] @ q for s, r in zip(starts, rows, strict=True) if r]
    if not score_parts:
        return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
    ent_parts = [ents[s : s + r] for s, r in zip(starts, rows, strict=True) if r]
    return np.concatenate(score_parts), np.concatenate(ent_parts)


def _scan_grouped(
    queries: Matrix, probes: _Ints, keep: npt.NDArray[np.bool_], lists: Lists
) -> tuple[Matrix, _Ints, _Ints]:
    """Scan the probed lists of a batch, each list once; returns flat buffers and offsets.

    Query ``i``'s candidates are ``scores[off[i]:off[i + 1]]`` / ``entries[...]``.
    """
    qi, kj = np.nonzero(keep)
    pl = probes[qi, kj]
    lengths = lists.rows[pl]
    pair_off = np.concatenate([[0], np.cumsum(lengths)])
    q_off = np.searchsorted(qi, np.arange(queries.shape[0] + 1), side="left")
    off = pair_off[q_off]
    scores = np.empty(int(pair_off[-1]), dtype=np.float32)
    entries = np.empty(int(pair_off[-1]), dtype=np.int64)
    order = np.argsort(pl, kind="stable")
    bounds = np.flatnonzero(np.diff(pl[order])) + 1
    for group in np.split(order, bounds):
        if group.size == 0:
            continue
        head = int(pl[group[0]])
        s, r = int(lists.start[head]), int(lists.rows[head])
        if r == 0:
            continue
        block = lists.vectors[s : s + r]
        pos = pair_off[group][:, None] + np.arange(r)[None, :]
        scores[pos] = queries[qi[group]] @ block.T
        entries[pos] = lists.entries[s : s + r][None, :]
    return scores, entries, off


def search_batch(
    queries: Matrix,
    probes: _Ints,
    keep: npt.NDArray[np.bool_],
    lists: Lists,
    k: int,
    *,
    allow: npt.NDArray[np.bool_] | None = None,
    spare: int = 32,
) -> tuple[IdMatrix, Matrix]:
    """Scan the kept probes of every query and rank; ``(ids, scores)`` of shape ``(n, k)``.

    Args:
        queries: ``(n, d)`` float32.
        probes: ``(n, K)`` head ids per query, nearest first.
        keep: ``(n, K)`` which probes to scan.
        lists: the mapped lists and version map.
        k: results per query.
        allow: optional boolean mask over vids; others are never returned.
        spare: extra candidates taken before validation (replicas, stale entries).
    """
    n = queries.shape[0]
    out_ids = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.full((n, k), -np.inf, dtype=np.float32)
    if n <= 2:
        for i in range(n):
            s, e = _scan_one(queries[i], probes[i][keep[i]], lists)
            _fill(out_ids, out_scores, i, s, e, lists, k, allow, spare)
        return out_ids, out_scores
    scores, entries, off = _scan_grouped(queries, probes, keep, lists)
    for i in range(n):
        a, b = int(off[i]), int(off[i + 1])
        _fill(out_ids, out_scores, i, scores[a:b], entries[a:b], lists, k, allow, spare)
    return out_ids, out_scores


def _fill(
    out_ids: IdMatrix,
    out_scores: Matrix,
    i: int,
    scores: Matrix,
    entries: _Ints,
    lists: Lists,
    k: int,
    allow: npt.NDArray[np.bool_] | None,
    spare: int,
) -> None:
    if scores.size == 0:
        return
    ids, sc = _rank(scores, entries, lists, k, allow, spare)
    out_ids[i, : ids.size] = ids
    out_scores[i, : sc.size] = sc
