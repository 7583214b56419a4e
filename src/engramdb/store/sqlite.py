"""SQLiteStore: the source of truth — memories, sightings, embedding cache, MinHash bands."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.errors import (
    CorruptStoreError,
    MigrationError,
    NotAStoreError,
    NotFoundError,
    StoreClosedError,
    StoreError,
)
from engramdb.store.migrations import apply_migrations, available_migrations
from engramdb.types import Matrix, MemoryRecord, Position, Sighting

__all__ = [
    "NewMemory",
    "NewSighting",
    "SQLiteStore",
    "SightingRow",
    "in_chunks",
    "is_corruption",
    "store_error",
]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_FORMAT = "engramdb.store"
Tracer = Callable[[str], None]

_MEMORY_COLUMNS = (
    "id, namespace, text, hash, source, document, ordinal, char_start, char_end,"
    " event_time, ingest_time, meta, count, valid_to"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSighting:
    """Where a text was seen, as written to ``sightings``."""

    source: str | None
    document: str | None
    ordinal: int | None
    start: int | None
    end: int | None
    event_time: float | None
    text_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMemory:
    """A memory to insert."""

    namespace: str
    text: str
    hash: str
    sighting: NewSighting
    meta: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SightingRow:
    """A stored sighting with its text hash, as an export writes it and an import adds it."""

    sighting: NewSighting
    seen_time: float
    kind: str
    score: float


_BUSY_MS = 5000
_LOCK_WAIT_S = 60.0
_CORRUPT = ("malformed", "not a database", "file is not a database", "disk image")


def _check_is_store(path: Path) -> None:
    if not path.exists():
        return
    if path.is_dir():
        raise NotAStoreError(f"{path} is a directory, not an engramdb store file", path=path)
    with path.open("rb") as fh:
        head = fh.read(16)
    if not head:
        raise NotAStoreError(
            f"{path} is an empty file, not an engramdb store; remove it or choose another path",
            path=path,
        )
    if head != _SQLITE_MAGIC:
        raise NotAStoreError(
            f"{path} is not an engramdb store (not an SQLite database); "
            "choose another --db path or move the file away",
            path=path,
        )


def is_corruption(exc: BaseException) -> bool:
    """Whether an SQLite error says the file is damaged."""
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc) for m in _CORRUPT)


def store_error(exc: sqlite3.Error, path: str, doing: str) -> StoreError:
    """The engramdb error for an SQLite failure while ``doing`` something with ``path``."""
    if is_corruption(exc):
        return CorruptStoreError(
            f"{path} is damaged ({exc}) while {doing}; restore it from a backup, or recover "
            "what is readable with the sqlite3 shell's .recover"
        )
    return StoreError(f"{path}: {exc} (while {doing})")


class _Local(threading.local):
    """Per-thread state: this thread's read connection and read-snapshot depth."""

    conn: sqlite3.Connection | None = None
    depth: int = 0


def _integrity(conn: sqlite3.Connection) -> list[str]:
    """``PRAGMA integrity_check`` problems of a connection's database (none: sound)."""
    problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return [] if problems == ["ok"] else problems


TurnRow = tuple[int, str, str, int, str, dict[str, Any], float | None]
"""``(id, namespace, document, ordinal, text, meta, event_time)`` of a memory near a turn."""

_NEXT_MEMORY_ID = (
    "(SELECT MAX(COALESCE((SELECT MAX(id) FROM memories), 0), CAST(value AS INTEGER)) + 1"
    " FROM store_info WHERE key = 'last_memory_id')"
)
"""The id of a new memory: one above any id ever used (migration 0004), never a reused one."""


class SQLiteStore:
    """The store on one SQLite file (or ``":memory:"``), in WAL mode.

    Connections: one write connection, used only inside :meth:`atomic` (or
    :meth:`exclusive`) by the thread holding the write lock, and one read connection per
    thread (``query_only``), so that readers never wait for the writer (WAL). Inside
    :meth:`reading`, every query of the thread sees one committed state. An in-memory store
    has a single connection and serialises reads with writes.

    Args:
        path: the database file, created if missing, or ``":memory:"``.
        tracer: called with every SQL statement executed (for debugging).
        readonly: open without write access (also chosen when the file or its folder is not
            writable); writes raise :class:`StoreError`.

    Raises:
        NotAStoreError: the file exists but is not an engramdb store.
        MigrationError: the store's schema is newer or differs from this engramdb's.
    """

    def __init__(self, path: str | Path, *, tracer: Tracer | None = None, readonly: bool = False):
        self.path = str(path)
        self.memory = self.path == ":memory:"
        self._tracer = tracer
        self._local = _Local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Condition()  # guards readers and active snapshots
        self._active = 0  # read snapshots in progress (close waits for them)
        self._lock = threading.RLock()  # the write lock (and every use of an in-memory store)
        self._owner: int | None = None
        self._depth = 0
        self._closed = False
        self._immutable = False
        if not self.memory:
            _check_is_store(Path(self.path))
            readonly = readonly or _not_writable(Path(self.path))
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None
        if readonly:
            self._prepare_readonly()
            return
        if not self.memory and not Path(self.path).exists():
            self._create()
        conn = self._connect(self.path)
        self._conn = conn
        try:
            self._prepare(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            self._conn = None
            if "readonly" not in str(exc) or self.memory:
                raise store_error(exc, self.path, "opening it") from exc
            self.readonly = True  # no write access after all (e.g. a read-only mount)
            self._prepare_readonly()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise NotAStoreError(
                f"{self.path} is not an engramdb store ({exc})", path=self.path
            ) from exc
        except BaseException:
            conn.close()
            raise

    def _create(self) -> None:
        """Make a new store beside ``path`` and link it into place: the path never shows a
        half-made (empty) file, and when processes create it together one of them wins."""
        path = Path(self.path)
        tmp = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:12]}")
        try:
            conn = self._connect(str(tmp))
            try:
                self._prepare(conn)
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(tmp, path)
        except OSError as exc:
            raise StoreError(f"cannot create the store {path}: {exc}") from exc
        finally:
            for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                target,
                isolation_level=None,
                check_same_thread=False,
                uri=uri,
                timeout=_BUSY_MS / 1e3,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        if self._tracer is not None:
            conn.set_trace_callback(self._tracer)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        tables = _tables(conn)
        if not tables and Path(self.path).exists() and Path(self.path).stat().st_size > 0:
            raise NotAStoreError(
                f"{self.path} is an empty SQLite database of another program, not an engramdb "
                "store; choose another path",
                path=self.path,
            )
        if tables and "store_info" not in tables:
            raise NotAStoreError(
                f"{self.path} is an SQLite database but not an engramdb store "
                f"(it has tables: {', '.join(sorted(tables)[:5])})",
                path=self.path,
            )
        if not self.memory:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        apply_migrations(conn)
        row = conn.execute("SELECT value FROM store_info WHERE key='format'").fetchone()
        if row is None:  # OR IGNORE: another process may be creating the store too
            conn.execute("INSERT OR IGNORE INTO store_info VALUES ('format', ?)", (_FORMAT,))
            conn.execute("INSERT OR IGNORE INTO store_info VALUES ('data_version', '0')")
            conn.execute(
                "INSERT OR IGNORE INTO store_info VALUES ('created', ?)", (str(time.time()),)
            )
        elif row[0] != _FORMAT:
            raise NotAStoreError(
                f"{self.path} holds {row[0]!r}, not an engramdb store", path=self.path
            )

    def _prepare_readonly(self) -> None:
        """Check a store opened without write access (its schema must be current)."""
        if not Path(self.path).exists():
            raise StoreError(f"cannot open {self.path} read-only: no such file")
        try:
            conn = self._reader()
            tables = _tables(conn)
        except sqlite3.DatabaseError as exc:
            raise NotAStoreError(
                f"{self.path} is not an engramdb store ({exc})", path=self.path
            ) from exc
        if "store_info" not in tables:
            raise NotAStoreError(f"{self.path} is not an engramdb store", path=self.path)
        shipped = {m.version for m in available_migrations()}
        applied = {int(r[0]) for r in conn.execute("SELECT version FROM _migrations")}
        if applied != shipped:
            raise MigrationError(
                f"{self.path} needs a schema upgrade, which needs write access: open it once "
                "with write access (e.g. engram stats as its owner)"
            )

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (opened on first use)."""
        conn = self._local.conn
        if conn is not None:
            return conn
        if self._closed:
            raise StoreClosedError("the store is closed")
        if self.memory:
            return self.conn_write
        conn = self._open_reader()
        with self._readers_lock:
            if self._closed:
                conn.close()
                raise StoreClosedError("the store is closed")
            self._readers.append(conn)
        self._local.conn = conn
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        quoted = urllib.parse.quote(str(Path(self.path).resolve()))
        if self.readonly:
            mode = "immutable=1" if self._immutable else "mode=ro"
            conn = self._connect(f"file:{quoted}?{mode}", uri=True)
            try:
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            except sqlite3.OperationalError:
                # WAL needs its -shm file: without write access to the folder, read the
                # file as a frozen snapshot (no other process can be writing it then).
                conn.close()
                if self._immutable:
                    raise
                self._immutable = True
                conn = self._connect(f"file:{quoted}?immutable=1", uri=True)
        else:
            conn = self._connect(self.path)
        conn.execute("PRAGMA query_only=ON")
        return conn

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def conn_write(self) -> sqlite3.Connection:
        """The write connection.

        Raises:
            StoreClosedError: the store was closed.
            StoreError: the store was opened read-only.
        """
        if self._closed:
            raise StoreClosedError("the store is closed")
        if self._conn is None:
            raise StoreError(f"{self.path} is open read-only (no write access to it or its folder)")
        return self._conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection for this thread: the write connection inside :meth:`atomic` or
        :meth:`exclusive` (and always for an in-memory store), else this thread's reader.

        Raises:
            StoreClosedError: the store was closed.
        """
        if self._closed:
            raise StoreClosedError("the store is closed")
        if self.memory or self._owner == threading.get_ident():
            return self.conn_write
        return self._reader()

    def close(self, *, wait: float = 60.0) -> None:
        """Close every connection; later use raises :class:`StoreClosedError`.

        New reads fail at once; reads in progress (:meth:`reading`) and the write in
        progress are waited for (reads up to ``wait`` seconds), since closing a connection
        under a running query is not safe."""
        if self._closed:
            return
        with self._readers_lock:
            self._closed = True
            self._readers_lock.wait_for(lambda: self._active == 0, timeout=wait)
        with self._lock:
            with self._readers_lock:
                readers, self._readers = self._readers, []
            for conn in readers:
                conn.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def exclusive(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock and use the write connection on this thread, without a
        transaction (for schema work that manages its own savepoints)."""
        with self._lock:
            conn = self.conn_write
            previous, self._owner = self._owner, threading.get_ident()
            try:
                yield conn
            finally:
                self._owner = previous

    @contextmanager
    def atomic(
        self,
        *,
        bump: bool = True,
        around_commit: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), or a savepoint when nested.

        Everything inside commits together or, on any exception, rolls back. The outermost
        level bumps the store's ``data_version`` when it changed anything (and ``bump``): a
        write that changes nothing commits nothing. Waits for another process's write lock
        (up to a minute); a failing ``COMMIT`` (disk full, I/O error) rolls back and raises
        :class:`StoreError`, leaving the store as it was. ``around_commit`` wraps the
        ``COMMIT`` itself (the engine publishes its index snapshots there).

        Raises:
            StoreError: the store is read-only, locked for over a minute, or the commit failed.
        """
        with self.exclusive() as conn:
            outer = self._depth == 0
            name = f"sp{self._depth}"
            if outer:
                self._begin(conn)
            else:
                conn.execute(f"SAVEPOINT {name}")
            before = conn.total_changes
            self._depth += 1
            try:
                yield conn
                if outer and bump and conn.total_changes != before:
                    conn.execute(
                        "UPDATE store_info SET value = CAST(value AS INTEGER) + 1 "
                        "WHERE key = 'data_version'"
                    )
            except BaseException:
                self._depth -= 1
                _rollback(conn, None if outer else name)
                raise
            self._depth -= 1
            if not outer:
                conn.execute(f"RELEASE {name}")
                return
            with around_commit() if around_commit is not None else nullcontext():
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    _rollback(conn, None)
                    raise StoreError(
                        f"could not commit to {self.path} ({exc}); nothing was written"
                    ) from exc

    def _begin(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's write lock up to a minute."""
        deadline = time.monotonic() + _LOCK_WAIT_S
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise store_error(exc, self.path, "starting a write") from exc
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"{self.path} stayed locked by another writer for over "
                        f"{_LOCK_WAIT_S:.0f} s; try again later"
                    ) from exc
                time.sleep(0.05)

    @contextmanager
    def reading(self) -> Iterator[int]:
        """A read snapshot on this thread: every query inside sees one committed state.

        Yields the change-log position (:meth:`change_seq`) of that state. Nested calls (and
        calls inside :meth:`atomic` on the writing thread) share the outer snapshot.
        """
        if self.memory or self._owner == threading.get_ident():
            with self._lock:
                yield self.change_seq()
            return
        local = self._local
        if local.depth:
            local.depth += 1
            try:
                yield self.change_seq()
            finally:
                local.depth -= 1
            return
        with self._readers_lock:
            if self._closed:
                raise StoreClosedError("the store is closed")
            self._active += 1
        try:
            conn = self._reader()
            conn.execute("BEGIN")
            local.depth = 1
            try:
                yield self.change_seq()  # the first read fixes the snapshot
            finally:
                local.depth = 0
                if conn.in_transaction:
                    conn.execute("COMMIT")
        finally:
            with self._readers_lock:
                self._active -= 1
                self._readers_lock.notify_all()

    @property
    def data_version(self) -> int:
        """A counter bumped by every committed write transaction that changed something."""
        row = self.conn.execute("SELECT value FROM store_info WHERE key='data_version'").fetchone()
        return int(row[0])

    # -- change log ------------------------------------------------------------------------

    def change_seq(self) -> int:
        """The position of the last change (memory added or deleted) in the change log."""
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return 0 if row is None else int(row[0])

    def changes_since(self, seq: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
        """``(memory ids, ops)`` of the changes after ``seq`` in order (op 1 added, 0 deleted),
        or ``None`` when the log no longer reaches back to ``seq`` (it was pruned)."""
        first = self.oldest_change()
        if first is not None and first > seq + 1:
            return None
        if first is None and self.change_seq() > seq:
            return None
        rows = self.conn.execute(
            "SELECT memory_id, op FROM changes WHERE seq > ? ORDER BY seq", (seq,)
        ).fetchall()
        arr = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        return arr[:, 0].copy(), arr[:, 1].copy()

    def oldest_change(self) -> int | None:
        """The position of the oldest change the log still holds (``None``: it is empty)."""
        first = self.conn.execute("SELECT MIN(seq) FROM changes").fetchone()[0]
        return None if first is None else int(first)

    def prune_changes(self, keep: int) -> int:
        """Drop all but the last ``keep`` changes; call inside :meth:`atomic`. Returns the
        number dropped (a reader further behind reloads its index in full)."""
        cur = self.conn.execute(
            "DELETE FROM changes WHERE seq <= (SELECT seq FROM sqlite_sequence "
            "WHERE name = 'changes') - ?",
            (keep,),
        )
        return cur.rowcount

    def vectors_of(
        self, model: str, ids: Sequence[int]
    ) -> tuple[npt.NDArray[np.int64], Matrix | None, list[tuple[int, str, str]]]:
        """Cached vectors of the given memories: ``(ids, vectors, missing)`` as in
        :meth:`memory_vectors` (ids that are not memories are left out)."""
        rows: list[tuple[Any, ...]] = []
        for chunk in in_chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            rows += self.conn.execute(
                "SELECT m.id, m.hash, m.text, e.vector FROM memories m LEFT JOIN embeddings e"
                f" ON e.model = ? AND e.hash = m.hash WHERE m.id IN ({marks})",
                [model, *chunk],
            ).fetchall()
        return _vectors(rows)

    def integrity(self) -> list[str]:
        """``PRAGMA integrity_check`` problems (an empty list when the file is sound)."""
        return _integrity(self.conn)

    def backup_to(self, target: Path) -> None:
        """Copy one consistent state of the store into a new file at ``target`` with SQLite's
        backup API, then check the copy with ``PRAGMA integrity_check``.

        The copy is read through a connection of its own, in one step: writers (threads of
        this process or other processes) go on meanwhile, and the copy is the state committed
        when it started.

        Raises:
            StoreClosedError: the store was closed.
            CorruptStoreError: the copy fails its integrity check.
            StoreError: ``target`` exists, or the copy could not be written.
        """
        if target.exists():
            raise StoreError(f"cannot back up to {target}: it exists")
        with self.reading():  # close() waits for the copy
            if self.memory:
                with self._lock:
                    self._copy(self.conn_write, target)
                return
            source = self._open_reader()
            try:
                self._copy(source, target)
            finally:
                source.close()

    def _copy(self, source: sqlite3.Connection, target: Path) -> None:
        try:
            copy = sqlite3.connect(str(target), isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create the backup {target}: {exc}") from exc
        try:
            source.backup(copy)
            problems = _integrity(copy)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, f"backing it up to {target}") from exc
        finally:
            copy.close()
        if problems:
            raise CorruptStoreError(
                f"the backup of {self.path} fails its integrity check: {'; '.join(problems[:5])}"
            )

    # -- memories --------------------------------------------------------------------------

    def find_hash(self, namespace: str, text_hash: str) -> int | None:
        """The id of the memory with this content hash in ``namespace``, if any."""
        row = self.conn.execute(
            "SELECT id FROM memories WHERE namespace = ? AND hash = ?", (namespace, text_hash)
        ).fetchone()
        return None if row is None else int(row[0])

    def exists(self, memory_id: int) -> bool:
        """Whether a memory with this id exists."""
        row = self.conn.execute("SELECT 1 FROM memories WHERE id = ?", (memory_id,)).fetchone()
        return row is not None

    def insert_memory(self, memory: NewMemory, *, now: float, memory_id: int | None = None) -> int:
        """Insert a memory with its origin sighting; call inside :meth:`atomic`.

        ``memory_id``: the id to give it (a sharded store's ids come from its catalog);
        ``None``: the next id of this store."""
        memory_id = self.insert_memory_row(memory, ingest_time=now, memory_id=memory_id)
        self.add_sighting(memory_id, memory.sighting, kind="origin", score=1.0, now=now)
        return memory_id

    def insert_memory_row(
        self, memory: NewMemory, *, ingest_time: float, memory_id: int | None = None
    ) -> int:
        """Insert a memory's row (its origin in ``memory.sighting``) without any sighting;
        the caller adds them next, the ``origin`` first. Call inside :meth:`atomic`.
        ``memory_id``: the id to give it (``None``: the next one)."""
        s = memory.sighting
        cur = self.conn.execute(
            "INSERT INTO memories (id, namespace, text, hash, source, document, ordinal,"
            " char_start, char_end, event_time, ingest_time, meta, count) VALUES ("
            + (_NEXT_MEMORY_ID if memory_id is None else "?")
            + ",?,?,?,?,?,?,?,?,?,?,?,1)",
            (
                *(() if memory_id is None else (int(memory_id),)),
                memory.namespace,
                memory.text,
                memory.hash,
                s.source,
                s.document,
                s.ordinal,
                s.start,
                s.end,
                s.event_time,
                ingest_time,
                json.dumps(dict(memory.meta), sort_keys=True, ensure_ascii=False),
            ),
        )
        return int(cur.lastrowid or 0)

    def add_sighting(
        self, memory_id: int, s: NewSighting, *, kind: str, score: float, now: float
    ) -> bool:
        """Record that ``memory_id`` was seen again; False when this exact sighting exists.

        The check uses ``IS`` comparisons, since the table's UNIQUE constraint treats NULL
        positions as distinct.
        """
        if self.has_sighting(memory_id, s):
            return False
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO sightings (memory_id, source, document, ordinal, char_start,"
            " char_end, event_time, seen_time, kind, score, text_hash)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                memory_id,
                s.source,
                s.document,
                s.ordinal,
                s.start,
                s.end,
                s.event_time,
                now,
                kind,
                score,
                s.text_hash,
            ),
        )
        if cur.rowcount == 0:
            return False
        if kind != "origin":
            self.conn.execute("UPDATE memories SET count = count + 1 WHERE id = ?", (memory_id,))
        return True

    def has_sighting(self, memory_id: int, s: NewSighting) -> bool:
        """Whether this exact sighting (same place, same text) is already recorded."""
        row = self.conn.execute(
            "SELECT 1 FROM sightings WHERE memory_id = ? AND source IS ? AND document IS ?"
            " AND ordinal IS ? AND char_start IS ? AND text_hash = ?",
            (memory_id, s.source, s.document, s.ordinal, s.start, s.text_hash),
        ).fetchone()
        return row is not None

    def get_many(self, ids: Sequence[int], *, sightings: bool = False) -> list[MemoryRecord]:
        """Memories by id, in the order asked; missing ids are skipped."""
        if not ids:
            return []
        rows: dict[int, tuple[Any, ...]] = {}
        for chunk in in_chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE id IN ({marks})", chunk
            ):
                rows[int(row[0])] = row
        seen = self._sightings(list(rows)) if sightings else {}
        return [_record(rows[i], tuple(seen.get(i, ()))) for i in ids if i in rows]

    def get(self, memory_id: int) -> MemoryRecord:
        """One memory with its sightings.

        Raises:
            NotFoundError: no memory has this id.
        """
        found = self.get_many([memory_id], sightings=True)
        if not found:
            raise NotFoundError(f"no memory with id {memory_id}")
        return found[0]

    def _sightings(self, ids: list[int]) -> dict[int, list[Sighting]]:
        out: dict[int, list[Sighting]] = {}
        for chunk in in_chunks(ids):
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(
                "SELECT memory_id, source, document, ordinal, char_start, char_end, event_time,"
                f" seen_time, kind, score FROM sightings WHERE memory_id IN ({marks})"
                " ORDER BY memory_id, id",
                chunk,
            ):
                out.setdefault(int(r[0]), []).append(
                    Sighting(
                        source=r[1],
                        position=Position(document=r[2], ordinal=r[3], start=r[4], end=r[5]),
                        event_time=r[6],
                        seen_time=r[7],
                        kind=r[8],
                        score=r[9],
                    )
                )
        return out

    def sighting_rows(self, ids: Sequence[int]) -> dict[int, list[SightingRow]]:
        """``{memory id: its sightings}`` in the order they were recorded, text hashes included."""
        out: dict[int, list[SightingRow]] = {}
        for chunk in in_chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(
                "SELECT memory_id, source, document, ordinal, char_start, char_end, event_time,"
                " text_hash, seen_time, kind, score FROM sightings"
                f" WHERE memory_id IN ({marks}) ORDER BY memory_id, id",
                chunk,
            ):
                sighting = NewSighting(
                    source=r[1],
                    document=r[2],
                    ordinal=r[3],
                    start=r[4],
                    end=r[5],
                    event_time=r[6],
                    text_hash=r[7],
                )
                out.setdefault(int(r[0]), []).append(
                    SightingRow(sighting=sighting, seen_time=r[8], kind=r[9], score=r[10])
                )
        return out

    def turns_around(
        self, ids: Sequence[int], where: str | None = None, params: Sequence[object] = ()
    ) -> list[TurnRow]:
        """Every memory among ``ids`` that may be a conversation turn (a document, an
        ordinal, a speaker or role), with the memories of its document at the ordinals just
        before and after it: ``(id, namespace, document, ordinal, text, meta, event_time)``.
        ``where`` (alias ``m``, with ``params``) filters the rows returned, so that a memory
        the recall's filter excludes comes back neither as a turn nor as a neighbour."""
        if not ids:
            return []
        cond = f" AND ({where})" if where else ""
        rows = self.conn.execute(
            "WITH wanted(id) AS (SELECT value FROM json_each(?))"
            " SELECT DISTINCT m.id, m.namespace, m.document, m.ordinal, m.text, m.meta,"
            " m.event_time"
            # CROSS JOIN keeps this order: from a namespace filter the planner would scan it
            " FROM wanted CROSS JOIN memories AS c CROSS JOIN memories AS m"
            " WHERE c.id = wanted.id AND m.namespace = c.namespace"
            " AND m.document = c.document AND m.ordinal BETWEEN c.ordinal - 1 AND c.ordinal + 1"
            " AND coalesce(json_extract(c.meta, '$.speaker'), json_extract(c.meta, '$.role'))"
            f" IS NOT NULL{cond}",
            (json.dumps([int(i) for i in ids]), *params),
        ).fetchall()
        return [(int(r[0]), r[1], r[2], int(r[3]), r[4], json.loads(r[5]), r[6]) for r in rows]

    def turn_keys(self, ids: Sequence[int]) -> dict[int, tuple[str, str, int]]:
        """``{id: (namespace, document, ordinal)}`` of the memories among ``ids`` that may
        be conversation turns (a document, an ordinal, a speaker or role)."""
        if not ids:
            return {}
        rows = self.conn.execute(
            "WITH wanted(id) AS (SELECT value FROM json_each(?))"
            " SELECT c.id, c.namespace, c.document, c.ordinal"
            " FROM wanted CROSS JOIN memories AS c"
            " WHERE c.id = wanted.id AND c.document IS NOT NULL AND c.ordinal IS NOT NULL"
            " AND coalesce(json_extract(c.meta, '$.speaker'), json_extract(c.meta, '$.role'))"
            " IS NOT NULL",
            (json.dumps([int(i) for i in ids]),),
        ).fetchall()
        return {int(r[0]): (r[1], r[2], int(r[3])) for r in rows}

    def rows_at(
        self,
        keys: Sequence[tuple[str, str, int]],
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> list[TurnRow]:
        """The memories at these ``(namespace, document, ordinal)`` places, as
        :meth:`turns_around` gives them, filtered by ``where`` (alias ``m``)."""
        if not keys:
            return []
        cond = f" AND ({where})" if where else ""
        rows = self.conn.execute(
            "WITH wanted(ns, doc, ord) AS (SELECT json_extract(value, '$[0]'),"
            " json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?))"
            " SELECT DISTINCT m.id, m.namespace, m.document, m.ordinal, m.text, m.meta,"
            " m.event_time FROM wanted CROSS JOIN memories AS m"
            f" WHERE m.namespace = wanted.ns AND m.document = wanted.doc AND m.ordinal = wanted.ord"
            f"{cond}",
            (json.dumps([list(k) for k in keys]), *params),
        ).fetchall()
        return [(int(r[0]), r[1], r[2], int(r[3]), r[4], json.loads(r[5]), r[6]) for r in rows]

    def at_ordinals(
        self, namespace: str, document: str, ordinals: Sequence[int]
    ) -> list[MemoryRecord]:
        """The memories of a document at these ordinals, in the order of ``ordinals``."""
        if not ordinals:
            return []
        marks = ",".join("?" * len(ordinals))
        rows = self.conn.execute(
            f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE namespace = ? AND document = ?"
            f" AND ordinal IN ({marks})",
            (namespace, document, *ordinals),
        ).fetchall()
        by_ordinal = {int(r[6]): _record(r, ()) for r in rows}
        return [by_ordinal[o] for o in ordinals if o in by_ordinal]

    def last_ordinal(self, namespace: str, document: str) -> int | None:
        """The largest ordinal of a document's memories in a namespace (``None``: none)."""
        row = self.conn.execute(
            "SELECT MAX(ordinal) FROM memories WHERE namespace = ? AND document = ?",
            (namespace, document),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def superseded(self, ids: Sequence[int]) -> dict[int, float | None]:
        """``{id: valid_to}`` of the memories among ``ids`` that another superseded."""
        out: dict[int, float | None] = {}
        for chunk in in_chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT id, valid_to FROM memories WHERE id IN ({marks}) AND valid_to IS NOT NULL",
                chunk,
            ):
                out[int(row[0])] = float(row[1])
        return out

    def texts(self, ids: Sequence[int]) -> dict[int, str]:
        """``{id: text}`` for the given ids."""
        out: dict[int, str] = {}
        for chunk in in_chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            out.update(
                (int(i), str(t))
                for i, t in self.conn.execute(
                    f"SELECT id, text FROM memories WHERE id IN ({marks})", chunk
                )
            )
        return out

    def count_where(self, where: str = "1", params: Sequence[object] = ()) -> int:
        """How many memories match an SQL condition over alias ``m`` (counted by SQLite,
        without building the list of ids)."""
        row = self.conn.execute(f"SELECT COUNT(*) FROM memories m WHERE {where}", params)
        return int(row.fetchone()[0])

    def select_ids(self, where: str = "1", params: Sequence[object] = ()) -> npt.NDArray[np.int64]:
        """Ids of memories matching an SQL condition over alias ``m``."""
        rows = self.conn.execute(f"SELECT m.id FROM memories m WHERE {where} ORDER BY m.id", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def page_ids(self, namespace: str | None, *, after: int, limit: int) -> list[int]:
        """Up to ``limit`` memory ids above ``after`` (in ``namespace``, when given), in order."""
        if namespace is None:
            rows = self.conn.execute(
                "SELECT id FROM memories WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
            )
        else:
            rows = self.conn.execute(
                "SELECT id FROM memories WHERE namespace = ? AND id > ? ORDER BY id LIMIT ?",
                (namespace, after, limit),
            )
        return [int(r[0]) for r in rows]

    def namespaces(self) -> dict[str, int]:
        """``{namespace: memory count}``."""
        return {
            str(ns): int(n)
            for ns, n in self.conn.execute(
                "SELECT namespace, COUNT(*) FROM memories GROUP BY namespace ORDER BY namespace"
            )
        }

    # -- forgetting -------------------------------------------------------------------------

    def delete_memories(self, ids: Iterable[int]) -> list[int]:
        """Delete memories (their sightings and bands cascade). Returns the ids deleted."""
        gone: list[int] = []
        for chunk in in_chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            gone += [
                int(r[0])
                for r in self.conn.execute(
                    f"DELETE FROM memories WHERE id IN ({marks}) RETURNING id", chunk
                )
            ]
        return gone

    def forget_source(
        self, source: str, *, namespace: str | None = None
    ) -> tuple[list[int], list[int]]:
        """Remove every sighting from ``source`` (of memories in ``namespace``, when given).

        Memories left without any sighting are deleted; the others lose one from their count
        and, when ``source`` was their origin, take their earliest remaining sighting as origin.
        Returns ``(deleted ids, updated ids)``.
        """
        conn = self.conn
        cond, params = "source = ?", [source]
        if namespace is not None:
            cond += " AND memory_id IN (SELECT id FROM memories WHERE namespace = ?)"
            params.append(namespace)
        touched = [
            int(r[0])
            for r in conn.execute(f"SELECT DISTINCT memory_id FROM sightings WHERE {cond}", params)
        ]
        conn.execute(f"DELETE FROM sightings WHERE {cond}", params)
        deleted: list[int] = []
        updated: list[int] = []
        for memory_id in touched:
            rest = conn.execute(
                "SELECT id, source, document, ordinal, char_start, char_end, event_time"
                " FROM sightings WHERE memory_id = ? ORDER BY id",
                (memory_id,),
            ).fetchall()
            if not rest:
                deleted += self.delete_memories([memory_id])
                continue
            updated.append(memory_id)
            first = rest[0]
            conn.execute("UPDATE sightings SET kind = 'origin' WHERE id = ?", (first[0],))
            conn.execute(
                "UPDATE memories SET count = ?, source = ?, document = ?, ordinal = ?,"
                " char_start = ?, char_end = ?, event_time = ? WHERE id = ? AND source IS ?",
                (len(rest), *first[1:], memory_id, source),
            )
            conn.execute("UPDATE memories SET count = ? WHERE id = ?", (len(rest), memory_id))
        return deleted, updated

    def drop_orphan_embeddings(self) -> int:
        """Delete cached embeddings whose content no live memory has. Returns the count.

        A write in flight re-caches its vectors as it commits (``put_embeddings``)."""
        cur = self.conn.execute(
            "DELETE FROM embeddings WHERE hash NOT IN (SELECT hash FROM memories)"
        )
        return cur.rowcount

    # -- embedding cache --------------------------------------------------------------------

    def cached_embeddings(
        self, model: str, hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """``{hash: vector}`` for the hashes already embedded by ``model``."""
        out: dict[str, npt.NDArray[np.float32]] = {}
        for chunk in in_chunks(list(hashes)):
            marks = ",".join("?" * len(chunk))
            for h, blob in self.conn.execute(
                f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({marks})",
                [model, *chunk],
            ):
                out[str(h)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return out

    def put_embeddings(
        self, model: str, hashes: Sequence[str], vectors: Matrix, *, replace: bool = True
    ) -> None:
        """Cache vectors under ``(model, hash)`` (``replace=False`` keeps those cached
        already); call inside :meth:`atomic`."""
        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        verb = "REPLACE" if replace else "IGNORE"
        self.conn.executemany(
            f"INSERT OR {verb} INTO embeddings (model, hash, dim, vector) VALUES (?,?,?,?)",
            [
                (model, h, dim, np.ascontiguousarray(v, dtype="<f4").tobytes())
                for h, v in zip(hashes, vectors, strict=True)
            ],
        )

    def memory_vectors(
        self, model: str
    ) -> tuple[npt.NDArray[np.int64], Matrix | None, list[tuple[int, str, str]]]:
        """Every memory's vector from the cache: ``(ids, vectors, missing)``.

        ``missing`` lists ``(id, hash, text)`` of memories with no cached vector for ``model``.
        """
        return _vectors(
            self.conn.execute(
                "SELECT m.id, m.hash, m.text, e.vector FROM memories m LEFT JOIN embeddings e"
                " ON e.model = ? AND e.hash = m.hash ORDER BY m.id",
                (model,),
            )
        )

    # -- MinHash bands ----------------------------------------------------------------------

    def put_bands(self, memory_id: int, keys: Sequence[bytes], signature: bytes) -> None:
        """Store a memory's LSH band keys and MinHash signature."""
        self.conn.executemany(
            "INSERT OR IGNORE INTO minhash_bands (memory_id, band, key) VALUES (?,?,?)",
            [(memory_id, band, key) for band, key in enumerate(keys)],
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO minhash_signatures (memory_id, signature) VALUES (?, ?)",
            (memory_id, signature),
        )

    def band_candidates(
        self, namespace: str | None, keys: Sequence[bytes], limit: int
    ) -> list[int]:
        """Memories sharing at least one band key, most shared bands first."""
        return [memory_id for memory_id, _ in self.band_matches(namespace, keys, limit)]

    def band_matches(
        self, namespace: str | None, keys: Sequence[bytes], limit: int
    ) -> list[tuple[int, int]]:
        """``(id, bands shared)`` of the memories sharing at least one band key, most
        shared bands first, then by id."""
        if not keys:
            return []
        clauses = " OR ".join("(b.band = ? AND b.key = ?)" for _ in keys)
        params: list[object] = [v for band, key in enumerate(keys) for v in (band, key)]
        ns = ""
        if namespace is not None:
            ns = " AND m.namespace = ?"
            params.append(namespace)
        params.append(limit)
        # CROSS JOIN keeps the band lookups as the outer loop: a plain JOIN lets SQLite scan
        # every memory of the namespace first (time growing with the store).
        rows = self.conn.execute(
            f"SELECT b.memory_id, COUNT(*) AS shared FROM minhash_bands b"
            f" CROSS JOIN memories m ON m.id = b.memory_id WHERE ({clauses}){ns}"
            " GROUP BY b.memory_id ORDER BY shared DESC, b.memory_id LIMIT ?",
            params,
        )
        return [(int(r[0]), int(r[1])) for r in rows]

    # -- stats ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Row counts of the main tables."""
        conn = self.conn
        return {
            "memories": int(conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0]),
            "sightings": int(conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0]),
            "sources": int(
                conn.execute("SELECT COUNT(DISTINCT source) FROM sightings").fetchone()[0]
            ),
            "embeddings": int(conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]),
        }

    def size_bytes(self) -> int:
        """Size of the database (pages in use), in bytes."""
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        return int(page_size) * int(pages)


IN_CHUNK = 900
"""Values bound per ``IN (...)`` list: well under SQLite's bound-variable limit."""


def in_chunks(items: list[Any], size: int = IN_CHUNK) -> Iterator[list[Any]]:
    """``items`` in consecutive slices of at most ``size``, for ``IN (...)`` lists."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _record(row: tuple[Any, ...], sightings: tuple[Sighting, ...]) -> MemoryRecord:
    return MemoryRecord(
        id=int(row[0]),
        namespace=row[1],
        text=row[2],
        hash=row[3],
        source=row[4],
        position=Position(document=row[5], ordinal=row[6], start=row[7], end=row[8]),
        event_time=row[9],
        ingest_time=row[10],
        meta=json.loads(row[11]),
        count=int(row[12]),
        sightings=sightings,
        valid_to=row[13],
    )


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _not_writable(path: Path) -> bool:
    """Whether the store file (or, for a new one, its folder) cannot be written."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.exists():
        return not (os.access(path, os.W_OK) and os.access(folder, os.W_OK))
    return False


def _rollback(conn: sqlite3.Connection, savepoint: str | None) -> None:
    """Undo the open transaction (or savepoint); never raises over the original error."""
    try:
        if savepoint is None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        else:
            conn.execute(f"ROLLBACK TO {savepoint}")
            conn.execute(f"RELEASE {savepoint}")
    except sqlite3.Error:
        pass


def _vectors(
    rows: Iterable[tuple[Any, ...]],
) -> tuple[npt.NDArray[np.int64], Matrix | None, list[tuple[int, str, str]]]:
    """``(ids, vectors, missing)`` from ``(id, hash, text, vector blob or NULL)`` rows."""
    ids: list[int] = []
    blobs: list[bytes] = []
    missing: list[tuple[int, str, str]] = []
    for memory_id, h, text, blob in rows:
        if blob is None:
            missing.append((int(memory_id), str(h), str(text)))
        else:
            ids.append(int(memory_id))
            blobs.append(blob)
    if not blobs:
        return np.empty(0, dtype=np.int64), None, missing
    vectors = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
    return np.asarray(ids, dtype=np.int64), vectors.astype(np.float32), missing
