"""Facts that change: supersession at write time and by hand, history, undo, as-of reads.

A memory is valid from its event time (else its ingest time) until another supersedes it.
Superseding never deletes: the old memory keeps its text and gets ``valid_to``; recall puts
currently valid memories first (:func:`current_first`), ``as_of`` reads the memories valid
at a time, and :meth:`Memory.history` shows the chain.

At write time (:func:`link_new`), each new memory's fact keys
(:func:`~engramdb.recognize.facts.fact_keys`) are stored and the memories of its namespace
that share one are compared with :func:`~engramdb.recognize.facts.value_change`: a sure
value change supersedes the older of the two (by valid-from time; ingesting history out of
order supersedes the new memory at once), an unsure one is recorded as a conflict.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engramdb.errors import InvalidInputError, NotFoundError
from engramdb.recognize.facts import fact_keys, value_change
from engramdb.store.sqlite import SQLiteStore
from engramdb.store.validity import (
    active_supersession,
    add_link,
    fact_candidates,
    links_between,
    links_of,
    put_fact_keys,
    undo_link,
)
from engramdb.types import History, MemoryRecord, Supersession

__all__ = [
    "NewFact",
    "fill_fact_keys",
    "current_first",
    "history",
    "link_new",
    "supersede",
    "undo_supersede",
]

_MAX_CHAIN = 10_000


@dataclass(frozen=True, slots=True)
class NewFact:
    """A memory just inserted by a write, with its fact keys (made before the transaction)."""

    id: int
    namespace: str
    text: str
    valid_from: float
    keys: tuple[bytes, ...]


def keys_of(text: str, meta: Mapping[str, Any]) -> tuple[bytes, ...]:
    """The fact keys of a memory's text, its ``speaker`` (metadata) as the subject the text
    speaks for."""
    speaker = meta.get("speaker")
    return fact_keys(text, speaker if isinstance(speaker, str) else None)


_FILL_PAGE = 2000


def fill_fact_keys(store: SQLiteStore) -> int:
    """Give every memory of a store made before fact keys existed its keys (once; the store
    records that it was done). Existing memories are not linked to each other: their keys
    only let later writes find them. Returns how many memories were read."""
    done = store.conn.execute("SELECT 1 FROM store_info WHERE key = 'fact_keys_filled'").fetchone()
    if done is not None:
        return 0
    seen = after = 0
    while True:
        with store.atomic(bump=False):
            conn = store.conn  # the write connection, inside the transaction
            rows = conn.execute(
                "SELECT id, namespace, text, meta FROM memories WHERE id > ? ORDER BY id LIMIT ?",
                (after, _FILL_PAGE),
            ).fetchall()
            for memory_id, namespace, text, meta in rows:
                put_fact_keys(conn, memory_id, namespace, keys_of(text, json.loads(meta)))
            if len(rows) < _FILL_PAGE:
                conn.execute(
                    "INSERT OR REPLACE INTO store_info (key, value)"
                    " VALUES ('fact_keys_filled', '1')"
                )
        seen += len(rows)
        if len(rows) < _FILL_PAGE:
            return seen
        after = int(rows[-1][0])


def link_new(conn: sqlite3.Connection, facts: Sequence[NewFact], *, now: float) -> int:
    """Inside the write transaction: store the new memories' fact keys and link each one to
    the older values of its fact. Returns how many links were made."""
    made = 0
    for fact in facts:
        if not fact.keys:
            continue
        put_fact_keys(conn, fact.id, fact.namespace, fact.keys)
        candidates = fact_candidates(conn, fact.namespace, fact.keys, exclude=fact.id)
        superseded = conflicted = False
        for other, text, since, valid_to in candidates:  # newest first
            if fact.valid_from >= since:
                change = value_change(text, fact.text)
                old, new, at = other, fact.id, fact.valid_from
            else:
                change = value_change(fact.text, text)
                old, new, at = fact.id, other, since
            if change is None or links_between(conn, old, new):
                continue
            detail = {"old_value": change.old, "new_value": change.new}
            if change.kind == "supersede":
                if superseded or (old == other and valid_to is not None):
                    continue  # one value replaced per new memory; chains link to the head
                if active_supersession(conn, old) is not None:
                    continue
                add_link(
                    conn, old=old, new=new, kind="supersede", origin="auto", at=at,
                    recorded=now, detail=detail,
                )  # fmt: skip
                superseded = True
            elif not conflicted:  # with the newest disagreeing memory only
                add_link(
                    conn, old=old, new=new, kind="conflict", origin="auto", at=at,
                    recorded=now, detail=detail,
                )  # fmt: skip
                conflicted = True
            else:
                continue
            made += 1
    return made


def supersede(
    store: SQLiteStore, old: int, new: int, *, at: float | None, now: float
) -> Supersession:
    """Inside a write transaction: ``new`` supersedes ``old`` from ``at`` (default: ``new``'s
    valid-from time). A conflict recorded between them is resolved by it.

    Raises:
        NotFoundError: either memory does not exist.
        InvalidInputError: the same memory, two namespaces, ``old`` already superseded, or a
            cycle (``old`` supersedes ``new`` through a chain).
    """
    if old == new:
        raise InvalidInputError(f"a memory cannot supersede itself (id {old})")
    records = {r.id: r for r in store.get_many([old, new])}
    for memory_id in (old, new):
        if memory_id not in records:
            raise NotFoundError(f"no memory with id {memory_id}")
    if records[old].namespace != records[new].namespace:
        raise InvalidInputError(
            f"memories {old} and {new} are in different namespaces "
            f"({records[old].namespace!r}, {records[new].namespace!r}); a fact lives in one"
        )
    conn = store.conn
    current = active_supersession(conn, old)
    if current is not None:
        raise InvalidInputError(
            f"memory {old} is already superseded by "
            f"{current.new if current.new is not None else 'a forgotten memory'}; "
            "undo that first, or supersede the newest one"
        )
    _check_no_cycle(conn, old, new)
    when = records[new].valid_from if at is None else at
    for link in links_between(conn, old, new):
        if link.kind == "conflict":
            undo_link(conn, link.id, now=now)
    link_id = add_link(
        conn, old=old, new=new, kind="supersede", origin="manual", at=when, recorded=now
    )
    return next(s for s in links_of(conn, [old]) if s.id == link_id)


def _check_no_cycle(conn: sqlite3.Connection, old: int, new: int) -> None:
    """Follow ``new``'s successors: reaching ``old`` would close a cycle.

    Raises:
        InvalidInputError: it does.
    """
    head: int | None = new
    for _ in range(_MAX_CHAIN):
        link = active_supersession(conn, head) if head is not None else None
        if link is None:
            return
        if link.new == old:
            raise InvalidInputError(
                f"memory {old} already supersedes {new} (through a chain): that would be a cycle"
            )
        head = link.new


def undo_supersede(store: SQLiteStore, old: int, *, now: float) -> Supersession:
    """Inside a write transaction: undo the supersession of ``old`` in force; ``old`` is
    valid again (the link is kept, marked undone).

    Raises:
        NotFoundError: no such memory, or it is not superseded.
    """
    if not store.exists(old):
        raise NotFoundError(f"no memory with id {old}")
    link = active_supersession(store.conn, old)
    if link is None:
        raise NotFoundError(f"memory {old} is not superseded: nothing to undo")
    undo_link(store.conn, link.id, now=now)
    return next(s for s in links_of(store.conn, [old], undone=True) if s.id == link.id)


def history(store: SQLiteStore, memory_id: int) -> History:
    """The chain of ``memory_id``'s fact: every memory linked to it (both ways, undone
    links too), oldest first, and the links.

    Raises:
        NotFoundError: no such memory.
    """
    if not store.exists(memory_id):
        raise NotFoundError(f"no memory with id {memory_id}")
    seen = {memory_id}
    frontier = [memory_id]
    links: dict[int, Supersession] = {}
    while frontier and len(seen) < _MAX_CHAIN:
        found = links_of(store.conn, frontier, undone=True)
        frontier = []
        for link in found:
            links[link.id] = link
            for other in (link.old, link.new):
                if other is not None and other not in seen:
                    seen.add(other)
                    frontier.append(other)
    versions = sorted(store.get_many(sorted(seen)), key=lambda r: (r.valid_from, r.id))
    return History(
        id=memory_id, versions=tuple(versions), links=tuple(links[k] for k in sorted(links))
    )


def current_first(
    order: Sequence[tuple[int, float]], valid_to: Mapping[int, float | None]
) -> list[tuple[int, float]]:
    """Stable: the memories still valid first, then the superseded ones (each group keeps its
    order). ``valid_to`` maps ids to their ``valid_to`` (a missing id counts as valid). Each
    rank keeps the score it had, so scores stay non-increasing (what calibration expects)."""
    current = [doc for doc, _ in order if valid_to.get(doc) is None]
    old = [doc for doc, _ in order if valid_to.get(doc) is not None]
    return [(doc, score) for doc, (_, score) in zip(current + old, order, strict=True)]


def relations(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, tuple[Supersession, ...]]:
    """The links in force of each memory in ``ids``."""
    out: dict[int, list[Supersession]] = {}
    wanted = set(ids)
    for link in links_of(conn, ids):
        for side in (link.old, link.new):
            if side in wanted:
                out.setdefault(side, []).append(link)
    return {k: tuple(v) for k, v in out.items()}


def valid_to_of(records: Sequence[MemoryRecord]) -> dict[int, float | None]:
    """``{id: valid_to}`` of records."""
    return {r.id: r.valid_to for r in records}
