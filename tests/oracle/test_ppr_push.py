"""Forward-push PPR against power iteration (the oracle, run to tol 1e-12).

The bound checked (see ``engramdb.graph._push``): for every node ``v``,
``0 <= p(v) - p̂(v) <= epsilon · deg(v) / (1 - damping · ι)`` with ``deg`` the weighted
degree and ``ι`` the reset mass on isolated nodes, and the L1 error is exactly
``damping · Σ residual / (1 - damping · ι)``. Where two nodes' estimates differ by more than
the bound, their exact order is the estimated one.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from engramdb.errors import InvalidInputError
from engramdb.graph._push import PushWalk
from engramdb.graph.recall import GraphIndex, RandomWalk
from engramdb.graph.sqlite import GraphSnapshot


def _graph(n: int, density: float, seed: int, isolated: int) -> sp.csr_matrix:
    """Random undirected graph with integer and fractional weights; the first ``isolated``
    nodes have no edge (dangling)."""
    rng = np.random.default_rng(seed)
    upper = sp.random(n, n, density=density, random_state=rng, format="coo")
    weights = np.where(rng.random(upper.nnz) < 0.5, rng.integers(1, 6, upper.nnz), upper.data)
    w = sp.coo_matrix((weights, (upper.row, upper.col)), shape=(n, n)).tocsr()
    w = sp.csr_matrix(w + w.T)
    w.setdiag(0)
    keep = np.ones(n)
    keep[:isolated] = 0
    mask = sp.diags(keep)
    out = sp.csr_matrix(mask @ w @ mask)
    out.eliminate_zeros()
    return out


def _reset(n: int, seed: int, isolated: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    r = np.zeros(n)
    r[rng.choice(n, size=12, replace=False)] = rng.random(12)
    r[isolated - 1] = 0.2  # some reset mass on a dangling node
    return r


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("damping", [0.5, 0.7, 0.85])
@pytest.mark.parametrize("epsilon", [1e-3, 1e-5, 1e-7])
def test_push_error_is_within_its_bound(seed: int, damping: float, epsilon: float) -> None:
    n, isolated = 400, 7
    adjacency = _graph(n, 0.015, seed, isolated)
    reset = _reset(n, seed, isolated)
    walk = PushWalk(adjacency)
    found = walk.ppr(reset, damping=damping, epsilon=epsilon)
    exact = RandomWalk(adjacency).ppr(reset, damping=damping, tol=1e-12, max_iter=10_000)
    error = exact - found.estimate
    assert error.min() >= -1e-12  # push never overestimates
    assert (error <= found.bound(walk.degree) + 1e-12).all()
    assert found.epsilon <= epsilon
    iota = reset[:isolated].sum() / reset.sum()
    assert found.scale == pytest.approx(1 / (1 - damping * iota))
    assert error.sum() == pytest.approx(damping * found.residual * found.scale, abs=1e-10)
    assert np.abs(exact.sum() - 1) < 1e-9


@pytest.mark.parametrize("seed", range(4))
def test_order_agrees_where_gaps_exceed_the_bound(seed: int) -> None:
    n, isolated = 300, 5
    adjacency = _graph(n, 0.02, seed, isolated)
    reset = _reset(n, seed, isolated)
    walk = PushWalk(adjacency)
    found = walk.ppr(reset, damping=0.7, epsilon=1e-4)
    exact = RandomWalk(adjacency).ppr(reset, damping=0.7, tol=1e-12, max_iter=10_000)
    est, bound = found.estimate, found.bound(walk.degree)
    # i certainly above j: its lower bound est[i] beats j's upper bound est[j] + bound[j]
    certain = est[:, None] > est[None, :] + bound[None, :]
    assert certain.sum() > n  # the check is not vacuous
    assert (exact[:, None] > exact[None, :])[certain].all()


def test_push_is_local() -> None:
    # a ring of 2,000 cliques of 5: a push from one node stays near it
    cliques, size = 2000, 5
    rows, cols = [], []
    for c in range(cliques):
        base = c * size
        for a in range(size):
            for b in range(a + 1, size):
                rows.append(base + a)
                cols.append(base + b)
        rows.append(base)
        cols.append(((c + 1) % cliques) * size + 1)
    n = cliques * size
    upper = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    walk = PushWalk(upper + upper.T)
    reset = np.zeros(n)
    reset[0] = 1.0
    epsilon, damping = 1e-4, 0.7
    found = walk.ppr(reset, damping=damping, epsilon=epsilon)
    assert found.touched.size < n // 20
    assert found.edges <= 1 / ((1 - damping) * epsilon)  # weights >= 1: visits <= degree
    exact = RandomWalk(upper + upper.T).ppr(reset, damping=damping, tol=1e-12, max_iter=5000)
    error = exact - found.estimate
    assert error.min() >= -1e-12
    assert (error <= found.bound(walk.degree) + 1e-12).all()
    assert np.flatnonzero(found.estimate).tolist() == sorted(
        set(np.flatnonzero(found.estimate).tolist()) & set(found.touched.tolist())
    )


def test_sparse_reset_equals_dense_reset() -> None:
    adjacency = _graph(200, 0.03, 3, 4)
    walk = PushWalk(adjacency)
    reset = _reset(200, 3, 4)
    nodes = np.flatnonzero(reset)
    a = walk.ppr(reset, damping=0.6, epsilon=1e-6)
    b = walk.ppr_sparse(nodes, reset[nodes], damping=0.6, epsilon=1e-6)
    np.testing.assert_allclose(a.estimate, b.estimate, rtol=0, atol=1e-15)


def test_push_rejects_bad_input() -> None:
    walk = PushWalk(_graph(20, 0.2, 0, 2))
    with pytest.raises(InvalidInputError, match="symmetric"):
        PushWalk(sp.csr_matrix(np.array([[0.0, 1.0], [0.0, 0.0]])))
    with pytest.raises(InvalidInputError, match="square"):
        PushWalk(sp.csr_matrix(np.ones((2, 3))))
    with pytest.raises(InvalidInputError, match="non-negative"):
        PushWalk(sp.csr_matrix(np.array([[0.0, -1.0], [-1.0, 0.0]])))
    with pytest.raises(InvalidInputError, match="shape"):
        walk.ppr(np.ones(3), damping=0.5, epsilon=1e-4)
    with pytest.raises(InvalidInputError, match="damping"):
        walk.ppr(np.ones(20), damping=1.0, epsilon=1e-4)
    with pytest.raises(InvalidInputError, match="epsilon"):
        walk.ppr(np.ones(20), damping=0.5, epsilon=0.0)
    with pytest.raises(InvalidInputError, match="non-negative"):
        walk.ppr(-np.ones(20), damping=0.5, epsilon=1e-4)
    with pytest.raises(InvalidInputError, match="positive"):
        walk.ppr(np.zeros(20), damping=0.5, epsilon=1e-4)
    with pytest.raises(InvalidInputError, match="distinct"):
        walk.ppr_sparse(np.array([1, 1]), np.ones(2), damping=0.5, epsilon=1e-4)
    with pytest.raises(InvalidInputError, match="range"):
        walk.ppr_sparse(np.array([20]), np.ones(1), damping=0.5, epsilon=1e-4)
    with pytest.raises(InvalidInputError, match="same length"):
        walk.ppr_sparse(np.array([1, 2]), np.ones(1), damping=0.5, epsilon=1e-4)


# -- GraphIndex: push recall against power-iteration recall --------------------------------


def _snapshot(seed: int, n_passages: int = 150, n_phrases: int = 120) -> GraphSnapshot:
    rng = np.random.default_rng(seed)
    mentions = {}
    for passage in range(n_passages - 3):  # the last 3 passages have no phrase (isolated)
        for phrase in rng.choice(n_phrases, size=rng.integers(2, 7), replace=False):
            mentions[(int(phrase), passage)] = (int(rng.integers(1, 3)), int(rng.random() < 0.5))
    rows = sorted(mentions)
    used = sorted({p for p, _ in rows})
    index = {p: i for i, p in enumerate(used)}
    pairs = np.unique(np.sort(rng.choice(len(used), size=(200, 2)), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return GraphSnapshot(
        phrases=tuple(f"phrase {p}" for p in used),
        vectors=np.zeros((len(used), 0), dtype=np.float32),
        memory_ids=np.arange(100, 100 + n_passages, dtype=np.int64),
        mentions=np.array(
            [(index[p], m, *mentions[(p, m)]) for p, m in rows], dtype=np.int64
        ).reshape(-1, 4),
        pairs=pairs.astype(np.int64),
        pair_weights=rng.integers(1, 4, size=len(pairs)).astype(np.float32),
        synonyms=np.zeros((0, 2), dtype=np.int64),
        synonym_scores=np.zeros(0, dtype=np.float32),
    )


@pytest.mark.parametrize("seed", range(3))
def test_graph_recall_by_push_matches_power_iteration(seed: int) -> None:
    index = GraphIndex(_snapshot(seed))
    rng = np.random.default_rng(seed)
    seeds = {int(j): float(w) for j, w in zip(rng.choice(20, 3), rng.random(3), strict=True)}
    ids = index.memory_ids.tolist()
    dense = [(int(m), float(s)) for m, s in zip(ids, rng.random(len(ids)), strict=True)]
    options = {"depth": 40, "damping": 0.7, "passage_weight": 0.05}
    exact = index.recall(seeds, dense, epsilon=0.0, **options)
    tight = index.recall(seeds, dense, epsilon=1e-12, **options)
    assert [m for m, _ in tight.run] == [m for m, _ in exact.run]
    for (_, a), (_, b) in zip(tight.run, exact.run, strict=True):
        assert a == pytest.approx(b, abs=1e-8)
    assert tight.via == exact.via
    # coarse push: the mass of every passage is within its bound of the exact PPR
    found = index.ppr(seeds, dense, damping=0.7, passage_weight=0.05, epsilon=1e-4)
    oracle = dict(index.recall(seeds, dense, epsilon=0.0, **{**options, "depth": 150}).run)
    bound = found.bound(index.push.degree)[index.n_phrases :]
    for i, memory_id in enumerate(ids):
        gap = oracle[memory_id] - found.estimate[index.n_phrases + i]
        assert -1e-6 <= gap <= bound[i] + 1e-6  # power iteration's own tol is 1e-7


def test_graph_recall_push_filters_and_pads_like_power_iteration() -> None:
    index = GraphIndex(_snapshot(7))
    allow = np.array([100, 101, 102, 147, 148, 149], dtype=np.int64)  # 147..149: no phrase
    a = index.recall({0: 1.0}, [], depth=10, allow=allow, epsilon=1e-9)
    b = index.recall({0: 1.0}, [], depth=10, allow=allow, epsilon=0.0)
    assert [m for m, _ in a.run] == [m for m, _ in b.run]
    assert {m for m, _ in a.run} == set(allow.tolist())
    with pytest.raises(InvalidInputError, match="epsilon"):
        index.recall({0: 1.0}, [], epsilon=-1.0)
    with pytest.raises(InvalidInputError, match="seed weight"):
        index.ppr({}, [(100, 0.5)], passage_weight=0.0)
