"""A deterministic feature-hashing embedder, for fast unit tests only."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache

import numpy as np

from engramdb.embed._texts import check_texts
from engramdb.errors import ConfigError
from engramdb.types import Matrix, Vector

__all__ = ["HashEmbedder"]

_WORD = re.compile(r"\w+")
_EMPTY_FEATURE = "\x00empty"
_WORD_WEIGHT = 1.0
_GRAM_WEIGHT = 0.5


@lru_cache(maxsize=65536)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    """Map a feature to ``(index, sign)`` with an unsalted blake2b hash (stable everywhere)."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return (value >> 1) % dim, (1.0 if value & 1 else -1.0)


def _features(text: str, ngram: int) -> Iterator[tuple[str, float]]:
    for word in _WORD.findall(text.lower()):
        yield "w:" + word, _WORD_WEIGHT
        padded = f"<{word}>"
        for i in range(max(len(padded) - ngram + 1, 1)):
            yield "c:" + padded[i : i + ngram], _GRAM_WEIGHT


class HashEmbedder:
    """Feature hashing of lowercased words and character n-grams into ``dim`` signed buckets.

    For fast, dependency-free unit tests and doctests ONLY: it captures word and spelling
    overlap, not meaning, so it must never be a default. Vectors are deterministic across
    processes and platforms (blake2b, not Python's salted ``hash``). A text with no word
    characters (e.g. ``""``) gets a fixed unit vector of its own.

    Example:
        >>> emb = HashEmbedder(dim=64)
        >>> emb.embed_documents(["hello world", ""]).shape
        (2, 64)
    """

    def __init__(self, dim: int = 64, *, ngram: int = 3) -> None:
        """Create the embedder.

        Args:
            dim: the vector dimension.
            ngram: character n-gram length (words are padded with ``<`` and ``>``).

        Raises:
            ConfigError: ``dim < 2`` or ``ngram < 1``.
        """
        if dim < 2 or ngram < 1:
            raise ConfigError(f"HashEmbedder needs dim >= 2 and ngram >= 1, got {dim}, {ngram}")
        self.dim = dim
        self.ngram = ngram
        self.model_id = f"hash-blake2b-v1-d{dim}-n{ngram}"

    def _embed_one(self, text: str) -> Vector:
        vec = np.zeros(self.dim, dtype=np.float64)
        for feature, weight in _features(text, self.ngram):
            index, sign = _bucket(feature, self.dim)
            vec[index] += sign * weight
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:  # no features, or every feature cancelled out
            vec[:] = 0.0
            index, sign = _bucket(_EMPTY_FEATURE, self.dim)
            vec[index] = sign
            norm = 1.0
        return (vec / norm).astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        """Embed texts; returns ``(len(texts), dim)`` float32 unit rows.

        Raises:
            InvalidInputError: ``texts`` is a str or holds a non-str or invalid-Unicode item.
        """
        check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._embed_one(text)
        return out

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        """Embed queries (the same as documents).

        Raises:
            InvalidInputError: ``texts`` is a str or holds a non-str or invalid-Unicode item.
        """
        return self.embed_documents(texts)
