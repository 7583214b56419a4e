"""The SQL compiler against the Python predicate, on hypothesis-generated rows and filters.

Rows go into an in-memory database built from the real core migration; for every filter
the ids that ``SELECT id FROM memories m WHERE <sql>`` returns must be the ids the Python
predicate accepts, and the SQL must never evaluate to NULL (the semantics are two-valued).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb.filter import compile_filter, parse_filter, to_predicate

settings.register_profile(
    "filter-oracle",
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ORACLE = settings.get_profile("filter-oracle")

SCHEMA = files("engramdb").joinpath("store", "migrations", "0001_core.sql").read_text("utf-8")

# Small pools make equal values (and so matches) common; the free-form strategies add edges.
TEXTS = ["", "infra", "ml", "Infra", "10", "a b", "é", "ü", "\U0001f600", "z"]
INTS = [-1, 0, 1, 2, 10, 2**53, 2**53 + 1, 2**63 - 1, -(2**63)]
FLOATS = [0.0, -0.0, 0.5, 1.0, 1.5, 2.0, 10.0, 1e9 + 0.5, 2.0**53, 2.0**63, -(2.0**63)]
texts = st.one_of(
    st.sampled_from(TEXTS),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=3),
)
numbers = st.one_of(
    st.sampled_from(INTS),
    st.sampled_from(FLOATS),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(texts, numbers, st.booleans(), st.none())

META_KEYS = ["team", "n", "flag", "source", "a", "meta", "x"]
NESTED_KEYS = ["b", "c"]
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(NESTED_KEYS), inner, max_size=2),
    ),
    max_leaves=4,
)
metas = st.dictionaries(st.sampled_from(META_KEYS), json_values, max_size=5)

EPOCHS = [0.0, 1.5, 1e9, 1_700_000_000.25, 1_700_000_000.0]
epochs = st.one_of(st.sampled_from(EPOCHS), st.floats(-1e10, 1e10, allow_nan=False))
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "namespace": st.sampled_from(["default", "a", "b"]),
            "source": st.one_of(st.none(), st.sampled_from(["slack", "x", "y", "10"])),
            "document": st.one_of(st.none(), st.sampled_from(["d1", "d2", ""])),
            "ordinal": st.one_of(st.none(), st.sampled_from([-1, 0, 1, 2, 10])),
            "event_time": st.one_of(st.none(), epochs),
            "ingest_time": epochs,
            "count": st.integers(1, 3),
            "meta": metas,
        }
    ),
    max_size=8,
)

TEXT_COLUMNS = ["namespace", "source", "document"]
NUMBER_COLUMNS = ["ordinal", "count", "id", "ingest_time", "event_time"]
META_FIELDS = [*META_KEYS, "meta.source", "meta.meta", "a.b", "a.c", "a.b.c", "missing"]
ORDER_OPS = ["$gt", "$gte", "$lt", "$lte"]


def _times() -> st.SearchStrategy[Any]:
    """Epoch seconds, datetimes and ISO strings for the time columns."""
    base = datetime(1970, 1, 1, tzinfo=UTC)
    dts = st.sampled_from(EPOCHS).map(lambda s: base + timedelta(seconds=s))
    return st.one_of(
        epochs,
        dts,
        dts.map(lambda d: d.isoformat()),
        dts.map(lambda d: d.replace(tzinfo=None)),
    )


def _operand(field: str) -> st.SearchStrategy[Any]:
    if field in TEXT_COLUMNS:
        return texts
    if field in ("event_time", "ingest_time"):
        return _times()
    if field in NUMBER_COLUMNS:
        return numbers
    return scalars


def _ordered(field: str) -> st.SearchStrategy[Any]:
    """Operands of $gt and friends: no None and no bool."""
    return _operand(field) if field in TEXT_COLUMNS + NUMBER_COLUMNS else texts | numbers


@st.composite
def comparisons(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(TEXT_COLUMNS + NUMBER_COLUMNS + META_FIELDS))
    value = _operand(field) | st.none()
    op = draw(st.sampled_from(["", "$eq", "$ne", "$in", "$nin", "$exists", *ORDER_OPS]))
    if op == "":
        return {field: draw(value)}
    if op in ("$in", "$nin"):
        operand = draw(st.lists(value, max_size=4))
    elif op == "$exists":
        operand = draw(st.booleans())
    elif op in ORDER_OPS:
        operand = draw(_ordered(field))
    else:
        operand = draw(value)
    return {field: {op: operand}}


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: value for part in parts for key, value in part.items()}


filters = st.recursive(
    comparisons(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
        # Several keys in one mapping: an implicit AND (later duplicates win, as in a dict).
        st.lists(inner, min_size=2, max_size=3).map(_merge),
    ),
    max_leaves=8,
)


@contextmanager
def _database() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        yield db
    finally:
        db.close()


def _load(db: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stored = []
    for i, row in enumerate(rows, start=1):
        full = {**row, "id": i, "text": f"memory {i}", "hash": f"h{i}"}
        db.execute(
            "INSERT INTO memories (id, namespace, text, hash, source, document, ordinal,"
            " event_time, ingest_time, meta, count) VALUES (:id, :namespace, :text, :hash,"
            " :source, :document, :ordinal, :event_time, :ingest_time, :meta, :count)",
            {**full, "meta": json.dumps(full["meta"], ensure_ascii=False)},
        )
        stored.append(full)
    return stored


def _sql_ids(db: sqlite3.Connection, where: str, params: list[object]) -> set[int]:
    return {i for (i,) in db.execute(f"SELECT id FROM memories m WHERE {where}", params)}


@ORACLE
@given(rows=rows_strategy, dsl=st.lists(filters, min_size=1, max_size=3))
def test_sql_matches_predicate(rows: list[dict[str, Any]], dsl: list[dict[str, Any]]) -> None:
    with _database() as conn:
        stored = _load(conn, rows)
        conn.row_factory = sqlite3.Row
        read_back = [dict(r) for r in conn.execute("SELECT * FROM memories")]
        conn.row_factory = None
        for f in dsl:
            _check_filter(conn, stored, read_back, f)


def _check_filter(
    conn: sqlite3.Connection,
    stored: list[dict[str, Any]],
    read_back: list[dict[str, Any]],
    f: dict[str, Any],
) -> None:
    where, params = compile_filter(f)
    keep = to_predicate(f)
    expected = {row["id"] for row in stored if keep(row)}
    assert _sql_ids(conn, where, params) == expected, (f, where, params)
    # Two-valued: the complement is exact and nothing is NULL.
    all_ids = {row["id"] for row in stored}
    assert _sql_ids(conn, f"NOT ({where})", params) == all_ids - expected
    assert _sql_ids(conn, f"({where}) IS NULL", params) == set()
    # Rows as the store returns them (meta as JSON text, REAL columns) give the same answer.
    assert {row["id"] for row in read_back if keep(row)} == expected
    # A parsed filter compiles the same, under any alias.
    other, other_params = compile_filter(parse_filter(f), alias="mem")
    assert other_params == params
    assert other == where.replace("m.", "mem.")
