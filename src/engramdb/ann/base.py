"""The AnnIndex protocol: every dense index (flat, SPANN) implements it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from engramdb.types import IdMatrix, Matrix

__all__ = ["AnnIndex"]


@runtime_checkable
class AnnIndex(Protocol):
    """A vector index over int64 ids with inner-product (cosine on unit vectors) scores.

    Search is batch-first and returns ``(ids, scores)`` of shape ``(n_queries, k)``, best first,
    padded with id ``-1`` and score ``-inf`` when fewer than ``k`` vectors qualify.
    """

    dim: int

    def __len__(self) -> int:
        """The number of live vectors."""
        ...

    def add(self, ids: npt.NDArray[np.int64], vectors: Matrix) -> None:
        """Add vectors under ``ids``; an id already present is replaced."""
        ...

    def delete(self, ids: npt.NDArray[np.int64]) -> int:
        """Delete ``ids``; missing ids are ignored. Returns how many were deleted."""
        ...

    def search(
        self,
        queries: Matrix,
        k: int,
        *,
        allow: npt.NDArray[np.int64] | None = None,
        deny: npt.NDArray[np.int64] | None = None,
    ) -> tuple[IdMatrix, Matrix]:
        """The ``k`` best ids per query; ``allow`` restricts results to those ids, ``deny``
        excludes those (e.g. deleted since a snapshot was taken)."""
        ...

    def contains(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` are held."""
        ...

    def vectors(self) -> tuple[npt.NDArray[np.int64], Matrix]:
        """Every ``(ids, vectors)`` held."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts and sizes (at least ``count``)."""
        ...

    def close(self) -> None:
        """Release memory and files; the index is unusable after."""
        ...

    def save(self, path: str | Path) -> None:
        """Write the index to the directory ``path`` atomically."""
        ...
