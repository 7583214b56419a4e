"""SQL-specific properties of compiled filters: parameters only, aliases, index use."""

from __future__ import annotations

import json
import sqlite3
from importlib.resources import files
from typing import Any

import pytest

from engramdb.errors import InvalidInputError
from engramdb.filter import Compare, Field, FilterLike, compile_filter, to_predicate

SCHEMA = files("engramdb").joinpath("store", "migrations", "0001_core.sql").read_text("utf-8")
HOSTILE = "x'); DROP TABLE memories; --"


def test_values_and_keys_are_parameters() -> None:
    sql, params = compile_filter(
        {
            "source": HOSTILE,
            f"k{HOSTILE}": {"$in": [HOSTILE, 7]},
            "document": {"$gt": HOSTILE},
        }
    )
    assert "DROP" not in sql
    assert "'x'" not in sql
    assert "7" not in sql
    assert sql.count("?") == len(params)
    assert params.count(HOSTILE) == 3
    assert f'$."k{HOSTILE}"' in params


def test_hostile_values_run_harmlessly() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    sql, params = compile_filter({"source": HOSTILE, f"k{HOSTILE}": HOSTILE})
    assert db.execute(f"SELECT count(*) FROM memories m WHERE {sql}", params).fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM memories").fetchone() == (0,)
    db.close()


def test_params_follow_placeholders_in_order() -> None:
    sql, params = compile_filter({"$or": [{"n": {"$gt": 1}}, {"source": "s"}, {"flag": True}]})
    assert params == ['$."n"', '$."n"', 1, "s", '$."flag"']
    assert sql.count("?") == 5


def test_nested_path_quotes_every_key() -> None:
    _, params = compile_filter({"a.b c.d'e": 1})
    assert params[0] == '$."a"."b c"."d\'e"'


def test_alias() -> None:
    sql, _ = compile_filter({"source": "s", "team": "t"}, alias="mem")
    assert 'mem."source"' in sql
    assert "json_extract(mem.meta, ?)" in sql
    assert "m." not in sql.replace("mem.", "")


@pytest.mark.parametrize("alias", ["", "m; DROP TABLE x", "1m", "m.n", "m n"])
def test_alias_must_be_an_identifier(alias: str) -> None:
    with pytest.raises(InvalidInputError, match="alias must be a plain SQL identifier"):
        compile_filter({"a": 1}, alias=alias)


def test_empty_filter_compiles_to_true() -> None:
    assert compile_filter({}) == ("1", [])


def test_column_equality_can_use_its_index() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    sql, params = compile_filter({"source": "slack"})
    plan = db.execute(f"EXPLAIN QUERY PLAN SELECT id FROM memories m WHERE {sql}", params)
    assert any("memories_source" in row[-1] for row in plan)
    db.close()


def _ids(db: sqlite3.Connection, where: FilterLike) -> set[int]:
    sql, params = compile_filter(where)
    return {i for (i,) in db.execute(f"SELECT id FROM memories m WHERE {sql}", params)}


def test_unusual_keys_match_in_sql_and_python() -> None:
    """Non-ASCII keys (meta written with ensure_ascii=False) and dotted keys via Field."""
    rows: list[dict[str, Any]] = [
        {"id": 1, "meta": {"équipe": "ü", "a.b": 1, "a": {"b": 2}}},
        {"id": 2, "meta": {}},
    ]
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    for row in rows:
        db.execute(
            "INSERT INTO memories (id, namespace, text, hash, ingest_time, meta)"
            " VALUES (?, 'n', 't', ?, 0, ?)",
            (row["id"], str(row["id"]), json.dumps(row["meta"], ensure_ascii=False)),
        )
    cases: list[tuple[FilterLike, set[int]]] = [
        ({"équipe": "ü"}, {1}),
        (Compare(Field(("a.b",)), "$eq", 1), {1}),
        ({"a.b": 2}, {1}),
        ({"a.b": 1}, set()),
    ]
    for where, expected in cases:
        assert _ids(db, where) == expected, where
        keep = to_predicate(where)
        assert {row["id"] for row in rows if keep(row)} == expected, where
    db.close()
