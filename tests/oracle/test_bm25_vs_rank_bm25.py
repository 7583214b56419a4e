"""engramdb's BM25 equals rank_bm25's BM25Okapi on the tiny corpus, on both search paths.

Every test runs on FTS5Index itself and on the postings arrays read from it (the path the
engine searches with, ``_lexical_paths.PostingsPath``).

Both score a document as ``sum over query terms of idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b
+ b * dl / avgdl))`` with ``k1 = 1.2``, ``b = 0.75``, ``dl`` the document's token count and
``avgdl`` the mean over the corpus. They differ only in the idf of common terms:

* FTS5: ``idf = log((N - n + 0.5) / (n + 0.5))``, clamped to ``1e-6`` when ``<= 0``;
* rank_bm25: the same logarithm, but a negative value is replaced by ``epsilon`` times the
  mean idf of the whole vocabulary (and an idf of exactly 0 stays 0).

So the two coincide exactly when every query term occurs in fewer than ``N / 2`` documents,
where both idfs are the same positive number. ``tests/data/tiny_corpus.jsonl`` (40 notes,
with French, German, Spanish, Russian, Greek and Japanese lines) and ``tiny_queries.jsonl``
are chosen so, and :func:`_assert_idf_coincides` checks it on every comparison, so that an
edit of the data cannot silently weaken the oracle.

FTS5 runs with the ``unicode61`` tokenizer (no stemming). rank_bm25 gets the documents
tokenized by :func:`engramdb.lexical.tokenize.tokenize`, which is first checked to produce
exactly FTS5's own tokens (read back through ``fts5vocab``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _lexical_paths import PATHS, PostingsPath, on_path
from rank_bm25 import BM25Okapi

from engramdb.config import LexicalConfig
from engramdb.lexical.fts5 import FTS5Index
from engramdb.lexical.tokenize import query_terms, tokenize

DATA = Path(__file__).resolve().parents[1] / "data"
CONFIG = LexicalConfig(tokenizer="unicode61", stopwords=True)
TOLERANCE = 1e-5

Doc = dict[str, Any]
Lexical = FTS5Index | PostingsPath


def _jsonl(name: str) -> list[Doc]:
    with (DATA / name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


CORPUS = _jsonl("tiny_corpus.jsonl")
QUERIES = [q["text"] for q in _jsonl("tiny_queries.jsonl")]


def _insert(conn: sqlite3.Connection, docs: list[Doc]) -> None:
    conn.executemany(
        "INSERT INTO memories (id, namespace, source, text) VALUES (?, ?, ?, ?)",
        [(d["id"], d["namespace"], d["source"], d["text"]) for d in docs],
    )


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute(
        "CREATE TABLE memories (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, "
        "source TEXT, text TEXT NOT NULL)"
    )
    _insert(db, CORPUS)
    db.commit()
    yield db
    db.close()


@pytest.fixture(params=PATHS)
def index(conn: sqlite3.Connection, request: pytest.FixtureRequest) -> Lexical:
    ix = FTS5Index(conn, CONFIG)
    ix.ensure()
    return on_path(ix, request.param)


def _current(conn: sqlite3.Connection) -> dict[int, str]:
    return dict(conn.execute("SELECT id, text FROM memories ORDER BY id").fetchall())


def _fts(ix: Lexical, query: str, **kwargs: Any) -> dict[int, float]:
    ids, scores = ix.search([query], 100, **kwargs)
    return {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}


def _assert_idf_coincides(tokens: list[list[str]], terms: list[str]) -> None:
    n_docs = len(tokens)
    for term in terms:
        df = sum(term in doc for doc in tokens)
        assert 2 * df < n_docs, f"{term!r} is in {df} of {n_docs} docs: idfs differ there"


def _oracle(docs: dict[int, str], query: str) -> dict[int, float]:
    ids = list(docs)
    tokens = [tokenize(docs[i]) for i in ids]
    terms = query_terms(query, stopwords=CONFIG.stopwords)
    _assert_idf_coincides(tokens, terms)
    scores = BM25Okapi(tokens, k1=1.2, b=0.75).get_scores(terms)
    return {i: float(s) for i, s in zip(ids, scores, strict=True) if s > 0}


def _assert_matches_oracle(ix: Lexical, docs: dict[int, str]) -> None:
    for query in QUERIES:
        got, want = _fts(ix, query), _oracle(docs, query)
        assert want, f"query {query!r} matches nothing: a useless oracle case"
        assert set(got) == set(want), query
        for doc, score in want.items():
            assert got[doc] == pytest.approx(score, abs=TOLERANCE), (query, doc)


def _assert_integrity(conn: sqlite3.Connection) -> None:
    # rank = 1 also compares the index with the content table (raises on any drift).
    conn.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")


def test_tokenize_equals_fts5_tokens_on_the_corpus(index: Lexical) -> None:
    conn = index.conn
    conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, memories_fts, instance)")
    fts: dict[int, list[str]] = {}
    for doc, term in conn.execute("SELECT doc, term FROM temp.vocab ORDER BY doc, offset"):
        fts.setdefault(doc, []).append(term)
    assert fts == {d["id"]: tokenize(d["text"]) for d in CORPUS}
    assert any(not d["text"].isascii() for d in CORPUS)


def test_scores_equal_rank_bm25(index: Lexical, conn: sqlite3.Connection) -> None:
    assert len(CORPUS) >= 40 and len(QUERIES) >= 12
    _assert_matches_oracle(index, _current(conn))


def test_ranking_is_by_score_then_id(index: Lexical) -> None:
    for query in QUERIES:
        ids, scores = index.search([query], 100)
        ranked = [(-float(s), int(i)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        assert ranked == sorted(ranked), query


FILTERS: list[tuple[str, list[object], Callable[[Doc], bool]]] = [
    ("m.namespace = ?", ["home"], lambda d: d["namespace"] == "home"),
    ("m.namespace = ?", ["work"], lambda d: d["namespace"] == "work"),
    (
        "m.namespace = ? AND m.id % 3 = ?",
        ["home", 0],
        lambda d: d["namespace"] == "home" and d["id"] % 3 == 0,
    ),
    ("m.id BETWEEN ? AND ?", [10, 30], lambda d: 10 <= d["id"] <= 30),
    ("m.source LIKE ?", ["travel/%"], lambda d: d["source"].startswith("travel/")),
    (
        "m.source IN (?, ?) OR m.id = ?",
        ["garden.md", "health.md", 1],
        lambda d: d["source"] in ("garden.md", "health.md") or d["id"] == 1,
    ),
    ("m.namespace = ?", ["nowhere"], lambda d: False),
]


@pytest.mark.parametrize(("where", "params", "predicate"), FILTERS)
def test_where_filter_equals_python_predicate(
    index: Lexical, where: str, params: list[object], predicate: Callable[[Doc], bool]
) -> None:
    keep = {d["id"] for d in CORPUS if predicate(d)}
    for query in QUERIES:
        unfiltered = _fts(index, query)
        filtered = _fts(index, query, where=where, params=params)
        expected = {doc: s for doc, s in unfiltered.items() if doc in keep}
        assert list(filtered) == list(expected), (query, where)
        assert filtered == expected


def test_triggers_keep_the_index_in_sync(index: Lexical, conn: sqlite3.Connection) -> None:
    _insert(
        conn,
        [
            {"id": 41, "namespace": "work", "source": "n", "text": "Deploy freeze lifted; Carol"},
            {"id": 42, "namespace": "home", "source": "n", "text": "Sourdough in Lisbon with Olga"},
        ],
    )
    _assert_integrity(conn)
    _assert_matches_oracle(index, _current(conn))

    conn.execute("DELETE FROM memories WHERE id IN (1, 18, 33)")
    _assert_integrity(conn)
    _assert_matches_oracle(index, _current(conn))

    conn.execute("UPDATE memories SET text = 'Vault keys rotated by Erin' WHERE id = 5")
    conn.execute("UPDATE memories SET text = text || ' Tokyo hotel' WHERE id = 9")
    conn.execute("UPDATE memories SET id = 99 WHERE id = 10")
    conn.execute("UPDATE memories SET namespace = 'home' WHERE id = 11")  # text untouched
    conn.commit()
    _assert_integrity(conn)
    _assert_matches_oracle(index, _current(conn))
    assert index.stats()["rows"] == len(CORPUS) - 1


def test_rolled_back_writes_leave_no_trace(index: Lexical, conn: sqlite3.Connection) -> None:
    before = [_fts(index, q) for q in QUERIES]
    conn.execute("BEGIN")
    _insert(conn, [{"id": 50, "namespace": "work", "source": "n", "text": "budget budget"}])
    conn.execute("DELETE FROM memories WHERE id = 2")
    conn.execute("UPDATE memories SET text = 'nothing at all' WHERE id = 3")
    assert 50 in _fts(index, "budget")  # the open transaction sees its own writes
    conn.rollback()
    _assert_integrity(conn)
    assert [_fts(index, q) for q in QUERIES] == before
    _assert_matches_oracle(index, _current(conn))
