"""FTS5Index's searches answered from postings arrays: same rankings, same scores.

:class:`PostingsSearcher` offers :class:`~engramdb.lexical.fts5.FTS5Index`'s ``search``,
``term_stats`` and ``search_stats`` over a :class:`~engramdb.lexical.impact.PostingsView`
of the same rows: queries become FTS5 phrases through the table's own tokenizer, scores are
``bm25()``'s doubles (:func:`~engramdb.lexical.impact.top_k`), and a ``where`` filter is the
same SQL over the content table aliased ``m``, evaluated by SQLite:

* on the matching rows in bands of falling score bounds, the first holding the unfiltered
  top ``k``, until the rows passing it hold the top ``k`` for certain (most filters pass
  most rows: one small check);
* when few pass and a sample says the filter lets fewer rows through than are left to
  check, on every row once (``SELECT id ... WHERE filter LIMIT``), the ranking then made
  among those rows.

A query whose terms FTS5 splits otherwise than one token each (characters that SQLite's
Unicode tables and Python's disagree on) is answered by FTS5 itself.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

import numpy as np

from engramdb.errors import InvalidInputError, StoreError
from engramdb.lexical.bm25 import TermStats, idf
from engramdb.lexical.fts5 import FTS5Index, _check_queries, _check_query_list, _quote
from engramdb.lexical.impact import PostingsView, top_k
from engramdb.lexical.postings import FTS5Tokenizer
from engramdb.lexical.tokenize import query_terms
from engramdb.types import IdMatrix, Matrix

__all__ = ["PostingsSearcher"]


class PostingsSearcher:
    """FTS5Index's searches over postings views.

    Args:
        fts: the FTS5 index of the same rows: its connection, content table and settings
            (and the answer for queries that need FTS5's phrase matching).
        tokenizer: gives FTS5's tokenizer with the index's spec (made when first needed).
    """

    def __init__(self, fts: FTS5Index, tokenizer: Callable[[], FTS5Tokenizer]):
        self.fts = fts
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> FTS5Tokenizer:
        """FTS5's tokenizer with the index's spec."""
        return self._tokenizer()

    def _phrases(self, query: str) -> tuple[list[str], list[str]] | None:
        """The query's terms and their FTS5 tokens (one each), or ``None`` when some
        term is not one token."""
        terms = query_terms(query, stopwords=self.fts.config.stopwords)
        tokens = self.tokenizer.phrases(terms)
        if any(len(t) != 1 for t in tokens):
            return None
        return terms, [t[0] for t in tokens]

    # -- search -----------------------------------------------------------------------------

    def search(
        self,
        view: PostingsView,
        queries: Sequence[str],
        k: int,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> tuple[IdMatrix, Matrix]:
        """As :meth:`FTS5Index.search`, over ``view`` (the state of the caller's snapshot).

        Raises:
            InvalidInputError: as :meth:`FTS5Index.search`.
            StoreError: ``where`` is invalid or SQLite fails.
        """
        _check_queries(queries, k)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        for row, query in enumerate(queries):
            parsed = self._phrases(query)
            if parsed is None:
                found_ids, found_scores = self.fts.search([query], k, where=where, params=params)
                ids[row], scores[row] = found_ids[0], found_scores[0]
                continue
            _, phrases = parsed
            if not phrases:
                continue
            hits = {token: view.hits(token) for token in set(phrases)}
            idfs = [idf(view.rows, hits[token]) for token in phrases]
            avgdl = view.tokens / view.rows if view.rows else 1.0
            best_ids, best_scores = self._ranked(view, phrases, idfs, avgdl, k, where, params)
            ids[row, : best_ids.size] = best_ids
            scores[row, : best_ids.size] = best_scores
        return ids, scores

    def _ranked(  # noqa: PLR0913 - the parts of one ranking
        self,
        view: PostingsView,
        phrases: list[str],
        idfs: list[float],
        avgdl: float,
        k: int,
        where: str | None,
        params: Sequence[object],
    ) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` ids and scores (ranked) that pass ``where``."""
        if view.rows == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        condition = None if where is None else _SqlFilter(self.fts, where, params)
        ranked = top_k(view, phrases, idfs, avgdl, k, condition)
        return ranked.ids[:k], ranked.scores[:k]

    # -- collection-wide statistics ---------------------------------------------------------

    def term_stats(self, view: PostingsView, queries: Sequence[str]) -> TermStats:
        """As :meth:`FTS5Index.term_stats`, from ``view``.

        Raises:
            InvalidInputError: ``queries`` is a single string or holds a non-string.
            StoreError: SQLite fails.
        """
        _check_query_list(queries)
        hits: dict[str, int] = {}
        df: list[dict[str, int]] = []
        for query in queries:
            terms = query_terms(query, stopwords=self.fts.config.stopwords)
            for term, tokens in zip(terms, self.tokenizer.phrases(terms), strict=True):
                if term not in hits:
                    hits[term] = view.hits(tokens[0]) if len(tokens) == 1 else self.fts._hits(term)
            df.append({term: hits[term] for term in terms})
        return TermStats(view.rows, view.tokens, tuple(df))

    def search_stats(  # noqa: PLR0913 - FTS5Index.search_stats's arguments and a view
        self,
        view: PostingsView,
        queries: Sequence[str],
        k: int,
        stats: TermStats,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> list[list[tuple[int, float]]]:
        """As :meth:`FTS5Index.search_stats`, over ``view``.

        Raises:
            InvalidInputError: as :meth:`FTS5Index.search_stats`.
            StoreError: ``where`` is invalid or SQLite fails.
        """
        _check_queries(queries, k)
        if len(stats.df) != len(queries):
            raise InvalidInputError(
                f"stats are for {len(stats.df)} queries, not {len(queries)}: pass the "
                "term_stats() of the same queries"
            )
        results: list[list[tuple[int, float]]] = []
        for query, df in zip(queries, stats.df, strict=True):
            parsed = self._phrases(query)
            if parsed is None:
                one = TermStats(stats.rows, stats.tokens, (df,))
                results += self.fts.search_stats([query], k, one, where=where, params=params)
                continue
            terms, phrases = parsed
            local = [view.hits(token) for token in phrases]
            if not any(local):
                results.append([])
                continue
            idfs = [
                _global_idf(stats, df, term, hits) for term, hits in zip(terms, local, strict=True)
            ]
            avgdl = _global_avgdl(stats)
            ids, scores = self._ranked(view, phrases, idfs, avgdl, k, where, params)
            results.append(list(zip(ids.tolist(), scores.tolist(), strict=True)))
        return results


class _SqlFilter:
    """A ``where`` over the content table aliased ``m``, asked of SQLite."""

    def __init__(self, fts: FTS5Index, where: str, params: Sequence[object]):
        self.fts = fts
        self.where = where
        self.params = tuple(params)

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[tuple[int]]:
        try:
            return self.fts.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(self.fts._explain(exc)) from exc

    def passing(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` pass, in order."""
        if ids.size == 0:
            return np.zeros(0, dtype=np.bool_)
        # CROSS JOIN keeps the given ids as the outer loop (never a scan of an index the
        # filter names), as FTS5Index.search keeps its matches
        sql = (
            f"SELECT m.id FROM json_each(?) AS j CROSS JOIN {_quote(self.fts.table)} AS m "
            f"ON m.id = j.value WHERE ({self.where})"
        )
        rows = self._rows(sql, (json.dumps(ids.tolist()), *self.params))
        keep = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return np.isin(ids, keep)

    def allowed(self, limit: int) -> np.ndarray | None:
        """Every id that passes, when fewer than ``limit`` do."""
        sql = f"SELECT m.id FROM {_quote(self.fts.table)} AS m WHERE ({self.where}) LIMIT ?"
        rows = self._rows(sql, (*self.params, limit))
        if len(rows) >= limit:
            return None
        return np.sort(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))


def _global_idf(stats: TermStats, df: dict[str, int], term: str, local: int) -> float:
    if local == 0:
        return 0.0  # scores no row
    hits = df.get(term)
    if hits is None or not 0 <= hits <= stats.rows:
        raise InvalidInputError(
            f"stats give {hits} of {stats.rows} rows for term {term!r}: pass the summed "
            "term_stats() of the same queries"
        )
    return idf(stats.rows, hits)


def _global_avgdl(stats: TermStats) -> float:
    if stats.rows < 1 or stats.tokens < 1:
        raise InvalidInputError(
            f"stats with {stats.rows} rows and {stats.tokens} tokens cannot cover an index "
            "with matching rows"
        )
    return stats.tokens / stats.rows
