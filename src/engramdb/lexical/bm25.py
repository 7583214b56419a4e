"""BM25 over FTS5 rows with collection-wide statistics (for a store split into shards).

FTS5's ``bm25()`` scores a row with its own table's statistics: the row count ``N``, the
mean row length ``avgdl`` and, for each query phrase, the number of rows ``n`` that match
it. A store split into shards keeps one FTS5 table per shard, so each shard's ``bm25()``
would rank with different numbers. To rank exactly as one table over all rows would, each
shard gathers its :class:`TermStats`, the shards' stats are summed, and every shard scores
its matching rows with the sum (``FTS5Index.term_stats`` and ``FTS5Index.search_stats``).

The formula is FTS5's own (``fts5Bm25Function`` in ``fts5_aux.c``), evaluated in the same
order so that, given a table's own statistics, the scores are the very doubles that
``bm25()`` returns (negated)::

    idf(t)   = log((N - n(t) + 0.5) / (n(t) + 0.5)), or 1e-6 when that is <= 0
    score(d) = sum over t of idf(t) * (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * dl / avgdl))

with ``k1 = 1.2``, ``b = 0.75``, ``avgdl = tokens / N``, ``tf`` the instances of term ``t``
in row ``d`` and ``dl`` the row's token count.

SQLite cannot read a row's ``tf`` directly, but it is exact to recover it from the local
``bm25()`` of a MATCH for the single term: with the local statistics known, that score is a
strictly increasing function of ``tf`` (:func:`term_rows` inverts it and checks that the
result is a whole number). ``dl`` comes from FTS5's ``{fts}_docsize`` table, and the local
``N`` and token total from its averages record (:func:`decode_totals`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engramdb.errors import InvalidInputError, StoreError

__all__ = ["B", "K1", "TermRows", "TermStats", "decode_totals", "idf", "rank", "term_rows"]

K1 = 1.2
"""FTS5's ``k1`` (term-frequency saturation)."""
B = 0.75
"""FTS5's ``b`` (length normalisation)."""

_MIN_IDF = 1e-6
_TF_SLACK = 1e-3  # how far a recovered tf may stray from a whole number (float error ~1e-9)

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TermStats:
    """The statistics BM25 needs for a batch of queries, from one index or summed over many.

    Attributes:
        rows: rows in the index (FTS5's ``N``).
        tokens: tokens in all rows (FTS5's total column size).
        df: one dict per query: for each distinct term of the query (as
            :func:`engramdb.lexical.tokenize.query_terms` gives them), the number of rows
            that match the quoted term (FTS5's ``nHit`` for that phrase).

    Summing with ``+`` adds every count (a term missing on one side counts 0);
    ``sum(parts, TermStats.empty(n))`` totals a list. Plain fields, so it pickles.
    """

    rows: int
    tokens: int
    df: tuple[dict[str, int], ...]

    @classmethod
    def empty(cls, n_queries: int) -> TermStats:
        """The zero for ``n_queries`` queries: no rows, no tokens, no terms.

        Args:
            n_queries: how many queries the stats are for.

        Returns:
            Stats that leave any stats for as many queries unchanged when added.
        """
        return cls(0, 0, tuple({} for _ in range(n_queries)))

    def __add__(self, other: object) -> TermStats:
        """The sum of two indexes' stats for the same queries.

        Raises:
            InvalidInputError: the two are for different numbers of queries.
        """
        if not isinstance(other, TermStats):
            return NotImplemented
        if len(self.df) != len(other.df):
            raise InvalidInputError(
                f"cannot add TermStats for {len(self.df)} and {len(other.df)} queries: "
                "both must come from term_stats() on the same queries"
            )
        df = tuple(
            _add_counts(mine, theirs) for mine, theirs in zip(self.df, other.df, strict=True)
        )
        return TermStats(self.rows + other.rows, self.tokens + other.tokens, df)


def _add_counts(mine: dict[str, int], theirs: dict[str, int]) -> dict[str, int]:
    total = dict(mine)
    for term, count in theirs.items():
        total[term] = total.get(term, 0) + count
    return total


@dataclass(frozen=True, slots=True)
class TermRows:
    """One index's rows that match one term, with what BM25 needs of each.

    Attributes:
        ids: the rows' ids, int64.
        tf: the instances of the term in each row, int64 (at least 1).
        dl: each row's token count, int64.
        hits: rows in the whole index that match the term (``nHit``; more than
            ``len(ids)`` when a filter dropped some).
    """

    ids: Ints
    tf: Ints
    dl: Ints
    hits: int


def idf(rows: int, hits: int) -> float:
    """FTS5's inverse document frequency, clamped to ``1e-6`` for common terms.

    Args:
        rows: rows in the collection (``N``).
        hits: rows that match the term (``n``), at most ``rows``.

    Returns:
        ``log((N - n + 0.5) / (n + 0.5))``, or ``1e-6`` when that is not positive.
    """
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else _MIN_IDF


def _varints(data: npt.NDArray[np.uint8]) -> Ints:
    """Decode a run of SQLite varints (big-endian 7-bit groups, high bit = more follow)."""
    ends = np.flatnonzero(data < 0x80)
    if ends.size == 0 or ends[-1] != data.size - 1:
        raise StoreError("malformed FTS5 record: a varint runs past its end")
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    # 9-byte varints hold values >= 2**56, never a token count.
    if int(lengths.max()) > 8:
        raise StoreError("malformed FTS5 record: a varint longer than 8 bytes")
    owner = np.repeat(np.arange(ends.size), lengths)
    shift = 7 * (ends[owner] - np.arange(data.size))
    parts = (data & 0x7F).astype(np.int64) << shift
    return np.add.reduceat(parts, starts)


def decode_totals(block: bytes) -> tuple[int, int]:
    """Rows and tokens from FTS5's averages record (``{fts}_data`` row ``id = 1``).

    Args:
        block: the record: a varint row count, then a varint token total per column.

    Returns:
        ``(rows, tokens)``, tokens summed over the columns; ``(0, 0)`` for an empty record.

    Raises:
        StoreError: the record is malformed.
    """
    if not block:
        return 0, 0
    values = _varints(np.frombuffer(block, dtype=np.uint8))
    return int(values[0]), int(values[1:].sum())


def _sizes(blobs: Sequence[bytes]) -> Ints:
    """Row token counts from ``{fts}_docsize.sz`` blobs (one varint per column, summed)."""
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    values = _varints(data)
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    if values.size == len(blobs) and bool(np.all(lengths > 0)):  # one varint per blob
        return values
    owner = np.searchsorted(np.cumsum(lengths), np.flatnonzero(data < 0x80), side="right")
    return np.bincount(owner, weights=values, minlength=len(blobs)).astype(np.int64)


def term_rows(
    found: Sequence[tuple[int, float, bytes]], *, hits: int, rows: int, tokens: int
) -> TermRows:
    """Recover each row's term frequency from FTS5's ``bm25()`` for a one-term MATCH.

    For a single phrase FTS5 returns ``-idf * tf * (k1 + 1) / (tf + k1 * K)`` with
    ``K = 1 - b + b * dl / avgdl``, all from the index's own statistics, so
    ``tf = r * k1 * K / (k1 + 1 - r)`` with ``r = -bm25 / idf``.

    Args:
        found: ``(rowid, bm25(), docsize blob)`` for each matching row.
        hits: rows of the whole index that match the term (``nHit``).
        rows: rows in the index.
        tokens: tokens in the index.

    Returns:
        The rows, their term frequencies and their lengths.

    Raises:
        StoreError: a recovered frequency is not a whole number >= 1 (the statistics
            were not the ones FTS5 used).
    """
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return TermRows(empty, empty, empty, hits)
    ids, scores, blobs = zip(*found, strict=True)
    dl = _sizes(blobs)
    ratio = -np.asarray(scores, dtype=np.float64) / idf(rows, hits)
    norm = 1 - B + B * dl / (tokens / rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        tf = ratio * K1 * norm / (K1 + 1 - ratio)
    whole = np.rint(tf)
    if not np.all((whole >= 1) & (np.abs(tf - whole) < _TF_SLACK)):
        raise StoreError(
            "cannot recover term frequencies from FTS5's bm25(): the index's statistics "
            "changed during the search"
        )
    return TermRows(np.asarray(ids, dtype=np.int64), whole.astype(np.int64), dl, hits)


def _weights(rows: TermRows, term_idf: float, avgdl: float) -> Floats:
    # The operations and their order are fts5Bm25Function's, so the doubles are its own.
    tf = rows.tf.astype(np.float64)
    dl = rows.dl.astype(np.float64)
    weights: Floats = term_idf * ((tf * (K1 + 1.0)) / (tf + K1 * (1 - B + B * dl / avgdl)))
    return weights


def rank(parts: Sequence[tuple[TermRows, float]], avgdl: float, k: int) -> list[tuple[int, float]]:
    """Score the union of the terms' rows with BM25 and keep the best ``k``.

    Args:
        parts: for each query term in query order, its matching rows and its idf.
        avgdl: the mean row length of the collection.
        k: how many rows to keep.

    Returns:
        ``(id, score)`` pairs, best first, ties by smaller id; empty when no row matches.
    """
    ids = np.concatenate([rows.ids for rows, _ in parts]) if parts else np.zeros(0, np.int64)
    if ids.size == 0:
        return []
    weights = np.concatenate([_weights(rows, term_idf, avgdl) for rows, term_idf in parts])
    unique, inverse = np.unique(ids, return_inverse=True)
    # bincount adds in input order, term by term, as FTS5 does phrase by phrase.
    scores = np.bincount(inverse, weights=weights, minlength=unique.size)
    order = np.argsort(-scores, kind="stable")[:k]  # unique is sorted: ties keep smaller id
    return list(zip(unique[order].tolist(), scores[order].tolist(), strict=True))
