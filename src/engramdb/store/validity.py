"""Validity in the store: supersession links, ``valid_to`` and fact keys (migration 0005).

Plain functions over one connection, called inside the store's transactions (writes) or read
snapshots (reads). A supersession sets the old memory's ``valid_to`` to the link's ``at``;
undoing it clears ``valid_to`` again unless another supersession of that memory still holds.
Links are never deleted but with their old memory (forgetting the new one keeps the link,
with ``new_id`` NULL, so the old value stays superseded).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from engramdb.types import Supersession

__all__ = [
    "active_supersession",
    "add_link",
    "fact_candidates",
    "judged_unrelated",
    "links_between",
    "links_of",
    "mark_unrelated",
    "outgoing_links",
    "put_fact_keys",
    "restore_link",
    "undo_link",
    "valid_as_of_sql",
]

_LINK_COLUMNS = "id, old_id, new_id, kind, origin, at, recorded, undone, detail"


def valid_as_of_sql(alias: str = "m") -> str:
    """SQL condition (two ``?`` for the time) for memories valid at a time: begun by then and
    not superseded before it."""
    return (
        f"COALESCE({alias}.event_time, {alias}.ingest_time) <= ?"
        f" AND ({alias}.valid_to IS NULL OR {alias}.valid_to > ?)"
    )


def _link(row: Sequence[Any]) -> Supersession:
    return Supersession(
        id=int(row[0]),
        old=int(row[1]),
        new=None if row[2] is None else int(row[2]),
        kind=row[3],
        origin=row[4],
        at=float(row[5]),
        recorded=float(row[6]),
        undone=None if row[7] is None else float(row[7]),
        detail=json.loads(row[8]),
    )


def put_fact_keys(
    conn: sqlite3.Connection, memory_id: int, namespace: str, keys: Iterable[bytes]
) -> None:
    """Record a memory's fact keys."""
    conn.executemany(
        "INSERT OR IGNORE INTO fact_keys (namespace, key, memory_id) VALUES (?, ?, ?)",
        [(namespace, key, memory_id) for key in keys],
    )


def fact_candidates(
    conn: sqlite3.Connection, namespace: str, keys: Sequence[bytes], *, exclude: int
) -> list[tuple[int, str, float, float | None]]:
    """The 64 newest memories of ``namespace`` sharing a key: ``(id, text, valid_from,
    valid_to)``, newest first (by valid-from time, then id)."""
    if not keys:
        return []
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        "SELECT DISTINCT m.id, m.text, COALESCE(m.event_time, m.ingest_time), m.valid_to"
        " FROM fact_keys f JOIN memories m ON m.id = f.memory_id"
        f" WHERE f.namespace = ? AND f.key IN ({marks}) AND m.id != ?"
        " ORDER BY 3 DESC, 1 DESC LIMIT 64",
        (namespace, *keys, exclude),
    ).fetchall()
    return [(int(r[0]), r[1], float(r[2]), r[3]) for r in rows]


def active_supersession(conn: sqlite3.Connection, old: int) -> Supersession | None:
    """The supersession of ``old`` in force (not undone), if any."""
    row = conn.execute(
        f"SELECT {_LINK_COLUMNS} FROM supersessions"
        " WHERE old_id = ? AND kind = 'supersede' AND undone IS NULL ORDER BY id DESC LIMIT 1",
        (old,),
    ).fetchone()
    return None if row is None else _link(row)


def add_link(  # noqa: PLR0913 - one row's fields
    conn: sqlite3.Connection,
    *,
    old: int,
    new: int,
    kind: str,
    origin: str,
    at: float,
    recorded: float,
    detail: dict[str, Any] | None = None,
) -> int:
    """Record a supersession (and set ``old``'s ``valid_to``) or a conflict. Returns its id."""
    cur = conn.execute(
        "INSERT INTO supersessions (old_id, new_id, kind, origin, at, recorded, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (old, new, kind, origin, at, recorded, json.dumps(detail or {}, sort_keys=True)),
    )
    if kind == "supersede":
        conn.execute("UPDATE memories SET valid_to = ? WHERE id = ?", (at, old))
    return int(cur.lastrowid or 0)


def undo_link(conn: sqlite3.Connection, link_id: int, *, now: float) -> None:
    """Mark a link undone; a supersession's old memory is valid again unless another
    supersession of it still holds."""
    row = conn.execute(
        "UPDATE supersessions SET undone = ? WHERE id = ? AND undone IS NULL"
        " RETURNING old_id, kind",
        (now, link_id),
    ).fetchone()
    if row is None or row[1] != "supersede":
        return
    still = active_supersession(conn, int(row[0]))
    conn.execute(
        "UPDATE memories SET valid_to = ? WHERE id = ?",
        (None if still is None else still.at, int(row[0])),
    )


def links_of(
    conn: sqlite3.Connection, ids: Sequence[int], *, undone: bool = False
) -> list[Supersession]:
    """Links that involve any of ``ids`` (old or new side), in the order made; undone ones
    only when asked."""
    if not ids:
        return []
    found: dict[int, Supersession] = {}
    for start in range(0, len(ids), 400):
        chunk = list(ids[start : start + 400])
        marks = ",".join("?" * len(chunk))
        cond = "" if undone else " AND undone IS NULL"
        for row in conn.execute(
            f"SELECT {_LINK_COLUMNS} FROM supersessions"
            f" WHERE (old_id IN ({marks}) OR new_id IN ({marks})){cond}",
            (*chunk, *chunk),
        ):
            found[int(row[0])] = _link(row)
    return [found[k] for k in sorted(found)]


def outgoing_links(
    conn: sqlite3.Connection, ids: Sequence[int]
) -> dict[int, list[tuple[Supersession, str | None]]]:
    """Links whose old side is in ``ids`` (undone ones too), each with the newer memory's
    content hash (``None`` once it was forgotten), by old id, in the order made."""
    out: dict[int, list[tuple[Supersession, str | None]]] = {}
    for start in range(0, len(ids), 900):
        chunk = list(ids[start : start + 900])
        marks = ",".join("?" * len(chunk))
        columns = ", ".join(f"s.{c.strip()}" for c in _LINK_COLUMNS.split(","))
        for row in conn.execute(
            f"SELECT {columns}, m.hash FROM supersessions s"
            f" LEFT JOIN memories m ON m.id = s.new_id WHERE s.old_id IN ({marks}) ORDER BY s.id",
            chunk,
        ):
            link = _link(row[:-1])
            out.setdefault(link.old, []).append((link, row[-1]))
    return out


def restore_link(conn: sqlite3.Connection, link: Supersession) -> bool:
    """Insert an imported link unless the same one is there; a supersession in force sets
    ``valid_to`` unless the old memory is superseded already. Returns whether it was added."""
    same = conn.execute(
        "SELECT 1 FROM supersessions WHERE old_id = ? AND new_id IS ? AND kind = ? AND at = ?"
        " AND (undone IS NULL) = ?",
        (link.old, link.new, link.kind, link.at, link.undone is None),
    ).fetchone()
    if same is not None:
        return False
    if link.kind == "supersede" and link.undone is None and active_supersession(conn, link.old):
        return False
    conn.execute(
        "INSERT INTO supersessions (old_id, new_id, kind, origin, at, recorded, undone, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            link.old,
            link.new,
            link.kind,
            link.origin,
            link.at,
            link.recorded,
            link.undone,
            json.dumps(dict(link.detail), sort_keys=True),
        ),
    )
    if link.kind == "supersede" and link.undone is None:
        conn.execute("UPDATE memories SET valid_to = ? WHERE id = ?", (link.at, link.old))
    return True


def mark_unrelated(
    conn: sqlite3.Connection, pairs: Sequence[tuple[int, int]], *, now: float
) -> None:
    """Record pairs a judge found unrelated (ignoring pairs already recorded or whose
    memories are gone)."""
    conn.executemany(
        "INSERT OR IGNORE INTO judged_pairs (old_id, new_id, judged)"
        " SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM memories WHERE id = ?)"
        " AND EXISTS (SELECT 1 FROM memories WHERE id = ?)",
        [(old, new, now, old, new) for old, new in pairs],
    )


def judged_unrelated(conn: sqlite3.Connection, ids: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs judged unrelated that involve any of ``ids``."""
    out: list[tuple[int, int]] = []
    for start in range(0, len(ids), 400):
        chunk = list(ids[start : start + 400])
        marks = ",".join("?" * len(chunk))
        out += [
            (int(r[0]), int(r[1]))
            for r in conn.execute(
                f"SELECT old_id, new_id FROM judged_pairs"
                f" WHERE old_id IN ({marks}) OR new_id IN ({marks})",
                (*chunk, *chunk),
            )
        ]
    return out


def links_between(conn: sqlite3.Connection, old: int, new: int) -> list[Supersession]:
    """Links in force between two memories, either way round."""
    rows = conn.execute(
        f"SELECT {_LINK_COLUMNS} FROM supersessions WHERE undone IS NULL"
        " AND ((old_id = ? AND new_id = ?) OR (old_id = ? AND new_id = ?)) ORDER BY id",
        (old, new, new, old),
    ).fetchall()
    return [_link(r) for r in rows]
