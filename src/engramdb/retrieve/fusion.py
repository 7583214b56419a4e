"""Rank fusion over channel runs: pure functions.

A *run* is one channel's ranked list of ``(id, score)`` pairs, best first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "METHODS",
    "STEEP_RANK",
    "Run",
    "fuse",
    "fuse_max",
    "fuse_rrf",
    "fuse_weighted",
    "fuse_with_graph",
    "minmax",
    "steepness",
]

METHODS = ("rrf", "weighted", "max")
"""Fusion methods :func:`fuse` takes."""

Run = Sequence[tuple[int, float]]


def fuse_rrf(
    runs: Mapping[str, Run], *, k: int = 60, weights: Mapping[str, float] | None = None
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: ``score(d) = Σ_c w_c / (k + rank_c(d))`` (ranks from 1).

    Ties are broken by the smaller id, so the output is deterministic.
    """
    fused: dict[int, float] = {}
    for channel, run in runs.items():
        weight = 1.0 if weights is None else weights.get(channel, 1.0)
        if weight == 0:
            continue
        for rank, (doc, _) in enumerate(run, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def minmax(run: Run) -> dict[int, float]:
    """Scores of a run scaled to [0, 1] (all 1.0 when every score is equal)."""
    if not run:
        return {}
    scores = [s for _, s in run]
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return {doc: 1.0 for doc, _ in run}
    return {doc: (s - lo) / (hi - lo) for doc, s in run}


def fuse_weighted(
    runs: Mapping[str, Run], *, weights: Mapping[str, float] | None = None
) -> list[tuple[int, float]]:
    """Convex combination of min-max normalised scores; a missing hit contributes 0."""
    fused: dict[int, float] = {}
    for channel, run in runs.items():
        weight = 1.0 if weights is None else weights.get(channel, 1.0)
        for doc, score in minmax(run).items():
            fused[doc] = fused.get(doc, 0.0) + weight * score
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def fuse_max(
    runs: Mapping[str, Run], *, weights: Mapping[str, float] | None = None
) -> list[tuple[int, float]]:
    """Weighted sum of scores divided by each run's top score: ``Σ_c w_c · s_c(d) / s_c(1)``.

    A run whose scores fall steeply (a confident one) moves the fused order more than a
    flat one; the ratios do not depend on how many memories the store holds. Negative
    scores count as 0, a run whose top score is not positive is left out, and a missing hit
    contributes 0. Ties are broken by the smaller id.
    """
    fused: dict[int, float] = {}
    for channel, run in runs.items():
        weight = 1.0 if weights is None else weights.get(channel, 1.0)
        top = max((score for _, score in run), default=0.0)
        if weight == 0 or top <= 0:
            continue
        for doc, score in run:
            fused[doc] = fused.get(doc, 0.0) + weight * max(score, 0.0) / top
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def fuse(
    runs: Mapping[str, Run],
    *,
    method: str = "rrf",
    k: int = 60,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[int, float]]:
    """Fuse runs with ``method`` ``"rrf"``, ``"weighted"`` or ``"max"``; a single run passes
    through."""
    live = {c: r for c, r in runs.items() if r}
    if len(live) == 1:
        ((_, run),) = live.items()
        return [(doc, float(score)) for doc, score in run]
    if method == "weighted":
        return fuse_weighted(live, weights=weights)
    if method == "max":
        return fuse_max(live, weights=weights)
    return fuse_rrf(live, k=k, weights=weights)


STEEP_RANK = 5
"""The rank whose score :func:`steepness` compares with the top score."""


def steepness(run: Run, rank: int = STEEP_RANK) -> float:
    """The ``rank``-th score of ``run`` over its top score: near 0 when a few hits stand
    far above the rest, 1.0 when the run is flat, shorter than ``rank`` or not positive.

    A ratio of one query's own scores, so it does not grow or shrink with the store.
    """
    if len(run) < rank or run[0][1] <= 0:
        return 1.0
    return max(run[rank - 1][1], 0.0) / run[0][1]


def fuse_with_graph(
    runs: Mapping[str, Run],
    *,
    alone_below: float,
    agree_within: int = 0,
    method: str = "max",
    k: int = 60,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[int, float]]:
    """The graph's run alone when it is steep and corroborated, else every run fused by
    ``method`` (see :func:`fuse`).

    Steep: ``steepness(runs["graph"]) <= alone_below``, a walk whose mass gathered on a few
    passages. Corroborated: the graph's top hit is among the first ``agree_within`` hits of
    the lexical run (0, or no lexical run: no such check), so the words of the query back
    where the walk settled. Then lexical and dense hits would only push the passages one
    hop away (a multi-hop question's bridges) down. Otherwise the other channels have
    their say.
    """
    graph = runs.get("graph")
    if graph and steepness(graph) <= alone_below:
        lexical = runs.get("lexical")
        top = graph[0][0]
        if agree_within <= 0 or not lexical or top in {d for d, _ in lexical[:agree_within]}:
            return [(doc, float(score)) for doc, score in graph]
    return fuse(runs, method=method, k=k, weights=weights)
