"""The LightGBM LambdaRank reranker: training, loading and checks (``rerank`` extra)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from engramdb.errors import IndexFormatError, MissingDependencyError
from engramdb.rerank import (
    FEATURES,
    Candidates,
    LambdaRankReranker,
    candidate_features,
    train_lambdarank,
)
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
