"""Conversations: turns with a speaker, a role, an order, a session and a time, as Records.

A conversation is a document (its id); each turn is one memory, in order (``ordinal``),
with ``speaker``, ``role``, ``session`` and ``session_time`` in its metadata and the turn's
time (else its session's) as ``event_time``. A *round* is a turn with the turns around it
in its session (a question and its reply); a *session* groups the turns of one sitting.
Recall uses these to score a turn by its round and its session, and ``context`` packs a hit
with its neighbours. Chat files read by :func:`~engramdb.ingest.load_path` (lists of turns
with ``speaker``/``role``) become the same records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engramdb.errors import InvalidInputError
from engramdb.ingest.moments import strict_time
from engramdb.ingest.normalize import normalize_text
from engramdb.types import Hit, MemoryRecord, Record

__all__ = ["TURN_FIELDS", "Turn", "is_turn", "neighbour_hit", "turn_records"]

TURN_FIELDS = ("text", "speaker", "role", "time", "session", "session_time", "meta")


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One turn of a conversation.

    Attributes:
        text: what was said.
        speaker: who said it (a name), if known.
        role: ``"user"``, ``"assistant"``, ``"system"``, ... if known.
        time: when it was said (epoch seconds or ISO-8601); default: the session's time.
        session: the session (sitting) it belongs to; default: the call's session.
        session_time: when that session took place.
        meta: other metadata.
    """

    text: str
    speaker: str | None = None
    role: str | None = None
    time: float | str | None = None
    session: str | int | None = None
    session_time: float | str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


def _turn(item: Turn | Mapping[str, Any] | str, index: int) -> Turn:
    if isinstance(item, Turn):
        return item
    if isinstance(item, str):
        return Turn(text=item)
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"turn {index}: give a Turn, a mapping or a string, not {type(item).__name__}"
        )
    unknown = sorted(set(item) - set(TURN_FIELDS))
    if unknown:
        raise InvalidInputError(
            f"turn {index}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(TURN_FIELDS)}"
        )
    if not isinstance(item.get("text"), str):
        raise InvalidInputError(f"turn {index}: text must be a non-empty string")
    try:
        return Turn(**dict(item))
    except TypeError as exc:
        raise InvalidInputError(f"turn {index}: {exc}") from None


def _label(value: object, name: str, index: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInputError(f"turn {index}: {name} must be a string, got {value!r:.40}")
    return str(value)


def turn_records(  # noqa: PLR0913 - the conversation's fields
    turns: Iterable[Turn | Mapping[str, Any] | str],
    *,
    conversation: str,
    session: str | int | None = None,
    session_time: float | str | None = None,
    source: str | None = None,
    start: int = 0,
) -> list[Record]:
    """Records of a conversation's turns, in order, numbered from ``start``.

    Raises:
        InvalidInputError: a turn without text or with a bad field, a bad time, or an empty
            conversation id.
    """
    if not isinstance(conversation, str) or not conversation.strip():
        raise InvalidInputError(f"conversation must be a non-empty string, got {conversation!r}")
    default_time = strict_time(session_time, "session_time")
    records: list[Record] = []
    for index, item in enumerate(turns):
        turn = _turn(item, index)
        if not isinstance(turn.text, str) or not normalize_text(turn.text):
            raise InvalidInputError(f"turn {index}: text must be a non-empty string")
        own_session = turn.session if turn.session is not None else session
        when_session = strict_time(turn.session_time, "session_time")
        when_session = default_time if when_session is None else when_session
        when = strict_time(turn.time, "time")
        meta: dict[str, Any] = dict(turn.meta)
        meta["conversation"] = conversation
        for key, value in (
            ("speaker", _label(turn.speaker, "speaker", index)),
            ("role", _label(turn.role, "role", index)),
            ("session", _label(own_session, "session", index)),
            ("session_time", when_session),
        ):
            if value is not None:
                meta[key] = value
        records.append(
            Record(
                text=turn.text,
                source=source,
                document=conversation,
                ordinal=start + index,
                event_time=when if when is not None else when_session,
                meta=meta,
                chunk=False,
            )
        )
    return records


def is_turn(meta: Mapping[str, Any]) -> bool:
    """Whether a memory's metadata marks a conversation turn (a speaker or a role)."""
    return isinstance(meta.get("speaker"), str) or isinstance(meta.get("role"), str)


def neighbour_hit(record: MemoryRecord, score: float) -> Hit:
    """A turn next to a hit, as a hit of the same score (it was not recalled itself: no
    channel scores, no relevance)."""
    return Hit(
        id=record.id,
        score=score,
        text=record.text,
        namespace=record.namespace,
        source=record.source,
        position=record.position,
        event_time=record.event_time,
        meta=record.meta,
        why={},
        valid_to=record.valid_to,
    )


Place = tuple[str, str, int]
"""Where a memory is in a conversation: ``(namespace, document, ordinal)``."""


def turns_around(
    hits: Sequence[Hit],
    n: int,
    fetch: Callable[[list[Place]], Mapping[Place, MemoryRecord]],
) -> dict[int, list[Hit]]:
    """The turns around each turn hit, within its session, nearest first, as hits of its
    score; ``fetch`` reads the memories at a list of places (one store's, or a cluster's)."""
    wanted: dict[int, list[Place]] = {}
    for hit in hits:
        pos = hit.position
        if pos.document is None or pos.ordinal is None or not is_turn(hit.meta):
            continue
        wanted[hit.id] = [
            (hit.namespace, pos.document, pos.ordinal + d * s)
            for d in range(1, n + 1)
            for s in (-1, 1)
        ]
    if not wanted:
        return {}
    found = fetch(sorted({place for places in wanted.values() for place in places}))
    out: dict[int, list[Hit]] = {}
    for hit in hits:
        if hit.id in wanted:
            near = [found[p] for p in wanted[hit.id] if p in found]
            session = hit.meta.get("session")
            out[hit.id] = [
                neighbour_hit(r, hit.score) for r in near if r.meta.get("session") == session
            ]
    return out
