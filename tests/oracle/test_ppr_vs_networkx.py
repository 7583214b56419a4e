"""Personalized PageRank (scipy power iteration) against networkx.pagerank."""

from __future__ import annotations

import numpy as np
import pytest

from engramdb.errors import InvalidInputError
from engramdb.graph.recall import personalized_pagerank

nx = pytest.importorskip("networkx")
sparse = pytest.importorskip("scipy.sparse")


def _random_graph(seed: int, n: int, p: float, isolated: int) -> object:
    rng = np.random.default_rng(seed)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for i in range(n - isolated):
        for j in range(i + 1, n - isolated):
            if rng.random() < p:
                g.add_edge(i, j, weight=float(rng.uniform(0.1, 3.0)))
    return g


def _reference(g: object, reset: np.ndarray, damping: float) -> np.ndarray:
    personalization = {i: float(w) for i, w in enumerate(reset)}
    ranks = nx.pagerank(
        g,
        alpha=damping,
        personalization=personalization,
        weight="weight",
        tol=1e-13,
        max_iter=1000,
    )
    return np.asarray([ranks[i] for i in range(len(reset))])


@pytest.mark.parametrize(
    ("seed", "n", "p", "isolated", "damping"),
    [(0, 12, 0.3, 0, 0.5), (1, 40, 0.1, 3, 0.5), (2, 25, 0.2, 2, 0.85), (3, 60, 0.05, 5, 0.3)],
)
def test_ppr_matches_networkx_on_random_weighted_graphs(
    seed: int, n: int, p: float, isolated: int, damping: float
) -> None:
    g = _random_graph(seed, n, p, isolated)
    adjacency = nx.to_scipy_sparse_array(g, nodelist=range(n), weight="weight", format="csr")
    rng = np.random.default_rng(seed + 100)
    reset = np.where(rng.random(n) < 0.3, rng.uniform(0.0, 2.0, n), 0.0)
    reset[0] += 0.5  # never all zero
    ours = personalized_pagerank(adjacency, reset, damping=damping, tol=1e-14, max_iter=1000)
    np.testing.assert_allclose(ours, _reference(g, reset, damping), atol=1e-9)
    assert ours.sum() == pytest.approx(1.0)


def test_ppr_batches_columns_like_single_runs() -> None:
    g = _random_graph(7, 30, 0.15, 2)
    adjacency = nx.to_scipy_sparse_array(g, nodelist=range(30), weight="weight", format="csr")
    resets = np.zeros((30, 3))
    resets[0, 0] = 1.0
    resets[[3, 9], 1] = [0.2, 0.7]
    resets[:, 2] = 1.0
    batch = personalized_pagerank(adjacency, resets, tol=1e-14)
    for q in range(3):
        single = personalized_pagerank(adjacency, resets[:, q], tol=1e-14)
        np.testing.assert_allclose(batch[:, q], single, atol=1e-12)
        np.testing.assert_allclose(single, _reference(g, resets[:, q], 0.5), atol=1e-9)


def test_ppr_on_a_path_concentrates_near_the_seed() -> None:
    g = nx.path_graph(6)
    adjacency = nx.to_scipy_sparse_array(g, nodelist=range(6), format="csr")
    reset = np.zeros(6)
    reset[0] = 1.0
    ranks = personalized_pagerank(adjacency, reset)
    assert list(np.argsort(-ranks)) == [0, 1, 2, 3, 4, 5]


def test_ppr_rejects_bad_input() -> None:
    adjacency = sparse.csr_matrix(np.ones((3, 3)))
    with pytest.raises(InvalidInputError):
        personalized_pagerank(adjacency, np.zeros(3))
    with pytest.raises(InvalidInputError):
        personalized_pagerank(adjacency, np.ones(4))
    with pytest.raises(InvalidInputError):
        personalized_pagerank(adjacency, np.array([1.0, -1.0, 0.0]))
