"""Reranking: reorder fused candidates by a learned model, an LLM, or for diversity.

* :class:`MMRReranker` — maximal marginal relevance over embeddings (core).
* :class:`LambdaRankReranker` — LightGBM LambdaRank over channel features (``rerank`` extra).
* :class:`LLMReranker` — listwise LLM reranking over an OpenAI-compatible endpoint
  (``remote`` extra).

No cross-encoder is offered: no PyPI package carries one that loads offline.
"""

from __future__ import annotations

from engramdb.rerank.base import Candidates, Reranker, rescore
from engramdb.rerank.features import FEATURES, candidate_features
from engramdb.rerank.lambdarank import LambdaRankReranker, bundled_model, train_lambdarank
from engramdb.rerank.llm import LLMReranker, parse_ranking
from engramdb.rerank.mmr import MMRReranker, mmr_order

__all__ = [
    "FEATURES",
    "Candidates",
    "LLMReranker",
    "LambdaRankReranker",
    "MMRReranker",
    "Reranker",
    "bundled_model",
    "candidate_features",
    "mmr_order",
    "parse_ranking",
    "rescore",
    "train_lambdarank",
]
