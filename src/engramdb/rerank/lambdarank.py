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
from engramdb.rerank.features import FEATURES, MONOTONE, candidate_features
from engramdb.types import Hit, Matrix

__all__ = ["DEFAULT_PARAMS", "LambdaRankReranker", "bundled_model", "is_turn", "train_lambdarank"]

logger = logging.getLogger(__name__)

BUNDLED = "lambdarank.txt"
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 50,
    "lambda_l2": 10.0,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 20,
    "monotone_constraints": [MONOTONE.get(f, 0) for f in FEATURES],
    "monotone_constraints_method": "advanced",
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "num_threads": 1,
}
"""LightGBM parameters used by :func:`train_lambdarank` unless overridden."""


def bundled_model() -> Path | None:
    """The model shipped with engramdb, if present: trained on several collections of
    different styles by ``bench/rerank_loco.py --ship`` (its report names them)."""
    path = resources.files("engramdb.rerank") / "data" / BUNDLED
    return Path(str(path)) if path.is_file() else None


def train_lambdarank(
    groups: Sequence[tuple[Matrix, Sequence[int]]],
    *,
    rounds: int = 200,
    params: dict[str, Any] | None = None,
    weights: Sequence[float] | None = None,
) -> str:
    """Fit a LambdaRank model and return it in LightGBM's text format.

    Args:
        groups: one ``(features, labels)`` pair per query: the candidates' feature matrix
            (:func:`candidate_features`) and their graded relevance (0 = not relevant).
        rounds: boosting rounds.
        params: LightGBM parameters overriding :data:`DEFAULT_PARAMS`.
        weights: one weight per group (e.g. ``1 / queries of its collection``, so that a
            collection with many queries does not outweigh the others); default 1 each.

    Raises:
        MissingDependencyError: lightgbm is not installed (``rerank`` extra).
        ConfigError: no group has a relevant candidate, or ``weights`` does not match
            ``groups``.
    """
    lgb = require("lightgbm", extra="rerank")
    if weights is not None and len(weights) != len(groups):
        raise ConfigError(f"{len(weights)} weights for {len(groups)} groups")
    w = [1.0] * len(groups) if weights is None else [float(v) for v in weights]
    kept = [
        (x, np.asarray(y), v)
        for (x, y), v in zip(groups, w, strict=True)
        if len(y) and np.max(y) > 0
    ]
    if not kept:
        raise ConfigError("train_lambdarank needs at least one query with a relevant candidate")
    x = np.vstack([g[0] for g in kept])
    y = np.concatenate([g[1] for g in kept])
    row_weights = np.concatenate([np.full(len(g[1]), g[2]) for g in kept])
    data = lgb.Dataset(
        x,
        label=y,
        group=[len(g[1]) for g in kept],
        weight=row_weights / row_weights.mean(),
        feature_name=list(FEATURES),
    )
    booster = lgb.train({**DEFAULT_PARAMS, **(params or {})}, data, num_boost_round=rounds)
    return str(booster.model_to_string())


class LambdaRankReranker:
    """Rerank the top ``pool`` candidates with a LightGBM LambdaRank model.

    Args:
        model: a model file in LightGBM text format; default: the bundled model
            (:func:`bundled_model`).
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

        A list holding conversation turns (:func:`is_turn`) keeps its fused order: the
        conversation stage ordered those by rounds, speakers and sessions, which the
        features do not describe, and a model trained on document collections undoes it
        (LoCoMo nDCG@10 0.608 → 0.481 when applied anyway, ``bench/rerank_loco.py``).

        Raises:
            MissingDependencyError: lightgbm is not installed (``rerank`` extra).
            IndexFormatError: the model file is unusable.
        """
        hits = list(candidates.hits)
        if any(is_turn(h) for h in hits[: self.pool]):
            return hits[:k]
        head, tail = hits[: self.pool], hits[self.pool :]
        ranked = rescore(head, self.scores(candidates.query, head).tolist(), k)
        return ranked + tail[: max(0, k - len(ranked))]


def is_turn(hit: Hit) -> bool:
    """Whether ``hit`` is a conversation turn: it has a document, an ordinal and a speaker
    (``meta["speaker"]`` or ``meta["role"]``), as the conversation stage reads turns."""
    speaker = hit.meta.get("speaker", hit.meta.get("role"))
    return (
        hit.position.document is not None
        and hit.position.ordinal is not None
        and isinstance(speaker, str)
        and bool(speaker)
    )
