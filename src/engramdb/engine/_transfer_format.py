"""The export format: memory records to JSON-ready dicts and back, checked line by line.

The format, ``engramdb.export`` version 1, is one JSON object per line (JSON Lines):

* a header, first: ``{"format": "engramdb.export", "version": 1, "namespace": <str or
  null: every namespace>, "embedder": <model_id>, "dim": <int>, "vectors": <bool>,
  "engramdb": <version>, "exported_at": <epoch seconds>}``. An import checks the format and
  version of every header it meets (concatenated exports hold several) and skips them;
* then one memory per line, in id order: ``id`` (in the exporting store; an import ignores
  it), ``namespace``, ``text``, ``hash`` (recomputed on import), ``source``, ``position``
  (``{"document", "ordinal", "start", "end"}``), ``event_time``, ``ingest_time``, ``meta``,
  ``count`` (derived from the sightings on import) and ``sightings``: every place the
  memory was seen, in the order recorded, each ``{"source", "position", "event_time",
  "seen_time", "kind", "score", "text_hash"}`` (``kind``: ``origin``, ``exact`` or
  ``near``). With vectors, ``embedding``: ``{"model": <embedder model_id>, "dim": d,
  "data": <base64>}``, where ``data`` is the standard, padded base64 (RFC 4648) of ``d``
  little-endian IEEE-754 float32 values: the exact bytes of the store's embedding cache.
  ``valid_to`` (null while valid) and ``links``: the supersessions and conflicts in which the
  memory is the old side, undone ones included, each ``{"new_hash", "kind", "origin", "at",
  "recorded", "undone", "detail"}``; ``new_hash`` is the content hash of the newer memory in
  the same namespace (null once it was forgotten). An import restores the links after its
  last memory (``valid_to`` follows from them).

Times are UTC epoch seconds. Only ``text`` is required of a memory record (and
``namespace``, unless the import overrides it); ``sightings`` default to one origin at the
memory's own source and position.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from engramdb._version import __version__
from engramdb.engine._write import check_namespace
from engramdb.errors import IngestError, InvalidInputError
from engramdb.ingest import MAX_JSON_DEPTH, content_hash, normalize_text
from engramdb.ingest._records import json_depth_exceeds
from engramdb.store.sqlite import NewSighting, SightingRow
from engramdb.types import MemoryRecord, Vector

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "MAX_LINE_BYTES",
    "Entry",
    "Expect",
    "LinkRow",
    "entries",
    "header",
    "memory_dict",
    "read_jsonl",
]

EXPORT_FORMAT = "engramdb.export"
EXPORT_VERSION = 1
MAX_LINE_BYTES = 128 * 1024 * 1024
"""The longest line an import reads (newline included); a longer one is refused."""

_FIELDS = frozenset(
    {"id", "namespace", "text", "hash", "source", "position", "event_time", "ingest_time"}
    | {"meta", "count", "sightings", "embedding", "valid_to", "links"}
)
_LINK_FIELDS = frozenset({"new_hash", "kind", "origin", "at", "recorded", "undone", "detail"})
_LINK_KINDS = ("supersede", "conflict")
_LINK_ORIGINS = ("manual", "auto", "judge")
_SIGHTING_FIELDS = frozenset(
    {"source", "position", "event_time", "seen_time", "kind", "score", "text_hash"}
)
_POSITION_FIELDS = ("document", "ordinal", "start", "end")
_KINDS = ("origin", "exact", "near")
_INT64 = 2**63


# -- export ----------------------------------------------------------------------------------


def header(*, namespace: str | None, model: str, dim: int, vectors: bool) -> dict[str, Any]:
    """The first record of an export."""
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "namespace": namespace,
        "embedder": model,
        "dim": dim,
        "vectors": vectors,
        "engramdb": __version__,
        "exported_at": time.time(),
    }


def memory_dict(
    record: MemoryRecord,
    sightings: Sequence[SightingRow],
    model: str | None,
    vector: Vector | None,
    links: Sequence[LinkRow] = (),
) -> dict[str, Any]:
    """One memory as an export record; ``vector`` (made by ``model``) adds ``embedding``."""
    out: dict[str, Any] = {
        "id": record.id,
        "namespace": record.namespace,
        "text": record.text,
        "hash": record.hash,
        "source": record.source,
        "position": _position_dict(
            record.position.document,
            record.position.ordinal,
            record.position.start,
            record.position.end,
        ),
        "event_time": record.event_time,
        "ingest_time": record.ingest_time,
        "meta": dict(record.meta),
        "count": record.count,
        "sightings": [_sighting_dict(row) for row in sightings],
        "valid_to": record.valid_to,
        "links": [dataclasses.asdict(link) for link in links],
    }
    if model is not None and vector is not None:
        data = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        out["embedding"] = {
            "model": model,
            "dim": int(vector.shape[0]),
            "data": base64.b64encode(data).decode("ascii"),
        }
    return out


def _position_dict(
    document: str | None, ordinal: int | None, start: int | None, end: int | None
) -> dict[str, Any]:
    return {"document": document, "ordinal": ordinal, "start": start, "end": end}


def _sighting_dict(row: SightingRow) -> dict[str, Any]:
    s = row.sighting
    return {
        "source": s.source,
        "position": _position_dict(s.document, s.ordinal, s.start, s.end),
        "event_time": s.event_time,
        "seen_time": row.seen_time,
        "kind": row.kind,
        "score": row.score,
        "text_hash": s.text_hash,
    }


# -- reading and checking records ------------------------------------------------------------


class _Bad(Exception):
    """A record is malformed; the message says how (the caller adds where)."""


@dataclass(slots=True)
class Entry:
    """One memory record, checked and ready to write."""

    namespace: str
    text: str
    hash: str
    origin: NewSighting  # the memory's own source and position
    ingest_time: float
    meta: dict[str, Any]
    sightings: list[SightingRow]
    vector: Vector | None
    size: int  # rough bytes held, for batching
    links: tuple[LinkRow, ...] = ()
    id: int | None = None  # the id it was exported with


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRow:
    """A supersession or conflict of an exported memory (its old side), by the newer
    memory's content hash."""

    new_hash: str | None
    kind: str
    origin: str
    at: float
    recorded: float
    undone: float | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Expect:
    """What records are checked against: the namespace override and the store's embedder."""

    namespace: str | None
    model: str
    dim: int
    now: float


def read_jsonl(stream: IO[bytes], name: str) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of each non-blank line, one line at a time.

    Raises:
        IngestError: a line over :data:`MAX_LINE_BYTES`, not UTF-8, not JSON, or nested
            more than ``MAX_JSON_DEPTH`` levels deep (naming ``name`` and the line).
    """
    number = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise IngestError(
                f"line longer than {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES)", path=name, line=number
            )
        if line.strip():
            yield number, _parse_line(line, name, number)


def _parse_line(line: bytes, name: str, number: int) -> Any:
    try:
        text = line.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 (byte {exc.start})", path=name, line=number) from None
    try:
        value = json.loads(text)
    except RecursionError:
        value = None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise IngestError(f"malformed JSON: {exc}", path=name, line=number) from None
    else:
        if text.count("[") + text.count("{") <= MAX_JSON_DEPTH or not json_depth_exceeds(value):
            return value
    raise IngestError(
        f"JSON nested more than {MAX_JSON_DEPTH} levels deep (MAX_JSON_DEPTH)",
        path=name,
        line=number,
    )


def _parse(raw: Any, expect: Expect) -> Entry | None:
    """The checked entry of one record, or ``None`` for a header.

    Raises:
        _Bad: the record is malformed.
    """
    if not isinstance(raw, Mapping):
        raise _Bad(f"expected a JSON object, got {type(raw).__name__}")
    if "format" in raw:
        _check_header(raw)
        return None
    _check_fields(raw, _FIELDS, "field")
    text = raw.get("text")
    text = normalize_text(text) if isinstance(text, str) else ""
    if not text:
        raise _Bad("'text' must be a non-empty string")
    namespace = expect.namespace or raw.get("namespace")
    if namespace is None:
        raise _Bad("no 'namespace' (give one, or import with a namespace to use for all)")
    try:
        check_namespace(namespace)
    except InvalidInputError as exc:
        raise _Bad(str(exc)) from None
    digest = content_hash(text)
    _optional_int(raw, "count")
    ingest_time = _time(raw, "ingest_time", default=expect.now)
    origin = _sighting_place(raw, digest)
    meta = _meta(raw.get("meta", {}))
    sightings = _sightings(raw.get("sightings"), origin, ingest_time, digest)
    vector = _vector(raw.get("embedding"), expect)
    _optional_time(raw, "valid_to")
    links = _links(raw.get("links"))
    size = len(text) + len(json.dumps(meta)) + 128 * len(sightings) + 4 * expect.dim
    return Entry(
        namespace,
        text,
        digest,
        origin,
        ingest_time,
        meta,
        sightings,
        vector,
        size,
        links,
        _optional_int(raw, "id"),
    )


def _links(value: Any) -> tuple[LinkRow, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad(f"'links' must be a list, got {type(value).__name__}")
    rows = []
    for item in value:
        if not isinstance(item, Mapping):
            raise _Bad(f"a link must be an object, got {type(item).__name__}")
        _check_fields(item, _LINK_FIELDS, "link field")
        kind, origin = item.get("kind"), item.get("origin")
        if kind not in _LINK_KINDS:
            raise _Bad(f"a link's 'kind' must be one of {', '.join(_LINK_KINDS)}, got {kind!r:.40}")
        if origin not in _LINK_ORIGINS:
            raise _Bad(
                f"a link's 'origin' must be one of {', '.join(_LINK_ORIGINS)}, got {origin!r:.40}"
            )
        detail = item.get("detail", {})
        if not isinstance(detail, Mapping):
            raise _Bad("a link's 'detail' must be an object")
        rows.append(
            LinkRow(
                new_hash=_optional_str(item, "new_hash"),
                kind=kind,
                origin=origin,
                at=_time(item, "at"),
                recorded=_time(item, "recorded"),
                undone=_optional_time(item, "undone"),
                detail=dict(detail),
            )
        )
    return tuple(rows)


def _check_header(raw: Mapping[str, Any]) -> None:
    if raw.get("format") != EXPORT_FORMAT:
        raise _Bad(f"not an engramdb export: format {raw.get('format')!r}, not {EXPORT_FORMAT!r}")
    version = raw.get("version")
    if type(version) is not int or version != EXPORT_VERSION:
        raise _Bad(
            f"export format version {version!r} is not supported (this engramdb reads version "
            f"{EXPORT_VERSION}); import it with the engramdb that wrote it, or a newer one"
        )


def _check_fields(raw: Mapping[str, Any], valid: Iterable[str], what: str) -> None:
    known = set(valid)
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise _Bad(f"unknown {what}(s) {', '.join(unknown[:8])}; valid: {', '.join(sorted(known))}")


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise _Bad(f"'{key}' must be a string or null, got {type(value).__name__}")
    return value


def _optional_int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is not None and (type(value) is not int or not -_INT64 <= value < _INT64):
        raise _Bad(f"'{key}' must be an integer or null, got {value!r:.40}")
    return value


def _optional_time(raw: Mapping[str, Any], key: str) -> float | None:
    return None if raw.get(key) is None else _time(raw, key)


def _time(raw: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = raw.get(key)
    if value is None and default is not None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            if math.isfinite(value):
                return float(value)
        except OverflowError:
            pass
    raise _Bad(f"'{key}' must be a finite number, got {value!r:.40}")


def _sighting_place(raw: Mapping[str, Any], text_hash: str) -> NewSighting:
    """Source, position and event time of a memory or sighting record."""
    position = raw.get("position")
    if position is None:
        position = {}
    if not isinstance(position, Mapping):
        raise _Bad(f"'position' must be an object, got {type(position).__name__}")
    _check_fields(position, _POSITION_FIELDS, "position field")
    return NewSighting(
        source=_optional_str(raw, "source"),
        document=_optional_str(position, "document"),
        ordinal=_optional_int(position, "ordinal"),
        start=_optional_int(position, "start"),
        end=_optional_int(position, "end"),
        event_time=_optional_time(raw, "event_time"),
        text_hash=text_hash,
    )


def _meta(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(f"'meta' must be an object, got {type(value).__name__}")
    if json_depth_exceeds(value):
        raise _Bad(f"'meta' is nested more than {MAX_JSON_DEPTH} levels deep (MAX_JSON_DEPTH)")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _Bad(f"'meta' is not JSON: {exc}") from None
    return dict(value)


def _sightings(
    value: Any, origin: NewSighting, ingest_time: float, digest: str
) -> list[SightingRow]:
    if value is None:
        return [SightingRow(sighting=origin, seen_time=ingest_time, kind="origin", score=1.0)]
    if not isinstance(value, list | tuple):
        raise _Bad(f"'sightings' must be a list, got {type(value).__name__}")
    rows = [_sighting(item, digest) for item in value]
    origins = sum(1 for row in rows if row.kind == "origin")
    if origins > 1:
        raise _Bad(f"{origins} sightings of kind 'origin'; a memory has at most one")
    if not origins:
        rows.insert(
            0, SightingRow(sighting=origin, seen_time=ingest_time, kind="origin", score=1.0)
        )
    return rows


def _sighting(item: Any, digest: str) -> SightingRow:
    if not isinstance(item, Mapping):
        raise _Bad(f"a sighting must be an object, got {type(item).__name__}")
    _check_fields(item, _SIGHTING_FIELDS, "sighting field")
    kind = item.get("kind")
    if kind not in _KINDS:
        raise _Bad(f"a sighting's 'kind' must be one of {', '.join(_KINDS)}, got {kind!r:.40}")
    text_hash = _optional_str(item, "text_hash") or digest
    return SightingRow(
        sighting=_sighting_place(item, text_hash),
        seen_time=_time(item, "seen_time"),
        kind=kind,
        score=_time(item, "score") if "score" in item else 1.0,
    )


def _vector(value: Any, expect: Expect) -> Vector | None:
    """The record's vector when the store's embedder made it (else ``None``: embed again)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("data"), str):
        raise _Bad("'embedding' must be an object with 'model', 'dim' and base64 'data'")
    model, dim = value.get("model"), value.get("dim")
    if not isinstance(model, str) or type(dim) is not int or dim < 1:
        raise _Bad("'embedding' needs 'model' (a string) and 'dim' (a positive integer)")
    try:
        data = base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("'embedding.data' is not base64") from None
    if len(data) != 4 * dim:
        raise _Bad(f"'embedding.data' holds {len(data)} bytes, not {4 * dim} ({dim} float32)")
    vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all():
        raise _Bad("'embedding.data' holds values that are not finite")
    if model != expect.model:
        return None
    if dim != expect.dim:
        raise _Bad(
            f"'embedding' of {model} has dim {dim}, but this store's embedder has {expect.dim}"
        )
    return vector


def entries(
    numbered: Iterable[tuple[int, Any]], expect: Expect, name: str | None
) -> Iterator[Entry]:
    """The checked entries of ``(line number, record)`` pairs, headers checked and skipped.

    Raises:
        IngestError: a malformed record, naming ``name`` (when given) and the line.
    """
    for number, raw in numbered:
        try:
            entry = _parse(raw, expect)
        except _Bad as exc:
            if name is None:
                raise IngestError(f"line {number}: {exc}", line=number) from None
            raise IngestError(str(exc), path=name, line=number) from None
        if entry is not None:
            yield entry
