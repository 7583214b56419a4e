"""Personalized PageRank by forward push (Andersen–Chung–Lang), vectorised in rounds.

Same walk as :meth:`engramdb.graph.recall.RandomWalk.ppr` on an undirected graph: at each
step the walker follows an edge with probability ``damping`` (chosen by weight), else jumps
back to the reset vector ``r`` (scaled to sum 1); a node without edges sends the walker
back to ``r``.

Push keeps an estimate ``q̂`` and a residual ``ρ`` (at the start ``q̂ = 0``, ``ρ = r``);
pushing node ``v`` moves ``(1 − damping) · ρ(v)`` into ``q̂(v)`` and spreads
``damping · ρ(v)`` over ``v``'s edges by weight. Each round pushes, at once, every node
whose residual exceeds ``epsilon · deg(v)`` (``deg``: the weighted degree), and only those,
so the work follows the mass, not the size of the graph: it is at most
``1 / ((1 − damping) · epsilon)`` edge visits, whatever the graph.

**Error bound.** Let ``p`` be the exact PPR and ``ι`` the reset mass on isolated nodes (a
walker there is sent back to ``r``, so mass only leaves the rest of the graph through
``r``'s own isolated share; ``p = q / (1 − damping · ι)``, with ``q`` the walk whose mass at
isolated nodes is dropped). When push stops, every non-isolated ``v`` has
``ρ(v) ≤ epsilon · deg(v)``; the estimate ``p̂ = (q̂ + (1 − damping) · ρ) / (1 − damping · ι)``
(each residual's first step, which stays where it is, counted) satisfies, for every node::

    0 ≤ p(v) − p̂(v) ≤ epsilon · deg(v) / (1 − damping · ι)

(on an undirected graph ``π_u(v) / deg(v) = π_v(u) / deg(u)`` for the walk from ``u`` to
``v``, so the mass the residuals still owe ``v`` is at most ``epsilon · deg(v)``), and in
total ``Σ (p − p̂) = damping · Σ ρ / (1 − damping · ι)`` exactly.
:attr:`PushResult.bound` gives the per-node bound with the ``epsilon`` push achieved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engramdb._optional import require
from engramdb.errors import InvalidInputError

__all__ = ["PushResult", "PushWalk"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_DENSE_ROUND = 3
"""A round whose frontier holds more than 1/3 of the edges runs as a whole-graph product."""
_MAX_ROUNDS = 100_000
"""A guard only: the mass argument above ends push long before (each push settles
``(1 − damping) · epsilon · deg(v)`` of the unit mass)."""


@dataclass(frozen=True, slots=True)
class PushResult:
    """One reset vector's push.

    Attributes:
        estimate: ``(n,)`` PPR estimate ``p̂`` (a lower bound of the exact PPR).
        touched: the nodes where ``estimate`` may be non-zero (every other node's is 0).
        epsilon: the largest ``ρ(v) / deg(v)`` left over non-isolated nodes (at most the
            ``epsilon`` asked for).
        scale: ``1 / (1 − damping · ι)``, ``ι`` the reset mass on isolated nodes.
        residual: ``Σ ρ`` left; the L1 error is exactly ``damping · residual · scale``.
        pushes: node pushes done; ``edges``: edge visits done (the work).
    """

    estimate: FloatArray
    touched: IntArray
    epsilon: float
    scale: float
    residual: float
    pushes: int
    edges: int

    def bound(self, degree: FloatArray) -> FloatArray:
        """Per node, the most the exact PPR exceeds :attr:`estimate` by."""
        return self.epsilon * degree * self.scale


class PushWalk:
    """Forward push PPR over an undirected weighted graph, prepared once for many queries.

    Args:
        adjacency: ``(n, n)`` symmetric scipy sparse matrix of non-negative weights.
        check: verify the symmetry (skip it only for a matrix built as ``A + Aᵀ``).

    Raises:
        InvalidInputError: a non-square or non-symmetric matrix, or a negative weight.
        MissingDependencyError: scipy is not installed.
    """

    def __init__(self, adjacency: object, *, check: bool = True) -> None:
        sparse = require("scipy.sparse", extra="graph")
        w = sparse.csr_matrix(adjacency, dtype=np.float64)
        w.sum_duplicates()
        w.eliminate_zeros()
        n = w.shape[0]
        if w.shape != (n, n):
            raise InvalidInputError(f"adjacency must be square, got {w.shape}")
        if (w.data < 0).any():
            raise InvalidInputError("adjacency weights must be non-negative")
        if check and w.nnz and abs(w - w.T).max() > 1e-9 * float(w.data.max()):
            raise InvalidInputError("push needs an undirected graph (a symmetric adjacency)")
        self.n = n
        self.matrix = w
        self.indptr: IntArray = w.indptr.astype(np.int64)
        self.weights: FloatArray = w.data
        self.degree: FloatArray = np.asarray(w.sum(axis=1), dtype=np.float64).ravel()
        self.isolated = self.degree == 0

    def ppr(self, reset: npt.ArrayLike, *, damping: float, epsilon: float) -> PushResult:
        """Push from one reset vector until every residual is at most ``epsilon · deg``.

        Args:
            reset: ``(n,)`` non-negative reset weights (scaled to sum 1 here).
            damping: probability of following an edge at each step, in ``(0, 1)``.
            epsilon: residual threshold per unit of weighted degree, ``> 0``.

        Returns:
            The estimate and its error bound (see the module docstring).

        Raises:
            InvalidInputError: a shape mismatch, a negative or all-zero reset, a damping
                outside ``(0, 1)`` or a non-positive epsilon.
        """
        r = np.asarray(reset, dtype=np.float64)
        if r.shape != (self.n,):
            raise InvalidInputError(f"reset must have shape ({self.n},), got {r.shape}")
        if not 0 < damping < 1:
            raise InvalidInputError(f"damping must be in (0, 1), got {damping}")
        if not epsilon > 0:
            raise InvalidInputError(f"epsilon must be > 0, got {epsilon}")
        if (r < 0).any():
            raise InvalidInputError("reset weights must be non-negative")
        total = float(r.sum())
        if total <= 0:
            raise InvalidInputError("the reset vector needs a positive weight")
        seeds = np.flatnonzero(r).astype(np.int64)
        return self._push(seeds, r[seeds] / total, damping, epsilon)

    def ppr_sparse(
        self, seeds: IntArray, weights: FloatArray, *, damping: float, epsilon: float
    ) -> PushResult:
        """:meth:`ppr` for a reset vector given by its non-zero entries (no dense input).

        Args:
            seeds: distinct node indices.
            weights: their positive reset weights (scaled to sum 1 here).
            damping: see :meth:`ppr`.
            epsilon: see :meth:`ppr`.

        Raises:
            InvalidInputError: as :meth:`ppr`, or repeated or out-of-range seeds.
        """
        seeds = np.asarray(seeds, dtype=np.int64)
        w = np.asarray(weights, dtype=np.float64)
        if seeds.shape != w.shape or seeds.ndim != 1:
            raise InvalidInputError("seeds and weights must be 1-d and of the same length")
        if seeds.size and (seeds.min() < 0 or seeds.max() >= self.n):
            raise InvalidInputError(f"seed node out of range 0..{self.n - 1}")
        if np.unique(seeds).size != seeds.size:
            raise InvalidInputError("seed nodes must be distinct")
        reset = np.zeros(self.n, dtype=np.float64)
        reset[seeds] = w
        return self.ppr(reset, damping=damping, epsilon=epsilon)

    def _push(
        self, seeds: IntArray, mass: FloatArray, damping: float, epsilon: float
    ) -> PushResult:
        degree, indptr = self.degree, self.indptr
        estimate = np.zeros(self.n, dtype=np.float64)
        residual = np.zeros(self.n, dtype=np.float64)
        residual[seeds] = mass
        lone = self.isolated[seeds]
        isolated_mass = float(mass[lone].sum())
        estimate[seeds[lone]] = (1.0 - damping) * mass[lone]
        residual[seeds[lone]] = 0.0
        live = seeds[~lone]
        floor = epsilon * degree  # a node is pushed while its residual exceeds this
        frontier = live[residual[live] > floor[live]]
        pushes = edges = 0
        for _ in range(_MAX_ROUNDS):
            if frontier.size == 0:
                break
            share = residual[frontier]
            residual[frontier] = 0.0
            estimate[frontier] += (1.0 - damping) * share
            starts = indptr[frontier]
            counts = indptr[frontier + 1] - starts
            n_edges = int(counts.sum())
            spread = damping * share / degree[frontier]
            if n_edges * 2 > self.n:
                frontier = self._dense_round(frontier, spread, residual, floor, n_edges)
            else:
                rows = self.matrix[frontier]  # the frontier's edges, gathered in C
                targets = rows.indices.astype(np.intp)
                np.add.at(residual, targets, rows.data * np.repeat(spread, counts))
                frontier = _distinct(targets[residual[targets] > floor[targets]])
            pushes += int(share.size)
            edges += n_edges
        # every edge weighs > 0, so a node reached holds residual or estimate
        nodes = np.flatnonzero((residual > 0) | (estimate > 0))
        left = residual[nodes]
        scale = 1.0 / (1.0 - damping * isolated_mass)
        estimate[nodes] = (estimate[nodes] + (1.0 - damping) * left) * scale
        live_nodes = ~self.isolated[nodes]
        ratio = left[live_nodes] / degree[nodes][live_nodes]
        return PushResult(
            estimate=estimate,
            touched=nodes,
            epsilon=float(ratio.max()) if ratio.size else 0.0,
            scale=scale,
            residual=float(left.sum()),
            pushes=pushes,
            edges=edges,
        )

    def _dense_round(
        self,
        frontier: IntArray,
        spread: FloatArray,
        residual: FloatArray,
        floor: FloatArray,
        n_edges: int,
    ) -> IntArray:
        """A round with more edges than half the nodes: the flow as a dense vector (C
        loops over the edges and sequential passes over the nodes beat per-edge gathers)."""
        if n_edges * _DENSE_ROUND < self.weights.size:
            # the frontier's rows only (symmetric: its rows are its columns)
            flow = np.asarray(self.matrix[frontier].T @ spread, dtype=np.float64)
        else:
            x = np.zeros(self.n, dtype=np.float64)
            x[frontier] = spread
            flow = np.asarray(self.matrix @ x, dtype=np.float64)  # W @ x = Wᵀ @ x
        residual += flow
        return np.flatnonzero(residual > floor).astype(np.int64)


def _distinct(nodes: IntArray) -> IntArray:
    """``nodes`` without repeats, sorted (the frontier of the next round)."""
    if nodes.size < 2:
        return nodes
    nodes = np.sort(nodes)
    return nodes[np.r_[True, nodes[1:] != nodes[:-1]]]
