"""The Embedder protocol: batch-first, L2-normalised float32 output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from engramdb.types import Matrix

__all__ = ["Embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors.

    Attributes:
        model_id: a stable identifier of the model and its settings; the embedding cache is
            keyed by ``(model_id, content hash)``, so it must change whenever vectors would.
        dim: the vector dimension.
    """

    model_id: str
    dim: int

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        """Embed passages to store; returns ``(len(texts), dim)`` float32, rows unit-length."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        """Embed queries; returns ``(len(texts), dim)`` float32, rows unit-length."""
        ...
