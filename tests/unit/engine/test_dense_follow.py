"""Two Memories on one store file (as two processes would be): what one folds into the SPANN
folder the other follows from the folder's log, in place, without reopening or rebuilding
the index; a fold never rebuilds because another writer folded in between."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import engramdb.engine._dense as dense_module
from engramdb import Memory
from engramdb.ann.spann import SpannIndex
from engramdb.engine._dense import DenseIndex

HASH = {"model": "hash", "dim": 32}
ANN = {
    "kind": "spann",
    "spann": {
        "posting_size": 8,
        "posting_limit": 24,
        "merge_threshold": 2,
        "max_probes": 10_000,  # every list: the results must equal exact search
        "prune_eps": None,
        "head_index": "exact",
        "calibration_queries": 0,
    },
}
FOLD = 8  # changes gathered before a fold (the engine's own: 2048)
_SYLLABLES = [a + b for a in "bdfgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]


def texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(300)]
    return [f"{' '.join(rng.choices(words, k=8))} note {seed}-{i}." for i in range(n)]


@pytest.fixture
def opener(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(dense_module, "_FOLD_MIN", FOLD)
    opened: list[Memory] = []

    def _open() -> Memory:
        mem = Memory.open(db_path, embed=HASH, ann=ANN)
        opened.append(mem)
        return mem

    yield _open
    for mem in opened:
        mem.close()


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SpannIndex.open and build from now on (a follow does neither)."""
    calls: list[str] = []
    real_open, real_build = SpannIndex.open.__func__, SpannIndex.build.__func__  # type: ignore[attr-defined]

    def counted_open(cls: type[SpannIndex], *args: Any, **kwargs: Any) -> SpannIndex:
        calls.append("open")
        return real_open(cls, *args, **kwargs)  # type: ignore[no-any-return]

    def counted_build(cls: type[SpannIndex], *args: Any, **kwargs: Any) -> SpannIndex:
        calls.append("build")
        return real_build(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(SpannIndex, "open", classmethod(counted_open))
    monkeypatch.setattr(SpannIndex, "build", classmethod(counted_build))
    return calls


def dense_matches_exact(mem: Memory) -> None:
    """The dense channel holds exactly the store's memories and ranks them as exact search."""
    rows = mem.store.conn.execute("SELECT id, text FROM memories ORDER BY id").fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = np.asarray(mem.embedder.embed_documents([r[1] for r in rows]), dtype=np.float32)
    queries = np.asarray(mem.embedder.embed_queries(texts(5, seed=77)), dtype=np.float32)
    got, _ = mem.dense_index.search(queries, ids.size + 5)
    assert sorted(int(i) for i in got[0] if i >= 0) == sorted(ids.tolist())
    top, _ = mem.dense_index.search(queries, 5)
    want = ids[np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :5]]
    np.testing.assert_array_equal(top, want)


def test_a_reader_follows_the_folds_of_another_writer(opener: Any, opens: list[str]) -> None:
    first = opener()
    first.add_many(texts(40, seed=1))
    second = opener()
    dense_matches_exact(second)
    before = len(opens)
    for round_ in range(4):
        added = first.add_many(texts(3 * FOLD, seed=10 + round_)).ids
        first.forget(list(added[:3]))
        assert first.dense_index.stats().pending <= FOLD  # the writer folded them
        dense_matches_exact(second)  # the reader caught up
        assert second.dense_index.stats().pending <= FOLD  # by following the folder's log
    assert opens[before:] == []  # neither reopened nor rebuilt
    assert second.dense_index.last_build is None


def test_writers_taking_turns_follow_each_other(opener: Any, opens: list[str]) -> None:
    first = opener()
    first.add_many(texts(40, seed=2))
    second = opener()
    before = len(opens)
    for round_ in range(6):
        writer = (first, second)[round_ % 2]
        ids = writer.add_many(texts(2 * FOLD, seed=20 + round_)).ids
        writer.forget(list(ids[-2:]))
    assert opens[before:] == []  # each fold started from the other's commits, followed
    assert second.dense_index.last_build is None
    for mem in (first, second):
        dense_matches_exact(mem)


def test_a_fold_after_another_writer_folded_past_it_does_not_rebuild(
    opener: Any, opens: list[str]
) -> None:
    """B commits a write; before B folds it, A writes and folds (the folder is then ahead of
    B's view); B's fold starts from A's commits instead of building the index anew."""
    a = opener()
    a.add_many(texts(40, seed=3))
    b = opener()
    dense_matches_exact(b)
    real = b.dense_index.maintain
    ran: list[bool] = []

    def a_writes_first() -> None:
        if not ran:
            ran.append(True)
            a.add_many(texts(2 * FOLD, seed=31))
        real()

    b.dense_index.maintain = a_writes_first
    b.add_many(texts(2 * FOLD, seed=32))
    assert ran and b.dense_index.last_build is None
    assert opens.count("build") == 1  # a's first write
    for mem in (a, b):
        dense_matches_exact(mem)


def test_a_rebuilt_folder_is_reopened_not_followed(opener: Any, opens: list[str]) -> None:
    first = opener()
    first.add_many(texts(40, seed=4))
    second = opener()
    dense_matches_exact(second)
    first.dense_index.rebuild()
    first.add_many(texts(2 * FOLD, seed=41))
    before = len(opens)
    dense_matches_exact(second)
    assert opens[before:] == ["open"]  # another lineage: reopened once
    assert second.dense_index.last_build is None


def test_opening_while_another_writer_folds_does_not_rebuild(
    opener: Any, opens: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """B takes its read snapshot, then A writes and folds before B opens the folder (which is
    then ahead of B's snapshot): B reads again instead of building the index anew."""
    a = opener()
    a.add_many(texts(40, seed=5))
    real = DenseIndex._open_spann
    ran: list[bool] = []

    def a_folds_first(self: DenseIndex, *args: Any, **kwargs: Any) -> Any:
        if not ran and self is not a.dense_index:
            ran.append(True)
            a.add_many(texts(2 * FOLD, seed=51))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DenseIndex, "_open_spann", a_folds_first)
    b = opener()
    assert ran and b.dense_index.last_build is None
    assert opens.count("build") == 1  # a's first write
    dense_matches_exact(b)
