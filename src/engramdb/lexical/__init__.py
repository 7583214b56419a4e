"""The lexical channel: BM25 with SQLite FTS5 on the store's connection."""

from __future__ import annotations

from engramdb.lexical.fts5 import FTS5Index, match_expression
from engramdb.lexical.tokenize import STOPWORDS_EN, query_terms, tokenize

__all__ = ["STOPWORDS_EN", "FTS5Index", "match_expression", "query_terms", "tokenize"]
