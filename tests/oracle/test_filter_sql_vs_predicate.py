"""The SQL compiler against the Python predicate, on hypothesis-generated rows and filters.

Rows go into an in-memory database built from the real core migration; for every filter
the ids that ``SELECT id FROM memories m WHERE <sql>`` returns must be the ids the Python
predicate accepts, and the SQL must never evaluate to NULL (the semantics are two-valued).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
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

# A small mixed pool makes equal values, and values of other kinds, common on every key;
# the edge values and free-form strategies add what a pool would miss.
SMALL = [0, "", True, None, 1, "1", False, 1.0, "infra", 0.5, -1, "ml", 2, -0.0, "Infra", 0.0]
EDGES = [
    2**53,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    2.0**53,
    2.0**63,
    -(2.0**63),
    1e9 + 0.5,
    "é",
    "\U0001f600",
    "a b",
    "z",
]
free_texts = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=3
)
free_numbers = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def _scalars(draw: st.DrawFn) -> Any:
    # Weighted by hand: one_of() would give the free-form strategies most of the draws.
    branch = draw(st.integers(0, 9))
    if branch < 6:
        return draw(st.sampled_from(SMALL))
    if branch < 8:
        return draw(st.sampled_from(EDGES))
    return draw(free_texts if branch == 8 else free_numbers)


scalars = _scalars()
nested = st.dictionaries(
    st.sampled_from(["b", "c"]),
    scalars | st.fixed_dictionaries({}, optional={"c": scalars}),
    max_size=2,
)


@st.composite
def _json_values(draw: st.DrawFn) -> Any:
    branch = draw(st.integers(0, 9))
    if branch < 7:
        return draw(scalars)
    return draw(st.lists(scalars, max_size=2) if branch < 8 else nested)


json_values = _json_values()
BOOLISH = [True, False, 0, 1, 0.0, 1.0, None, "1", "true", -1]
metas = st.fixed_dictionaries(
    {},
    optional={
        "k": json_values,
        "n": free_numbers | st.sampled_from(EDGES[:8] + [0, 1, 0.5, -1]),
        "flag": st.sampled_from(BOOLISH),  # booleans against the numbers SQLite reads them as
        "source": free_texts | st.sampled_from(["infra", "ml", "1", ""]),
        "meta": json_values,
        "a": nested | json_values,
        "é": json_values,
    },
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCHS = [0.0, 1.5, 1e9, 1_700_000_000.25, 1_700_000_000.0]
epochs = st.sampled_from(EPOCHS) | st.floats(-1e10, 1e10, allow_nan=False)
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "namespace": st.sampled_from(["default", "a", "b"]),
            "source": st.none() | st.sampled_from(["slack", "x", "1", ""]),
            "document": st.none() | st.sampled_from(["d1", "d2", ""]),
            "ordinal": st.none() | st.sampled_from([-1, 0, 1, 2, 10]),
            "event_time": st.none() | epochs,
            "ingest_time": epochs,
            "count": st.integers(1, 3),
            "meta": metas,
        }
    ),
    min_size=1,
    max_size=8,
)

TEXT_COLUMNS = ["namespace", "source", "document"]
NUMBER_COLUMNS = ["ordinal", "count", "id", "ingest_time", "event_time"]
TIME_COLUMNS = ["event_time", "ingest_time"]
META_FIELDS = ["k", "n", "flag", "meta.source", "meta.meta", "a", "a.b", "a.b.c", "é", "missing"]
FIELDS = TEXT_COLUMNS + NUMBER_COLUMNS + META_FIELDS * 2  # metadata is where kinds mix
OPS = ["", "$eq", "$ne", "$in", "$nin", "$exists", "$gt", "$gte", "$lt", "$lte"]


def _scalars_in(value: Any) -> list[Any]:
    """Every scalar in a row or a JSON value, to draw filter operands that hit."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _scalars_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _scalars_in(v)]
    return [value]


def _fits(field: str, ordered: bool) -> Callable[[Any], bool]:
    """Which values a comparison on ``field`` may use (``ordered``: for $gt and friends)."""
    if field in TEXT_COLUMNS:
        return lambda v: isinstance(v, str)
    if field in NUMBER_COLUMNS or ordered:
        kinds: tuple[type, ...] = (int, float) if field in NUMBER_COLUMNS else (int, float, str)
        return lambda v: isinstance(v, kinds) and not isinstance(v, bool)
    return lambda v: True


Draw = Callable[[st.SearchStrategy[Any]], Any]
"""``data.draw``: drawing with plain functions avoids building a strategy per node."""

PICKS = [st.integers(0, n - 1) for n in range(1, 200)]


def _pick(draw: Draw, items: list[Any]) -> Any:
    return items[draw(PICKS[min(len(items), len(PICKS)) - 1])]


def _operand(draw: Draw, field: str, pool: list[Any], *, ordered: bool = False) -> Any:
    """A value seen in the rows (so that filters match some), a pool value or a fresh one."""
    fits = _fits(field, ordered)
    candidates = [v for v in pool + SMALL + EDGES if fits(v)]
    if field in TIME_COLUMNS and draw(st.booleans()):
        seconds = _pick(draw, [v for v in candidates if abs(v) < 1e10])
        moment = EPOCH + timedelta(seconds=seconds)
        return _pick(draw, [moment, moment.isoformat(), moment.replace(tzinfo=None)])
    branch = draw(PICKS[9])
    if branch < 5:
        return _pick(draw, candidates)
    if branch < 7 and not ordered:  # None and booleans: the kinds SQL gets wrong most easily
        return None if branch == 5 else draw(st.booleans()) if field in META_FIELDS else None
    if field in TEXT_COLUMNS:
        return draw(free_texts)
    if field in NUMBER_COLUMNS:
        return draw(free_numbers)
    return draw(free_texts | free_numbers) if ordered else draw(scalars)


def comparison(draw: Draw, pool: list[Any]) -> dict[str, Any]:
    field, op = _pick(draw, FIELDS), _pick(draw, OPS)
    if op == "$exists":
        return {field: {op: draw(st.booleans())}}
    if op in ("$in", "$nin"):
        return {field: {op: [_operand(draw, field, pool) for _ in range(draw(PICKS[3]))]}}
    value = _operand(draw, field, pool, ordered=op.startswith(("$g", "$l")))
    return {field: value} if op == "" else {field: {op: value}}


SHAPES = ["leaf", "leaf", "$and", "$or", "$not", "implicit"]


def tree(draw: Draw, pool: list[Any], depth: int = 0) -> dict[str, Any]:
    """Nested $and/$or/$not and implicit-AND mappings over comparisons."""
    shape = _pick(draw, SHAPES)
    if depth >= 3 or shape == "leaf":
        return comparison(draw, pool)
    if shape == "$not":
        return {"$not": tree(draw, pool, depth + 1)}
    parts = [tree(draw, pool, depth + 1) for _ in range(1 + draw(PICKS[2]))]
    if shape == "implicit":  # several keys in one mapping; a repeated key keeps the last
        return {key: value for part in parts for key, value in part.items()}
    return {shape: parts}


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
@given(rows=rows_strategy, data=st.data())
def test_sql_matches_predicate(rows: list[dict[str, Any]], data: st.DataObject) -> None:
    pool = _scalars_in(rows)
    leaves = [comparison(data.draw, pool) for _ in range(6)]
    trees = [tree(data.draw, pool) for _ in range(2)]
    with _database() as conn:
        stored = _load(conn, rows)
        conn.row_factory = sqlite3.Row
        read_back = [dict(r) for r in conn.execute("SELECT * FROM memories")]
        conn.row_factory = None
        for f in leaves + trees:
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
    # A parsed filter compiles the same, under another alias.
    other, other_params = compile_filter(parse_filter(f), alias="mem")
    assert other_params == params
    assert other == where.replace("m.", "mem.")
