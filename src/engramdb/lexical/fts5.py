"""FTS5Index: BM25 over the store's own SQLite connection.

The index is an FTS5 *external-content* table over a content table (by default
``memories(id, text)``): FTS5 keeps only the inverted index and reads text from the content
table. Three triggers (after insert, after delete, after update of the text or the id) keep
the index in step with the content table inside the same transaction, so a rolled-back
write leaves no trace in the index either.

Scores are ``-bm25()``, so higher is better. FTS5's ``bm25()`` fixes ``k1 = 1.2`` and
``b = 0.75`` and uses ``idf = log((N - n + 0.5) / (n + 0.5))``, clamped to ``1e-6`` for terms
found in half of the rows or more.

For a store split into shards, :meth:`FTS5Index.term_stats` and
:meth:`FTS5Index.search_stats` score with statistics summed over all shards instead (see
``engramdb.lexical.bm25``), so that the shards rank as one table over all their rows would.

Caveat for writers: ``INSERT OR REPLACE`` deletes the old row without firing delete
triggers unless ``PRAGMA recursive_triggers = ON``; use ``INSERT ... ON CONFLICT DO UPDATE``
(or enable recursive triggers) so that the index sees the change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from engramdb.config import LexicalConfig
from engramdb.errors import ConfigError, InvalidInputError, StoreError
from engramdb.lexical.bm25 import TermRows, TermStats, decode_totals, idf, rank, term_rows
from engramdb.lexical.tokenize import query_terms
from engramdb.types import IdMatrix, Matrix

__all__ = ["FTS5Index", "match_expression"]

FORMAT_VERSION = 1
"""Bumped when the FTS table or trigger layout changes; a mismatch rebuilds the index."""

_INFO = "lexical_info"
_SAVEPOINT = "engramdb_lexical_ensure"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def match_expression(text: str, *, stopwords: bool = True) -> str | None:
    """The FTS5 MATCH expression for a user query: its distinct terms, quoted, OR-ed.

    Quoting makes every term a plain string for FTS5: operators (``AND``, ``NEAR``),
    prefixes (``*``), column filters (``text:``) and quotes in user text have no effect.

    Args:
        text: the query as the user typed it.
        stopwords: drop English stop words (see ``engramdb.lexical.tokenize``).

    Returns:
        The expression, or ``None`` when the query has no usable term.
    """
    terms = query_terms(text, stopwords=stopwords)
    if not terms:
        return None
    return " OR ".join(_phrase(term) for term in terms)


class FTS5Index:
    """BM25 search with SQLite FTS5 on a caller-owned connection.

    Args:
        conn: the connection that owns the content table; never closed here.
        config: tokenizer and stop-word settings.
        table: the content table.
        column: its text column (the FTS table gets a column of the same name).
        fts_table: the name of the FTS5 table (trigger names derive from it).

    The content table's rowid is its ``id`` column (``INTEGER PRIMARY KEY``).
    """

    def __init__(
        self,
        conn: sqlite3.Connection | Callable[[], sqlite3.Connection],
        config: LexicalConfig,
        *,
        table: str = "memories",
        column: str = "text",
        fts_table: str = "memories_fts",
    ):
        self._conn = conn
        self.config = config
        self.table = table
        self.column = column
        self.fts_table = fts_table
        self._triggers = tuple(f"{fts_table}_{suffix}" for suffix in ("ai", "ad", "au"))

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection to use now (a callable source gives the calling thread's)."""
        return self._conn if isinstance(self._conn, sqlite3.Connection) else self._conn()

    # -- schema -------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the FTS table and its triggers, or rebuild them if the settings changed.

        Does nothing (and writes nothing) when the index is already in place with the
        configured tokenizer. Otherwise drops and recreates the table and triggers and
        re-indexes every row of the content table, all under one savepoint: inside a
        caller's transaction it becomes part of that transaction; outside one it commits
        on its own.

        Raises:
            ConfigError: FTS5 rejects the configured tokenizer.
            StoreError: the content table is missing or SQLite fails otherwise.
        """
        if self.is_current():
            return
        with self._savepoint():
            self._drop()
            self._create()
            self._command("rebuild")
            self.conn.execute(
                f"INSERT INTO {_INFO} (fts_table, content_table, content_column, tokenizer, "
                "format_version) VALUES (?, ?, ?, ?, ?) ON CONFLICT (fts_table) DO UPDATE SET "
                "content_table = excluded.content_table, content_column = "
                "excluded.content_column, tokenizer = excluded.tokenizer, "
                "format_version = excluded.format_version",
                (self.fts_table, self.table, self.column, self.config.tokenizer, FORMAT_VERSION),
            )

    def rebuild(self) -> None:
        """Re-index every row of the content table (repairs an index that drifted).

        Raises:
            StoreError: the index does not exist (call :meth:`ensure`) or SQLite fails.
        """
        with self._savepoint():
            self._command("rebuild")

    def optimize(self) -> None:
        """Merge the index's b-trees into one (worth it after a large batch of writes).

        Raises:
            StoreError: the index does not exist (call :meth:`ensure`) or SQLite fails.
        """
        with self._savepoint():
            self._command("optimize")

    def _command(self, command: str) -> None:
        fts = _quote(self.fts_table)
        self.conn.execute(f"INSERT INTO {fts} ({fts}) VALUES (?)", (command,))

    def is_current(self) -> bool:
        """Whether the index exists with the configured settings (nothing to rebuild)."""
        try:
            row = self.conn.execute(
                f"SELECT content_table, content_column, tokenizer, format_version FROM {_INFO} "
                "WHERE fts_table = ?",
                (self.fts_table,),
            ).fetchone()
        except sqlite3.OperationalError:  # no info table yet
            return False
        if row != (self.table, self.column, self.config.tokenizer, FORMAT_VERSION):
            return False
        names = {self.fts_table, *self._triggers}
        marks = ",".join("?" * len(names))
        (found,) = self.conn.execute(
            f"SELECT count(*) FROM sqlite_master WHERE name IN ({marks})", tuple(names)
        ).fetchone()
        return bool(found == len(names))

    def _drop(self) -> None:
        for trigger in self._triggers:
            self.conn.execute(f"DROP TRIGGER IF EXISTS {_quote(trigger)}")
        self.conn.execute(f"DROP TABLE IF EXISTS {_quote(self.fts_table)}")

    def _create(self) -> None:
        fts, table, col = _quote(self.fts_table), _quote(self.table), _quote(self.column)
        spec = self.config.tokenizer.replace("'", "''")
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_INFO} (fts_table TEXT PRIMARY KEY, "
            "content_table TEXT NOT NULL, content_column TEXT NOT NULL, "
            "tokenizer TEXT NOT NULL, format_version INTEGER NOT NULL)"
        )
        try:
            self.conn.execute(
                f"CREATE VIRTUAL TABLE {fts} USING fts5({col}, content={table}, "
                f"content_rowid='id', tokenize='{spec}')"
            )
        except sqlite3.OperationalError as exc:
            raise ConfigError(
                f"FTS5 rejected lexical.tokenizer={self.config.tokenizer!r}: {exc}; valid "
                "examples: 'unicode61', 'unicode61 remove_diacritics 2', "
                "'porter unicode61 remove_diacritics 2', 'ascii'"
            ) from exc
        insert = f"INSERT INTO {fts} (rowid, {col}) VALUES (new.id, new.{col});"
        delete = f"INSERT INTO {fts} ({fts}, rowid, {col}) VALUES ('delete', old.id, old.{col});"
        ai, ad, au = (_quote(name) for name in self._triggers)
        self.conn.execute(f"CREATE TRIGGER {ai} AFTER INSERT ON {table} BEGIN {insert} END")
        self.conn.execute(f"CREATE TRIGGER {ad} AFTER DELETE ON {table} BEGIN {delete} END")
        self.conn.execute(
            f"CREATE TRIGGER {au} AFTER UPDATE OF {col}, id ON {table} BEGIN {delete} {insert} END"
        )

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        # A savepoint nests inside a caller's transaction and is its own transaction
        # otherwise, so this never commits on a caller's behalf.
        try:
            self.conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot start a savepoint for {self.fts_table}: {exc}") from exc
        try:
            yield
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(self._explain(exc)) from exc
        except BaseException:
            self._rollback()
            raise
        self.conn.execute(f"RELEASE {_SAVEPOINT}")

    def _rollback(self) -> None:
        self.conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
        self.conn.execute(f"RELEASE {_SAVEPOINT}")

    def _explain(self, exc: sqlite3.Error) -> str:
        hint = ""
        if "no such table" in str(exc):
            hint = (
                f" (the content table {self.table!r} must exist, and FTS5Index.ensure() "
                "must have run)"
            )
        return f"lexical index {self.fts_table!r}: {exc}{hint}"

    # -- search -------------------------------------------------------------------------

    def search(
        self,
        queries: Sequence[str],
        k: int,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> tuple[IdMatrix, Matrix]:
        """The best ``k`` rows for each query by BM25.

        Args:
            queries: query texts; a query without any usable term (only punctuation or
                stop words) gets an empty row.
            k: rows per query.
            where: an optional SQL boolean expression over the content table aliased ``m``
                (e.g. ``"m.namespace = ?"``), applied in the same statement. It is trusted
                SQL from engramdb's filter compiler, never user text; values go in ``params``.
            params: the values for the ``?`` placeholders in ``where``.

        Returns:
            ids ``(n, k)`` int64 and scores ``(n, k)`` float32 (``-bm25()``, higher is
            better), best first, ties by smaller id; short rows padded with ``-1``/``-inf``.

        Raises:
            InvalidInputError: ``queries`` is a single string or holds a non-string, or
                ``k < 1``.
            StoreError: the index is missing, ``where`` is invalid, or SQLite fails.
        """
        _check_queries(queries, k)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        sql = self._search_sql(where)
        for row, query in enumerate(queries):
            expression = match_expression(query, stopwords=self.config.stopwords)
            if expression is None:
                continue
            try:
                found = self.conn.execute(sql, (expression, *params, k)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(self._explain(exc)) from exc
            if found:
                ids[row, : len(found)] = [rowid for rowid, _ in found]
                scores[row, : len(found)] = [-score for _, score in found]
        return ids, scores

    def _search_sql(self, where: str | None) -> str:
        fts = _quote(self.fts_table)
        sql = f"SELECT f.rowid, bm25(f.{fts}) AS score FROM {fts} AS f"
        condition = f"f.{fts} MATCH ?"
        if where is not None:
            # CROSS JOIN keeps the FTS scan as the outer loop.
            sql += f" CROSS JOIN {_quote(self.table)} AS m ON m.id = f.rowid"
            condition += f" AND ({where})"
        return f"{sql} WHERE {condition} ORDER BY score, f.rowid LIMIT ?"

    # -- search with collection-wide statistics ------------------------------------------

    def term_stats(self, queries: Sequence[str]) -> TermStats:
        """This index's BM25 statistics for ``queries``, to be summed over the shards.

        Table-wide, like FTS5's ``bm25()``: no filter applies.

        Args:
            queries: query texts.

        Returns:
            The row and token counts and, per query, each distinct term's matching rows.

        Raises:
            InvalidInputError: ``queries`` is a single string or holds a non-string.
            StoreError: the index is missing or SQLite fails.
        """
        _check_query_list(queries)
        hits: dict[str, int] = {}
        df: list[dict[str, int]] = []
        with self._savepoint():  # one snapshot for all the counts
            rows, tokens = self._totals()
            for query in queries:
                terms = query_terms(query, stopwords=self.config.stopwords)
                for term in terms:
                    if term not in hits:
                        hits[term] = self._hits(term)
                df.append({term: hits[term] for term in terms})
        return TermStats(rows, tokens, tuple(df))

    def search_stats(
        self,
        queries: Sequence[str],
        k: int,
        stats: TermStats,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> list[list[tuple[int, float]]]:
        """The best ``k`` rows of this index for each query by BM25 with given statistics.

        Every matching row is scored with ``stats`` (normally the sum of every shard's
        :meth:`term_stats` for the same queries) instead of this index's own numbers, so
        merging the shards' lists by ``(-score, id)`` gives the ranking of one index over
        all the rows. With this index's own stats it ranks as :meth:`search` does.

        Args:
            queries: query texts; a query without any usable term gets an empty list.
            k: rows per query.
            stats: the statistics to score with, for the same queries.
            where: an optional SQL filter over the content table aliased ``m``, as in
                :meth:`search`.
            params: the values for the ``?`` placeholders in ``where``.

        Returns:
            Per query, up to ``k`` ``(id, score)`` pairs, float64 scores (higher is better),
            best first, ties by smaller id.

        Raises:
            InvalidInputError: ``queries`` is a single string or holds a non-string,
                ``k < 1``, or ``stats`` are not for these queries or cannot cover this index.
            StoreError: the index is missing, ``where`` is invalid, or SQLite fails.
        """
        _check_queries(queries, k)
        if len(stats.df) != len(queries):
            raise InvalidInputError(
                f"stats are for {len(stats.df)} queries, not {len(queries)}: pass the "
                "term_stats() of the same queries"
            )
        sql = self._term_sql(where)
        found: dict[str, TermRows] = {}
        results: list[list[tuple[int, float]]] = []
        with self._savepoint():  # one snapshot, so that bm25() and the totals agree
            local = self._totals()
            for query, df in zip(queries, stats.df, strict=True):
                parts: list[tuple[TermRows, float]] = []
                for term in query_terms(query, stopwords=self.config.stopwords):
                    if term not in found:
                        found[term] = self._term_rows(term, sql, params, local, where is not None)
                    parts.append((found[term], _global_idf(stats, df, term, found[term])))
                results.append(rank(parts, _avgdl(stats, parts), k))
        return results

    def _term_sql(self, where: str | None) -> str:
        fts = _quote(self.fts_table)
        sql = (
            f"SELECT f.rowid, bm25(f.{fts}), d.sz FROM {fts} AS f "
            f"CROSS JOIN {_quote(self.fts_table + '_docsize')} AS d ON d.id = f.rowid"
        )
        condition = f"f.{fts} MATCH ?"
        if where is not None:
            sql += f" CROSS JOIN {_quote(self.table)} AS m ON m.id = f.rowid"
            condition += f" AND ({where})"
        return f"{sql} WHERE {condition}"

    def _term_rows(
        self,
        term: str,
        sql: str,
        params: Sequence[object],
        local: tuple[int, int],
        filtered: bool,
    ) -> TermRows:
        found = self.conn.execute(sql, (_phrase(term), *params)).fetchall()
        # bm25() uses the unfiltered count, which a filtered list does not give.
        hits = self._hits(term) if filtered and found else len(found)
        return term_rows(found, hits=hits, rows=local[0], tokens=local[1])

    def _totals(self) -> tuple[int, int]:
        row = self.conn.execute(
            f"SELECT block FROM {_quote(self.fts_table + '_data')} WHERE id = 1"
        ).fetchone()
        return decode_totals(bytes(row[0])) if row and row[0] else (0, 0)

    def _hits(self, term: str) -> int:
        fts = _quote(self.fts_table)
        (count,) = self.conn.execute(
            f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?", (_phrase(term),)
        ).fetchone()
        return int(count)

    # -- inspection ---------------------------------------------------------------------

    def stats(self) -> dict[str, int | str]:
        """Rows indexed and the tokenizer in use.

        Returns:
            ``{"fts_table", "table", "column", "rows", "tokenizer"}``.

        Raises:
            StoreError: the index does not exist (call :meth:`ensure`) or SQLite fails.
        """
        try:
            (rows,) = self.conn.execute(
                f"SELECT count(*) FROM {_quote(self.fts_table + '_docsize')}"
            ).fetchone()
            info = self.conn.execute(
                f"SELECT tokenizer FROM {_INFO} WHERE fts_table = ?", (self.fts_table,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(self._explain(exc)) from exc
        return {
            "fts_table": self.fts_table,
            "table": self.table,
            "column": self.column,
            "rows": int(rows),
            "tokenizer": str(info[0]) if info else "",
        }


def _global_idf(stats: TermStats, df: dict[str, int], term: str, local: TermRows) -> float:
    if local.ids.size == 0:
        return 0.0  # scores no row
    # Only stats that leave BM25 undefined are refused: stats read a moment before a write
    # are merely stale, as a single index's would be.
    hits = df.get(term)
    if hits is None or not 0 <= hits <= stats.rows:
        raise InvalidInputError(
            f"stats give {hits} of {stats.rows} rows for term {term!r}: pass the summed "
            "term_stats() of the same queries"
        )
    return idf(stats.rows, hits)


def _avgdl(stats: TermStats, parts: list[tuple[TermRows, float]]) -> float:
    if all(rows.ids.size == 0 for rows, _ in parts):
        return 1.0  # unused: nothing to score
    if stats.rows < 1 or stats.tokens < 1:
        raise InvalidInputError(
            f"stats with {stats.rows} rows and {stats.tokens} tokens cannot cover an index "
            "with matching rows"
        )
    return stats.tokens / stats.rows


def _check_queries(queries: Sequence[str], k: int) -> None:
    _check_query_list(queries)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be an integer >= 1, got {k!r}")


def _check_query_list(queries: Sequence[str]) -> None:
    if isinstance(queries, str):
        raise InvalidInputError(
            "queries must be a sequence of strings, not one string: pass [query]"
        )
    bad = [type(q).__name__ for q in queries if not isinstance(q, str)]
    if bad:
        raise InvalidInputError(f"every query must be a str, got {', '.join(sorted(set(bad)))}")
