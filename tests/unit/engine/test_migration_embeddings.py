"""Migration 0008: the embedding cache moves to a rowid table and keeps every vector."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import numpy as np

from engramdb.store.migrations import _statements, available_migrations
from engramdb.store.sqlite import SQLiteStore

MODEL = "minilm-l6-v2-int8@0123456789ab"


def _store_at(path: Path, version: int) -> None:
    """A store file with the shipped migrations up to ``version`` applied."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "CREATE TABLE _migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " sha256 TEXT NOT NULL, applied REAL NOT NULL)"
    )
    for m in available_migrations():
        if m.version > version:
            break
        conn.execute("BEGIN")
        for statement in _statements(m.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO _migrations VALUES (?, ?, ?, ?)",
            (m.version, m.name, m.sha256, time.time()),
        )
        conn.execute("COMMIT")
    conn.close()


def _bytes_per_vector(path: Path) -> float:
    conn = sqlite3.connect(path)
    try:
        pages = conn.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'embeddings%'"
            " OR name LIKE 'sqlite_autoindex_embeddings%'"
        ).fetchone()[0]
        count = conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    finally:
        conn.close()
    return float(pages) / count


def test_vectors_survive_and_take_less_room(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _store_at(path, 7)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 384)).astype(np.float32)
    hashes = [f"{i:064x}" for i in range(len(vectors))]
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO embeddings (model, hash, dim, vector) VALUES (?, ?, ?, ?)",
        [(MODEL, h, 384, v.astype("<f4").tobytes()) for h, v in zip(hashes, vectors, strict=True)],
    )
    conn.commit()
    conn.close()
    before = _bytes_per_vector(path)

    store = SQLiteStore(path)  # applies 0008
    try:
        with store.reading():
            got = store.cached_embeddings(MODEL, hashes)
        assert set(got) == set(hashes)
        for h, v in zip(hashes, vectors, strict=True):
            np.testing.assert_array_equal(got[h], v)
        with store.atomic(bump=False):  # the (model, hash) key still refuses a second row
            store.put_embeddings(MODEL, hashes[:3], vectors[3:6], replace=False)
        with store.reading():
            np.testing.assert_array_equal(
                store.cached_embeddings(MODEL, hashes[:1])[hashes[0]], vectors[0]
            )
    finally:
        store.close()
    after = _bytes_per_vector(path)
    assert before > 4000  # overflow pages: one per vector
    assert after < 0.55 * before, (before, after)
    conn = sqlite3.connect(path)
    sql = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'embeddings'").fetchone()[0]
    conn.close()
    assert "WITHOUT ROWID" not in sql.upper()
