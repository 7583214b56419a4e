"""Evaluate a filter in Python: the reference semantics that the SQL compiler must match.

The rules are those of :mod:`engramdb.filter.expr`; this module states them as plainly as
possible so that it can serve as the oracle for :mod:`engramdb.filter.sql`, and to filter
rows that are already in memory.

Example:
    >>> keep = to_predicate({"team": {"$in": ["infra", "ml"]}, "ordinal": {"$lt": 3}})
    >>> keep({"ordinal": 1, "meta": {"team": "ml"}}), keep({"ordinal": 1, "meta": {}})
    (True, False)
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

from engramdb.errors import InvalidInputError
from engramdb.filter.expr import And, Compare, Field, Filter, FilterLike, Not, Scalar, parse_filter

__all__ = ["Row", "to_predicate"]

Row = Mapping[str, Any]
"""A ``memories`` row: column name → value, with ``"meta"`` a mapping or its JSON text."""

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def to_predicate(f: FilterLike) -> Callable[[Row], bool]:
    """Build ``row -> bool`` for a filter.

    Args:
        f: a parsed filter or a DSL mapping.

    Returns:
        A function that takes a row (see :data:`Row`; missing columns read as ``NULL``) and
        says whether the filter matches it. It raises :class:`InvalidInputError` for a row
        whose ``meta`` is neither a mapping nor JSON text of an object.

    Raises:
        InvalidFilterError: ``f`` is a malformed mapping.
    """
    node = parse_filter(f)

    def predicate(row: Row) -> bool:
        return _evaluate(node, row, _meta_of(row))

    return predicate


def _meta_of(row: Row) -> Mapping[str, Any]:
    meta = row.get("meta")
    if meta is None:
        return {}
    if isinstance(meta, str | bytes):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"row meta is not valid JSON: {exc}") from None
    if not isinstance(meta, Mapping):
        raise InvalidInputError(f"row meta must be a JSON object, got {type(meta).__name__}")
    return meta


def _evaluate(node: Filter, row: Row, meta: Mapping[str, Any]) -> bool:
    if isinstance(node, Compare):
        return _compare(node, _lookup(node.field, row, meta))
    if isinstance(node, Not):
        return not _evaluate(node.child, row, meta)
    if isinstance(node, And):
        return all(_evaluate(child, row, meta) for child in node.children)
    return any(_evaluate(child, row, meta) for child in node.children)


def _lookup(field: Field, row: Row, meta: Mapping[str, Any]) -> Any:
    """The field's value; ``None`` when absent (missing key, JSON null or SQL NULL)."""
    if field.is_column:
        return row.get(field.path[0])
    value: Any = meta
    for key in field.path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "other"


def _equal(value: Any, target: Scalar) -> bool:
    if target is None:
        return value is None
    return value is not None and _kind(value) == _kind(target) and bool(value == target)


def _compare(node: Compare, value: Any) -> bool:
    op, target = node.op, node.value
    if op == "$exists":
        return (value is not None) == target
    if isinstance(target, tuple):
        found = any(_equal(value, t) for t in target)
        return found if op == "$in" else value is not None and not found
    if op == "$eq":
        return _equal(value, target)
    if op == "$ne":
        return value is not None and not _equal(value, target)
    return _kind(value) == _kind(target) and _ORDER[op](value, target)
