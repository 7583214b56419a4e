"""The models shipped in the package load and behave."""

from __future__ import annotations

import numpy as np
import pytest

from engramdb.calibrate import RelevanceModel
from engramdb.rerank import FEATURES, LambdaRankReranker, bundled_model
from engramdb.types import ChannelScore, Hit, Position


def hits() -> list[Hit]:
    return [
        Hit(
            id=i,
            score=2 / (60 + i) if i < 5 else 1 / (60 + i),
            text=f"claim about protein {i} expression",
            namespace="n",
            source=None,
            position=Position(document=None, ordinal=None, start=None, end=None),
            event_time=None,
            meta={},
            why={
                "dense": ChannelScore(rank=i, score=0.7 - i / 100),
                **({"lexical": ChannelScore(rank=i, score=20.0 - i)} if i < 5 else {}),
            },
        )
        for i in range(1, 40)
    ]


def test_bundled_relevance_model_is_monotone_and_plausible() -> None:
    model = RelevanceModel.load()
    assert "SciFact" in model.trained_on
    p = model.relevance("protein expression claim", hits())
    assert np.all(np.diff(p) <= 0) and 0 < p[-1] <= p[0] < 1
    assert p[0] > 10 * p[-1]  # a strong agreed top hit is far likelier than the 39th


def test_bundled_lambdarank_model_matches_the_features() -> None:
    pytest.importorskip("lightgbm")
    path = bundled_model()
    assert path is not None
    reranker = LambdaRankReranker()
    assert list(reranker.booster.feature_name()) == list(FEATURES)
    scores = reranker.scores("protein expression claim", hits())
    assert scores.shape == (39,) and np.isfinite(scores).all()
