"""BM25 with collection-wide statistics against FTS5's own ``bm25()``.

Two oracles, on hypothesis-generated corpora and queries, for the ``unicode61`` and the
``porter unicode61`` tokenizers, with and without a ``where`` filter:

* one index scored with its own :meth:`FTS5Index.term_stats` must rank as
  :meth:`FTS5Index.search` does, with the same scores (to float32 precision; against the
  ``bm25()`` doubles themselves to 1e-12);
* one corpus split over 2 or 3 separate stores (each its own connection, the ids kept),
  scored with the sum of the stores' stats and merged by ``(-score, id)``, must give the
  single store's :meth:`FTS5Index.search` over all rows.

The vocabulary is small so that terms repeat within a row (``tf > 1``) and across rows
(terms in more than half of them, where the idf is clamped to ``1e-6``); it has stop words,
words that only porter folds together (``run``/``runs``/``running``), case and diacritic
variants, and some rows are long enough (128 tokens or more) for multi-byte varints.

Every oracle runs on FTS5Index itself and on the postings arrays read from it (the path the
engine searches with, ``_lexical_paths.PostingsPath``).
"""

from __future__ import annotations

import math
import pickle
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest
from _lexical_paths import PATHS, PostingsPath, on_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb.config import LexicalConfig
from engramdb.errors import InvalidInputError
from engramdb.lexical.bm25 import TermStats, decode_totals
from engramdb.lexical.fts5 import FTS5Index, match_expression

settings.register_profile(
    "bm25-global-oracle",
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ORACLE = settings.get_profile("bm25-global-oracle")

RELATIVE = 1e-6
TOKENIZERS = ["unicode61", "porter unicode61"]
VOCAB = [
    "memory", "memory", "memory", "Memory", "note", "note", "café", "CAFE", "run", "runs",
    "running", "runner", "graph", "vector", "search", "index", "shard", "the", "of", "and",
    "alpha", "beta", "gamma", "delta", "zeta", "Ωmega",
]  # fmt: skip
STOP_ONLY = "the of and"
FILTERS: list[tuple[str | None, tuple[object, ...]]] = [
    (None, ()),
    ("m.namespace = ?", ("work",)),
    ("m.id % 3 <> ? AND m.namespace <> ?", (1, "none")),
]

Doc = tuple[int, str, str]  # id, namespace, text
Lexical = FTS5Index | PostingsPath


@dataclass
class Case:
    docs: list[Doc]
    queries: list[str]
    tokenizer: str
    k: int


def _texts(draw: st.DrawFn, n: int) -> list[str]:
    texts = []
    for _ in range(n):
        words = draw(st.lists(st.sampled_from(VOCAB), max_size=10))
        if draw(st.integers(0, 9)) == 0:
            words = words * 20  # a long row: dl >= 128 takes a two-byte varint
        texts.append(" ".join(words))
    return texts


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n = draw(st.integers(1, 40))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    texts = _texts(draw, n)
    namespaces = draw(st.lists(st.sampled_from(["work", "home"]), min_size=n, max_size=n))
    queries = [
        " ".join(draw(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4)))
        for _ in range(draw(st.integers(1, 4)))
    ]
    return Case(
        docs=list(zip(ids, namespaces, texts, strict=True)),
        queries=[*queries, STOP_ONLY, "memory"],
        tokenizer=draw(st.sampled_from(TOKENIZERS)),
        k=draw(st.sampled_from([1, 3, 10, 100])),
    )


@contextmanager
def _store(docs: Sequence[Doc], tokenizer: str, path: str = "fts5") -> Iterator[Lexical]:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(
            "CREATE TABLE memories (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, "
            "text TEXT NOT NULL)"
        )
        index = FTS5Index(conn, LexicalConfig(tokenizer=tokenizer, stopwords=True))
        index.ensure()
        conn.executemany("INSERT INTO memories (id, namespace, text) VALUES (?, ?, ?)", docs)
        conn.commit()
        yield on_path(index, path)
    finally:
        conn.close()


def _search(
    index: Lexical, queries: list[str], k: int, where: str | None, params: tuple[object, ...]
) -> list[list[tuple[int, float]]]:
    ids, scores = index.search(queries, k, where=where, params=params)
    return [
        [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]


def _assert_same(got: list[list[tuple[int, float]]], want: list[list[tuple[int, float]]]) -> None:
    assert len(got) == len(want)
    for got_row, want_row in zip(got, want, strict=True):
        assert [i for i, _ in got_row] == [i for i, _ in want_row]
        for (_, score), (_, expected) in zip(got_row, want_row, strict=True):
            assert score == pytest.approx(expected, rel=RELATIVE)


def _bm25_doubles(index: Lexical, query: str) -> dict[int, float]:
    expression = match_expression(query, stopwords=index.config.stopwords)
    if expression is None:
        return {}
    rows = index.conn.execute(
        "SELECT rowid, bm25(memories_fts) FROM memories_fts WHERE memories_fts MATCH ?",
        (expression,),
    )
    return {rowid: -score for rowid, score in rows}


@pytest.mark.parametrize("path", PATHS)
@ORACLE
@given(case=cases())
def test_own_stats_rank_as_search(path: str, case: Case) -> None:
    with _store(case.docs, case.tokenizer, path) as index:
        stats = index.term_stats(case.queries)
        assert (stats.rows, len(stats.df)) == (len(case.docs), len(case.queries))
        for where, params in FILTERS:
            got = index.search_stats(case.queries, case.k, stats, where=where, params=params)
            _assert_same(got, _search(index, case.queries, case.k, where, params))
        everything = index.search_stats(case.queries, len(case.docs), stats)
        for query, row in zip(case.queries, everything, strict=True):
            doubles = _bm25_doubles(index, query)
            assert {i for i, _ in row} == set(doubles)
            for rowid, score in row:
                assert score == pytest.approx(doubles[rowid], rel=1e-12, abs=0)


@pytest.mark.parametrize("path", PATHS)
@ORACLE
@given(case=cases(), data=st.data())
def test_shards_with_summed_stats_rank_as_one_store(
    path: str, case: Case, data: st.DataObject
) -> None:
    n_shards = data.draw(st.sampled_from([2, 3]))
    owner = data.draw(
        st.lists(st.integers(0, n_shards - 1), min_size=len(case.docs), max_size=len(case.docs))
    )
    parts = [[d for d, o in zip(case.docs, owner, strict=True) if o == s] for s in range(n_shards)]
    with ExitStack() as stack:
        whole = stack.enter_context(_store(case.docs, case.tokenizer))
        shards = [stack.enter_context(_store(part, case.tokenizer, path)) for part in parts]
        zero = TermStats.empty(len(case.queries))
        stats = sum((shard.term_stats(case.queries) for shard in shards), zero)
        assert stats == whole.term_stats(case.queries)
        for where, params in FILTERS:
            lists = [
                shard.search_stats(case.queries, case.k, stats, where=where, params=params)
                for shard in shards
            ]
            merged = [_merge(per_query, case.k) for per_query in zip(*lists, strict=True)]
            _assert_same(merged, _search(whole, case.queries, case.k, where, params))


def _merge(lists: Sequence[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    pairs = [pair for per_shard in lists for pair in per_shard]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))[:k]


FIXED = [
    (1, "work", "memory memory memory graph"),
    (2, "work", "memory running runs"),
    (5, "home", "memory note"),
    (9, "home", "graph " * 150 + "memory"),
    (12, "work", "café CAFE vector"),
    (40, "home", "the of and"),
    (41, "work", ""),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_fixed_corpus_covers_clamp_repeats_and_long_rows(tokenizer: str, path: str) -> None:
    queries = ["memory graph", "run café", "memory memory", "vector"]
    with _store(FIXED, tokenizer, path) as index:
        stats = index.term_stats(queries)
        assert stats.rows == len(FIXED)
        assert stats.tokens == sum(len(text.split()) for _, _, text in FIXED)
        assert 2 * stats.df[0]["memory"] > stats.rows  # idf clamped to 1e-6
        assert stats.df[1] == {"run": 0 if tokenizer == "unicode61" else 1, "cafe": 1}
        _assert_same(index.search_stats(queries, 10, stats), _search(index, queries, 10, None, ()))
        # Other (global) stats: "memory" in 2 of 70 rows of 1,400 tokens.
        scored = dict(index.search_stats(["memory"], 10, TermStats(70, 1400, ({"memory": 2},)))[0])

    def expected(tf: int, dl: int) -> float:
        idf = math.log((70 - 2 + 0.5) / (2 + 0.5))
        return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / 20))

    # tf 3 in row 1; dl 151 (a two-byte varint) in row 9
    want = {1: expected(3, 4), 2: expected(1, 3), 5: expected(1, 2), 9: expected(1, 151)}
    assert scored == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_porter_counts_stemmed_matches(path: str) -> None:
    with _store(FIXED, "porter unicode61", path) as index:
        stats = index.term_stats(["running"])
    with _store(FIXED, "unicode61", path) as index:
        plain = index.term_stats(["running"])
    assert (stats.df[0]["running"], plain.df[0]["running"]) == (1, 1)
    more = [*FIXED, (50, "work", "he runs; she ran; they run")]
    with _store(more, "porter unicode61", path) as ix:
        assert ix.term_stats(["running"]).df == ({"running": 2},)


def test_stats_add_and_pickle() -> None:
    a = TermStats(3, 10, ({"x": 1, "y": 2}, {}))
    b = TermStats(4, 20, ({"x": 2, "z": 1}, {"w": 4}))
    assert a + b == TermStats(7, 30, ({"x": 3, "y": 2, "z": 1}, {"w": 4}))
    assert TermStats.empty(2) + a == a
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(InvalidInputError):
        a + TermStats.empty(3)


@pytest.mark.parametrize("path", PATHS)
def test_invalid_inputs(path: str) -> None:
    with _store(FIXED, "unicode61", path) as index:
        stats = index.term_stats(["memory", STOP_ONLY])
        assert stats.df[1] == {}
        assert index.search_stats(["memory", STOP_ONLY], 5, stats)[1] == []
        assert index.search_stats(["!! ?"], 5, index.term_stats(["!! ?"])) == [[]]
        for k in (0, -1, True, 2.0):
            with pytest.raises(InvalidInputError):
                index.search_stats(["memory", STOP_ONLY], k, stats)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError):
                index.search(["memory"], k)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):  # stats for other queries
            index.search_stats(["memory"], 5, stats)
        with pytest.raises(InvalidInputError):  # a term the stats do not have
            index.search_stats(["graph", STOP_ONLY], 5, stats)
        with pytest.raises(InvalidInputError):
            index.term_stats("memory")
        with pytest.raises(InvalidInputError):
            index.search_stats("memory", 5, TermStats.empty(6))


def test_averages_record_with_multibyte_varints() -> None:
    # 300 rows; 20000 then 5 tokens in two columns.
    assert decode_totals(bytes([0x82, 0x2C, 0x81, 0x9C, 0x20, 0x05])) == (300, 20005)
    assert decode_totals(b"") == (0, 0)
