"""Hand-written filters with known answers, checked against both SQL and the predicate."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import pytest

from engramdb.filter import compile_filter, to_predicate

SCHEMA = files("engramdb").joinpath("store", "migrations", "0001_core.sql").read_text("utf-8")

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "namespace": "default",
        "source": "slack",
        "document": "d1",
        "ordinal": 0,
        "event_time": T0,
        "ingest_time": T0 + 100,
        "count": 1,
        "meta": {
            "team": "infra",
            "n": 5,
            "flag": True,
            "source": "jira",
            "a": {"b": "x"},
            "tags": ["p"],
        },
    },
    {
        "id": 2,
        "namespace": "default",
        "source": None,
        "document": None,
        "ordinal": None,
        "event_time": None,
        "ingest_time": T0 + 200,
        "count": 2,
        "meta": {"team": "ml", "n": 5.0, "flag": 1, "a": {"b": None}},
    },
    {
        "id": 3,
        "namespace": "work",
        "source": "mail",
        "document": "d1",
        "ordinal": 3,
        "event_time": 1_600_000_000.0,
        "ingest_time": T0 + 300,
        "count": 1,
        "meta": {"team": None, "n": "5", "flag": False},
    },
    {
        "id": 4,
        "namespace": "work",
        "source": "slack",
        "document": "d2",
        "ordinal": 1,
        "event_time": 1_800_000_000.0,
        "ingest_time": T0 + 400,
        "count": 3,
        "meta": {},
    },
]

CASES: list[tuple[dict[str, Any], set[int]]] = [
    ({}, {1, 2, 3, 4}),
    # Absent values (missing key, JSON null) make comparisons false; $not is plain negation.
    ({"team": "infra"}, {1}),
    ({"team": {"$ne": "infra"}}, {2}),
    ({"$not": {"team": "infra"}}, {2, 3, 4}),
    ({"team": None}, {3, 4}),
    ({"team": {"$ne": None}}, {1, 2}),
    ({"team": {"$exists": True}}, {1, 2}),
    ({"team": {"$exists": False}}, {3, 4}),
    ({"team": {"$in": []}}, set()),
    ({"team": {"$nin": []}}, {1, 2}),
    ({"team": {"$nin": ["ml", None]}}, {1}),
    ({"team": {"$in": ["ml", None]}}, {2, 3, 4}),
    ({"team": {"$gte": "infra", "$lt": "n"}}, {1, 2}),
    # Kinds: numbers equal across int/float, never text; booleans are not numbers.
    ({"n": 5}, {1, 2}),
    ({"n": "5"}, {3}),
    ({"n": {"$gt": 4}}, {1, 2}),
    ({"n": {"$gt": "4"}}, {3}),
    ({"n": {"$in": [5, "5"]}}, {1, 2, 3}),
    ({"flag": True}, {1}),
    ({"flag": False}, {3}),
    ({"flag": 1}, {2}),
    ({"flag": {"$in": [True, False]}}, {1, 3}),
    ({"flag": {"$gte": 0}}, {2}),
    ({"flag": {"$nin": [True]}}, {2, 3}),
    ({"flag": {"$ne": 1}}, {1, 3}),
    # Columns, and metadata keys that share a column's name.
    ({"source": "slack"}, {1, 4}),
    ({"meta.source": "jira"}, {1}),
    ({"meta.source": "slack"}, set()),
    ({"source": None}, {2}),
    ({"source": {"$ne": "slack"}}, {3}),
    ({"document": {"$gt": ""}}, {1, 3, 4}),
    ({"ordinal": {"$lt": 2}}, {1, 4}),
    ({"ordinal": {"$in": [None, 3]}}, {2, 3}),
    ({"id": {"$in": [1, 4]}}, {1, 4}),
    ({"count": {"$gte": 2}}, {2, 4}),
    ({"namespace": "work", "document": "d1"}, {3}),
    ({"namespace": {"$exists": False}}, set()),
    # Nested paths; arrays and objects equal no scalar.
    ({"a.b": "x"}, {1}),
    ({"a.b": {"$exists": True}}, {1}),
    ({"a.b.c": {"$exists": True}}, set()),
    ({"a": {"$exists": True}}, {1, 2}),
    ({"a": {"$ne": "x"}}, {1, 2}),
    ({"tags": "p"}, set()),
    ({"tags": {"$ne": "p"}}, {1}),
    # Times: epoch seconds, ISO strings, datetimes and dates (naive means UTC).
    ({"event_time": {"$gte": T0}}, {1, 4}),
    ({"event_time": {"$gte": "2023-11-14T22:13:20Z"}}, {1, 4}),
    ({"event_time": {"$gt": "2023-11-14T23:13:20+01:00"}}, {4}),
    ({"event_time": {"$gte": datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)}}, {1, 4}),
    ({"event_time": {"$gte": datetime(2023, 11, 14, 22, 13, 20)}}, {1, 4}),
    ({"event_time": {"$lt": "2023-11-14"}}, {3}),
    ({"event_time": "2023-11-14T22:13:20Z"}, {1}),
    ({"ingest_time": {"$in": [T0 + 100, "2023-11-14T22:18:20Z"]}}, {1, 3}),  # T0 + 300
    # Boolean structure.
    ({"$or": [{"namespace": "work"}, {"count": {"$gt": 1}}]}, {2, 3, 4}),
    ({"$and": [{"namespace": "default"}, {"$not": {"source": "slack"}}]}, {2}),
    ({"$not": {"$or": [{"team": "infra"}, {"flag": False}]}}, {2, 4}),
    ({"namespace": "work", "$or": [{"ordinal": 1}, {"n": "5"}]}, {3, 4}),
]


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    for row in ROWS:
        db.execute(
            "INSERT INTO memories (id, namespace, text, hash, source, document, ordinal,"
            " event_time, ingest_time, meta, count) VALUES (:id, :namespace, 't', :id,"
            " :source, :document, :ordinal, :event_time, :ingest_time, :meta, :count)",
            {**row, "meta": json.dumps(row["meta"])},
        )
    yield db
    db.close()


@pytest.mark.parametrize(("where", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_sql_returns_expected_ids(
    conn: sqlite3.Connection, where: dict[str, Any], expected: set[int]
) -> None:
    sql, params = compile_filter(where)
    got = {i for (i,) in conn.execute(f"SELECT id FROM memories m WHERE {sql}", params)}
    assert got == expected


@pytest.mark.parametrize(("where", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_predicate_returns_expected_ids(where: dict[str, Any], expected: set[int]) -> None:
    keep = to_predicate(where)
    assert {row["id"] for row in ROWS if keep(row)} == expected
