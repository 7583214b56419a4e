"""The lexical channel: BM25 as SQLite FTS5's ``bm25()`` ranks it.

FTS5 (:mod:`engramdb.lexical.fts5`) is the index of record, kept by triggers in the
store's own transactions; postings arrays read from it (:mod:`engramdb.lexical.postings`)
answer its searches with the same rankings and scores without scoring every matching row
through SQLite (:mod:`engramdb.lexical.impact`, :mod:`engramdb.lexical.searcher`).
"""

from __future__ import annotations

from engramdb.lexical.fts5 import FTS5Index, match_expression
from engramdb.lexical.tokenize import STOPWORDS_EN, query_terms, tokenize

__all__ = ["STOPWORDS_EN", "FTS5Index", "match_expression", "query_terms", "tokenize"]
