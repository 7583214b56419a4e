from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.config import LexicalConfig
from engramdb.errors import ConfigError, InvalidInputError, StoreError
from engramdb.lexical.fts5 import FTS5Index, match_expression

DOCS = {
    1: ("work", "Alice moved the deploy freeze to Friday."),
    2: ("work", "The deploy pipeline deploys twice a day."),
    3: ("home", "Buy flour for the sourdough starter."),
    4: ("home", "Deploying sourdough: feed the starter, then bake."),
    5: ("work", "Quarterly budget review with finance."),
}
PORTER = LexicalConfig()
PLAIN = LexicalConfig(tokenizer="unicode61 remove_diacritics 2")


def _content(conn: sqlite3.Connection, table: str = "memories", column: str = "text") -> None:
    col = column.replace('"', '""')
    conn.execute(
        f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, '
        f'"{col}" TEXT NOT NULL)'
    )


def _add(conn: sqlite3.Connection, docs: dict[int, tuple[str, str]]) -> None:
    conn.executemany(
        "INSERT INTO memories (id, namespace, text) VALUES (?, ?, ?)",
        [(i, ns, text) for i, (ns, text) in docs.items()],
    )


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    _content(db)
    _add(db, DOCS)
    db.commit()
    yield db
    db.close()


@pytest.fixture
def index(conn: sqlite3.Connection) -> FTS5Index:
    ix = FTS5Index(conn, PORTER)
    ix.ensure()
    return ix


def _ids(ix: FTS5Index, query: str, k: int = 10, **kwargs: object) -> list[int]:
    ids, _ = ix.search([query], k, **kwargs)  # type: ignore[arg-type]
    return [int(i) for i in ids[0] if i >= 0]


# -- ensure -------------------------------------------------------------------------------


def test_ensure_creates_table_triggers_and_info(conn: sqlite3.Connection) -> None:
    FTS5Index(conn, PORTER).ensure()
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"memories_fts", "memories_fts_ai", "memories_fts_ad", "memories_fts_au"} <= names
    info = conn.execute("SELECT tokenizer FROM lexical_info WHERE fts_table = 'memories_fts'")
    assert info.fetchone() == (PORTER.tokenizer,)
    assert not conn.in_transaction


def test_ensure_indexes_existing_rows(index: FTS5Index) -> None:
    assert index.stats()["rows"] == len(DOCS)
    assert sorted(_ids(index, "sourdough")) == [3, 4]


def test_ensure_twice_writes_nothing(index: FTS5Index, conn: sqlite3.Connection) -> None:
    before = conn.total_changes
    index.ensure()
    FTS5Index(conn, PORTER).ensure()
    assert conn.total_changes == before


def test_ensure_inside_a_transaction_does_not_commit(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT INTO memories (id, namespace, text) VALUES (9, 'x', 'zebra')")
    FTS5Index(conn, PORTER).ensure()
    assert conn.in_transaction
    conn.rollback()
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "memories_fts" not in names and "lexical_info" not in names


def test_ensure_outside_a_transaction_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    writer = sqlite3.connect(path)
    _content(writer)
    _add(writer, DOCS)
    writer.commit()
    FTS5Index(writer, PORTER).ensure()
    reader = sqlite3.connect(path)
    try:
        assert _ids(FTS5Index(reader, PORTER), "budget") == [5]
    finally:
        reader.close()
        writer.close()


def test_tokenizer_change_rebuilds(index: FTS5Index, conn: sqlite3.Connection) -> None:
    assert _ids(index, "deploy") == [2, 1, 4]  # porter: deploys, deploying -> deploy
    plain = FTS5Index(conn, PLAIN)
    plain.ensure()
    assert plain.stats() == {
        "fts_table": "memories_fts",
        "table": "memories",
        "column": "text",
        "rows": len(DOCS),
        "tokenizer": PLAIN.tokenizer,
    }
    assert _ids(plain, "deploy") == [1, 2]
    assert _ids(plain, "deploys") == [2]


def test_bad_tokenizer_is_a_config_error_and_leaves_the_index(
    index: FTS5Index, conn: sqlite3.Connection
) -> None:
    with pytest.raises(ConfigError, match="no-such-tokenizer"):
        FTS5Index(conn, LexicalConfig(tokenizer="no-such-tokenizer")).ensure()
    assert not conn.in_transaction
    assert index.stats()["tokenizer"] == PORTER.tokenizer
    assert _ids(index, "budget") == [5]


def test_missing_content_table_is_a_store_error() -> None:
    db = sqlite3.connect(":memory:")
    try:
        with pytest.raises(StoreError, match="content table 'memories' must exist"):
            FTS5Index(db, PORTER).ensure()
        assert not db.in_transaction
    finally:
        db.close()


def test_search_before_ensure_names_the_fix(conn: sqlite3.Connection) -> None:
    with pytest.raises(StoreError, match=r"ensure\(\)"):
        FTS5Index(conn, PORTER).search(["deploy"], 3)


def test_custom_table_and_column_names_are_quoted() -> None:
    db = sqlite3.connect(":memory:")
    try:
        _content(db, table="my notes", column='body "x"')
        db.execute("""INSERT INTO "my notes" VALUES (7, 'n', 'quoted identifiers work')""")
        ix = FTS5Index(db, PORTER, table="my notes", column='body "x"', fts_table="notes fts")
        ix.ensure()
        assert _ids(ix, "identifiers") == [7]
        db.execute('UPDATE "my notes" SET "body ""x""" = ? WHERE id = 7', ["renamed"])
        assert _ids(ix, "identifiers") == []
        assert _ids(ix, "renamed", where="m.namespace = ?", params=["n"]) == [7]
    finally:
        db.close()


def test_works_on_the_store_schema() -> None:
    schema = resources.files("engramdb.store.migrations").joinpath("0001_core.sql")
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema.read_text(encoding="utf-8"))
        db.execute(
            "INSERT INTO memories (namespace, text, hash, ingest_time) "
            "VALUES ('default', 'The freeze moved to Friday.', 'h1', 0)"
        )
        ix = FTS5Index(db, PORTER)
        ix.ensure()
        assert _ids(ix, "frozen freeze", where="m.namespace = ?", params=["default"]) == [1]
    finally:
        db.close()


# -- search -------------------------------------------------------------------------------


def test_search_shapes_padding_and_order(index: FTS5Index) -> None:
    ids, scores = index.search(["deploy", "budget", "zzz"], 4)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    assert ids.shape == scores.shape == (3, 4)
    assert ids[1].tolist() == [5, -1, -1, -1]
    assert ids[2].tolist() == [-1] * 4 and np.all(np.isneginf(scores[2]))
    found = scores[0][ids[0] >= 0]
    assert np.all(found > 0) and np.all(np.diff(found) <= 0)
    assert np.all(np.isneginf(scores[0][ids[0] < 0]))


def test_search_k_truncates(index: FTS5Index) -> None:
    full, _ = index.search(["deploy"], 10)
    top, _ = index.search(["deploy"], 1)
    assert top.shape == (1, 1) and top[0, 0] == full[0, 0]


def test_ties_break_by_smaller_id(conn: sqlite3.Connection) -> None:
    _add(conn, {10: ("a", "kiwi"), 11: ("a", "kiwi"), 12: ("a", "kiwi")})
    ix = FTS5Index(conn, PORTER)
    ix.ensure()
    ids, scores = ix.search(["kiwi"], 3)
    assert ids[0].tolist() == [10, 11, 12] and len(set(scores[0].tolist())) == 1


def test_empty_batch(index: FTS5Index) -> None:
    ids, scores = index.search([], 5)
    assert ids.shape == scores.shape == (0, 5)


@pytest.mark.parametrize("query", ["", "   ", "?!...", "the and of", "*", '""'])
def test_queries_without_terms_give_empty_rows(index: FTS5Index, query: str) -> None:
    ids, scores = index.search([query, "budget"], 2)
    assert ids[0].tolist() == [-1, -1] and np.all(np.isneginf(scores[0]))
    assert ids[1, 0] == 5


def test_stop_words_can_be_kept(conn: sqlite3.Connection) -> None:
    ix = FTS5Index(conn, LexicalConfig(stopwords=False))
    ix.ensure()
    assert sorted(_ids(ix, "the")) == [1, 2, 3, 4]


def test_where_filters_in_the_same_query(index: FTS5Index) -> None:
    home = _ids(index, "deploy sourdough", where="m.namespace = ?", params=["home"])
    assert sorted(home) == [3, 4]
    assert _ids(index, "deploy", where="m.namespace = ? AND m.id > ?", params=["work", 1]) == [2]
    assert _ids(index, "deploy", where="0") == []


def test_bad_where_is_a_store_error(index: FTS5Index) -> None:
    with pytest.raises(StoreError, match="no such column"):
        index.search(["deploy"], 3, where="m.nope = ?", params=[1])


@pytest.mark.parametrize("queries", ["deploy", [b"deploy"], ["deploy", None]])
def test_queries_must_be_a_sequence_of_str(index: FTS5Index, queries: object) -> None:
    with pytest.raises(InvalidInputError):
        index.search(queries, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [0, -2, True, 1.5])
def test_k_must_be_positive_int(index: FTS5Index, k: object) -> None:
    with pytest.raises(InvalidInputError, match="k must be"):
        index.search(["deploy"], k)  # type: ignore[arg-type]


# -- user text is never FTS5 syntax -------------------------------------------------------

HOSTILE = [
    'deploy"',
    '"deploy',
    "deploy AND",
    "OR deploy",
    "NOT deploy",
    "deploy NOT budget",
    "NEAR(deploy budget)",
    "NEAR(deploy budget, 1)",
    "deploy*",
    "^deploy",
    "text:deploy",
    "{text}: deploy",
    "-text:deploy",
    "deploy + budget",
    "(deploy",
    "deploy)",
    "deploy'",
    "deploy; DROP TABLE memories; --",
    "deploy\x00budget",
    "rank:deploy",
    "memories_fts:deploy",
    "deploy budget OR",
    "AND OR NOT NEAR",
    "deploy\\",
    "deploy\u00a0budget",
    "deploy 🎉",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_are_plain_terms(index: FTS5Index, query: str) -> None:
    ids, scores = index.search([query], 5)
    expression = match_expression(query)
    assert expression is not None
    terms = [t.strip('"') for t in expression.split(" OR ")]
    plain, plain_scores = index.search([" ".join(terms)], 5)
    assert ids.tolist() == plain.tolist()
    np.testing.assert_array_equal(scores, plain_scores)
    assert index.stats()["rows"] == len(DOCS)


def test_operator_words_are_searched_as_words(conn: sqlite3.Connection) -> None:
    _add(conn, {20: ("a", "NEAR the river, OR else, AND NOT here")})
    ix = FTS5Index(conn, LexicalConfig(stopwords=False))
    ix.ensure()
    assert _ids(ix, "NEAR") == [20]
    assert _ids(ix, "NOT") == [20]


def test_match_expression_quotes_every_term() -> None:
    assert match_expression('text:deploy* NEAR("a" b)') == '"text" OR "deploy" OR "near" OR "b"'
    assert match_expression("the a of") is None
    assert match_expression("the", stopwords=False) == '"the"'


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_a_valid_query(query: str) -> None:
    db = sqlite3.connect(":memory:")
    try:
        _content(db)
        _add(db, DOCS)
        ix = FTS5Index(db, PORTER)
        ix.ensure()
        ids, scores = ix.search([query], 3)
        assert ids.shape == (1, 3)
        assert set(ids[0][ids[0] >= 0].tolist()) <= set(DOCS)
        assert np.all(np.isfinite(scores[0][ids[0] >= 0]))
    finally:
        db.close()


# -- maintenance --------------------------------------------------------------------------


def test_rebuild_and_optimize_keep_results(index: FTS5Index) -> None:
    before = index.search(["deploy sourdough budget"], 5)
    index.rebuild()
    index.optimize()
    after = index.search(["deploy sourdough budget"], 5)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-6)


def test_stats_before_ensure_is_a_store_error(conn: sqlite3.Connection) -> None:
    with pytest.raises(StoreError):
        FTS5Index(conn, PORTER).stats()
