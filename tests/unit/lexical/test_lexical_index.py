"""The engine's lexical index: postings beside the store, their folder, catch-up and repair.

Every answer is compared with FTS5's own on the same snapshot; what is checked here is how
the postings get there (built, loaded, caught up, rebuilt) and that nothing is written
where it must not be.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engramdb import Memory
from engramdb.config import LexicalConfig
from engramdb.engine._lexical import LexicalIndex, lexical_folder
from engramdb.lexical.postings import FTS5Tokenizer, Postings, build_segment, load_segment
from engramdb.store.sqlite import SQLiteStore

QUERIES = ["deploy freeze", "sourdough starter", "budget review finance", "the of", "Friday"]
TEXTS = [
    "Alice moved the deploy freeze to Friday.",
    "The deploy pipeline deploys twice a day.",
    "Buy flour for the sourdough starter.",
    "Deploying sourdough: feed the starter, then bake.",
    "Quarterly budget review with finance.",
    "Friday: budget freeze for the deploy team.",
]
FILTERS: list[tuple[str | None, tuple[object, ...]]] = [
    (None, ()),
    ("m.namespace = ?", ("work",)),
    ("m.namespace = ?", ("home",)),
]


def _open(path: Path | str, *, readonly: bool = False) -> tuple[SQLiteStore, LexicalIndex]:
    store = SQLiteStore(path, readonly=readonly)
    index = LexicalIndex(store, LexicalConfig())
    if not readonly:
        with store.atomic(bump=False):
            index.ensure()
    index.load()
    return store, index


def _close(store: SQLiteStore, index: LexicalIndex) -> None:
    store.close()
    index.close()


def _add(store: SQLiteStore, start: int, texts: list[str], namespace: str = "work") -> None:
    with store.atomic() as conn:
        for i, text in enumerate(texts, start=start):
            conn.execute(
                "INSERT INTO memories (id, namespace, text, hash, ingest_time) "
                "VALUES (?, ?, ?, ?, 0)",
                (i, namespace if i % 2 else "home", text, f"h{i}-{time.monotonic_ns()}"),
            )


def _delete(store: SQLiteStore, ids: list[int]) -> None:
    with store.atomic() as conn:
        conn.executemany("DELETE FROM memories WHERE id = ?", [(i,) for i in ids])


def _assert_as_fts5(store: SQLiteStore, index: LexicalIndex) -> None:
    with store.reading():
        for where, params in FILTERS:
            got = index.search(QUERIES, 10, where=where, params=params)
            want = index.fts.search(QUERIES, 10, where=where, params=params)
            assert got[0].tolist() == want[0].tolist()
            assert got[1].tolist() == want[1].tolist()
        assert index.term_stats(QUERIES) == index.fts.term_stats(QUERIES)


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "store.db"


def test_built_saved_and_loaded_again(path: Path) -> None:
    store, index = _open(path)
    assert index.builds == 1  # nothing saved yet: read from FTS5
    _add(store, 1, TEXTS)
    _assert_as_fts5(store, index)
    _close(store, index)
    folder = lexical_folder(str(path))
    assert folder is not None and (folder / "manifest.json").is_file()

    store, index = _open(path)
    assert index.builds == 0  # loaded from the folder, nothing to catch up
    assert index.postings_stats()["rows"] == len(TEXTS)
    _assert_as_fts5(store, index)
    _close(store, index)


def test_another_writer_is_seen_by_the_next_read(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    other, other_index = _open(path)  # another process, in effect: its own connections
    _add(other, 100, ["deploy freeze lifted on Monday", "sourdough again"])
    _delete(other, [1, 3])
    _assert_as_fts5(store, index)
    with store.reading():
        ids = index.search(["deploy freeze"], 10)[0][0].tolist()
    assert 100 in ids and 1 not in ids
    assert index.builds == 1  # caught up from the change log
    _close(other, other_index)
    _close(store, index)


def test_changes_made_while_closed_are_caught_up_on_open(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _close(store, index)
    plain = SQLiteStore(path)  # a writer without the lexical postings (e.g. an older one)
    _add(plain, 50, ["budget freeze again", "a Friday deploy"])
    _delete(plain, [2])
    plain.close()
    store, index = _open(path)
    assert index.builds == 0
    _assert_as_fts5(store, index)
    _close(store, index)


def _saved_segment(path: Path) -> Path:
    folder = lexical_folder(str(path))
    assert folder is not None
    manifest = json.loads((folder / "manifest.json").read_text())
    return folder / manifest["segments"][0]


@pytest.mark.parametrize("damage", ["truncated", "manifest", "missing"])
def test_torn_or_missing_files_are_rebuilt(path: Path, damage: str) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _close(store, index)
    segment = _saved_segment(path)
    if damage == "truncated":
        rows = segment / "rows.npy"
        rows.write_bytes(rows.read_bytes()[:-8])
    elif damage == "manifest":
        (segment.parent / "manifest.json").write_text("{not json")
    else:
        (segment / "impact.npy").unlink()
    store, index = _open(path)
    assert index.builds == 1
    assert index.last_build is not None and "torn or corrupt" in index.last_build
    _assert_as_fts5(store, index)
    _close(store, index)


def test_postings_of_another_store_at_the_same_path_are_rebuilt(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _close(store, index)
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)
    store, index = _open(path)  # a new store; the old postings are still beside it
    assert index.builds == 1
    assert index.last_build == "they were made for another store at this path"
    _add(store, 1, TEXTS[:2])
    _assert_as_fts5(store, index)
    _close(store, index)


def test_a_change_log_pruned_past_the_saved_position_rebuilds(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _close(store, index)
    store = SQLiteStore(path)
    _add(store, 20, ["another deploy freeze", "more sourdough"])
    with store.atomic(bump=False):
        store.prune_changes(0)
    store.close()
    store, index = _open(path)
    assert index.builds == 1
    assert index.last_build == "it is older than the store's change log reaches"
    _assert_as_fts5(store, index)
    _close(store, index)


def test_totals_that_disagree_with_fts5_rebuild(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _assert_as_fts5(store, index)
    with store.atomic() as conn:  # a write the change log does not show
        conn.execute(
            "INSERT INTO memories (id, namespace, text, hash, ingest_time) "
            "VALUES (77, 'work', 'an unlogged deploy freeze', 'h77', 0)"
        )
        conn.execute("DELETE FROM changes WHERE memory_id = 77")
    _assert_as_fts5(store, index)
    assert index.builds == 2
    assert index.last_build == "its totals disagreed with FTS5's"
    _close(store, index)


def test_text_changed_in_place_is_caught_up(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _assert_as_fts5(store, index)
    with store.atomic() as conn:  # the same token count: totals alone would not tell
        conn.execute(
            "UPDATE memories SET text = 'Bob moved the sourdough starter to Monday.' WHERE id = 1"
        )
    _assert_as_fts5(store, index)
    assert index.builds == 1
    _close(store, index)


def test_read_only_store_builds_in_memory_and_writes_nothing(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _close(store, index)
    folder = lexical_folder(str(path))
    assert folder is not None
    for entry in folder.iterdir():
        if entry.is_dir():
            for file in entry.iterdir():
                file.unlink()
            entry.rmdir()
        else:
            entry.unlink()
    folder.rmdir()
    store, index = _open(path, readonly=True)
    assert index.builds == 1
    _assert_as_fts5(store, index)
    _close(store, index)
    assert not folder.exists()


def test_leftovers_of_an_interrupted_save_are_ignored_then_swept(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    _close(store, index)
    folder = lexical_folder(str(path))
    assert folder is not None
    (folder / ".manifest.tmp-dead").write_text("{")
    (folder / "seg-halfwritten").mkdir()
    (folder / "seg-halfwritten" / "rows.npy").write_bytes(b"\x93NUMPY")
    store, index = _open(path)
    assert index.builds == 0
    _add(store, 30, ["one more deploy"])
    _assert_as_fts5(store, index)
    _close(store, index)  # saves: what the manifest does not name goes
    assert not (folder / "seg-halfwritten").exists()
    assert not (folder / ".manifest.tmp-dead").exists()


def test_a_query_term_fts5_splits_is_answered_by_fts5() -> None:
    # U+19B0 is a letter to Python but a separator to SQLite's tables: FTS5 reads the
    # quoted term as the phrase "a b", which the postings cannot match; FTS5 answers.
    store, index = _open(":memory:")
    _add(store, 1, ["a b c", "b a c", "a c b", "x a b"])
    tokens = FTS5Tokenizer(LexicalConfig().tokenizer).phrases(["a\u19b0b"])
    assert tokens == [("a", "b")]
    with store.reading():
        got = index.search(["a\u19b0b", "a\u19b0b c"], 10)
        want = index.fts.search(["a\u19b0b", "a\u19b0b c"], 10)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
        assert sorted(i for i in got[0][0].tolist() if i > 0) == [1, 4]
        stats = index.term_stats(["a\u19b0b c"])
        assert stats == index.fts.term_stats(["a\u19b0b c"])
        assert index.search_stats(["a\u19b0b c"], 10, stats) == index.fts.search_stats(
            ["a\u19b0b c"], 10, stats
        )
    _close(store, index)


def test_segment_keeps_tf_when_impacts_cannot_give_it_back(tmp_path: Path) -> None:
    # Huge frequencies in huge rows saturate the weight past float32's resolution.
    ids = np.arange(1, 5, dtype=np.int64)
    lengths = np.array([10**9, 10**9 + 1, 3, 4], dtype=np.int64)
    tf = np.array([10**9 - 7, 10**9 - 3, 2, 1], dtype=np.int64)
    postings = Postings(["big", "small"], np.array([2, 2]), np.array([1, 2, 3, 4]), tf)
    segment = build_segment(ids, lengths, postings, avgdl=10.0)
    assert segment.tf is not None
    assert segment.frequencies(np.arange(4)).tolist() == tf.tolist()
    small = build_segment(
        ids[2:], lengths[2:], Postings(["small"], np.array([2]), np.array([3, 4]), tf[2:]), 3.5
    )
    assert small.tf is None  # recovered from the impacts
    assert small.frequencies(np.arange(2)).tolist() == [2, 1]
    segment.save(tmp_path / "seg")
    loaded = load_segment(tmp_path / "seg")
    assert loaded.frequencies(np.arange(4)).tolist() == tf.tolist()
    assert loaded.terms == ("big", "small") and loaded.span("small") == (2, 4)


def test_memory_recall_ranks_the_lexical_channel_as_fts5(tmp_path: Path) -> None:
    path = tmp_path / "mem.db"
    with Memory.open(path, embed={"model": "hash", "dim": 32}) as mem:
        mem.add_many([{"text": t} for t in TEXTS])
        hits = mem.recall("deploy freeze", k=5, channels="lexical")
        ids, scores = mem._lexical.fts.search(["deploy freeze"], 5)
        assert [h.id for h in hits] == [i for i in ids[0].tolist() if i > 0]
        assert [h.why["lexical"].score for h in hits] == pytest.approx(
            [s for s in scores[0].tolist() if s > -np.inf], rel=1e-6
        )
    assert (Path(f"{path}.lexical") / "manifest.json").is_file()
    with Memory.open(path, embed={"model": "hash", "dim": 32}) as mem:
        assert mem._lexical.builds == 0
        assert mem.recall("sourdough", k=3, channels="lexical")[0].text == TEXTS[2]


def test_readers_in_threads_see_their_snapshot_while_a_writer_writes(path: Path) -> None:
    store, index = _open(path)
    _add(store, 1, TEXTS)
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = [0]

    def read() -> None:
        try:
            while not stop.is_set():
                with store.reading():
                    for where, params in FILTERS:
                        got = index.search(QUERIES, 10, where=where, params=params)
                        want = index.fts.search(QUERIES, 10, where=where, params=params)
                        assert got[0].tolist() == want[0].tolist()
                        assert got[1].tolist() == want[1].tolist()
                reads[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for step in range(40):
            _add(store, 100 + 10 * step, [TEXTS[step % len(TEXTS)], f"deploy {step} freeze"])
            if step % 4 == 3:
                _delete(store, [100 + 10 * (step - 2)])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors[0]
    assert reads[0] > 0
    _assert_as_fts5(store, index)
    _close(store, index)
