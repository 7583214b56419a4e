"""SQLiteGraph: phrase nodes, passage links, co-occurrence and synonym edges in the store's DB.

Tables (created by :meth:`SQLiteGraph.ensure`, like the FTS5 index, because the graph is
derived data: a change of extractor, encoder or layout drops and rebuilds it from the
memories, which a numbered migration could not do):

* ``graph_nodes(id, phrase UNIQUE, vector)``: one row per normalised phrase, with its
  unit-length embedding as float16 (used for synonym edges and query linking);
* ``graph_passages(memory_id)``: the memories already in the graph (even with no phrase);
* ``graph_mentions(memory_id, node_id, count, named)``: "contains" edges, passage → phrase,
  weighted by the phrase's occurrences; ``named`` when the passage used it as a named
  entity or proper noun;
* ``graph_pairs(memory_id, a, b, count)``: phrase pairs sharing a sentence in that memory;
  the edge weight of ``a–b`` is the sum over live memories, so forgetting one subtracts
  exactly its support;
* ``graph_synonyms(a, b, score)``: every phrase pair whose cosine exceeds the threshold;
  the per-node cap is applied when the graph is loaded, so the stored set does not depend
  on the order memories arrived in;
* ``graph_state(key, value)``: ``nodes`` is a random token replaced whenever nodes are
  added (by :meth:`SQLiteGraph.add`) or deleted (by a trigger), so that the in-memory matrix
  of node vectors used to find synonyms is known to be current with one read (a rolled
  back write or another connection's leaves a token the matrix was not made for).

Every per-memory row references ``memories(id) ON DELETE CASCADE``, and a trigger deletes a
phrase node when its last mention goes (its synonym and pair rows cascade). Forgetting a
memory, by any path, therefore leaves no orphan node or edge, in the same transaction.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engramdb.errors import InvalidInputError, StoreError
from engramdb.graph.extract import Extraction

__all__ = ["FORMAT_VERSION", "GraphSnapshot", "SQLiteGraph", "synonym_pairs"]

FORMAT_VERSION = 3
"""Bumped when the table layout changes; a mismatch drops and rebuilds the graph."""

_TABLES = (
    *("graph_synonyms", "graph_pairs", "graph_mentions", "graph_passages", "graph_nodes"),
    "graph_state",
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS graph_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE graph_nodes (id INTEGER PRIMARY KEY, phrase TEXT NOT NULL UNIQUE, vector BLOB)",
    "CREATE TABLE graph_passages (memory_id INTEGER PRIMARY KEY"
    " REFERENCES {table} (id) ON DELETE CASCADE)",
    "CREATE TABLE graph_mentions ("
    " memory_id INTEGER NOT NULL REFERENCES {table} (id) ON DELETE CASCADE,"
    " node_id INTEGER NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,"
    " count INTEGER NOT NULL, named INTEGER NOT NULL,"
    " PRIMARY KEY (memory_id, node_id)) WITHOUT ROWID",
    "CREATE INDEX graph_mentions_node ON graph_mentions (node_id)",
    "CREATE TABLE graph_pairs ("
    " memory_id INTEGER NOT NULL REFERENCES {table} (id) ON DELETE CASCADE,"
    " a INTEGER NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,"
    " b INTEGER NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,"
    " count INTEGER NOT NULL, PRIMARY KEY (memory_id, a, b), CHECK (a < b)) WITHOUT ROWID",
    "CREATE INDEX graph_pairs_a ON graph_pairs (a)",
    "CREATE INDEX graph_pairs_b ON graph_pairs (b)",
    "CREATE TABLE graph_synonyms ("
    " a INTEGER NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,"
    " b INTEGER NOT NULL REFERENCES graph_nodes (id) ON DELETE CASCADE,"
    " score REAL NOT NULL, PRIMARY KEY (a, b), CHECK (a < b)) WITHOUT ROWID",
    "CREATE INDEX graph_synonyms_b ON graph_synonyms (b)",
    "CREATE TRIGGER graph_mentions_prune AFTER DELETE ON graph_mentions"
    " WHEN NOT EXISTS (SELECT 1 FROM graph_mentions WHERE node_id = OLD.node_id)"
    " BEGIN DELETE FROM graph_nodes WHERE id = OLD.node_id; END",
    "CREATE TABLE graph_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO graph_state VALUES ('nodes', lower(hex(randomblob(8))))",
    "CREATE TRIGGER graph_nodes_gone AFTER DELETE ON graph_nodes BEGIN"
    " UPDATE graph_state SET value = lower(hex(randomblob(8))) WHERE key = 'nodes'; END",
)
_SAVEPOINT = "engramdb_graph"
_CHUNK = 900

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphSnapshot:
    """The whole graph as arrays, read in one go for recall.

    Attributes:
        phrases: phrase text per node index.
        vectors: ``(n_phrases, d)`` float32 phrase embeddings (zero rows where missing).
        memory_ids: memory id per passage index, ascending.
        mentions: ``(n, 4)`` rows ``(phrase index, passage index, count, named)``.
        pairs: ``(n, 2)`` phrase index pairs and ``pair_weights``, their summed counts.
        synonyms: ``(n, 2)`` phrase index pairs and ``synonym_scores``, their cosines.
    """

    phrases: tuple[str, ...]
    vectors: FloatArray
    memory_ids: IntArray
    mentions: IntArray
    pairs: IntArray
    pair_weights: FloatArray
    synonyms: IntArray
    synonym_scores: FloatArray


def synonym_pairs(
    new: FloatArray, old: FloatArray, *, threshold: float, offset: int = 0, block: int = 256
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)`` with cosine > ``threshold`` between new and all vectors.

    ``new`` rows are also rows ``offset ..`` of ``old`` (the new vectors appended); a row is
    never paired with itself and each unordered pair among new rows appears once.

    Args:
        new: ``(m, d)`` unit vectors.
        old: ``(n, d)`` unit vectors, including ``new`` at ``offset``.
        threshold: the cosine a pair must exceed.
        offset: where ``new`` starts in ``old``.
        block: rows of ``new`` per matrix product (bounds the memory: ``block x n`` floats).

    Returns:
        ``(row in old, row in old, score)`` triples, the smaller row first.
    """
    out: list[tuple[int, int, float]] = []
    for start in range(0, len(new), block):
        sims = new[start : start + block] @ old.T
        rows, cols = np.nonzero(sims > threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = offset + start + r
            if c == i or (offset <= c < offset + len(new) and c < i):
                continue  # itself, or a new-new pair already seen from the other side
            out.append((min(i, c), max(i, c), float(sims[r, c])))
    return out


_VECTOR = "<f2"
"""Phrase vectors are stored as float16: half the size (a 384-d row fits five to a page),
cosines within ~1e-3 of float32."""


def _blob(vector: npt.NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(vector, dtype=_VECTOR).tobytes()


class _NodeMatrix:
    """The synonym-eligible nodes' vectors as stored (float16 values in float32), by id, kept
    in memory between writes and grown in place; valid while ``token`` is the stored one."""

    def __init__(self) -> None:
        self.token: str | None = None
        self._ids = np.empty(0, dtype=np.int64)
        self._rows = np.empty((0, 0), dtype=np.float32)
        self.size = 0

    @property
    def ids(self) -> IntArray:
        return self._ids[: self.size]

    @property
    def rows(self) -> FloatArray:
        return self._rows[: self.size]

    def reset(self, ids: IntArray, rows: FloatArray) -> None:
        self._ids, self._rows, self.size = ids, rows, len(ids)

    def append(self, ids: IntArray, rows: FloatArray) -> None:
        """Add rows at the end (their ids are larger than any held)."""
        if self._rows.shape[1] != rows.shape[1]:
            if self.size:
                raise InvalidInputError(
                    f"phrase vectors of dimension {rows.shape[1]}, the graph's have "
                    f"{self._rows.shape[1]}"
                )
            self._rows = np.empty((0, rows.shape[1]), dtype=np.float32)
        need = self.size + len(ids)
        if need > len(self._ids):
            capacity = max(need, len(self._ids) + len(self._ids) // 2, 1024)
            grown = np.empty((capacity, rows.shape[1]), dtype=np.float32)
            grown[: self.size] = self.rows
            grown_ids = np.empty(capacity, dtype=np.int64)
            grown_ids[: self.size] = self.ids
            self._rows, self._ids = grown, grown_ids
        self._rows[self.size : need] = rows
        self._ids[self.size : need] = ids
        self.size = need


class SQLiteGraph:
    """The memory graph on a caller-owned SQLite connection.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``) with
            ``PRAGMA foreign_keys=ON``; never closed here.
        table: the memories table (``id INTEGER PRIMARY KEY``, ``text``).
        synonym_threshold: cosine above which two phrases get a synonym edge.
        min_synonym_chars: phrases with fewer alphanumeric characters get no synonym edge.
    """

    def __init__(
        self,
        conn: sqlite3.Connection | Callable[[], sqlite3.Connection],
        *,
        table: str = "memories",
        synonym_threshold: float = 0.8,
        min_synonym_chars: int = 3,
    ) -> None:
        self._conn = conn
        self.table = table
        self.synonym_threshold = synonym_threshold
        self.min_synonym_chars = min_synonym_chars
        self.seconds: dict[str, float] = {}
        """Seconds spent writing, by part: ``nodes`` (node rows), ``synonyms`` (the search
        and its rows), ``links`` (passage, mention and pair rows); summed over every write."""
        self._matrix = _NodeMatrix()
        self._lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection to use now (a callable source gives the calling thread's)."""
        return self._conn if isinstance(self._conn, sqlite3.Connection) else self._conn()

    # -- schema --------------------------------------------------------------------------

    def ensure(self, fingerprint: Mapping[str, str]) -> bool:
        """Create the tables, or drop and recreate them when ``fingerprint`` changed.

        Args:
            fingerprint: what the stored graph depends on (extractor name, encoder id,
                synonym threshold); any change empties the graph for a rebuild.

        Returns:
            True when the graph was (re)created empty and memories need adding.

        Raises:
            StoreError: SQLite failed (e.g. the memories table is missing).
        """
        wanted = {**fingerprint, "format_version": str(FORMAT_VERSION)}
        try:
            if self._stored_fingerprint() == wanted:
                return False
            self.conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            try:
                self._create(wanted)
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                self.conn.execute(f"RELEASE {_SAVEPOINT}")
                raise
            self.conn.execute(f"RELEASE {_SAVEPOINT}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot create the graph tables: {exc}") from exc
        return True

    def _stored_fingerprint(self) -> dict[str, str] | None:
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'graph_info'"
        ).fetchone()
        if exists is None:
            return None
        return {str(k): str(v) for k, v in self.conn.execute("SELECT key, value FROM graph_info")}

    def _create(self, fingerprint: Mapping[str, str]) -> None:
        self.conn.execute("DROP TRIGGER IF EXISTS graph_mentions_prune")
        for name in _TABLES:
            self.conn.execute(f"DROP TABLE IF EXISTS {name}")
        for statement in _SCHEMA:
            self.conn.execute(statement.format(table=self.table))
        self.conn.execute("DELETE FROM graph_info")
        self.conn.executemany("INSERT INTO graph_info VALUES (?, ?)", sorted(fingerprint.items()))

    # -- writing -------------------------------------------------------------------------

    def unindexed(self, limit: int | None = None) -> list[tuple[int, str]]:
        """``(id, text)`` of memories not yet in the graph, by id."""
        sql = (
            f"SELECT m.id, m.text FROM {self.table} m WHERE NOT EXISTS"
            " (SELECT 1 FROM graph_passages g WHERE g.memory_id = m.id) ORDER BY m.id"
        )
        rows = self.conn.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [(int(i), str(t)) for i, t in rows]

    def missing_phrases(self, phrases: Iterable[str]) -> list[str]:
        """The distinct phrases, in first-seen order, that have no node yet."""
        wanted = list(dict.fromkeys(phrases))
        known = self._node_ids(wanted)
        return [p for p in wanted if p not in known]

    def add(
        self,
        memory_ids: Sequence[int],
        extractions: Sequence[Extraction],
        vectors: Mapping[str, npt.NDArray[np.float32]],
    ) -> None:
        """Add memories' phrases and edges; call inside the caller's transaction.

        Args:
            memory_ids: ids of memories not in the graph yet.
            extractions: one per memory, in order.
            vectors: a unit-length embedding for every phrase that has no node yet
                (see :meth:`missing_phrases`); other entries are ignored.

        Raises:
            InvalidInputError: lengths differ, or a new phrase has no vector.
        """
        if len(memory_ids) != len(extractions):
            raise InvalidInputError("memory_ids and extractions must have the same length")
        phrases = [p for ex in extractions for p in ex.phrases]
        new = self.missing_phrases(phrases)
        lacking = [p for p in new if p not in vectors]
        if lacking:
            raise InvalidInputError(f"no vector for new phrase(s): {', '.join(lacking[:5])}")
        self._add_nodes(new, vectors)
        start = time.perf_counter()
        ids = self._node_ids(phrases)
        conn = self.conn
        for memory_id, ex in zip(memory_ids, extractions, strict=True):
            conn.execute("INSERT INTO graph_passages (memory_id) VALUES (?)", (int(memory_id),))
            conn.executemany(
                "INSERT INTO graph_mentions (memory_id, node_id, count, named) VALUES (?, ?, ?, ?)",
                [(int(memory_id), ids[p], n, int(p in ex.named)) for p, n in ex.phrases.items()],
            )
            conn.executemany(
                "INSERT INTO graph_pairs (memory_id, a, b, count) VALUES (?, ?, ?, ?)",
                [
                    (int(memory_id), *sorted((ids[a], ids[b])), n)
                    for (a, b), n in ex.pairs.items()
                    if a in ids and b in ids
                ],
            )
        self._spent("links", start)

    def _spent(self, part: str, start: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

    def _add_nodes(self, new: Sequence[str], vectors: Mapping[str, FloatArray]) -> None:
        """Insert the nodes and their synonym edges to every node (new ones included).

        Each new eligible vector is compared with the in-memory matrix of the nodes' vectors
        (read from the table only when the stored token says it is stale: after a forget,
        a rolled back write or another connection's write), then appended to it.
        """
        if not new:
            return
        with self._lock:
            matrix = self._matrix
            try:
                self._add_nodes_locked(new, vectors, matrix)
            except BaseException:
                matrix.token = None
                raise

    def _add_nodes_locked(
        self, new: Sequence[str], vectors: Mapping[str, FloatArray], matrix: _NodeMatrix
    ) -> None:
        conn = self.conn
        start = time.perf_counter()
        eligible = [p for p in new if self._synonym_eligible(p)]
        stored = self._token()
        if eligible and matrix.token != stored:
            matrix.reset(*self._eligible_vectors())
            matrix.token = stored
        conn.executemany(
            "INSERT INTO graph_nodes (phrase, vector) VALUES (?, ?)",
            [(p, _blob(vectors[p])) for p in new],
        )
        token = secrets.token_hex(8)
        conn.execute("UPDATE graph_state SET value = ? WHERE key = 'nodes'", (token,))
        self._spent("nodes", start)
        if not eligible:
            if matrix.token == stored:
                matrix.token = token
            return
        start = time.perf_counter()
        node_ids = self._node_ids(eligible)
        eligible.sort(key=node_ids.__getitem__)
        rows = np.stack([vectors[p] for p in eligible]).astype(_VECTOR).astype(np.float32)
        offset = matrix.size
        matrix.append(np.asarray([node_ids[p] for p in eligible], dtype=np.int64), rows)
        ids = matrix.ids
        pairs = synonym_pairs(
            matrix.rows[offset:],
            matrix.rows,
            threshold=self.synonym_threshold,
            offset=offset,
            block=max(64, (1 << 22) // max(1, matrix.size)),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO graph_synonyms (a, b, score) VALUES (?, ?, ?)",
            [(*sorted((int(ids[i]), int(ids[j]))), s) for i, j, s in pairs],
        )
        matrix.token = token
        self._spent("synonyms", start)

    def _token(self) -> str | None:
        row = self.conn.execute("SELECT value FROM graph_state WHERE key = 'nodes'").fetchone()
        return None if row is None else str(row[0])

    def _synonym_eligible(self, phrase: str) -> bool:
        return sum(ch.isalnum() for ch in phrase) >= self.min_synonym_chars

    def _eligible_vectors(self) -> tuple[IntArray, FloatArray]:
        ids: list[int] = []
        blobs: list[bytes] = []
        for node_id, phrase, blob in self.conn.execute(
            "SELECT id, phrase, vector FROM graph_nodes WHERE vector IS NOT NULL ORDER BY id"
        ):
            if self._synonym_eligible(str(phrase)):
                ids.append(int(node_id))
                blobs.append(blob)
        if not blobs:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(blobs), dtype=_VECTOR).reshape(len(blobs), -1)
        return np.asarray(ids, dtype=np.int64), matrix.astype(np.float32)

    def _node_ids(self, phrases: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        distinct = list(dict.fromkeys(phrases))
        for start in range(0, len(distinct), _CHUNK):
            chunk = distinct[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            out.update(
                (str(p), int(i))
                for i, p in self.conn.execute(
                    f"SELECT id, phrase FROM graph_nodes WHERE phrase IN ({marks})", chunk
                )
            )
        return out

    def prune(self) -> int:
        """Delete nodes no live memory mentions (a safety net; triggers keep it at 0).

        Returns:
            The number of nodes deleted.
        """
        cur = self.conn.execute(
            "DELETE FROM graph_nodes WHERE NOT EXISTS"
            " (SELECT 1 FROM graph_mentions m WHERE m.node_id = graph_nodes.id)"
        )
        return cur.rowcount

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> GraphSnapshot:
        """The whole graph as arrays (see :class:`GraphSnapshot`)."""
        conn = self.conn
        node_rows = conn.execute(
            "SELECT id, phrase, vector FROM graph_nodes ORDER BY id"
        ).fetchall()
        node_index = {int(r[0]): i for i, r in enumerate(node_rows)}
        width = np.dtype(_VECTOR).itemsize
        dim = next((len(r[2]) // width for r in node_rows if r[2] is not None), 0)
        vectors = np.zeros((len(node_rows), dim), dtype=np.float32)
        for i, r in enumerate(node_rows):
            if r[2] is not None:
                vectors[i] = np.frombuffer(r[2], dtype=_VECTOR)
        memory_ids = np.fromiter(
            (r[0] for r in conn.execute("SELECT memory_id FROM graph_passages ORDER BY memory_id")),
            dtype=np.int64,
        )
        passage_index = {int(m): i for i, m in enumerate(memory_ids.tolist())}
        mentions = [
            (node_index[int(n)], passage_index[int(m)], int(c), int(named))
            for m, n, c, named in conn.execute(
                "SELECT memory_id, node_id, count, named FROM graph_mentions"
            )
        ]
        pairs = conn.execute("SELECT a, b, SUM(count) FROM graph_pairs GROUP BY a, b").fetchall()
        synonyms = conn.execute("SELECT a, b, score FROM graph_synonyms").fetchall()
        return GraphSnapshot(
            phrases=tuple(str(r[1]) for r in node_rows),
            vectors=vectors,
            memory_ids=memory_ids,
            mentions=np.asarray(mentions, dtype=np.int64).reshape(-1, 4),
            pairs=np.asarray(
                [(node_index[a], node_index[b]) for a, b, _ in pairs], dtype=np.int64
            ).reshape(-1, 2),
            pair_weights=np.asarray([w for _, _, w in pairs], dtype=np.float32),
            synonyms=np.asarray(
                [(node_index[a], node_index[b]) for a, b, _ in synonyms], dtype=np.int64
            ).reshape(-1, 2),
            synonym_scores=np.asarray([s for _, _, s in synonyms], dtype=np.float32),
        )

    def counts(self) -> dict[str, int]:
        """Row counts: phrases, passages, mentions, pair edges, synonym edges."""
        sql = {
            "phrases": "SELECT COUNT(*) FROM graph_nodes",
            "passages": "SELECT COUNT(*) FROM graph_passages",
            "mentions": "SELECT COUNT(*) FROM graph_mentions",
            "pair_edges": "SELECT COUNT(*) FROM (SELECT DISTINCT a, b FROM graph_pairs)",
            "synonym_edges": "SELECT COUNT(*) FROM graph_synonyms",
        }
        return {k: int(self.conn.execute(q).fetchone()[0]) for k, q in sql.items()}

    def related(
        self,
        memory_id: int,
        *,
        limit: int = 10,
        namespaces: Sequence[str] | None = None,
        max_df: int = 1000,
    ) -> list[tuple[int, tuple[str, ...]]]:
        """The passages that share the most specific phrases with ``memory_id``:
        ``(memory id, shared phrases)``, by the summed IDF of what they share.

        Phrases in more than ``max_df`` passages are too common to relate anything and are
        skipped (which also bounds the work). ``namespaces`` keeps passages of those only.
        """
        conn = self.conn
        total = max(1, int(conn.execute("SELECT COUNT(*) FROM graph_passages").fetchone()[0]))
        nodes = conn.execute(
            "SELECT g.node_id, n.phrase, (SELECT COUNT(*) FROM graph_mentions d"
            " WHERE d.node_id = g.node_id) FROM graph_mentions g"
            " JOIN graph_nodes n ON n.id = g.node_id WHERE g.memory_id = ?",
            (memory_id,),
        ).fetchall()
        useful = {int(n): (str(p), math.log(1 + total / df)) for n, p, df in nodes if df <= max_df}
        if not useful:
            return []
        marks = ",".join("?" * len(useful))
        sql = (
            f"SELECT g.memory_id, g.node_id FROM graph_mentions g JOIN {self.table} m"
            f" ON m.id = g.memory_id WHERE g.node_id IN ({marks}) AND g.memory_id != ?"
        )
        params: list[object] = [*useful, memory_id]
        if namespaces is not None:
            if not namespaces:
                return []
            sql += f" AND m.namespace IN ({','.join('?' * len(namespaces))})"
            params += list(namespaces)
        scores: dict[int, float] = {}
        shared: dict[int, list[str]] = {}
        for other, node in conn.execute(sql, params):
            phrase, idf = useful[int(node)]
            scores[int(other)] = scores.get(int(other), 0.0) + idf
            shared.setdefault(int(other), []).append(phrase)
        weight = dict(useful.values())
        best = sorted(scores, key=lambda i: (-round(scores[i], 9), i))[:limit]
        return [(i, tuple(sorted(shared[i], key=lambda p: (-weight[p], p)))) for i in best]

    def neighbors(self, phrase: str, *, limit: int = 20) -> list[tuple[str, str, float]]:
        """A phrase's neighbours: ``(phrase, kind, weight)``, kind ``"cooccur"`` or
        ``"synonym"``, heaviest first.

        Raises:
            NotFoundError-free: an unknown phrase simply has no neighbours.
        """
        node = self._node_ids([phrase]).get(phrase)
        if node is None:
            return []
        rows = self.conn.execute(
            "SELECT n.phrase, e.kind, e.w FROM ("
            " SELECT CASE WHEN a = ?1 THEN b ELSE a END AS other, 'cooccur' AS kind,"
            "  SUM(count) AS w FROM graph_pairs WHERE a = ?1 OR b = ?1 GROUP BY other"
            " UNION ALL SELECT CASE WHEN a = ?1 THEN b ELSE a END, 'synonym', score"
            "  FROM graph_synonyms WHERE a = ?1 OR b = ?1"
            ") e JOIN graph_nodes n ON n.id = e.other ORDER BY e.w DESC, n.phrase LIMIT ?2",
            (node, limit),
        )
        return [(str(p), str(k), float(w)) for p, k, w in rows]

    def passages_of(self, phrase: str) -> list[int]:
        """Ids of the memories that mention ``phrase``."""
        return [
            int(r[0])
            for r in self.conn.execute(
                "SELECT m.memory_id FROM graph_mentions m JOIN graph_nodes n ON n.id = m.node_id"
                " WHERE n.phrase = ? ORDER BY m.memory_id",
                (phrase,),
            )
        ]
