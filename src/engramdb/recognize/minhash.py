"""Near-duplicate recognition: character-shingle MinHash with LSH banding (datasketch).

A text is reduced to its set of character ``n``-shingles (after the caller's normalisation).
MinHash signatures estimate Jaccard similarity; LSH bands of the signature are stored in the
SQLite store so that candidates are found with an indexed lookup. Candidates are then
verified with the *exact* Jaccard similarity of their shingle sets, which is the score
reported by recognition.

With ``bands`` b and ``rows`` r = num_perm / b, a pair of Jaccard similarity s becomes a
candidate with probability ``1 - (1 - s**r)**b``; the default (b=32, r=4) finds pairs at the
0.8 merge threshold with probability > 0.9999 and still surfaces weaker matches (s≈0.5 with
p≈0.87) so that ``recognize`` can report the best "new" score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MinHasher", "jaccard", "shingles"]

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


def shingles(text: str, n: int) -> frozenset[str]:
    """Character ``n``-shingles of ``text`` with punctuation dropped and spaces collapsed.

    The caller normalises case and Unicode form first. A text shorter than ``n`` is one shingle.
    """
    flat = _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()
    if len(flat) <= n:
        return frozenset([flat]) if flat else frozenset()
    return frozenset(flat[i : i + n] for i in range(len(flat) - n + 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Exact Jaccard similarity of two shingle sets (0 for two empty sets)."""
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """A MinHash signature and its LSH band keys."""

    values: npt.NDArray[np.uint64]
    bands: tuple[bytes, ...]

    def to_bytes(self) -> bytes:
        """The signature as little-endian uint64 bytes."""
        return self.values.astype("<u8").tobytes()


class MinHasher:
    """Computes MinHash signatures and band keys with fixed permutations.

    Args:
        num_perm: number of permutations (signature length).
        bands: number of LSH bands; must divide ``num_perm``.
        shingle: character shingle length.
        seed: permutation seed (fixed, so stored band keys stay comparable).
    """

    def __init__(self, *, num_perm: int = 128, bands: int = 32, shingle: int = 5, seed: int = 1):
        from datasketch import MinHash  # lazy: pulls in scipy

        self.num_perm = num_perm
        self.bands = bands
        self.rows = num_perm // bands
        self.shingle = shingle
        self._template: Any = MinHash(num_perm=num_perm, seed=seed)

    def signature(self, grams: frozenset[str]) -> Signature:
        """MinHash signature of a shingle set."""
        mh = self._template.copy()
        if grams:
            mh.update_batch([g.encode("utf-8") for g in sorted(grams)])
        values = np.asarray(mh.hashvalues, dtype=np.uint64)
        keys = tuple(
            values[b * self.rows : (b + 1) * self.rows].astype("<u8").tobytes()
            for b in range(self.bands)
        )
        return Signature(values=values, bands=keys)

    def signatures(self, texts: Sequence[str]) -> list[tuple[frozenset[str], Signature]]:
        """Shingles and signature for each text."""
        out = []
        for text in texts:
            grams = shingles(text, self.shingle)
            out.append((grams, self.signature(grams)))
        return out
