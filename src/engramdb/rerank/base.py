"""The reranker interface and the helper that re-scores hits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from engramdb.types import Hit, Matrix, Vector

__all__ = ["Candidates", "Reranker", "rescore"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidates:
    """What a reranker sees: the query and its hits, best first by fused score.

    Attributes:
        query: the query text.
        hits: the candidates (fused order).
        vectors: the candidates' embeddings, shape ``(len(hits), d)``, when the caller has
            them (rerankers that need them say so with ``needs_vectors``).
        query_vector: the query's embedding, shape ``(d,)``, when available.
    """

    query: str
    hits: Sequence[Hit]
    vectors: Matrix | None = None
    query_vector: Vector | None = None


@runtime_checkable
class Reranker(Protocol):
    """Reorders candidates; returns at most ``k`` hits, best first, with new scores.

    ``Hit.score`` of the returned hits is the reranker's score (higher is better); each
    hit's ``why`` still holds the channels' ranks and scores before fusion.
    """

    @property
    def name(self) -> str:
        """A short name, e.g. ``"mmr"``; rerankers appear as channels like ``hybrid+mmr``."""
        ...

    @property
    def needs_vectors(self) -> bool:
        """Whether :class:`Candidates` must carry the hits' embeddings."""
        ...

    def rerank(self, candidates: Candidates, *, k: int) -> list[Hit]:
        """The top ``k`` of ``candidates`` in the reranker's order."""
        ...


def rescore(hits: Sequence[Hit], scores: Sequence[float], k: int) -> list[Hit]:
    """``hits`` sorted by ``scores`` (descending; ties keep input order), cut to ``k``."""
    order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), i))[:k]
    return [replace(hits[i], score=float(scores[i])) for i in order]
