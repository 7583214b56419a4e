"""MMR diversity and the learned reranker's features."""

from __future__ import annotations

import numpy as np
import pytest

from engramdb.errors import ConfigError, InvalidInputError
from engramdb.rerank import (
    FEATURES,
    Candidates,
    MMRReranker,
    Reranker,
    candidate_features,
    mmr_order,
    rescore,
)
from engramdb.types import ChannelScore, Hit, Position


def hit(i: int, score: float, text: str = "", why: dict[str, ChannelScore] | None = None) -> Hit:
    return Hit(
        id=i,
        score=score,
        text=text or f"memory {i}",
        namespace="n",
        source=None,
        position=Position(document=None, ordinal=None, start=None, end=None),
        event_time=None,
        meta={},
        why=why or {},
    )


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_mmr_pushes_a_near_duplicate_below_a_distinct_hit() -> None:
    hits = [hit(1, 1.0), hit(2, 0.95), hit(3, 0.9)]
    vectors = np.stack([unit([1, 0, 0]), unit([1, 0.02, 0]), unit([0, 1, 0])])
    mmr = MMRReranker(lambda_=0.5)
    out = mmr.rerank(Candidates(query="q", hits=hits, vectors=vectors), k=3)
    assert [h.id for h in out] == [1, 3, 2]
    pure = MMRReranker(lambda_=1.0).rerank(Candidates(query="q", hits=hits, vectors=vectors), k=3)
    assert [h.id for h in pure] == [1, 2, 3]
    assert isinstance(mmr, Reranker)


def test_mmr_uses_query_vector_when_given() -> None:
    hits = [hit(1, 1.0), hit(2, 0.5)]
    vectors = np.stack([unit([1, 0]), unit([0, 1])])
    out = MMRReranker(lambda_=1.0).rerank(
        Candidates(query="q", hits=hits, vectors=vectors, query_vector=unit([0.1, 1])), k=2
    )
    assert [h.id for h in out] == [2, 1]


def test_mmr_keeps_hits_beyond_its_pool_in_order() -> None:
    hits = [hit(i, 1.0 - i / 10) for i in range(5)]
    vectors = np.eye(5, dtype=np.float32)
    out = MMRReranker(pool=2).rerank(Candidates(query="q", hits=hits, vectors=vectors), k=4)
    assert [h.id for h in out] == [0, 1, 2, 3]


def test_mmr_needs_vectors_and_valid_settings() -> None:
    with pytest.raises(InvalidInputError, match="embedding"):
        MMRReranker().rerank(Candidates(query="q", hits=[hit(1, 1.0)]), k=1)
    with pytest.raises(ConfigError):
        MMRReranker(lambda_=1.5)
    assert mmr_order(np.zeros(0), np.zeros((0, 3)), k=3) == []


def test_rescore_sorts_stably_and_cuts() -> None:
    hits = [hit(1, 0.0), hit(2, 0.0), hit(3, 0.0)]
    out = rescore(hits, [0.5, 0.9, 0.5], 2)
    assert [(h.id, h.score) for h in out] == [(2, 0.9), (1, 0.5)]


def test_candidate_features_read_channels_and_text() -> None:
    hits = [
        hit(
            1,
            0.03,
            "apples grow on trees",
            {"lexical": ChannelScore(rank=1, score=8.0), "dense": ChannelScore(rank=2, score=0.6)},
        ),
        hit(2, 0.016, "pears", {"dense": ChannelScore(rank=1, score=0.7)}),
    ]
    x = candidate_features("apples trees", hits)
    assert x.shape == (2, len(FEATURES)) and x.dtype == np.float32
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    assert col["lexical_present"].tolist() == [1.0, 0.0]
    assert col["dense_rel"][0] == pytest.approx(0.6 / 0.7)
    assert col["overlap"].tolist() == [1.0, 0.0]
    assert col["agreement"][0] == pytest.approx(0.1)
    assert candidate_features("q", []).shape == (0, len(FEATURES))
