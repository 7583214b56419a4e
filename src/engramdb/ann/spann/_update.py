"""In-place updates after SPFresh: place (insert), split, reassign, merge.

* **Place** runs the build's replica selection for new vectors and appends them to the chosen
  lists (into each list's free tail, or by moving the list).
* **Split**: a list over ``limit`` rows is garbage-collected; if still too long, balanced
  2-means replaces its head by two, and vectors near the old head are **reassigned**: a
  vector moves when a new head is closer than both its old head and its current one, and its
  re-run selection no longer picks the list it sits in. A mover's version is bumped (its old
  copies go stale) and it is appended to its new lists.
* **Merge**: a list with fewer than ``merge_threshold`` live vectors loses its head; its
  vectors are placed again.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._assign import replicas_for
from engramdb.ann.spann._cluster import two_means
from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._postings import unpack_vid
from engramdb.ann.spann._state import State
from engramdb.types import Matrix

__all__ = ["live_counts", "merge_small", "place", "split_oversize"]

_Ints = npt.NDArray[np.int64]
_PARALLEL = 64  # vectors placed at once from which the head search uses every core


def choose(state: State, cfg: SpannConfig, vectors: Matrix) -> tuple[_Ints, npt.NDArray[np.bool_]]:
    """Candidate heads ``(n, m)`` and the replica mask for ``vectors`` (a batch searches the
    head graph on every core: at a million vectors that search is most of a fold's time)."""
    threads = -1 if vectors.shape[0] >= _PARALLEL else 1
    cand, d2 = state.heads.search(vectors, cfg.candidates, threads=threads)
    keep = replicas_for(np.maximum(cand, 0), d2, state.heads.vectors, cfg)
    return cand, keep & (cand >= 0)


def place(state: State, cfg: SpannConfig, vids: _Ints, vectors: Matrix) -> None:
    """Append ``vectors`` (as ``vids``, at their current versions) to their chosen lists."""
    if vids.size == 0:
        return
    cand, keep = choose(state, cfg, vectors)
    r, c = np.nonzero(keep)
    state.append_pairs(cand[r, c], vids[r], vectors[r])


def _current(state: State, h: int) -> tuple[Matrix, _Ints]:
    """The valid, distinct rows of list ``h`` (copies)."""
    vecs, ents = state.list_rows(h)
    ok = np.flatnonzero(state.valid(ents))
    _, first = np.unique(unpack_vid(ents[ok]), return_index=True)
    rows = ok[np.sort(first)]
    return np.asarray(vecs[rows]), np.asarray(ents[rows])


def split_oversize(state: State, cfg: SpannConfig, heads: list[int] | None = None) -> int:
    """Split every list (or every list in ``heads``) longer than the limit; returns splits."""
    if heads is None:
        heads = np.flatnonzero(state.rows[: state.heads.n] > cfg.limit).tolist()
    queue = [h for h in heads if state.rows[h] > cfg.limit]
    splits = 0
    while queue:
        h = queue.pop()
        if state.rows[h] <= cfg.limit:
            continue
        new = _split(state, cfg, h)
        splits += bool(new)
        queue.extend(x for x in new if state.rows[x] > cfg.limit)
    return splits


def _split(state: State, cfg: SpannConfig, h: int) -> list[int]:
    vecs, ents = _current(state, h)
    if vecs.shape[0] <= cfg.limit:
        state.write_list(h, vecs, ents)
        return []
    old = state.heads.vectors[h].copy()
    centres, labels = two_means(vecs, seed=cfg.seed + h)
    h2 = state.add_head(centres[1])
    state.move_head(h, centres[0])
    state.write_list(h, vecs[labels == 0], ents[labels == 0])
    state.write_list(h2, vecs[labels == 1], ents[labels == 1])
    _reassign(state, cfg, old, [h, h2])
    return [h, h2]


def _d2(x: Matrix, c: Matrix) -> Matrix:
    diff = x - c
    out: Matrix = np.einsum("ij,ij->i", diff, diff)
    return out


def _movers(state: State, old: Matrix, new: list[int], lists: _Ints) -> tuple[_Ints, _Ints]:
    """Vids (and the list each sits in) that a new head may serve better."""
    centres = state.heads.vectors
    vid_parts, home_parts = [], []
    for h in lists.tolist():
        vecs, ents = _current(state, h)
        if vecs.shape[0] == 0:
            continue
        d_new = np.minimum(_d2(vecs, centres[new[0]]), _d2(vecs, centres[new[1]]))
        if h in new:
            move = _d2(vecs, old) < _d2(vecs, centres[h])
        else:
            move = (d_new < _d2(vecs, old)) & (d_new < _d2(vecs, centres[h]))
        vid_parts.append(unpack_vid(ents[move]))
        home_parts.append(np.full(int(move.sum()), h, dtype=np.int64))
    if not vid_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    vids, homes = np.concatenate(vid_parts), np.concatenate(home_parts)
    _, first = np.unique(vids, return_index=True)
    return vids[first], homes[first]


def _reassign(state: State, cfg: SpannConfig, old: Matrix, new: list[int]) -> None:
    near, _ = state.heads.search(old[None, :], cfg.reassign_lists + 2)
    lists = np.union1d(near[0][near[0] >= 0], np.array(new))
    vids, homes = _movers(state, old, new, lists)
    if vids.size == 0:
        return
    vectors = state.vectors_of(vids)
    cand, keep = choose(state, cfg, vectors)
    stays = (keep & (cand == homes[:, None])).any(axis=1)
    vids, vectors = vids[~stays], vectors[~stays]
    cand, keep = cand[~stays], keep[~stays]
    if vids.size == 0:
        return
    state.bump(vids)
    r, c = np.nonzero(keep)
    state.append_pairs(cand[r, c], vids[r], vectors[r])


def live_counts(state: State, heads: _Ints | None = None) -> _Ints:
    """Valid entries per head slot (dead heads count 0); only ``heads`` when given."""
    n = state.heads.n
    rows = np.where(state.heads.alive, state.rows[:n], 0)
    if heads is not None:
        only = np.zeros(n, dtype=bool)
        only[heads] = True
        rows = np.where(only, rows, 0)
    total = int(rows.sum())
    if total == 0:
        return np.zeros(n, dtype=np.int64)
    first = np.cumsum(rows) - rows
    index = np.repeat(state.start[:n] - first, rows) + np.arange(total)
    ok = state.valid(state.post.entries[index])
    return np.bincount(np.repeat(np.arange(n), rows), weights=ok, minlength=n).astype(np.int64)


def merge_small(state: State, cfg: SpannConfig, heads: _Ints | None = None) -> int:
    """Merge away lists (all, or those in ``heads``) under ``merge_threshold`` live vectors;
    returns how many."""
    counts = live_counts(state, heads)
    check = state.heads.alive.copy()
    if heads is not None:
        check[:] = False
        check[heads] = state.heads.alive[heads]
    small = np.flatnonzero(check & (counts < cfg.merge_threshold))
    merged = 0
    for h in small.tolist():
        if state.heads.live_count <= 1:
            break
        vecs, ents = _current(state, h)
        state.kill_head(h)
        merged += 1
        if vecs.shape[0] == 0:
            continue
        vids = unpack_vid(ents)
        state.bump(vids)
        place(state, cfg, vids, vecs)
    if merged:
        split_oversize(state, cfg)
    return merged
