"""The LightGBM LambdaRank reranker: training, loading and checks (``rerank`` extra)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engramdb.errors import ConfigError, IndexFormatError, MissingDependencyError
from engramdb.rerank import (
    FEATURES,
    Candidates,
    LambdaRankReranker,
    candidate_features,
    train_lambdarank,
)
from engramdb.rerank.lambdarank import is_turn
from engramdb.types import ChannelScore, Hit, Position


def hits_for(rng: np.random.Generator, n: int = 20) -> tuple[list[Hit], list[int]]:
    """Candidates whose relevance is decided by the dense score, while fused order is random."""
    dense = rng.uniform(0, 1, size=n)
    hits = [
        Hit(
            id=i,
            score=float(1 / (60 + i)),
            text=f"memory {i}",
            namespace="n",
            source=None,
            position=Position(document=None, ordinal=None, start=None, end=None),
            event_time=None,
            meta={},
            why={"dense": ChannelScore(rank=int((dense > dense[i]).sum()) + 1, score=float(d))},
        )
        for i, d in enumerate(dense)
    ]
    return hits, [int(d > 0.8) for d in dense]


def test_trained_model_moves_relevant_hits_up(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(60):
        hits, labels = hits_for(rng)
        groups.append((candidate_features("q", hits), labels))
    path = tmp_path / "model.txt"
    path.write_text(train_lambdarank(groups, rounds=30, params={"min_data_in_leaf": 5}))
    assert path.read_text().startswith("tree")
    reranker = LambdaRankReranker(path)
    hits, labels = hits_for(np.random.default_rng(1))
    out = reranker.rerank(Candidates(query="q", hits=hits), k=5)
    relevant = {h.id for h, y in zip(hits, labels, strict=True) if y}
    assert len(out) == 5
    assert 0 < len(relevant) <= 5
    assert {h.id for h in out[: len(relevant)]} == relevant


def test_model_over_other_features_is_refused(tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    x = np.random.default_rng(0).uniform(size=(40, 2))
    data = lgb.Dataset(x, label=(x[:, 0] > 0.5).astype(int), group=[20, 20])
    booster = lgb.train({"objective": "lambdarank", "verbose": -1, "min_data_in_leaf": 2}, data, 2)
    path = tmp_path / "other.txt"
    path.write_text(booster.model_to_string())
    with pytest.raises(IndexFormatError, match="features"):
        LambdaRankReranker(path).booster  # noqa: B018
    bad = tmp_path / "bad.txt"
    bad.write_text("not a model")
    with pytest.raises(IndexFormatError):
        LambdaRankReranker(bad).booster  # noqa: B018


def test_missing_lightgbm_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    with pytest.raises(MissingDependencyError) as info:
        train_lambdarank([(np.zeros((2, len(FEATURES)), dtype=np.float32), [1, 0])])
    assert info.value.extra == "rerank"
    path = tmp_path / "m.txt"
    path.write_text("tree")
    with pytest.raises(MissingDependencyError):
        LambdaRankReranker(path).booster  # noqa: B018


def test_group_weights_are_checked_and_steer_the_fit() -> None:
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    groups = []
    for _ in range(40):
        hits, labels = hits_for(rng)
        groups.append((candidate_features("q", hits), labels))
    with pytest.raises(ConfigError, match="weights"):
        train_lambdarank(groups, weights=[1.0])
    params = {"min_data_in_leaf": 5}
    even = train_lambdarank(groups, rounds=10, params=params)
    assert train_lambdarank(groups, rounds=10, params=params, weights=[1.0] * 40) == even
    skewed = train_lambdarank(groups, rounds=10, params=params, weights=[1.0] * 20 + [5.0] * 20)
    assert skewed != even


def test_bundled_model_prefers_the_hit_every_channel_puts_first() -> None:
    pytest.importorskip("lightgbm")
    hits = [
        Hit(
            id=i,
            score=1 / (60 + i),
            text=f"protein {i} folding" if i == 1 else f"memory {i}",
            namespace="n",
            source=None,
            position=Position(document=None, ordinal=None, start=None, end=None),
            event_time=None,
            meta={},
            why={
                "lexical": ChannelScore(rank=i, score=20.0 / i),
                "dense": ChannelScore(rank=i, score=0.9 - i / 50),
            },
        )
        for i in range(1, 21)
    ]
    out = LambdaRankReranker().rerank(Candidates(query="protein folding", hits=hits), k=3)
    assert out[0].id == 1


def test_a_list_of_conversation_turns_keeps_its_fused_order(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    groups = [(candidate_features("q", h), y) for h, y in (hits_for(rng) for _ in range(40))]
    path = tmp_path / "model.txt"
    path.write_text(train_lambdarank(groups, rounds=20, params={"min_data_in_leaf": 5}))
    hits, _ = hits_for(np.random.default_rng(1))
    reranker = LambdaRankReranker(path)
    moved = reranker.rerank(Candidates(query="q", hits=hits), k=5)
    assert [h.id for h in moved] != [h.id for h in hits[:5]]
    turns = [
        replace(
            h,
            position=Position(document="chat", ordinal=h.id, start=None, end=None),
            meta={"speaker": "Ann"},
        )
        for h in hits
    ]
    assert all(is_turn(h) for h in turns) and not any(is_turn(h) for h in hits)
    kept = reranker.rerank(Candidates(query="q", hits=turns), k=5)
    assert kept == turns[:5]
    no_speaker = replace(turns[0], meta={"speaker": ""})
    assert not is_turn(no_speaker)
