"""Rank fusion: each method against a hand-computed oracle."""

from __future__ import annotations

import pytest

from engramdb.retrieve.fusion import METHODS, fuse, fuse_max, fuse_rrf, fuse_weighted

LEX = [(1, 12.0), (2, 6.0), (3, 3.0)]
DENSE = [(2, 0.8), (4, 0.6), (1, 0.4)]
GRAPH = [(4, 0.010), (3, 0.001)]


def test_max_divides_each_run_by_its_top_score() -> None:
    fused = dict(fuse_max({"lexical": LEX, "dense": DENSE, "graph": GRAPH}))
    assert fused[1] == pytest.approx(1.0 + 0.4 / 0.8)
    assert fused[2] == pytest.approx(0.5 + 1.0)
    assert fused[3] == pytest.approx(0.25 + 0.1)
    assert fused[4] == pytest.approx(0.6 / 0.8 + 1.0)


def test_max_weights_and_order() -> None:
    weights = {"lexical": 0.5, "dense": 1.0, "graph": 4.0}
    fused = fuse_max({"lexical": LEX, "dense": DENSE, "graph": GRAPH}, weights=weights)
    expected = {
        1: 0.5 * 1.0 + 0.5,
        2: 0.5 * 0.5 + 1.0,
        3: 0.5 * 0.25 + 4.0 * 0.1,
        4: 0.75 + 4.0,
    }
    assert [d for d, _ in fused] == sorted(expected, key=lambda d: -expected[d])
    assert dict(fused) == pytest.approx(expected)


def test_max_is_unchanged_by_scaling_a_run() -> None:
    """A run's scale (BM25 of a larger store, PPR mass over more nodes) does not matter."""
    scaled = [(d, s * 1e-3) for d, s in GRAPH]
    plain, rescaled = (
        fuse_max({"dense": DENSE, "graph": GRAPH}),
        fuse_max({"dense": DENSE, "graph": scaled}),
    )
    assert [d for d, _ in plain] == [d for d, _ in rescaled]
    assert dict(plain) == pytest.approx(dict(rescaled))


def test_max_ignores_negative_scores_and_runs_without_a_positive_top() -> None:
    fused = dict(fuse_max({"dense": [(1, 0.5), (2, -0.2)], "lexical": [(3, -1.0), (4, -2.0)]}))
    assert fused == {1: 1.0, 2: 0.0}


def test_ties_break_on_the_smaller_id() -> None:
    assert [d for d, _ in fuse_max({"a": [(7, 1.0)], "b": [(3, 2.0)]})] == [3, 7]


def test_every_method_through_fuse() -> None:
    runs = {"lexical": LEX, "dense": DENSE}
    assert METHODS == ("rrf", "weighted", "max")
    assert fuse(runs, method="max") == fuse_max(runs)
    assert fuse(runs, method="weighted") == fuse_weighted(runs)
    assert fuse(runs, method="rrf", k=10) == fuse_rrf(runs, k=10)
    assert fuse({"lexical": LEX, "dense": []}, method="max") == LEX  # one live run passes
