"""Turn parsed JSON values (or equivalent in-memory objects) into Records.

Shapes, detected by keys:

* a string: one record;
* an object with a text field (``text_field``, ``"text"`` or ``"content"``): one record;
  the other fields become ``meta``; an ``id`` names the record's own document; a time
  field (``event_time``, ``timestamp``, ``time``, ``date_time``, ``datetime``, ``date``,
  ``created_at``; the first present) becomes ``event_time`` and leaves ``meta``;
* an object with a ``messages`` or ``turns`` list: a chat transcript (below); its ``id``
  names the document and its other scalar fields go into every turn's ``meta``;
* a list of chat turns, i.e. objects that all have ``speaker`` or ``role`` and (at least
  one of them) a text field: one record per turn with ``chunk=False`` (a turn longer
  than :data:`MAX_UNCHUNKED_CHARS` is chunked like any other record, so that no memory
  is megabytes long), ``ordinal`` = the turn's index, the speaker/role and other fields
  in ``meta``; turns without text (images, tool calls) are skipped but keep their index;
* any other list: records (strings, objects with a text field, or transcripts).

Values nested more than :data:`MAX_JSON_DEPTH` levels deep are refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engramdb.errors import IngestError
from engramdb.ingest.normalize import normalize_text
from engramdb.ingest.timeparse import parse_time
from engramdb.types import Record

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_UNCHUNKED_CHARS",
    "RecordContext",
    "json_depth_exceeds",
    "load_records",
    "records_from_json",
]

TIME_KEYS = ("event_time", "timestamp", "time", "date_time", "datetime", "date", "created_at")
SPEAKER_KEYS = ("speaker", "role")
TRANSCRIPT_KEYS = ("messages", "turns")
_MAX_FIELDS_SHOWN = 12

MAX_JSON_DEPTH = 100
"""Deepest nesting of arrays and objects accepted in JSON input and record metadata.

Real records nest a few levels; deeper input is refused with an :class:`IngestError`
instead of exhausting the interpreter's recursion limit.
"""
MAX_UNCHUNKED_CHARS = 16_384
"""A chat turn with more characters than this is chunked like any other record."""


@dataclass(frozen=True, slots=True)
class RecordContext:
    """Where values come from, for defaults and error messages.

    Attributes:
        source: the file (or caller-given source); errors name it.
        document: the default document of every record.
        default_time: event time of records that carry none (the file's mtime).
        text_keys: candidate text fields, in order of preference.
        lines: for JSONL, the 1-based line number of each top-level row.
    """

    source: str | None
    document: str | None
    default_time: float | None
    text_keys: tuple[str, ...]
    lines: Sequence[int] | None = None

    def error(self, message: str, index: int | None = None) -> IngestError:
        """An IngestError at row ``index`` (a line number for JSONL, else "item N")."""
        if index is not None and self.lines is not None:
            return IngestError(message, path=self.source, line=self.lines[index])
        where = f"item {index}: " if index is not None else ""
        return IngestError(where + message, path=self.source)


_SCALARS = (str, int, float, type(None))


def _is_container(value: Any) -> bool:
    """A list, tuple or mapping (checked cheaply for the common JSON types first)."""
    if isinstance(value, dict | list | tuple):
        return True
    return not isinstance(value, _SCALARS) and isinstance(value, Mapping)


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists, tuples and mappings in ``value`` nest more than ``limit`` levels.

    Walks one level at a time without recursion, so any depth is safe to check; a
    scalar has depth 0, ``[]`` depth 1.
    """
    level = [value] if _is_container(value) else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, Mapping) else item)
            if not isinstance(child, _SCALARS) and _is_container(child)
        ]
        if not level:
            return False
    return bool(level)


def text_keys(text_field: str) -> tuple[str, ...]:
    """The text fields to look for, ``text_field`` first."""
    return tuple(dict.fromkeys((text_field, "text", "content")))


def _fields(row: Mapping[str, Any]) -> str:
    names = sorted(str(k) for k in row)
    shown = ", ".join(names[:_MAX_FIELDS_SHOWN])
    more = f", ... ({len(names)} in all)" if len(names) > _MAX_FIELDS_SHOWN else ""
    return (shown + more) or "none"


def _own_id(row: Mapping[str, Any]) -> str | None:
    """A string or integer ``id`` field, as the document it names."""
    value = row.get("id")
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    return None


def _first_key(row: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    return next((k for k in keys if k in row), None)


def _text_of(value: Any, key: str, ctx: RecordContext, index: int | None) -> str:
    """The normalized text of a field: a string, ``None`` or a list of text parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, list):
        parts = [
            p if isinstance(p, str) else p.get("text") for p in value if isinstance(p, str | dict)
        ]
        return normalize_text("\n\n".join(p for p in parts if isinstance(p, str)))
    raise ctx.error(f"field {key!r} must be a string, got {type(value).__name__}", index)


def _event_time(
    row: Mapping[str, Any], ctx: RecordContext, index: int | None
) -> tuple[float | None, str | None]:
    """The row's event time (or the default) and the field it came from."""
    key = _first_key(row, TIME_KEYS)
    if key is None or row[key] is None:
        return ctx.default_time, key
    try:
        return parse_time(row[key]), key
    except IngestError as exc:
        raise ctx.error(f"field {key!r}: {exc}", index) from exc


def _record(row: Mapping[str, Any], ctx: RecordContext, index: int | None) -> Record | None:
    """One record from an object with a text field; ``None`` when its text is blank."""
    key = _first_key(row, ctx.text_keys)
    if key is None:
        keys = " or ".join(repr(k) for k in ctx.text_keys)
        raise ctx.error(
            f"no text field ({keys}) in a record with fields: {_fields(row)}; a chat turn "
            f"needs 'speaker' or 'role' too, a transcript 'messages' or 'turns'",
            index,
        )
    text = _text_of(row[key], key, ctx, index)
    if not text:
        return None
    event_time, time_key = _event_time(row, ctx, index)
    document = _own_id(row) or ctx.document
    return Record(
        text=text,
        source=ctx.source,
        document=document,
        ordinal=index if document == ctx.document else None,
        event_time=event_time,
        meta={k: v for k, v in row.items() if k not in (key, time_key)},
    )


def _turn(
    turn: Mapping[str, Any], index: int, ctx: RecordContext, extra: Mapping[str, Any]
) -> Record | None:
    """One chat turn; ``None`` when it has no text."""
    key = _first_key(turn, ctx.text_keys)
    text = _text_of(turn[key], key, ctx, index) if key is not None else ""
    if not text:
        return None
    event_time, time_key = _event_time(turn, ctx, index)
    meta = dict(extra)
    meta.update((k, v) for k, v in turn.items() if k not in (key, time_key))
    return Record(
        text=text,
        source=ctx.source,
        document=ctx.document,
        ordinal=index,
        event_time=event_time,
        meta=meta,
        chunk=len(text) > MAX_UNCHUNKED_CHARS,
    )


def _is_chat(rows: Sequence[Any], ctx: RecordContext) -> bool:
    """All rows are objects with a speaker or role, and some row has a text field."""
    return all(
        isinstance(r, Mapping) and _first_key(r, SPEAKER_KEYS) is not None for r in rows
    ) and any(_first_key(r, ctx.text_keys) is not None for r in rows)


def _chat(rows: Sequence[Any], ctx: RecordContext, extra: Mapping[str, Any]) -> list[Record]:
    records = []
    for i, turn in enumerate(rows):
        if not isinstance(turn, Mapping):
            raise ctx.error(f"a chat turn must be an object, got {type(turn).__name__}", i)
        record = _turn(turn, i, ctx, extra)
        if record is not None:
            records.append(record)
    return records


def _transcript(obj: Mapping[str, Any], ctx: RecordContext, index: int | None) -> list[Record]:
    """A ``{"messages": [...]}`` or ``{"turns": [...]}`` object."""
    key = next(k for k in TRANSCRIPT_KEYS if isinstance(obj.get(k), list))
    document = _own_id(obj)
    if document is None and index is not None and ctx.document is not None:
        document = f"{ctx.document}#{index}"
    elif document is None:
        document = ctx.document
    extra = {k: v for k, v in obj.items() if k != key and isinstance(v, str | int | float | bool)}
    turn_ctx = RecordContext(ctx.source, document, ctx.default_time, ctx.text_keys)
    try:
        return _chat(obj[key], turn_ctx, extra)
    except IngestError as exc:
        if index is None:
            raise
        detail = str(exc).removeprefix(f"{ctx.source}: ")
        raise ctx.error(f"in {key!r}: {detail}", index) from exc


def _is_transcript(value: Any) -> bool:
    return isinstance(value, Mapping) and any(
        isinstance(value.get(k), list) for k in TRANSCRIPT_KEYS
    )


def _plain(value: str, ctx: RecordContext, index: int | None) -> list[Record]:
    text = normalize_text(value)
    if not text:
        return []
    record = Record(
        text=text,
        source=ctx.source,
        document=ctx.document,
        ordinal=index,
        event_time=ctx.default_time,
    )
    return [record]


def _row(row: Any, ctx: RecordContext, index: int) -> list[Record]:
    if isinstance(row, str):
        return _plain(row, ctx, index)
    if _is_transcript(row):
        return _transcript(row, ctx, index)
    if isinstance(row, Mapping):
        record = _record(row, ctx, index)
        return [record] if record is not None else []
    raise ctx.error(f"expected an object or a string, got {type(row).__name__}", index)


def _rows(rows: Sequence[Any], ctx: RecordContext) -> list[Record]:
    if not rows:
        return []
    if _is_chat(rows, ctx):
        records = _chat(rows, ctx, {})
    else:
        records = [r for i, row in enumerate(rows) for r in _row(row, ctx, i)]
    if not records:
        raise ctx.error(f"none of the {len(rows)} records has any text")
    return records


def records_from_json(value: Any, ctx: RecordContext) -> list[Record]:
    """Records from a parsed JSON document (or the rows of a JSONL file, as a list).

    Raises:
        IngestError: a record without a text field, a text that is not a string, an
            unparseable time, or a value of an unsupported shape.
    """
    if isinstance(value, list):
        return _rows(value, ctx)
    if isinstance(value, str):
        return _plain(value, ctx, None)
    if _is_transcript(value):
        records = _transcript(value, ctx, None)
        if not records:
            raise ctx.error("no turn of the transcript has any text")
        return records
    if isinstance(value, Mapping):
        record = _record(value, ctx, None)
        if record is None:
            raise ctx.error("the record's text is empty")
        return [record]
    raise ctx.error(f"expected an object, an array or a string, got {type(value).__name__}")


def _check_json(records: Sequence[Record], ctx: RecordContext) -> None:
    for i, record in enumerate(records):
        if json_depth_exceeds(record.meta):
            raise ctx.error(
                f"record {i}: metadata is nested more than {MAX_JSON_DEPTH} levels deep "
                "(MAX_JSON_DEPTH)"
            )
        try:
            json.dumps(record.meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ctx.error(f"record {i}: metadata is not JSON-serialisable: {exc}") from exc


def load_records(
    obj: object, *, source: str | None = None, text_field: str = "text"
) -> list[Record]:
    """Turn in-memory data into :class:`~engramdb.types.Record` objects.

    Accepts the shapes JSON files may hold: a string, a record object (a text field plus
    metadata), a chat transcript (a list of turns with ``speaker``/``role``, or an object
    with ``messages``/``turns``), or a list of strings, records or transcripts. Records
    without their own time get ``event_time=None``.

    Args:
        obj: the data.
        source: recorded as every record's source and default document.
        text_field: the preferred text field (``"text"`` and ``"content"`` are also tried).

    Returns:
        The records, in input order.

    Raises:
        IngestError: a record without a text field (the message lists its fields), a
            non-string text, an unparseable time, metadata that is not JSON-serialisable
            or nested more than :data:`MAX_JSON_DEPTH` levels deep, or no text at all.

    Example:
        >>> [r.meta["speaker"] for r in load_records([
        ...     {"speaker": "Ann", "text": "Hi!"}, {"speaker": "Bo", "text": "Hello."}])]
        ['Ann', 'Bo']
    """
    ctx = RecordContext(source, source, None, text_keys(text_field))
    records = records_from_json(obj, ctx)
    _check_json(records, ctx)
    return records
