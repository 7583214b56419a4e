"""Closure assignment: which posting lists a vector joins (SPANN's replicas with the RNG rule).

A vector ``x`` with candidate heads ``c_1, c_2, ...`` (nearest first, squared L2) always joins
``c_1``'s list and joins ``c_j``'s list too when

* the closure test holds: ``d²(x, c_j) <= (1 + closure_eps) · d²(x, c_1)``, and
* no head ``c_a`` it already joined "shadows" ``c_j`` (the RNG rule):
  ``rng_factor · d²(c_j, c_a) < d²(x, c_j)`` rejects ``c_j``,

up to ``replicas`` lists in all.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engramdb.types import Matrix

__all__ = ["group_pairs", "select_replicas"]

_Ints = npt.NDArray[np.int64]


def select_replicas(
    cand: _Ints,
    cand_d2: Matrix,
    heads: Matrix,
    *,
    replicas: int,
    closure_eps: float,
    rng_factor: float,
) -> npt.NDArray[np.bool_]:
    """Which candidate heads each row joins; ``cand``/``cand_d2`` are ``(n, m)``, ascending.

    Returns a boolean ``(n, m)`` mask with column 0 always set and at most ``replicas`` set
    per row.
    """
    n, m = cand.shape
    keep = np.zeros((n, m), dtype=bool)
    if n == 0:
        return keep
    keep[:, 0] = True
    closure = cand_d2 <= (1.0 + closure_eps) * cand_d2[:, :1]
    count = np.ones(n, dtype=np.int64)
    for j in range(1, m):
        rows = np.flatnonzero(closure[:, j] & (count < replicas))
        if rows.size == 0:
            continue
        cj = heads[cand[rows, j]]
        ok = np.ones(rows.size, dtype=bool)
        for a in range(j):
            acc = keep[rows, a]
            if not acc.any():
                continue
            ca = heads[cand[rows, a]]
            diff = cj - ca
            d_heads = np.einsum("ij,ij->i", diff, diff)
            ok &= ~(acc & (rng_factor * d_heads < cand_d2[rows, j]))
        keep[rows[ok], j] = True
        count[rows[ok]] += 1
    return keep


def group_pairs(heads_of: _Ints, rows_of: _Ints, n_heads: int) -> tuple[_Ints, _Ints]:
    """Sort ``(head, row)`` pairs by head; returns ``(rows sorted by head, per-head counts)``."""
    order = np.argsort(heads_of, kind="stable")
    counts = np.bincount(heads_of, minlength=n_heads).astype(np.int64)
    return rows_of[order], counts
