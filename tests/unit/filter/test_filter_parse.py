"""Parsing the mapping DSL into the filter AST, and its validation errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from engramdb.errors import EngramError, InvalidFilterError
from engramdb.filter import COLUMNS, And, Compare, Field, Not, Or, parse_filter


def meta(*path: str) -> Field:
    return Field(path)


def column(name: str) -> Field:
    return Field((name,), is_column=True)


def test_parse_equality_shorthand() -> None:
    assert parse_filter({"team": "infra"}) == Compare(meta("team"), "$eq", "infra")


def test_parse_several_keys_mean_and() -> None:
    got = parse_filter({"team": {"$in": ["infra", "ml"]}, "year": {"$gte": 2023, "$lt": 2025}})
    assert got == And(
        (
            Compare(meta("team"), "$in", ("infra", "ml")),
            Compare(meta("year"), "$gte", 2023),
            Compare(meta("year"), "$lt", 2025),
        )
    )


def test_parse_logical_operators() -> None:
    got = parse_filter({"$or": [{"a": 1}, {"$not": {"b": {"$exists": True}}}], "$and": [{"c": 2}]})
    assert got == And(
        (
            Or((Compare(meta("a"), "$eq", 1), Not(Compare(meta("b"), "$exists", True)))),
            And((Compare(meta("c"), "$eq", 2),)),
        )
    )


def test_parse_empty_mapping_matches_everything() -> None:
    assert parse_filter({}) == And(())


def test_parse_passes_filters_through() -> None:
    f = Compare(column("id"), "$in", (1, 2))
    assert parse_filter(f) is f
    assert parse_filter({"$and": [f, {"x": 1}]}) == And((f, Compare(meta("x"), "$eq", 1)))


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_parse_column_names(name: str) -> None:
    value: Any = "v" if name in ("namespace", "source", "document") else 1
    assert parse_filter({name: value}) == Compare(column(name), "$eq", value)


def test_parse_meta_prefix_and_dotted_paths() -> None:
    assert parse_filter({"meta.source": "x"}).field == meta("source")  # type: ignore[union-attr]
    assert parse_filter({"a.b.c": 1}).field == meta("a", "b", "c")  # type: ignore[union-attr]
    assert parse_filter({"meta": 1}).field == meta("meta")  # type: ignore[union-attr]
    assert parse_filter({"meta.meta.x": 1}).field == meta("meta", "x")  # type: ignore[union-attr]
    assert parse_filter({"text": "x"}).field == meta("text")  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["team", "a.b", "meta.source", "meta.meta.x", "meta", "source"])
def test_field_name_round_trips(name: str) -> None:
    assert Field.parse(Field.parse(name).name) == Field.parse(name)


T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    "value",
    [
        T0,
        int(T0),
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        datetime(2023, 11, 14, 22, 13, 20),  # naive: UTC
        datetime(2023, 11, 14, 23, 13, 20, tzinfo=timezone(timedelta(hours=1))),
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20+00:00",
        "2023-11-14 22:13:20",
        "2023-11-15T00:13:20+02:00",
    ],
)
def test_parse_time_values_to_epoch_seconds(value: Any) -> None:
    got = parse_filter({"event_time": {"$gte": value}})
    assert got == Compare(column("event_time"), "$gte", T0)


def test_parse_dates_are_utc_midnight() -> None:
    expected = datetime(2023, 11, 14, tzinfo=UTC).timestamp()
    for value in (date(2023, 11, 14), "2023-11-14"):
        got = parse_filter({"ingest_time": {"$in": [value]}})
        assert got == Compare(column("ingest_time"), "$in", (expected,))


def test_time_strings_stay_strings_in_metadata() -> None:
    got = parse_filter({"meta.event_time": "2023-11-14"})
    assert got == Compare(meta("event_time"), "$eq", "2023-11-14")


def test_combinators_build_nodes() -> None:
    a, b = Compare(meta("a"), "$eq", 1), Compare(column("id"), "$gt", 3)
    assert a & b == And((a, b))
    assert a | b == Or((a, b))
    assert ~a == Not(a)


def test_filters_are_hashable() -> None:
    f = parse_filter({"$or": [{"a": {"$in": [1, "x", None]}}, {"b": True}]})
    assert hash(f) == hash(parse_filter({"$or": [{"a": {"$in": [1, "x", None]}}, {"b": True}]}))


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"a": {"$gtt": 1}}, r"unknown operator '\$gtt'; valid operators: \$eq, \$exists, \$gt"),
        ({"$xor": []}, r"unknown operator '\$xor' at this level; valid: \$and, \$not, \$or"),
        ({"$eq": 1}, r"\$eq needs a field"),
        ({"$and": []}, r"\$and needs at least one filter"),
        ({"$or": []}, r"\$or needs at least one filter"),
        ({"$and": {"a": 1}}, r"\$and takes a list of filters"),
        ({"$or": "a"}, r"\$or takes a list of filters"),
        ({"$and": [{"a": 1}, 3]}, r"filter\['\$and'\]\[1\]: a filter must be a mapping"),
        ({"$not": [{"a": 1}]}, r"a filter must be a mapping or a Filter, got list"),
        ({"a": {"$in": "abc"}}, r"\$in takes a list of values"),
        ({"a": {"$nin": 3}}, r"\$nin takes a list of values"),
        ({"a": {"$exists": 1}}, r"\$exists takes true or false"),
        ({"a": {"$gt": None}}, r"\$gt takes a number or a string"),
        ({"a": {"$lte": True}}, r"\$lte takes a number or a string"),
        ({"a": [1, 2]}, r"values must be str, int, float, bool or None, got list"),
        ({"a": {"$in": [[1]]}}, r"values must be str, int, float, bool or None, got list"),
        ({"a": datetime(2024, 1, 1)}, r"got datetime"),
        ({"a": float("nan")}, r"is not a finite number"),
        ({"a": float("inf")}, r"is not a finite number"),
        ({"a": 2**63}, r"does not fit in a signed 64-bit integer"),
        ({"a": "x\x00y"}, r"NUL"),
        ({"a": {}}, r"empty operator mapping"),
        ({"a": {"b": 1}}, r"got key 'b'; to reach a nested metadata key write 'a.b'"),
        ({"a": {"$eq": 1, "b": 1}}, r"got key 'b'"),
        ({"source": 3}, r"column 'source' holds texts, got number 3"),
        ({"ordinal": "3"}, r"column 'ordinal' holds numbers, got text '3'"),
        ({"count": True}, r"column 'count' holds numbers, got bool"),
        ({"id": {"$in": [1, "2"]}}, r"column 'id' holds numbers"),
        ({"event_time": "yesterday"}, r"'yesterday' is not an ISO-8601 date or time"),
        ({"event_time": True}, r"holds numbers \(or a datetime / ISO-8601 string\), got bool"),
        ({"a..b": 1}, r"field 'a..b' has an empty metadata key"),
        ({"meta.": 1}, r"has an empty metadata key"),
        ({"a.": 1}, r"has an empty metadata key"),
        ({'a"b': 1}, r"contains '\"'"),
        ({"a\\b": 1}, r"contains '\\\\'"),
        ({"a\nb": 1}, r"contains '\\n'"),
        ({1: 1}, r"keys must be strings"),
    ],
)
def test_parse_rejects(where: dict[Any, Any], message: str) -> None:
    with pytest.raises(InvalidFilterError, match=message):
        parse_filter(where)


def test_errors_say_where() -> None:
    with pytest.raises(InvalidFilterError, match=r"^filter\['\$or'\]\[1\]\['n'\]\['\$gt'\]: "):
        parse_filter({"$or": [{"a": 1}, {"n": {"$gt": [1]}}]})


def test_invalid_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError) as info:
        parse_filter({"a": {"$bad": 1}})
    assert isinstance(info.value, EngramError)
    assert info.value.code == 400


@pytest.mark.parametrize("obj", [None, "team=infra", [{"a": 1}], 3])
def test_parse_rejects_non_mappings(obj: Any) -> None:
    with pytest.raises(InvalidFilterError, match="a filter must be a mapping or a Filter"):
        parse_filter(obj)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(InvalidFilterError, match="takes a list of values"):
        Compare(meta("a"), "$in", ["x"])  # type: ignore[arg-type]
    with pytest.raises(InvalidFilterError, match="unknown operator"):
        Compare(meta("a"), "$like", "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidFilterError, match="holds numbers"):
        Compare(column("event_time"), "$gt", "2024-01-01")
    with pytest.raises(InvalidFilterError, match="must be a tuple"):
        And([Compare(meta("a"), "$eq", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidFilterError, match="expected a filter node, got dict"):
        Or(({"a": 1},))  # type: ignore[arg-type]
    with pytest.raises(InvalidFilterError, match="expected a filter node"):
        Not("a")  # type: ignore[arg-type]
    with pytest.raises(InvalidFilterError, match="unknown column 'text'"):
        Field(("text",), is_column=True)
    with pytest.raises(InvalidFilterError, match="non-empty tuple"):
        Field(())
