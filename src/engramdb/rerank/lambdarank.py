"""A learned reranker: LightGBM LambdaRank over the channels' features (``rerank`` extra).

The model reads :data:`~engramdb.rerank.features.FEATURES` for each of the top ``pool``
fused candidates and scores them; the rest keep their fused order after them. Models are
stored in LightGBM's text format (never pickled) and carry their feature names, which are
checked on load.

:func:`train_lambdarank` fits a model from judged queries, e.g.::

    groups = [(candidate_features(q, hits), [qrels.get(h.id, 0) for h in hits]) ...]
    text = train_lambdarank(groups)
    Path("model.txt").write_text(text)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from engramdb._optional import require
from engramdb.errors import ConfigError, IndexFormatError
from engramdb.rerank.base import Candidates, rescore
from engramdb.rerank.features import FEATURES, candidate_features
from engramdb.types import Hit, Matrix

__all__ = ["DEFAULT_PARAMS", "LambdaRankReranker", "bundled_model", "train_lambdarank"]

logger = logging.getLogger(__name__)

BUNDLED = "lambdarank-scifact.txt"
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 20,
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "num_threads": 1,
}
"""LightGBM parameters used by :func:`train_lambdarank` unless overridden."""


def bundled_model() -> Path | None:
    """The model shipped with engramdb (trained on SciFact's train queries), if present."""
    path = resources.files("engramdb.rerank") / "data" / BUNDLED
    return Path(str(path)) if path.is_file() else None


def train_lambdarank(
    groups: Sequence[tuple[Matrix, Sequence[int]]],
    *,
    rounds: int = 200,
    params: dict[str, Any] | None = None,
) -> str:
    """Fit a LambdaRank model and return it in LightGBM's text format.

    Args:
        groups: one ``(features, labels)`` pair per query: the candidates' feature matrix
            (:func:`candidate_features`) and their graded relevance (0 = not relevant).
        rounds: boosting rounds.
        params: LightGBM parameters overriding :data:`DEFAULT_PARAMS`.

    Raises:
        MissingDependencyError: lightgbm is not installed (``rerank`` extra).
        ConfigError: no group has a relevant candidate.
    """
    lgb = require("lightgbm", extra="rerank")
    kept = [(x, np.asarray(y)) for x, y in groups if len(y) and np.max(y) > 0]
    if not kept:
        raise ConfigError("train_lambdarank needs at least one query with a relevant candidate")
    x = np.vstack([g[0] for g in kept])
    y = np.concatenate([g[1] for g in kept])
    data = lgb.Dataset(x, label=y, group=[len(g[1]) for g in kept], feature_name=list(FEATURES))
    booster = lgb.train({**DEFAULT_PARAMS, **(params or {})}, data, num_boost_round=rounds)
    return str(booster.model_to_string())


class LambdaRankReranker:
    """Rerank the top ``pool`` candidates with a LightGBM LambdaRank model.

    Args:
        model: a model file in LightGBM text format; default: the bundled SciFact model.
        pool: how many top fused candidates to score.

    Raises:
        ConfigError: no model given and none bundled, or ``pool < 1``.
    """

    name = "lambdarank"
    needs_vectors = False

    def __init__(self, model: str | Path | None = None, *, pool: int = 100):
        path = Path(model) if model is not None else bundled_model()
        if path is None:
            raise ConfigError(
                "no LambdaRank model is bundled with this engramdb; pass model= a LightGBM "
                "text model trained with engramdb.rerank.train_lambdarank"
            )
        if pool < 1:
            raise ConfigError(f"lambdarank pool must be >= 1, got {pool}")
        self.path = path
        self.pool = pool

    @cached_property
    def booster(self) -> Any:
        """The loaded model (lightgbm is imported here, at first use).

        Raises:
            MissingDependencyError: lightgbm is not installed (``rerank`` extra).
            IndexFormatError: the file is not a LightGBM model over engramdb's features.
        """
        lgb = require("lightgbm", extra="rerank")
        try:
            booster = lgb.Booster(model_file=str(self.path))
        except lgb.basic.LightGBMError as exc:
            raise IndexFormatError(f"{self.path}: not a LightGBM text model ({exc})") from exc
        names = list(booster.feature_name())
        if names != list(FEATURES):
            raise IndexFormatError(
                f"{self.path}: model features {names} differ from engramdb's {list(FEATURES)}; "
                "retrain it with engramdb.rerank.train_lambdarank"
            )
        return booster

    def scores(self, query: str, hits: Sequence[Hit]) -> np.ndarray:
        """The model's score for each hit (higher is more relevant)."""
        if not hits:
            return np.zeros(0)
        feats = candidate_features(query, hits)
        return np.asarray(self.booster.predict(feats, num_threads=1), dtype=np.float64)

    def rerank(self, candidates: Candidates, *, k: int) -> list[Hit]:
        """The top ``k`` hits by model score; candidates past ``pool`` follow in fused order.

        Raises:
            MissingDependencyError: lightgbm is not installed (``rerank`` extra).
            IndexFormatError: the model file is unusable.
        """
        hits = list(candidates.hits)
        head, tail = hits[: self.pool], hits[self.pool :]
        ranked = rescore(head, self.scores(candidates.query, head).tolist(), k)
        return ranked + tail[: max(0, k - len(ranked))]
