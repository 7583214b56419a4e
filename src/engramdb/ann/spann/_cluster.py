"""Clustering for SPANN heads: flat k-means with a balance penalty, 2-means, exact top-m heads.

Pure functions over float32 arrays. Distances are squared L2 throughout (SPTAG's convention):
``d²(x, c) = |x|² - 2 x·c + |c|²``. Heads are stored with their squared norms; a dead or
padding head has norm ``+inf`` so it is never nearest.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import numpy.typing as npt

from engramdb.types import Matrix

__all__ = [
    "BLOCK",
    "assign_nearest",
    "bisect",
    "kmeans",
    "nearest_heads",
    "top_m_smallest",
    "two_means",
]

BLOCK = 2048
"""Rows per block when a ``(rows, heads)`` score matrix is formed."""

_Ints = npt.NDArray[np.int64]


def _sq_norms(x: Matrix) -> Matrix:
    out: Matrix = np.einsum("ij,ij->i", x, x).astype(np.float32)
    return out


def top_m_smallest(d2: Matrix, m: int) -> tuple[_Ints, Matrix]:
    """Column indices and values of the ``m`` smallest entries per row, ascending.

    Exact. For wide rows it first takes per-group minima over groups of ``g`` columns: every
    one of the ``m`` smallest entries lies in one of the ``m`` groups with the smallest minima,
    so only ``m·g`` columns need a full selection (``np.argpartition`` costs ~10 ns/entry).
    """
    n, h = d2.shape
    m = min(m, h)
    g = max(1, int(math.sqrt(h / max(m, 1))))
    groups = h // g
    if g < 4 or groups <= m:
        part = np.argpartition(d2, m - 1, axis=1)[:, :m] if m < h else np.tile(np.arange(h), (n, 1))
    else:
        body = d2[:, : groups * g].reshape(n, groups, g).min(axis=2)
        best = np.argpartition(body, m - 1, axis=1)[:, :m]
        cols = (best[:, :, None] * g + np.arange(g)[None, None, :]).reshape(n, m * g)
        if groups * g < h:  # the ragged tail is always a candidate
            tail = np.broadcast_to(np.arange(groups * g, h), (n, h - groups * g))
            cols = np.concatenate([cols, tail], axis=1)
        vals = np.take_along_axis(d2, cols, axis=1)
        sel = np.argpartition(vals, m - 1, axis=1)[:, :m]
        part = np.take_along_axis(cols, sel, axis=1)
    vals = np.take_along_axis(d2, part, axis=1)
    order = np.argsort(vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int64), np.take_along_axis(
        vals, order, axis=1
    )


def nearest_heads(x: Matrix, heads: Matrix, head_sq: Matrix, m: int) -> tuple[_Ints, Matrix]:
    """The ``m`` nearest heads of every row of ``x`` by squared L2, ascending (exact, blocked).

    Returns ``(idx, d2)``, both of shape ``(len(x), m)``.
    """
    n = x.shape[0]
    m = min(m, heads.shape[0])
    idx = np.empty((n, m), dtype=np.int64)
    dist = np.empty((n, m), dtype=np.float32)
    for start in range(0, n, BLOCK):
        xb = x[start : start + BLOCK]
        d2 = head_sq[None, :] - 2.0 * (xb @ heads.T)
        i, d = top_m_smallest(d2, m)
        idx[start : start + BLOCK] = i
        dist[start : start + BLOCK] = np.maximum(d + _sq_norms(xb)[:, None], 0.0)
    return idx, dist


def assign_nearest(
    x: Matrix, heads: Matrix, *, penalty: Matrix | None = None
) -> tuple[_Ints, Matrix]:
    """Nearest head per row (``argmin`` of ``d² + penalty``); returns ``(labels, d²)``."""
    head_sq = _sq_norms(heads)
    if penalty is not None:
        head_sq = head_sq + penalty
    labels = np.empty(x.shape[0], dtype=np.int64)
    dist = np.empty(x.shape[0], dtype=np.float32)
    for start in range(0, x.shape[0], BLOCK):
        xb = x[start : start + BLOCK]
        d2 = head_sq[None, :] - 2.0 * (xb @ heads.T)
        lab = np.argmin(d2, axis=1)
        labels[start : start + BLOCK] = lab
        dist[start : start + BLOCK] = d2[np.arange(lab.shape[0]), lab] + _sq_norms(xb)
    return labels, dist


def _update(x: Matrix, labels: _Ints, k: int, rng: np.random.Generator) -> Matrix:
    """Mean of each cluster; an empty cluster is reseeded next to a point of the largest one."""
    counts = np.bincount(labels, minlength=k).astype(np.float32)
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    _add_sorted(sums, x, labels)
    centres = (sums / np.maximum(counts, 1.0)[:, None]).astype(np.float32)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        big = np.argsort(-counts)[: empty.size]
        donors = np.array([rng.choice(np.flatnonzero(labels == b)) for b in big])
        jitter = 1e-3 * rng.standard_normal((empty.size, x.shape[1])).astype(np.float32)
        centres[empty] = x[donors] + jitter
    return centres


def _add_sorted(sums: npt.NDArray[np.float64], x: Matrix, labels: _Ints) -> None:
    """``sums[j] += x[labels == j].sum(0)`` for all ``j``, in chunks (sort + reduceat)."""
    for start in range(0, x.shape[0], 65_536):
        lab = labels[start : start + 65_536]
        order = np.argsort(lab, kind="stable")
        lab = lab[order]
        starts = np.concatenate([[0], np.flatnonzero(np.diff(lab)) + 1])
        sums[lab[starts]] += np.add.reduceat(x[start : start + 65_536][order], starts, axis=0)


def bisect(x: Matrix, k: int, *, seed: int = 0) -> Matrix:
    """``k`` centres by repeatedly splitting the largest cluster with balanced 2-means.

    A good start for Lloyd on high-dimensional data, where centres seeded at random points
    starve: each point is nearer the mean of its neighbourhood than any other point, so one
    centre per neighbourhood takes everything and the rest keep only their seed.
    """
    n = x.shape[0]
    k = max(1, min(k, n))
    members: list[_Ints] = [np.arange(n, dtype=np.int64)]
    heap = [(-n, 0)]
    while len(members) < k and heap:
        size, i = heapq.heappop(heap)
        if -size < 2:
            break
        rows = members[i]
        _, labels = two_means(x[rows], iters=4, seed=seed + len(members))
        members[i] = rows[labels == 0]
        members.append(rows[labels == 1])
        heapq.heappush(heap, (-members[i].size, i))
        heapq.heappush(heap, (-members[-1].size, len(members) - 1))
    return np.stack([x[m].mean(axis=0) for m in members]).astype(np.float32)


def kmeans(
    x: Matrix,
    k: int,
    *,
    iters: int = 4,
    balance: float = 0.0,
    seed: int = 0,
) -> Matrix:
    """k-means: :func:`bisect` start, then Lloyd iterations with SPTAG's count penalty.

    Args:
        x: the training rows (a sample of the data).
        k: number of centroids, ``1 <= k <= len(x)``.
        iters: Lloyd iterations after the bisecting start.
        balance: penalty weight: a cluster of average size costs ``balance`` times the mean
            squared distance to the assigned centroid (0 disables it).
        seed: random seed.

    Returns:
        ``(k, d)`` mean centroids.
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    k = max(1, min(k, n))
    centres = bisect(x, k, seed=seed)
    k = centres.shape[0]
    penalty: Matrix | None = None
    for _ in range(iters):
        labels, d2 = assign_nearest(x, centres, penalty=penalty)
        centres = _update(x, labels, k, rng)
        if balance > 0.0:
            counts = np.bincount(labels, minlength=k).astype(np.float32)
            lam = balance * float(d2.mean()) / max(n / k, 1.0)
            penalty = (lam * counts).astype(np.float32)
    return centres


def two_means(x: Matrix, *, iters: int = 6, seed: int = 0) -> tuple[Matrix, _Ints]:
    """Split ``x`` in two by balanced 2-means; returns ``(centres (2, d), labels)``.

    The assignment is balanced by ranking rows on ``d²(x, c0) - d²(x, c1)`` and cutting at the
    median when one side would hold under a quarter of the rows.
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    pick = rng.choice(n, size=2, replace=False)
    centres = x[pick].copy()
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        diff = _sq_norms(centres)[None, :] - 2.0 * (x @ centres.T)
        margin = diff[:, 0] - diff[:, 1]
        labels = (margin > 0).astype(np.int64)
        ones = int(labels.sum())
        if min(ones, n - ones) < n // 4:
            labels = np.zeros(n, dtype=np.int64)
            labels[np.argsort(margin, kind="stable")[n // 2 :]] = 1
        centres = np.stack([x[labels == 0].mean(axis=0), x[labels == 1].mean(axis=0)])
        centres = centres.astype(np.float32)
    return centres, labels
