"""The filter AST and the mapping DSL that builds it.

A filter restricts recall to memories whose columns or metadata match conditions. It is
written as a chroma/Mongo-style mapping and parsed into an immutable tree::

    {"team": "infra"}                                  # equality
    {"team": {"$in": ["infra", "ml"]}, "year": {"$gte": 2023}}   # several keys: AND
    {"$or": [{"source": "slack"}, {"meta.source": "slack"}]}
    {"$not": {"event_time": {"$lt": "2024-01-01T00:00:00Z"}}}

Fields:
    ``namespace``, ``source``, ``document``, ``ordinal``, ``event_time``, ``ingest_time``,
    ``count`` and ``id`` are columns of the ``memories`` table. Every other name is a
    metadata key; dots walk into nested objects (``"a.b"`` is ``meta["a"]["b"]``), and a
    ``meta.`` prefix forces metadata (``"meta.source"`` is the metadata key ``source``).
    Metadata keys must not contain ``"``, ``\\`` or control characters; a key that contains
    a dot is reachable only through a :class:`Field` built directly (``Field(("a.b",))``).

Values:
    ``str``, ``int`` (64-bit), finite ``float``, ``bool`` and ``None``; lists for ``$in`` and
    ``$nin``. Text columns take strings; number columns take numbers; the time columns
    (``event_time``, ``ingest_time``) also take ``datetime``/``date`` objects and ISO-8601
    strings, converted to UTC epoch seconds when parsed (naive times are UTC).

Semantics (two-valued: every condition is true or false, never unknown):
    * A missing metadata key, a JSON ``null`` and an SQL ``NULL`` column are all *absent*.
    * Values have a kind: number (``int``/``float``), text, bool, or other (arrays, objects).
      ``bool`` is its own kind: ``True`` never equals ``1``. Values of different kinds are
      never equal and never ordered, so ``{"n": {"$gt": 1}}`` skips ``n == "5"``.
    * ``$eq x``: the value has x's kind and equals x. ``$eq None``: the value is absent.
    * ``$ne x``: the value is present and ``$eq x`` is false. ``$ne None``: present.
    * ``$gt $gte $lt $lte x`` (x a number or a string): same kind and ordered so. Strings
      order by code point.
    * ``$in xs``: ``$eq`` holds for some x in xs. ``$nin xs``: present and ``$in xs`` false.
    * ``$exists b``: whether the value is present (JSON ``null`` counts as absent).
    * ``$and``, ``$or`` and ``$not`` are the Boolean operators. Because absent values make
      comparisons false rather than unknown, ``{"$not": {"team": "infra"}}`` matches
      memories without a ``team``, while ``{"team": {"$ne": "infra"}}`` does not.
    * ``{}`` matches everything; ``{"$and": []}`` and ``{"$or": []}`` are errors.

Depth:
    A filter tree may be at most :data:`MAX_DEPTH` (32) levels deep, counting a comparison
    as one level and each ``$and``, ``$or`` and ``$not`` above it (and the ``$and`` implied
    by a mapping with several conditions) as one more. Deeper filters are refused with
    :class:`~engramdb.errors.InvalidFilterError` before anything recurses into them, so
    :func:`parse_filter`, ``compile_filter`` and ``to_predicate`` never exhaust the stack.
    ``a & b & c`` builds one flat ``And``, so chains of ``&`` and ``|`` do not add depth.

Limits of the SQL form (which the store must respect when it writes ``meta``):
    * SQLite matches JSON keys byte for byte against the stored text, so ``meta`` must be
      written with ``json.dumps(meta, ensure_ascii=False)`` for non-ASCII keys to match.
    * Metadata integers must fit in 64 bits, and metadata strings must not contain U+0000
      (SQLite reads larger integers as floats and cuts strings at a NUL).

Nodes can also be built directly and combined with ``&``, ``|`` and ``~``::

    Compare(Field.parse("team"), "$eq", "infra") & ~Compare(Field.parse("id"), "$in", (1, 2))
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal, TypeAlias, get_args

from engramdb.errors import InvalidFilterError

__all__ = [
    "COLUMNS",
    "MAX_DEPTH",
    "And",
    "Compare",
    "Field",
    "Filter",
    "FilterLike",
    "Not",
    "Op",
    "Or",
    "Scalar",
    "parse_filter",
]

Op = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"]
"""A comparison operator."""
Scalar: TypeAlias = str | int | float | bool | None
"""A value a field is compared with."""

OPERATORS: frozenset[str] = frozenset(get_args(Op))
ORDERING: frozenset[str] = frozenset({"$gt", "$gte", "$lt", "$lte"})
LOGICAL: frozenset[str] = frozenset({"$and", "$or", "$not"})
TEXT_COLUMNS: frozenset[str] = frozenset({"namespace", "source", "document"})
NUMBER_COLUMNS: frozenset[str] = frozenset({"ordinal", "event_time", "ingest_time", "count", "id"})
TIME_COLUMNS: frozenset[str] = frozenset({"event_time", "ingest_time"})
NOT_NULL_COLUMNS: frozenset[str] = frozenset({"namespace", "ingest_time", "count", "id"})
COLUMNS: frozenset[str] = TEXT_COLUMNS | NUMBER_COLUMNS
"""The ``memories`` columns a filter can name; every other field is metadata."""

MAX_DEPTH = 32
"""The most levels a filter tree may have (a comparison is one level; see "Depth" above)."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_META_PREFIX = "meta."
_SHOW = reprlib.Repr()
_SHOW.maxlevel, _SHOW.maxstring, _SHOW.maxother = 3, 80, 80
_SHOW.maxdict = _SHOW.maxlist = _SHOW.maxtuple = _SHOW.maxset = 8


def _show(value: object) -> str:
    """A short ``repr`` for messages; safe on values nested arbitrarily deep."""
    return _SHOW.repr(value)


def _too_deep() -> InvalidFilterError:
    return InvalidFilterError(
        f"filter is nested more than {MAX_DEPTH} levels deep ($and/$or/$not; "
        "engramdb.filter.MAX_DEPTH); flatten it, e.g. one $and or $or with many conditions"
    )


def _listing(names: frozenset[str]) -> str:
    return ", ".join(sorted(names))


def _check_meta_key(key: str, name: str) -> None:
    if not key:
        raise InvalidFilterError(f"field {name!r} has an empty metadata key")
    bad = [c for c in key if c in '"\\' or ord(c) < 0x20]
    if bad:
        raise InvalidFilterError(
            f"metadata key {key!r} in field {name!r} contains {bad[0]!r}; "
            "keys with quotes, backslashes or control characters cannot be filtered on"
        )


@dataclass(frozen=True, slots=True)
class Field:
    """A column of ``memories`` or a path into its metadata.

    Attributes:
        path: the column name as a 1-tuple, or the metadata keys from the outside in.
        is_column: whether ``path`` names a column.
    """

    path: tuple[str, ...]
    is_column: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.path, tuple) or not self.path:
            raise InvalidFilterError(
                f"a field path must be a non-empty tuple, got {_show(self.path)}"
            )
        if self.is_column:
            if len(self.path) != 1 or self.path[0] not in COLUMNS:
                raise InvalidFilterError(
                    f"unknown column {'.'.join(map(str, self.path))!r}; "
                    f"columns: {_listing(COLUMNS)}"
                )
            return
        for key in self.path:
            if not isinstance(key, str):
                raise InvalidFilterError(f"metadata keys must be strings, got {key!r}")
            _check_meta_key(key, ".".join(map(str, self.path)))

    @classmethod
    def parse(cls, name: str) -> Field:
        """Turn a DSL field name into a field: a column, ``a.b`` or ``meta.<key>``.

        Raises:
            InvalidFilterError: the name is empty, starts with ``$`` or has an empty key.
        """
        if not isinstance(name, str) or not name:
            raise InvalidFilterError(f"a field name must be a non-empty string, got {name!r}")
        if name.startswith("$"):
            raise InvalidFilterError(f"{name!r} is not a field name (names cannot start with $)")
        if name in COLUMNS:
            return cls((name,), is_column=True)
        keys = name.removeprefix(_META_PREFIX) if name.startswith(_META_PREFIX) else name
        parts = tuple(keys.split("."))
        for key in parts:
            if not key:
                raise InvalidFilterError(f"field {name!r} has an empty metadata key")
        return cls(parts)

    @property
    def name(self) -> str:
        """The field as the DSL writes it (``meta.`` is added where a column would shadow it)."""
        dotted = ".".join(self.path)
        if not self.is_column and (dotted.split(".")[0] in COLUMNS or dotted.startswith("meta.")):
            return _META_PREFIX + dotted
        return dotted


class _Node:
    """Boolean combinators shared by every filter node."""

    __slots__ = ()

    def __and__(self, other: Filter) -> And:
        return And(_flat(And, _as_filter(self)) + _flat(And, _as_filter(other)))

    def __or__(self, other: Filter) -> Or:
        return Or(_flat(Or, _as_filter(self)) + _flat(Or, _as_filter(other)))

    def __invert__(self) -> Not:
        return Not(_as_filter(self))


def _as_filter(node: object) -> Filter:
    if not isinstance(node, Compare | And | Or | Not):
        raise InvalidFilterError(f"expected a filter node, got {type(node).__name__}")
    return node


def _flat(kind: type[And | Or], node: Filter) -> tuple[Filter, ...]:
    """``node``'s children when it is a non-empty ``kind`` node, else ``(node,)``."""
    if isinstance(node, kind) and node.children:
        return node.children
    return (node,)


def _check_children(children: object) -> None:
    if not isinstance(children, tuple):
        raise InvalidFilterError(f"children must be a tuple of filters, got {_show(children)}")
    for child in children:
        _as_filter(child)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _check_scalar(value: object, where: str) -> None:
    kind = _kind(value)
    if kind not in ("null", "bool", "number", "text"):
        raise InvalidFilterError(
            f"{where}: values must be str, int, float, bool or None, got {kind} {_show(value)}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilterError(f"{where}: {value!r} is not a finite number")
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidFilterError(f"{where}: {value} does not fit in a signed 64-bit integer")
    if isinstance(value, str) and "\x00" in value:
        raise InvalidFilterError(f"{where}: strings cannot contain NUL characters")


def _check_column_value(column: str, value: object, where: str) -> None:
    kind = _kind(value)
    if kind == "null":
        return
    wanted = "text" if column in TEXT_COLUMNS else "number"
    if kind != wanted:
        hint = " (or a datetime / ISO-8601 string)" if column in TIME_COLUMNS else ""
        raise InvalidFilterError(
            f"{where}: column {column!r} holds {wanted}s{hint}, got {kind} {value!r}"
        )


def _check_operand(field: Field, op: str, value: object) -> None:
    where = f"{field.name!r} {op}"
    if not isinstance(op, str) or op not in OPERATORS:
        raise InvalidFilterError(f"unknown operator {op!r}; valid operators: {_listing(OPERATORS)}")
    if op == "$exists":
        if not isinstance(value, bool):
            raise InvalidFilterError(f"{where} takes true or false, got {_show(value)}")
        return
    if op in ("$in", "$nin"):
        if not isinstance(value, tuple):
            raise InvalidFilterError(f"{where} takes a list of values, got {_show(value)}")
        items: tuple[object, ...] = value
    else:
        if op in ORDERING and _kind(value) not in ("number", "text"):
            raise InvalidFilterError(f"{where} takes a number or a string, got {_show(value)}")
        items = (value,)
    for item in items:
        _check_scalar(item, where)
        if field.is_column:
            _check_column_value(field.path[0], item, where)


@dataclass(frozen=True, slots=True)
class Compare(_Node):
    """``field op value``: one comparison (see the module docstring for its meaning).

    Values must already be normalized: tuples for ``$in``/``$nin`` and epoch seconds for
    the time columns (:func:`parse_filter` converts lists, datetimes and ISO strings).

    Raises:
        InvalidFilterError: the operator is unknown or the value does not suit it or the field.
    """

    field: Field
    op: Op
    value: Scalar | tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.field, Field):
            raise InvalidFilterError(f"Compare.field must be a Field, got {_show(self.field)}")
        _check_operand(self.field, self.op, self.value)


@dataclass(frozen=True, slots=True)
class And(_Node):
    """True when every child is; ``And(())`` matches everything."""

    children: tuple[Filter, ...]

    def __post_init__(self) -> None:
        _check_children(self.children)


@dataclass(frozen=True, slots=True)
class Or(_Node):
    """True when some child is; ``Or(())`` matches nothing."""

    children: tuple[Filter, ...]

    def __post_init__(self) -> None:
        _check_children(self.children)


@dataclass(frozen=True, slots=True)
class Not(_Node):
    """True when the child is false."""

    child: Filter

    def __post_init__(self) -> None:
        _as_filter(self.child)


Filter: TypeAlias = Compare | And | Or | Not
"""A parsed filter: the root of an AST."""
FilterLike: TypeAlias = Filter | Mapping[str, Any]
"""A :data:`Filter` or a DSL mapping such as ``{"team": {"$in": ["infra", "ml"]}}``."""


def parse_filter(obj: FilterLike) -> Filter:
    """Parse and validate a DSL mapping (or pass a parsed filter through).

    Args:
        obj: a :data:`Filter`, or a mapping in the DSL described in the module docstring.

    Returns:
        The filter tree. ``{}`` gives ``And(())``, which matches everything.

    Raises:
        InvalidFilterError: the mapping is malformed, or the filter is more than
            :data:`MAX_DEPTH` levels deep; the message says where and why.
    """
    node = obj if isinstance(obj, Compare | And | Or | Not) else _parse(obj, "filter", 1)
    if _depth(node) > MAX_DEPTH:
        raise _too_deep()
    return node


def _depth(node: Filter) -> int:
    """The number of levels of a filter tree (a comparison alone is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Filter, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(current, Not):
            stack.append((current.child, depth + 1))
        elif isinstance(current, And | Or):
            stack.extend((child, depth + 1) for child in current.children)
    return deepest


def _parse(obj: object, loc: str, level: int) -> Filter:
    # ``level`` counts the mappings around ``obj``; each adds at least one level to the
    # tree, so stopping here bounds the recursion and agrees with filter_depth.
    if isinstance(obj, Compare | And | Or | Not):
        return obj
    if not isinstance(obj, Mapping):
        raise InvalidFilterError(
            f"{loc}: a filter must be a mapping or a Filter, got {type(obj).__name__}"
        )
    if level > MAX_DEPTH:
        raise _too_deep()
    parts: list[Filter] = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise InvalidFilterError(f"{loc}: keys must be strings, got {_show(key)}")
        if key.startswith("$"):
            parts.append(_parse_logical(key, value, f"{loc}[{key!r}]", level))
        else:
            parts.extend(_parse_field(key, value, f"{loc}[{key!r}]"))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _parse_logical(key: str, value: object, loc: str, level: int) -> Filter:
    if key == "$not":
        return Not(_parse(value, loc, level + 1))
    if key not in LOGICAL:
        hint = (
            f" ({key} needs a field: {{'field': {{{key!r}: value}}}})" if key in OPERATORS else ""
        )
        raise InvalidFilterError(
            f"{loc}: unknown operator {key!r} at this level{hint}; "
            f"valid: {_listing(LOGICAL)} or a field name"
        )
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise InvalidFilterError(f"{loc}: {key} takes a list of filters, got {_show(value)}")
    if not value:
        raise InvalidFilterError(f"{loc}: {key} needs at least one filter, got an empty list")
    children = tuple(_parse(item, f"{loc}[{i}]", level + 1) for i, item in enumerate(value))
    return And(children) if key == "$and" else Or(children)


def _parse_field(name: str, value: object, loc: str) -> list[Compare]:
    try:
        field = Field.parse(name)
    except InvalidFilterError as exc:
        raise InvalidFilterError(f"{loc}: {exc}") from None
    if not isinstance(value, Mapping):
        return [_make_compare(field, "$eq", value, loc)]
    if not value:
        raise InvalidFilterError(
            f"{loc}: empty operator mapping; use e.g. {{{name!r}: {{'$eq': value}}}}"
        )
    plain = [k for k in value if not (isinstance(k, str) and k.startswith("$"))]
    if plain:
        raise InvalidFilterError(
            f"{loc}: expected operators ({_listing(OPERATORS)}), got key {plain[0]!r}; "
            f"to reach a nested metadata key write {name + '.' + str(plain[0])!r}"
        )
    return [_make_compare(field, op, operand, f"{loc}[{op!r}]") for op, operand in value.items()]


def _make_compare(field: Field, op: str, operand: object, loc: str) -> Compare:
    value: object = operand
    if op in ("$in", "$nin"):
        if isinstance(operand, str | bytes) or not isinstance(operand, Sequence):
            raise InvalidFilterError(f"{loc}: {op} takes a list of values, got {_show(operand)}")
        value = tuple(operand)
    if field.is_column and field.path[0] in TIME_COLUMNS and op != "$exists":
        value = _normalize_time(value, loc)
    try:
        return Compare(field, op, value)  # type: ignore[arg-type]
    except InvalidFilterError as exc:
        raise InvalidFilterError(f"{loc}: {exc}") from None


def _normalize_time(value: object, loc: str) -> object:
    if isinstance(value, tuple):
        return tuple(_to_epoch(v, loc) for v in value)
    return _to_epoch(value, loc)


def _to_epoch(value: object, loc: str) -> object:
    """Turn a datetime, date or ISO-8601 string into UTC epoch seconds; pass others through."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidFilterError(
                f"{loc}: {value!r} is not an ISO-8601 date or time "
                "(e.g. '2024-05-01' or '2024-05-01T12:00:00+02:00')"
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return value
