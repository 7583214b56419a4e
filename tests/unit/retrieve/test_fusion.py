"""Rank fusion: each method against a hand-computed oracle."""

from __future__ import annotations

import pytest

from engramdb.retrieve.fusion import (
    METHODS,
    fuse,
    fuse_max,
    fuse_rrf,
    fuse_weighted,
    fuse_with_graph,
    steepness,
)

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


def test_steepness_is_the_ranked_score_over_the_top_one() -> None:
    run = [(1, 0.5), (2, 0.4), (3, 0.3), (4, 0.2), (5, 0.1), (6, 0.05)]
    assert steepness(run) == pytest.approx(0.1 / 0.5)
    assert steepness(run, rank=2) == pytest.approx(0.8)
    assert steepness(run[:4]) == 1.0  # too short to tell
    assert steepness([(1, 0.0)] * 6) == 1.0
    assert steepness([(1, 1.0), *[(i, -0.5) for i in range(2, 7)]]) == 0.0
    assert steepness([(d, s * 1e-4) for d, s in run]) == pytest.approx(steepness(run))


def test_a_steep_graph_run_stands_alone_and_a_flat_one_fuses() -> None:
    steep = [(9, 1.0), (8, 0.5), (7, 0.3), (6, 0.2), (5, 0.1)]
    flat = [(9, 1.0), (8, 0.95), (7, 0.9), (6, 0.9), (5, 0.85)]
    runs = {"lexical": LEX, "dense": DENSE}
    weights = {"lexical": 1.0, "dense": 1.0, "graph": 3.0}
    alone = fuse_with_graph({**runs, "graph": steep}, alone_below=0.5, weights=weights)
    assert alone == steep
    both = fuse_with_graph({**runs, "graph": flat}, alone_below=0.5, weights=weights)
    assert both == fuse_max({**runs, "graph": flat}, weights=weights)
    never = fuse_with_graph(
        {**runs, "graph": steep}, alone_below=0.0, method="rrf", k=5, weights=weights
    )
    assert never == fuse_rrf({**runs, "graph": steep}, k=5, weights=weights)
    assert fuse_with_graph(runs, alone_below=1.0) == fuse_max(runs)  # no graph run


def test_a_steep_graph_run_stands_alone_only_when_lexical_backs_its_top_hit() -> None:
    steep = [(9, 1.0), (8, 0.5), (7, 0.3), (6, 0.2), (5, 0.1)]
    backed = [(4, 9.0), (9, 8.0), (1, 2.0)]
    weights = {"lexical": 1.0, "dense": 1.0, "graph": 2.0}
    runs = {"lexical": backed, "dense": DENSE, "graph": steep}
    assert fuse_with_graph(runs, alone_below=0.5, agree_within=2, weights=weights) == steep
    fused = fuse_with_graph(runs, alone_below=0.5, agree_within=1, weights=weights)
    assert fused == fuse_max(runs, weights=weights)  # 9 is lexical's 2nd hit, not its 1st
    assert fuse_with_graph({"dense": DENSE, "graph": steep}, alone_below=0.5, agree_within=1) == (
        steep  # no lexical run: nothing to check against
    )
