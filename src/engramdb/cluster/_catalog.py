"""The catalog of a cluster: its shards, which shard owns which routing slot, pinned
namespaces, the next memory id, its version, and the journal of writes not yet applied.

It is one small SQLite file (``ROOT/catalog.db``) of its own, written in short
transactions, so that several coordinators (processes) can share it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engramdb.errors import InvalidInputError, NotFoundError, StoreError

__all__ = ["SLOTS", "Catalog", "Pending", "slot_of"]

SLOTS = 1024
"""Routing slots: a memory's slot is fixed by its namespace and content; a shard owns slots."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (
    name TEXT PRIMARY KEY, path TEXT NOT NULL, node TEXT, added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (slot INTEGER PRIMARY KEY, shard TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pins (namespace TEXT PRIMARY KEY, shard TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (
    batch TEXT NOT NULL, shard TEXT NOT NULL, method TEXT NOT NULL, payload BLOB NOT NULL,
    queued REAL NOT NULL, PRIMARY KEY (batch, shard)
);
"""


def slot_of(namespace: str, text_hash: str) -> int:
    """The routing slot of a memory: exact duplicates (same namespace, same content) share it."""
    digest = hashlib.blake2b(f"{namespace}\x00{text_hash}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SLOTS


@dataclass(frozen=True, slots=True)
class Pending:
    """A journaled call to a shard, not yet known to be applied."""

    batch: str
    shard: str
    method: str
    args: tuple[Any, ...]


class Catalog:
    """The catalog file of a cluster rooted at ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.path = root / "catalog.db"
        try:
            root.mkdir(parents=True, exist_ok=True)
            # one connection, shared by the coordinator's threads under a lock
            self._conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the cluster catalog {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self._slots: dict[int, str] | None = None
        self._pins: dict[str, str] | None = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the cluster's writer lock (``ROOT/writer.lock``, an exclusive file lock):
        coordinators in other processes that write to the same cluster wait, so that a
        write's recognition sees every write acknowledged before it.

        Raises:
            StoreError: the lock file cannot be opened.
        """
        try:
            fd = os.open(self.root / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the cluster's writer lock: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._slots = self._pins = None  # routing changes only under this lock
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close the catalog file."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._slots = self._pins = None

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- shards and slots -----------------------------------------------------------------

    def _store_path(self, shard: str) -> str:
        """Where a shard's store lives: ``ROOT/shards/NAME.db``."""
        return str(self.root / "shards" / f"{shard}.db")

    def shards(self) -> dict[str, str]:
        """``{name: store path}`` of every shard, in the order they were added."""
        rows = self._rows("SELECT name, path FROM shards ORDER BY added, name")
        return {name: path for name, path in rows}

    def create(self, count: int) -> None:
        """Lay out a new cluster of ``count`` shards (nothing when it exists already).

        Raises:
            InvalidInputError: ``count`` is not a positive integer, or the cluster exists
                with another number of shards.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInputError(f"shards must be a positive integer, got {count!r}")
        existing = self.shards()
        if existing:
            if len(existing) != count:
                raise InvalidInputError(
                    f"the cluster at {self.root} has {len(existing)} shards, not {count} "
                    "(grow it with add-shard; omit the count to open it as it is)"
                )
            return
        with self._tx() as conn:
            now = time.time()
            for index in range(count):
                name = f"shard-{index}"
                conn.execute(
                    "INSERT INTO shards (name, path, added) VALUES (?, ?, ?)",
                    (name, self._store_path(name), now + index * 1e-6),
                )
            conn.executemany(
                "INSERT INTO slots (slot, shard) VALUES (?, ?)",
                [(slot, f"shard-{slot % count}") for slot in range(SLOTS)],
            )
            conn.execute("INSERT OR IGNORE INTO info (key, value) VALUES ('next_id', '1')")
            conn.execute("INSERT OR IGNORE INTO info (key, value) VALUES ('version', '1')")

    def slots(self) -> dict[int, str]:
        """``{slot: shard}``."""
        if self._slots is None:
            self._slots = {int(s): n for s, n in self._rows("SELECT slot, shard FROM slots")}
        return self._slots

    def pins(self) -> dict[str, str]:
        """``{namespace: shard}`` of the namespaces pinned to one shard."""
        if self._pins is None:
            self._pins = dict(self._rows("SELECT namespace, shard FROM pins"))
        return self._pins

    def owner(self, namespace: str, text_hash: str) -> str:
        """The shard that holds (or will hold) this namespace's memory of this content."""
        pinned = self.pins().get(namespace)
        if pinned is not None:
            return pinned
        return self.slots()[slot_of(namespace, text_hash)]

    def pin(self, namespace: str, shard: str) -> None:
        """Route every memory of ``namespace`` to ``shard``.

        Raises:
            NotFoundError: no such shard.
        """
        if shard not in self.shards():
            raise NotFoundError(f"no shard {shard!r}; shards: {', '.join(self.shards())}")
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO pins (namespace, shard) VALUES (?, ?) ON CONFLICT (namespace)"
                " DO UPDATE SET shard = excluded.shard",
                (namespace, shard),
            )
            self._bump(conn)

    def add_shard(self, name: str) -> None:
        """Record a new shard (its slots are handed over later by :meth:`hand_over`)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO shards (name, path, added) VALUES (?, ?, ?)",
                (name, self._store_path(name), time.time()),
            )

    def hand_over(self, slots: Sequence[int], shard: str) -> None:
        """Give ``slots`` to ``shard`` (after their memories were copied there)."""
        with self._tx() as conn:
            conn.executemany(
                "UPDATE slots SET shard = ? WHERE slot = ?", [(shard, int(s)) for s in slots]
            )
            self._bump(conn)

    def nodes(self) -> dict[str, str | None]:
        """``{shard: node}``: where each shard's store lives (``None``: not yet placed)."""
        return dict(self._rows("SELECT name, node FROM shards"))

    def place(self, shard: str, node: str | None) -> None:
        """Record the node that holds a shard's store (its first placement)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE shards SET node = ? WHERE name = ? AND node IS NULL", (node, shard)
            )

    def settings(self) -> dict[str, Any] | None:
        """The engine configuration the cluster was made with (``None``: not recorded)."""
        rows = self._rows("SELECT value FROM info WHERE key = 'config'")
        return json.loads(rows[0][0]) if rows else None

    def remember(self, settings: Mapping[str, Any]) -> None:
        """Record the engine configuration of a new cluster."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO info (key, value) VALUES ('config', ?)",
                (json.dumps(settings, sort_keys=True),),
            )

    # -- ids and version ------------------------------------------------------------------

    def allocate(self, count: int) -> int:
        """Reserve ``count`` consecutive memory ids; returns the first. Ids never repeat."""
        with self._tx() as conn:
            (value,) = conn.execute("SELECT value FROM info WHERE key = 'next_id'").fetchone()
            first = int(value)
            conn.execute("UPDATE info SET value = ? WHERE key = 'next_id'", (str(first + count),))
        return first

    def version(self) -> int:
        """Bumped by every change of routing (slots handed over, namespaces pinned)."""
        rows = self._rows("SELECT value FROM info WHERE key = 'version'")
        return int(rows[0][0]) if rows else 0

    def _bump(self, conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE info SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")

    # -- journal --------------------------------------------------------------------------

    def enqueue(self, calls: Sequence[Pending]) -> None:
        """Journal calls durably (one transaction) before they are sent."""
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO journal (batch, shard, method, payload, queued)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (c.batch, c.shard, c.method, pickle.dumps(c.args, protocol=5), time.time())
                    for c in calls
                ],
            )

    def done(self, batch: str, shard: str) -> None:
        """A journaled call was applied."""
        with self._tx() as conn:
            conn.execute("DELETE FROM journal WHERE batch = ? AND shard = ?", (batch, shard))

    def pending(self) -> list[Pending]:
        """Journaled calls not yet applied, oldest first."""
        rows = self._rows(
            "SELECT batch, shard, method, payload FROM journal ORDER BY queued, batch, shard"
        )
        # the journal is this cluster's own file, written above from plain data
        return [Pending(b, s, m, pickle.loads(p)) for b, s, m, p in rows]  # noqa: S301
