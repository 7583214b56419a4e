"""Maximal marginal relevance: trade relevance for diversity among the top hits.

Greedy selection (Carbonell & Goldstein, 1998)::

    next = argmax_{d ∉ S}  λ · rel(d) − (1 − λ) · max_{s ∈ S} cos(d, s)

``rel`` is the cosine to the query when the query vector is given, else the fused score
min-max scaled to [0, 1]. Near-duplicates (cosine close to 1 with a selected hit) fall
behind distinct hits, so they stop taking several of the top-k slots. Hits after the
candidate pool keep their order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from engramdb.errors import ConfigError, InvalidInputError
from engramdb.rerank.base import Candidates
from engramdb.types import Hit

__all__ = ["MMRReranker", "mmr_order"]


def mmr_order(
    relevance: np.ndarray, vectors: np.ndarray, *, k: int, lambda_: float = 0.7
) -> list[int]:
    """Indices of the ``k`` items MMR picks, in pick order.

    Args:
        relevance: relevance of each item, shape ``(n,)``.
        vectors: unit-norm item vectors, shape ``(n, d)``.
        k: how many to pick.
        lambda_: weight of relevance (1.0 is pure relevance order).
    """
    n = int(relevance.shape[0])
    if n == 0:
        return []
    sim = vectors @ vectors.T
    picked: list[int] = []
    penalty = np.full(n, -np.inf)
    free = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isinf(penalty), 0.0, penalty)
        gain = lambda_ * relevance - (1.0 - lambda_) * redundancy
        gain[~free] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        free[best] = False
        penalty = np.maximum(penalty, sim[best])
    return picked


@dataclass(frozen=True, slots=True, kw_only=True)
class MMRReranker:
    """Diversify the top hits with MMR over their embeddings.

    Attributes:
        lambda_: weight of relevance in [0, 1]; lower means more diversity.
        pool: how many top candidates MMR chooses from.
    """

    lambda_: float = 0.7
    pool: int = 50
    name: str = field(default="mmr", init=False)
    needs_vectors: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_ <= 1.0:
            raise ConfigError(f"mmr lambda_ must be in [0, 1], got {self.lambda_}")
        if self.pool < 1:
            raise ConfigError(f"mmr pool must be >= 1, got {self.pool}")

    def rerank(self, candidates: Candidates, *, k: int) -> list[Hit]:
        """The top ``k`` hits in MMR order; scores are the MMR relevance term.

        Raises:
            InvalidInputError: no vectors, or not one vector per hit.
        """
        hits = list(candidates.hits)
        vectors = candidates.vectors
        if vectors is None or vectors.shape[0] != len(hits):
            raise InvalidInputError("MMR needs one embedding per candidate hit")
        m = min(self.pool, len(hits))
        vecs = np.asarray(vectors[:m], dtype=np.float64)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        rel = self._relevance(candidates, vecs, m)
        order = mmr_order(rel, vecs, k=min(k, m), lambda_=self.lambda_)
        out = [replace(hits[i], score=float(rel[i])) for i in order]
        return out + hits[m : m + max(0, k - len(out))]

    def _relevance(self, candidates: Candidates, vecs: np.ndarray, m: int) -> np.ndarray:
        if candidates.query_vector is not None:
            q = np.asarray(candidates.query_vector, dtype=np.float64)
            return vecs @ (q / max(float(np.linalg.norm(q)), 1e-12))
        scores = np.asarray([h.score for h in candidates.hits[:m]], dtype=np.float64)
        span = float(scores.max() - scores.min()) if m else 0.0
        return (scores - scores.min()) / span if span > 0 else np.ones(m)
