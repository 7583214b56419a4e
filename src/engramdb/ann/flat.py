"""FlatIndex: exact inner-product search with numpy; the oracle and the small-N index."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.errors import DimensionMismatchError, IndexFormatError
from engramdb.types import IdMatrix, Matrix

__all__ = ["FlatIndex", "top_k"]

FORMAT = "engramdb.flat"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_IDS = "ids.npy"
_VECTORS = "vectors.npy"


def top_k(scores: Matrix, ids: npt.NDArray[np.int64], k: int) -> tuple[IdMatrix, Matrix]:
    """Best ``k`` columns of ``scores`` (shape ``(n, m)``) per row, ties broken by smaller id.

    Returns ids ``(n, k)`` and scores ``(n, k)``, padded with ``-1`` / ``-inf``.
    """
    n, m = scores.shape
    out_ids = np.full((n, k), -1, dtype=np.int64)
    out_scores = np.full((n, k), -np.inf, dtype=np.float32)
    take = min(k, m)
    if take == 0:
        return out_ids, out_scores
    if take < m:
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    else:
        part = np.broadcast_to(np.arange(m), (n, m))
    part_scores = np.take_along_axis(scores, part, axis=1)
    part_ids = ids[part]
    order = np.lexsort((part_ids, -part_scores), axis=1)
    out_ids[:, :take] = np.take_along_axis(part_ids, order, axis=1)
    out_scores[:, :take] = np.take_along_axis(part_scores, order, axis=1)
    return out_ids, out_scores


class FlatIndex:
    """Exact search over all vectors held in RAM (float32).

    Args:
        dim: vector dimension.
    """

    def __init__(self, dim: int):
        if dim < 1:
            raise DimensionMismatchError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self._pos: dict[int, int] = {}

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __enter__(self) -> FlatIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the vectors."""
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, self.dim), dtype=np.float32)
        self._pos = {}

    def _check(self, vectors: npt.ArrayLike) -> Matrix:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"expected vectors of shape (n, {self.dim}), got {tuple(arr.shape)}"
            )
        return arr

    def add(self, ids: npt.NDArray[np.int64], vectors: Matrix) -> None:
        """Add vectors; an id already present is replaced."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vecs = self._check(vectors)
        if vecs.shape[0] != ids.shape[0]:
            raise DimensionMismatchError(f"{ids.shape[0]} ids for {vecs.shape[0]} vectors")
        # Last occurrence wins within one call, as with repeated single adds.
        _, last = np.unique(ids[::-1], return_index=True)
        keep = np.sort(ids.shape[0] - 1 - last)
        ids, vecs = ids[keep], vecs[keep]
        self.delete(ids)
        start = len(self)
        self._ids = np.concatenate([self._ids, ids])
        self._vectors = np.concatenate([self._vectors, vecs])
        for offset, i in enumerate(ids.tolist()):
            self._pos[i] = start + offset

    def delete(self, ids: npt.NDArray[np.int64]) -> int:
        """Delete ids; missing ids are ignored. Returns how many were deleted."""
        rows = [
            self._pos[i]
            for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist()
            if i in self._pos
        ]
        if not rows:
            return 0
        keep = np.ones(len(self), dtype=bool)
        keep[rows] = False
        self._ids = self._ids[keep]
        self._vectors = self._vectors[keep]
        self._pos = {i: p for p, i in enumerate(self._ids.tolist())}
        return len(rows)

    def search(
        self,
        queries: Matrix,
        k: int,
        *,
        allow: npt.NDArray[np.int64] | None = None,
        deny: npt.NDArray[np.int64] | None = None,
    ) -> tuple[IdMatrix, Matrix]:
        """Exact top-``k`` by inner product; ``allow`` restricts the candidates, ``deny``
        excludes some."""
        q = self._check(queries)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if deny is not None and np.asarray(deny).size:
            base = self._ids if allow is None else np.asarray(allow, dtype=np.int64)
            allow = np.setdiff1d(base, np.asarray(deny, dtype=np.int64))
        if allow is None:
            return top_k(q @ self._vectors.T, self._ids, k)
        rows = np.array(
            [self._pos[i] for i in np.asarray(allow, dtype=np.int64).tolist() if i in self._pos],
            dtype=np.int64,
        )
        rows.sort()
        return top_k(q @ self._vectors[rows].T, self._ids[rows], k)

    def contains(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` are held."""
        flat = np.asarray(ids, dtype=np.int64).reshape(-1)
        return np.fromiter((i in self._pos for i in flat.tolist()), dtype=bool, count=flat.size)

    def stats(self) -> dict[str, Any]:
        """``count``, ``dim`` and the bytes of RAM the vectors take."""
        return {"count": len(self), "dim": self.dim, "ram_bytes": int(self._vectors.nbytes)}

    def vectors(self) -> tuple[npt.NDArray[np.int64], Matrix]:
        """All ``(ids, vectors)`` held, in insertion order (read-only views)."""
        return self._ids, self._vectors

    def save(self, path: str | Path) -> None:
        """Write ``manifest.json``, ``ids.npy`` and ``vectors.npy`` into ``path`` atomically."""
        target = Path(path)
        tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")
        tmp.mkdir(parents=True)
        np.save(tmp / _IDS, self._ids, allow_pickle=False)
        np.save(tmp / _VECTORS, self._vectors, allow_pickle=False)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "count": len(self),
        }
        (tmp / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
        if target.exists():
            old = target.with_name(f"{target.name}.old-{uuid.uuid4().hex}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)

    @classmethod
    def load(cls, path: str | Path) -> FlatIndex:
        """Read an index written by :meth:`save`.

        Raises:
            IndexFormatError: missing files, another format or version, or inconsistent arrays.
        """
        root = Path(path)
        try:
            manifest = json.loads((root / _MANIFEST).read_text(encoding="utf-8"))
            ids = np.load(root / _IDS, allow_pickle=False)
            vectors = np.load(root / _VECTORS, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"cannot read flat index at {root}: {exc}") from exc
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{root} holds {manifest.get('format')!r} v{manifest.get('format_version')}, "
                f"expected {FORMAT!r} v{FORMAT_VERSION}"
            )
        if (
            vectors.ndim != 2
            or ids.shape[0] != vectors.shape[0]
            or vectors.shape[1] != manifest["dim"]
        ):
            raise IndexFormatError(f"{root}: ids and vectors do not match the manifest")
        index = cls(int(manifest["dim"]))
        index._ids = ids.astype(np.int64)
        index._vectors = vectors.astype(np.float32)
        index._pos = {i: p for p, i in enumerate(index._ids.tolist())}
        return index
