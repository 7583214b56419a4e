"""SQLiteStore: the source of truth — memories, sightings, embedding cache, MinHash bands."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.errors import NotAStoreError, NotFoundError, StoreClosedError, StoreError
from engramdb.store.migrations import apply_migrations
from engramdb.types import Matrix, MemoryRecord, Position, Sighting

__all__ = ["NewMemory", "NewSighting", "SQLiteStore"]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_FORMAT = "engramdb.store"
Tracer = Callable[[str], None]

_MEMORY_COLUMNS = (
    "id, namespace, text, hash, source, document, ordinal, char_start, char_end,"
    " event_time, ingest_time, meta, count"
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


def _check_is_store(path: Path) -> None:
    if not path.exists():
        return
    if path.is_dir():
        raise NotAStoreError(f"{path} is a directory, not an engramdb store file", path=path)
    with path.open("rb") as fh:
        head = fh.read(16)
    if head and head != _SQLITE_MAGIC:
        raise NotAStoreError(
            f"{path} is not an engramdb store (not an SQLite database); "
            "choose another --db path or move the file away",
            path=path,
        )


class SQLiteStore:
    """The store on one SQLite file (or ``":memory:"``), in WAL mode.

    Args:
        path: the database file, created if missing, or ``":memory:"``.
        tracer: called with every SQL statement executed (for debugging).

    Raises:
        NotAStoreError: the file exists but is not an engramdb store.
        MigrationError: the store's schema is newer or differs from this engramdb's.
    """

    def __init__(self, path: str | Path, *, tracer: Tracer | None = None):
        self.path = str(path)
        if self.path != ":memory:":
            _check_is_store(Path(self.path))
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._depth = 0
        if tracer is not None:
            conn.set_trace_callback(tracer)
        try:
            self._prepare(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise NotAStoreError(
                f"{self.path} is not an engramdb store ({exc})", path=self.path
            ) from exc
        except BaseException:
            conn.close()
            raise

    def _prepare(self, conn: sqlite3.Connection) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "store_info" not in tables:
            raise NotAStoreError(
                f"{self.path} is an SQLite database but not an engramdb store "
                f"(it has tables: {', '.join(sorted(tables)[:5])})",
                path=self.path,
            )
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA synchronous=NORMAL")
        apply_migrations(conn)
        row = conn.execute("SELECT value FROM store_info WHERE key='format'").fetchone()
        if row is None:
            conn.execute("INSERT INTO store_info VALUES ('format', ?)", (_FORMAT,))
            conn.execute("INSERT INTO store_info VALUES ('data_version', '0')")
            conn.execute("INSERT INTO store_info VALUES ('created', ?)", (str(time.time()),))
        elif row[0] != _FORMAT:
            raise NotAStoreError(
                f"{self.path} holds {row[0]!r}, not an engramdb store", path=self.path
            )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection.

        Raises:
            StoreClosedError: the store was closed.
        """
        if self._conn is None:
            raise StoreClosedError("the store is closed")
        return self._conn

    def close(self) -> None:
        """Close the connection; later use raises :class:`StoreClosedError`."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """A transaction (``BEGIN IMMEDIATE``), or a savepoint when nested.

        Everything inside commits together or, on any exception, rolls back. The outermost
        level also bumps the store's ``data_version``.
        """
        conn = self.conn
        with self._lock:
            outer = self._depth == 0
            name = f"sp{self._depth}"
            conn.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield conn
                if outer:
                    conn.execute(
                        "UPDATE store_info SET value = CAST(value AS INTEGER) + 1 "
                        "WHERE key = 'data_version'"
                    )
            except BaseException:
                self._depth -= 1
                conn.execute("ROLLBACK" if outer else f"ROLLBACK TO {name}")
                if not outer:
                    conn.execute(f"RELEASE {name}")
                raise
            self._depth -= 1
            conn.execute("COMMIT" if outer else f"RELEASE {name}")

    @property
    def data_version(self) -> int:
        """A counter bumped by every committed write transaction."""
        row = self.conn.execute("SELECT value FROM store_info WHERE key='data_version'").fetchone()
        return int(row[0])

    # -- memories --------------------------------------------------------------------------

    def find_hash(self, namespace: str, text_hash: str) -> int | None:
        """The id of the memory with this content hash in ``namespace``, if any."""
        row = self.conn.execute(
            "SELECT id FROM memories WHERE namespace = ? AND hash = ?", (namespace, text_hash)
        ).fetchone()
        return None if row is None else int(row[0])

    def insert_memory(self, memory: NewMemory, *, now: float) -> int:
        """Insert a memory with its origin sighting; call inside :meth:`atomic`."""
        s = memory.sighting
        cur = self.conn.execute(
            "INSERT INTO memories (namespace, text, hash, source, document, ordinal, char_start,"
            " char_end, event_time, ingest_time, meta, count) VALUES (?,?,?,?,?,?,?,?,?,?,?,1)",
            (
                memory.namespace,
                memory.text,
                memory.hash,
                s.source,
                s.document,
                s.ordinal,
                s.start,
                s.end,
                s.event_time,
                now,
                json.dumps(dict(memory.meta), sort_keys=True, ensure_ascii=False),
            ),
        )
        memory_id = int(cur.lastrowid or 0)
        self.add_sighting(memory_id, s, kind="origin", score=1.0, now=now)
        return memory_id

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
        for chunk in _chunks(list(ids), 900):
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
        for chunk in _chunks(ids, 900):
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

    def texts(self, ids: Sequence[int]) -> dict[int, str]:
        """``{id: text}`` for the given ids."""
        out: dict[int, str] = {}
        for chunk in _chunks(list(ids), 900):
            marks = ",".join("?" * len(chunk))
            out.update(
                (int(i), str(t))
                for i, t in self.conn.execute(
                    f"SELECT id, text FROM memories WHERE id IN ({marks})", chunk
                )
            )
        return out

    def select_ids(self, where: str = "1", params: Sequence[object] = ()) -> npt.NDArray[np.int64]:
        """Ids of memories matching an SQL condition over alias ``m``."""
        rows = self.conn.execute(f"SELECT m.id FROM memories m WHERE {where} ORDER BY m.id", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

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
        for chunk in _chunks(list(ids), 900):
            marks = ",".join("?" * len(chunk))
            gone += [
                int(r[0])
                for r in self.conn.execute(
                    f"DELETE FROM memories WHERE id IN ({marks}) RETURNING id", chunk
                )
            ]
        return gone

    def forget_source(self, source: str) -> tuple[list[int], list[int]]:
        """Remove every sighting from ``source``.

        Memories left without any sighting are deleted; the others lose one from their count
        and, when ``source`` was their origin, take their earliest remaining sighting as origin.
        Returns ``(deleted ids, updated ids)``.
        """
        conn = self.conn
        touched = [
            int(r[0])
            for r in conn.execute(
                "SELECT DISTINCT memory_id FROM sightings WHERE source = ?", (source,)
            )
        ]
        conn.execute("DELETE FROM sightings WHERE source = ?", (source,))
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
        """Delete cached embeddings whose content no live memory has. Returns the count."""
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
        for chunk in _chunks(list(hashes), 900):
            marks = ",".join("?" * len(chunk))
            for h, blob in self.conn.execute(
                f"SELECT hash, vector FROM embeddings WHERE model = ? AND hash IN ({marks})",
                [model, *chunk],
            ):
                out[str(h)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        return out

    def put_embeddings(self, model: str, hashes: Sequence[str], vectors: Matrix) -> None:
        """Cache vectors under ``(model, hash)``; call inside :meth:`atomic`."""
        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        self.conn.executemany(
            "INSERT OR REPLACE INTO embeddings (model, hash, dim, vector) VALUES (?,?,?,?)",
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
        ids: list[int] = []
        blobs: list[bytes] = []
        missing: list[tuple[int, str, str]] = []
        for memory_id, h, text, blob in self.conn.execute(
            "SELECT m.id, m.hash, m.text, e.vector FROM memories m LEFT JOIN embeddings e"
            " ON e.model = ? AND e.hash = m.hash ORDER BY m.id",
            (model,),
        ):
            if blob is None:
                missing.append((int(memory_id), str(h), str(text)))
            else:
                ids.append(int(memory_id))
                blobs.append(blob)
        if not blobs:
            return np.empty(0, dtype=np.int64), None, missing
        vectors = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1)
        return np.asarray(ids, dtype=np.int64), vectors.astype(np.float32), missing

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
        if not keys:
            return []
        clauses = " OR ".join("(b.band = ? AND b.key = ?)" for _ in keys)
        params: list[object] = [v for band, key in enumerate(keys) for v in (band, key)]
        ns = ""
        if namespace is not None:
            ns = " AND m.namespace = ?"
            params.append(namespace)
        params.append(limit)
        rows = self.conn.execute(
            f"SELECT b.memory_id, COUNT(*) AS shared FROM minhash_bands b"
            f" JOIN memories m ON m.id = b.memory_id WHERE ({clauses}){ns}"
            " GROUP BY b.memory_id ORDER BY shared DESC, b.memory_id LIMIT ?",
            params,
        )
        return [int(r[0]) for r in rows]

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


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
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
    )
