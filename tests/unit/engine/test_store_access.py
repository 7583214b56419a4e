"""Opening stores: read-only access, files that are not stores, commits that fail, no-op writes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from engramdb import CorruptStoreError, Memory, NotAStoreError, StoreError, StoreNotFoundError
from engramdb.store.sqlite import SQLiteStore

HASH = {"model": "hash", "dim": 32}


def test_read_only_open_reads_and_refuses_writes(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Memory.open(db, embed=HASH) as mem:
        ids = mem.add_many(["the deploy freeze starts on Friday", "cats sleep all day"]).ids
    with Memory.open(db, embed=HASH, readonly=True) as ro:
        assert ro.store.readonly
        assert ro.recall("deploy freeze", k=1).ids == [ids[0]]
        assert ro.stats().memories == 2
        with pytest.raises(StoreError, match="read-only"):
            ro.add("a new note")
        with pytest.raises(StoreError, match="read-only"):
            ro.forget([ids[0]])
    with Memory.open(db, embed=HASH) as mem:
        assert mem.stats().memories == 2


def test_a_missing_store_is_not_created_by_readers(tmp_path: Path) -> None:
    db = tmp_path / "typo" / "m.db"
    with pytest.raises(StoreNotFoundError):
        Memory.open(db, embed=HASH, create=False)
    with pytest.raises(StoreNotFoundError):
        Memory.open(db, embed=HASH, readonly=True)
    assert not db.parent.exists()


@pytest.mark.parametrize("content", [b"", b"plain text, not a database\n"])
def test_files_that_are_not_stores_are_refused(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "m.db"
    db.write_bytes(content)
    with pytest.raises(NotAStoreError):
        Memory.open(db, embed=HASH)
    assert db.read_bytes() == content


def test_another_programs_empty_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 7")
    conn.close()
    assert db.stat().st_size > 0
    with pytest.raises(NotAStoreError, match="another program"):
        Memory.open(db, embed=HASH)


def test_a_failed_first_open_leaves_no_file(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with pytest.raises(Exception):  # noqa: B017 - any config failure
        Memory.open(db, embed={"model": "no-such-model"})
    assert not db.exists()
    with Memory.open(db, embed=HASH) as mem:
        assert mem.stats().memories == 0


def test_a_failing_commit_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    version = store.data_version
    with pytest.raises(StoreError, match="could not commit"), store.atomic() as conn:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        conn.execute(  # a sighting of no memory: only COMMIT notices
            "INSERT INTO sightings (memory_id, seen_time, kind, score, text_hash)"
            " VALUES (999, 0, 'origin', 1, 'x')"
        )
    assert store.conn_write.in_transaction is False
    assert store.data_version == version
    assert store.conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0] == 0
    with store.atomic() as conn:  # the store still takes writes
        conn.execute("UPDATE store_info SET value = 'x' WHERE key = 'created'")
    assert store.data_version == version + 1
    store.close()


def test_a_write_that_changes_nothing_commits_nothing(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m.db", embed=HASH) as mem:
        mem.add_many(["alpha beta gamma delta", "epsilon zeta eta theta"], namespace="a")
        version, seq = mem.store.data_version, mem.store.change_seq()
        again = mem.add_many(["alpha beta gamma delta", "epsilon zeta eta theta"], namespace="a")
        assert again.added == 0 and again.skipped == 2
        assert mem.store.data_version == version and mem.store.change_seq() == seq


def test_a_read_snapshot_holds_while_another_thread_commits(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m.db", embed=HASH) as mem:
        mem.add("the first note about herons")
        store = mem.store
        with store.reading() as seq:
            count = store.counts()["memories"]
            writer = threading.Thread(target=mem.add, args=("a second note about egrets",))
            writer.start()
            writer.join(timeout=30)  # the writer never waits for this reader
            assert not writer.is_alive()
            assert store.change_seq() == seq and store.counts()["memories"] == count
            assert mem.dense_index.view(seq) is not None
            assert len(mem.dense_index.view(seq) or ()) == count
        assert store.counts()["memories"] == count + 1
        assert mem.recall("egrets", k=1, channels="dense")[0].text.endswith("egrets")
    with pytest.raises(StoreError):
        _ = store.conn


def test_a_store_that_refuses_writes_is_opened_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "m.db"
    with Memory.open(db, embed=HASH) as mem:
        mem.add("the herons nest by the river")

    def refuse(self: SQLiteStore, conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(SQLiteStore, "_prepare", refuse)  # as on a read-only mount
    with Memory.open(db, embed=HASH) as mem:
        assert mem.store.readonly
        assert mem.recall("herons", k=1)[0].text == "the herons nest by the river"


def test_a_damaged_store_raises_corrupt_store_error(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    with Memory.open(db, embed=HASH) as mem:
        mem.add_many([f"note {i} about the harbour and its cranes" * 20 for i in range(200)])
    data = bytearray(db.read_bytes())
    for offset in range(8192, len(data) - 4096, 4096):
        data[offset + 100 : offset + 400] = b"\xff" * 300
    db.write_bytes(bytes(data))
    with pytest.raises((CorruptStoreError, NotAStoreError)), Memory.open(db, embed=HASH) as mem:
        mem.stats()
        mem.recall("harbour cranes", k=5)


def test_check_finds_nothing_wrong_in_a_sound_store(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m.db", embed=HASH) as mem:
        mem.add_many(["one note about otters", "another about beavers"])
        assert mem.check() == []
        mem.store.conn_write.execute("DELETE FROM memories_fts")  # damage the lexical index
        assert any("lexical index" in p for p in mem.check())


def test_ids_and_get_many_are_public_reads(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m.db", embed=HASH) as mem:
        a = mem.add_many(["alpha note about owls", "beta note about larks"], namespace="a").ids
        b = mem.add("gamma note about wrens", namespace="b", meta={"k": 1}).ids
        assert mem.ids() == sorted([*a, *b])
        assert mem.ids(namespace="a") == list(a)
        assert mem.ids(where={"k": 1}) == list(b)
        got = mem.get_many([b[0], 999, a[0]], sightings=True)
        assert [r.id for r in got] == [b[0], a[0]] and len(got[0].sightings) == 1
