"""Per-query relevance calibration: monotone within a query, learns a known truth, JSON."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engramdb.calibrate import QUERY_FEATURES, RelevanceModel, fit_relevance, query_features
from engramdb.errors import IndexFormatError
from engramdb.types import ChannelScore, Hit, Position

D = len(QUERY_FEATURES)


def make_hits(dense: list[float | None], lexical: list[float | None]) -> list[Hit]:
    """Hits in fused (RRF) order from per-hit channel scores (None = channel missed it)."""

    def ranks(scores: list[float | None]) -> dict[int, int]:
        live = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: -scores[i])  # type: ignore[operator]
        return {i: r for r, i in enumerate(live, start=1)}

    rd, rl = ranks(dense), ranks(lexical)
    fused = {i: sum(1 / (60 + r[i]) for r in (rd, rl) if i in r) for i in range(len(dense))}
    order = sorted(fused, key=lambda i: (-fused[i], i))
    hits = []
    for i in order:
        why = {}
        if i in rd:
            why["dense"] = ChannelScore(rank=rd[i], score=float(dense[i]))  # type: ignore[arg-type]
        if i in rl:
            why["lexical"] = ChannelScore(rank=rl[i], score=float(lexical[i]))  # type: ignore[arg-type]
        hits.append(
            Hit(
                id=i,
                score=fused[i],
                text=f"memory {i} about apples",
                namespace="n",
                source=None,
                position=Position(document=None, ordinal=None, start=None, end=None),
                event_time=None,
                meta={},
                why=why,
            )
        )
    return hits


scores = st.one_of(st.none(), st.floats(0.0, 1.0))
coefs = st.lists(st.floats(-3, 3), min_size=D + 1, max_size=D + 1)


@given(
    dense=st.lists(scores, min_size=1, max_size=30),
    lexical_seed=st.integers(0, 2**16),
    slope=coefs,
    bias=coefs,
    rank_weight=st.floats(-4, 4),
)
def test_relevance_never_rises_down_the_fused_order(
    dense: list[float | None],
    lexical_seed: int,
    slope: list[float],
    bias: list[float],
    rank_weight: float,
) -> None:
    rng = np.random.default_rng(lexical_seed)
    lexical = [None if rng.random() < 0.3 else float(rng.uniform(0, 20)) for _ in dense]
    if all(s is None for s in dense) and all(s is None for s in lexical):
        lexical[0] = 1.0
    hits = make_hits(dense, lexical)
    model = RelevanceModel(
        mean=(0.0,) * D,
        scale=(1.0,) * D,
        slope=tuple(slope),
        bias=tuple(bias),
        rank_weight=rank_weight,
    )
    p = model.relevance("apples and pears", hits)
    assert p.shape == (len(hits),)
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) <= 0)


def synthetic_groups(n: int, seed: int) -> list[tuple[str, list[Hit], list[int]]]:
    """Queries whose top hit is relevant iff its cosine is high (the truth is known)."""
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(n):
        top = float(rng.uniform(0.2, 0.9))
        dense = [top] + sorted(rng.uniform(0.1, top, size=19).tolist(), reverse=True)
        lexical = [float(x) for x in rng.uniform(0, 10, size=20)]
        hits = make_hits(dense, lexical)  # type: ignore[arg-type]
        relevant = rng.random() < 1 / (1 + np.exp(-12 * (top - 0.55)))  # P(rel) rises with top
        labels = [int(relevant and h.id == 0) for h in hits]
        groups.append(("apples", hits, labels))
    return groups


def test_fit_learns_that_a_strong_top_cosine_means_relevant() -> None:
    model = fit_relevance(synthetic_groups(400, 1), steps=600)
    strong = make_hits([0.88, 0.3, 0.2], [5.0, 4.0, 3.0])
    weak = make_hits([0.25, 0.2, 0.15], [5.0, 4.0, 3.0])
    p_strong = model.relevance("apples", strong)
    p_weak = model.relevance("apples", weak)
    top_of = {h.id: i for i, h in enumerate(strong)}
    assert p_strong[top_of[0]] > 0.6
    assert p_weak.max() < 0.25


def test_fit_is_calibrated_on_held_out_queries() -> None:
    model = fit_relevance(synthetic_groups(400, 2), steps=600)
    test = synthetic_groups(400, 3)
    predicted = np.concatenate([model.relevance(q, h) for q, h, _ in test])
    truth = np.concatenate([np.asarray(y)[: len(h)] for _, h, y in test])
    # reliability by bins of predicted probability: observed rate close to the prediction
    for lo, hi in [(0.0, 0.1), (0.1, 0.5), (0.5, 1.0)]:
        mask = (predicted >= lo) & (predicted < hi)
        if mask.sum() >= 30:
            assert abs(predicted[mask].mean() - truth[mask].mean()) < 0.08
    assert abs(predicted.mean() - truth.mean()) < 0.02


def test_json_round_trip_and_format_check() -> None:
    model = fit_relevance(synthetic_groups(50, 4), steps=50, trained_on="synthetic")
    again = RelevanceModel.from_json(model.to_json())
    assert again == model
    with pytest.raises(IndexFormatError):
        RelevanceModel.from_json('{"format": "other"}')
    with pytest.raises(IndexFormatError):
        RelevanceModel(mean=(0.0,), scale=(1.0,), slope=(0.0,), bias=(0.0,), rank_weight=0.0)


def test_query_features_describe_the_candidates() -> None:
    hits = make_hits([0.8, 0.5, None], [None, 3.0, 2.0])
    x = dict(zip(QUERY_FEATURES, query_features("apples and pears", hits), strict=True))
    assert x["dense_top"] == pytest.approx(0.8)
    assert x["dense_margin"] == pytest.approx(0.3)
    assert x["lexical_margin"] == pytest.approx(1 / 3)
    assert x["top_overlap"] == pytest.approx(0.5)  # "apples" of {apples, pears}
