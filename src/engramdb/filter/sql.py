"""Compile a filter to an SQLite ``WHERE`` fragment over the ``memories`` table.

Every value and every metadata path is a ``?`` parameter; only fixed column names and SQL
keywords are written into the text. The fragment is two-valued, like the semantics in
:mod:`engramdb.filter.expr`: each leaf evaluates to 0 or 1, never ``NULL``, so ``NOT``
means what it says. Comparisons are guarded by the value's kind (``json_type`` for
metadata), because SQLite would otherwise order numbers before text and read JSON booleans
as 1 and 0. Column comparisons stay plain (``m."source" = ?``) so indexes can serve them.

Example:
    >>> sql, params = compile_filter({"source": "slack", "team": {"$in": ["infra", "ml"]}})
    >>> print(sql)  # doctest: +NORMALIZE_WHITESPACE
    ((m."source" IS NOT NULL AND m."source" = ?) AND
     (json_type(m.meta, ?) IS 'text' AND json_extract(m.meta, ?) IN (?, ?)))
    >>> params
    ['slack', '$."team"', '$."team"', 'infra', 'ml']
"""

from __future__ import annotations

import re
from typing import Protocol

from engramdb.errors import InvalidInputError
from engramdb.filter.expr import (
    NOT_NULL_COLUMNS,
    And,
    Compare,
    Field,
    Filter,
    FilterLike,
    Not,
    Scalar,
    parse_filter,
)

__all__ = ["compile_filter"]

_Sql = tuple[str, tuple[object, ...]]
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ORDER_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_TRUE: _Sql = ("1", ())
_FALSE: _Sql = ("0", ())


def compile_filter(f: FilterLike, alias: str = "m") -> tuple[str, list[object]]:
    """Compile a filter to ``(where_sql, params)`` for ``SELECT ... FROM memories AS alias``.

    Args:
        f: a parsed filter or a DSL mapping.
        alias: the table alias the fragment refers to.

    Returns:
        The fragment, with ``?`` placeholders only, and its parameters in order.

    Raises:
        InvalidFilterError: ``f`` is a malformed mapping.
        InvalidInputError: ``alias`` is not a plain SQL identifier.
    """
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidInputError(f"alias must be a plain SQL identifier, got {alias!r}")
    sql, params = _node(parse_filter(f), alias)
    return sql, list(params)


def _node(node: Filter, alias: str) -> _Sql:
    if isinstance(node, Compare):
        return _compare(node, _target(node.field, alias))
    if isinstance(node, Not):
        sql, params = _node(node.child, alias)
        return f"(NOT {sql})", params
    parts = [_node(child, alias) for child in node.children]
    if isinstance(node, And):
        return _join("AND", parts, empty=_TRUE)
    return _join("OR", parts, empty=_FALSE)


def _join(op: str, parts: list[_Sql], *, empty: _Sql) -> _Sql:
    if not parts:
        return empty
    if len(parts) == 1:
        return parts[0]
    sql = "(" + f" {op} ".join(p[0] for p in parts) + ")"
    return sql, tuple(param for p in parts for param in p[1])


class _Target(Protocol):
    """How to read one field in SQL."""

    def present(self) -> _Sql: ...

    def absent(self) -> _Sql: ...

    def match(self, kind: str, op: str, values: tuple[Scalar, ...]) -> _Sql:
        """``value op values`` for values of one kind, 0 when the field has another kind."""
        ...


class _Column:
    def __init__(self, name: str, alias: str):
        self.ref = f'{alias}."{name}"'
        self.nullable = name not in NOT_NULL_COLUMNS

    def present(self) -> _Sql:
        return (f"{self.ref} IS NOT NULL", ()) if self.nullable else _TRUE

    def absent(self) -> _Sql:
        return (f"{self.ref} IS NULL", ()) if self.nullable else _FALSE

    def match(self, kind: str, op: str, values: tuple[Scalar, ...]) -> _Sql:
        # Parsing checked that the values have the column's kind.
        test = f"{self.ref} {op} {_placeholders(op, values)}"
        if self.nullable:
            test = f"({self.ref} IS NOT NULL AND {test})"
        return test, values


class _Meta:
    def __init__(self, path: tuple[str, ...], alias: str):
        self.json_path = "$" + "".join(f'."{key}"' for key in path)
        self.meta = f"{alias}.meta"

    def present(self) -> _Sql:
        return f"json_extract({self.meta}, ?) IS NOT NULL", (self.json_path,)

    def absent(self) -> _Sql:
        return f"json_extract({self.meta}, ?) IS NULL", (self.json_path,)

    def match(self, kind: str, op: str, values: tuple[Scalar, ...]) -> _Sql:
        if kind == "bool":  # only = and IN reach here
            names = sorted({"true" if v else "false" for v in values})
            quoted = ", ".join(f"'{name}'" for name in names)
            return f"IFNULL(json_type({self.meta}, ?), '') IN ({quoted})", (self.json_path,)
        if kind == "text":
            guard = f"json_type({self.meta}, ?) IS 'text'"
        else:
            guard = f"IFNULL(json_type({self.meta}, ?), '') IN ('integer', 'real')"
        test = f"json_extract({self.meta}, ?) {op} {_placeholders(op, values)}"
        return f"({guard} AND {test})", (self.json_path, self.json_path, *values)


def _target(field: Field, alias: str) -> _Target:
    if field.is_column:
        return _Column(field.path[0], alias)
    return _Meta(field.path, alias)


def _placeholders(op: str, values: tuple[Scalar, ...]) -> str:
    return "(" + ", ".join("?" * len(values)) + ")" if op == "IN" else "?"


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "bool"
    return "text" if isinstance(value, str) else "number"


def _one_of(target: _Target, values: tuple[Scalar, ...]) -> _Sql:
    parts = [target.absent()] if None in values else []
    for kind in ("bool", "number", "text"):
        group = tuple(v for v in values if v is not None and _kind(v) == kind)
        if group:
            parts.append(target.match(kind, "IN", group))
    return _join("OR", parts, empty=_FALSE)


def _present_and_not(target: _Target, test: _Sql) -> _Sql:
    present, p1 = target.present()
    return f"({present} AND NOT {test[0]})", p1 + test[1]


def _compare(node: Compare, target: _Target) -> _Sql:
    op, value = node.op, node.value
    if op == "$exists":
        return target.present() if value else target.absent()
    if isinstance(value, tuple):
        test = _one_of(target, value)
        return test if op == "$in" else _present_and_not(target, test)
    if value is None:
        return target.absent() if op == "$eq" else target.present()
    if op in _ORDER_SQL:
        return target.match(_kind(value), _ORDER_SQL[op], (value,))
    test = target.match(_kind(value), "=", (value,))
    return test if op == "$eq" else _present_and_not(target, test)
