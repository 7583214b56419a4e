"""GraphIndex: seed linking, passage seeding, fallback, filtering — PPR checked by networkx."""

from __future__ import annotations

import numpy as np
import pytest

from engramdb.graph.recall import GraphIndex
from engramdb.graph.sqlite import GraphSnapshot

nx = pytest.importorskip("networkx")

PHRASES = ("marie curie", "warsaw", "poland", "capital", "paris")
# memory 10: marie curie, warsaw; memory 20: warsaw x2, poland, capital; memory 30: paris, capital
MENTIONS = [(0, 0, 1, 1), (1, 0, 1, 1), (1, 1, 2, 1), (2, 1, 1, 1), (3, 1, 1, 0), (4, 2, 1, 1),
            (3, 2, 1, 0)]  # fmt: skip


def _snapshot(vectors: np.ndarray | None = None) -> GraphSnapshot:
    return GraphSnapshot(
        phrases=PHRASES,
        vectors=vectors if vectors is not None else np.eye(5, dtype=np.float32),
        memory_ids=np.array([10, 20, 30], dtype=np.int64),
        mentions=np.array(MENTIONS, dtype=np.int64),
        pairs=np.array([[0, 1], [1, 2], [1, 3]], dtype=np.int64),
        pair_weights=np.array([1.0, 2.0, 1.0], dtype=np.float32),
        synonyms=np.array([[2, 4]], dtype=np.int64),
        synonym_scores=np.array([0.85], dtype=np.float32),
    )


def test_link_weights_by_specificity_and_namedness() -> None:
    index = GraphIndex(_snapshot())
    seeds = index.link(["warsaw", "capital", "atlantis"], common_weight=0.5)
    # warsaw: in 2 passages, named -> 1/2; capital: 2 passages, common -> 1/2 * 0.5
    assert seeds == {1: pytest.approx(0.5), 3: pytest.approx(0.25)}
    assert index.link(["warsaw", "capital"], top_k=1) == {1: pytest.approx(0.5)}


def test_link_by_embedding_needs_the_threshold() -> None:
    index = GraphIndex(_snapshot())
    near_poland = {"polska": np.array([0, 0, 0.9, 0, np.sqrt(1 - 0.81)], dtype=np.float32)}
    assert index.link(["polska"], near_poland, threshold=0.8) == {2: pytest.approx(0.9)}
    assert index.link(["polska"], near_poland, threshold=0.95) == {}
    assert index.link(["polska"]) == {}


def test_recall_matches_networkx_pagerank_on_the_same_graph() -> None:
    index = GraphIndex(_snapshot())
    dense = [(30, 0.9), (10, 0.5), (20, 0.1)]
    options = {"depth": 3, "damping": 0.5, "passage_weight": 0.05}
    exact = index.recall({0: 1.0}, dense, epsilon=0.0, **options)  # power iteration
    pushed = index.recall({0: 1.0}, dense, **options)  # forward push, the default
    g = nx.from_scipy_sparse_array(index.adjacency)
    reset = {0: 1.0, 5 + 2: 0.05 * 1.0, 5 + 0: 0.05 * 0.5}
    ranks = nx.pagerank(g, alpha=0.5, personalization=reset, weight="weight", tol=1e-12)
    expected = sorted(((m, ranks[5 + i]) for i, m in enumerate((10, 20, 30))), key=lambda x: -x[1])
    bound = index.ppr({0: 1.0}, dense, damping=0.5, passage_weight=0.05).bound(index.push.degree)
    for found in (exact, pushed):
        assert [m for m, _ in found.run] == [m for m, _ in expected]
        assert found.seeds == (("marie curie", 1.0),)
        assert found.via[10][0] == "marie curie"
        assert not found.fallback
    for (_, ours), (_, ref) in zip(exact.run, expected, strict=True):
        assert ours == pytest.approx(ref, abs=1e-6)
    for (m, ours), (_, ref) in zip(pushed.run, expected, strict=True):
        assert 0 <= ref - ours <= bound[5 + (10, 20, 30).index(m)] + 1e-12


def test_recall_without_seeds_falls_back_to_dense_and_filters() -> None:
    index = GraphIndex(_snapshot())
    dense = [(30, 0.9), (10, 0.5), (20, 0.1)]
    allow = np.array([10, 20], dtype=np.int64)
    out = index.recall_many([{}, {1: 1.0}], [dense, dense], depth=5, allow=allow)
    assert out[0].fallback and out[0].run == ((10, 0.5), (20, 0.1))
    assert not out[1].fallback and {m for m, _ in out[1].run} == {10, 20}


def test_contains_edges_weigh_occurrences() -> None:
    index = GraphIndex(_snapshot())
    assert index.adjacency[1, 5 + 1] == 2.0  # warsaw twice in memory 20
    assert index.adjacency[5 + 1, 1] == 2.0
    assert index.adjacency[2, 4] == pytest.approx(0.85)  # synonym edge, undirected
