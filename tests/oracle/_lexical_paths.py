"""The two ways engramdb answers BM25 searches, for oracles to run against both.

* ``fts5``: :class:`~engramdb.lexical.fts5.FTS5Index` itself (SQLite's ``bm25()``);
* ``postings``: the same index's rows read into postings arrays
  (:func:`~engramdb.lexical.postings.read_fts5`) and searched by
  :class:`~engramdb.lexical.searcher.PostingsSearcher`, the path the engine uses. The
  arrays are read afresh from the connection at every call, so they see exactly what FTS5
  sees (an open transaction's writes included).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from engramdb.lexical.bm25 import TermStats
from engramdb.lexical.fts5 import FTS5Index
from engramdb.lexical.impact import PostingsView
from engramdb.lexical.postings import FTS5Tokenizer, read_fts5
from engramdb.lexical.searcher import PostingsSearcher
from engramdb.types import IdMatrix, Matrix

PATHS = ["fts5", "postings"]


class PostingsPath:
    """FTS5Index's search API answered from postings arrays of the same FTS5 table."""

    def __init__(self, fts: FTS5Index):
        self.fts = fts
        self.config = fts.config
        tokenizer = FTS5Tokenizer(fts.config.tokenizer)
        self.searcher = PostingsSearcher(fts, lambda: tokenizer)

    @property
    def conn(self) -> sqlite3.Connection:
        return self.fts.conn

    def view(self) -> PostingsView:
        segment = read_fts5(self.fts.conn, self.fts.fts_table)
        return PostingsView.of(0, [segment], [np.zeros(0, dtype=np.int64)])

    def search(
        self,
        queries: Sequence[str],
        k: int,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> tuple[IdMatrix, Matrix]:
        return self.searcher.search(self.view(), queries, k, where=where, params=params)

    def term_stats(self, queries: Sequence[str]) -> TermStats:
        return self.searcher.term_stats(self.view(), queries)

    def search_stats(
        self,
        queries: Sequence[str],
        k: int,
        stats: TermStats,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> list[list[tuple[int, float]]]:
        return self.searcher.search_stats(
            self.view(), queries, k, stats, where=where, params=params
        )

    def stats(self) -> dict[str, int | str]:
        return self.fts.stats()


def on_path(fts: FTS5Index, path: str) -> FTS5Index | PostingsPath:
    """``fts`` itself, or its postings path."""
    return fts if path == "fts5" else PostingsPath(fts)
