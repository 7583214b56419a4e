"""The write path's pipeline: texts are embedded on a thread of their own while recognition
goes on, and a call stays one transaction.

The pipelined write must store exactly what the sequential one does (same ids, decisions,
rows, vectors), whatever the window and group boundaries; an embedder failure in a later
group, a store failure at commit, or an error in recognition leaves the store's memories as
they were; duplicates are recognised across windows and groups; no thread outlives a call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb import Memory, Record
from engramdb.embed.hashing import HashEmbedder
from engramdb.engine import _write
from engramdb.engine._pipeline import EmbedAhead
from engramdb.errors import ModelError, StoreError
from engramdb.types import AddResult, Matrix

DIM = 32
_RNG = np.random.default_rng(7)
_VOCAB = [f"{a}{b}{c}" for a in "bcdfgklmnprst" for b in "aeiou" for c in "nrstlm"]


def _sentence(rng: np.random.Generator) -> str:
    words = rng.choice(_VOCAB, size=int(rng.integers(4, 40)))
    return " ".join(str(w) for w in words).capitalize() + "."


BASE = [_sentence(_RNG) for _ in range(300)]


def _records() -> list[Record]:
    """300 distinct texts of mixed lengths, with duplicates far from their first copies:
    exact (another source, another case) and near (punctuation)."""
    records = [Record(text=t, source=f"s{i}") for i, t in enumerate(BASE)]
    records[250] = Record(text=BASE[3], source="again")  # exact, other windows and groups
    records[140] = Record(text=BASE[70].upper(), source="upper")  # exact after normalising
    records[200] = Record(text=BASE[10].replace(".", "!!"), source="near")  # near
    records[299] = Record(text=BASE[3], source="s3")  # the same sighting again: skipped
    return records


class Recording:
    """The hash embedder, recording each call (its texts and thread), failing on call
    ``fail_on`` with ``error``, and waiting for ``gate`` on the first call."""

    def __init__(
        self,
        *,
        fail_on: int | None = None,
        error: Exception | None = None,
        gate: threading.Event | None = None,
    ):
        self.inner = HashEmbedder(DIM)
        self.model_id = self.inner.model_id
        self.dim = DIM
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()
        self.fail_on = fail_on
        self.error = error
        self.gate = gate
        self.gate_open: bool | None = None

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        self.calls.append(list(texts))
        self.threads.add(threading.get_ident())
        if self.gate is not None and len(self.calls) == 1:
            self.gate_open = self.gate.wait(20)
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            assert self.error is not None
            raise self.error
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        return self.inner.embed_queries(texts)


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """16 items per recognition window; with ``embed.batch_size=1`` groups are 64 texts."""
    monkeypatch.setattr(_write, "_WINDOW", 16)


def _open(path: Path, embedder: Any = None, *, pipeline: bool = True) -> Memory:
    mem = Memory.open(path, embedder=embedder or Recording(), embed={"batch_size": 1})
    mem._writer.pipeline = pipeline
    return mem


def _embed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "engramdb-embed"]


def _state(mem: Memory, *, cache: bool = True) -> dict[str, Any]:
    """Everything a write stores, without its times."""
    conn = mem.store.conn
    with mem.store.reading():
        state = {
            "memories": conn.execute(
                "SELECT id, namespace, text, hash, source, document, ordinal, char_start,"
                " char_end, event_time, meta, count FROM memories ORDER BY id"
            ).fetchall(),
            "sightings": sorted(
                conn.execute(
                    "SELECT memory_id, source, document, ordinal, char_start, char_end, kind,"
                    " round(score, 9), text_hash FROM sightings"
                ).fetchall(),
                key=repr,
            ),
            "bands": conn.execute(
                "SELECT memory_id, band, key FROM minhash_bands ORDER BY memory_id, band"
            ).fetchall(),
            "signatures": conn.execute(
                "SELECT memory_id, signature FROM minhash_signatures ORDER BY memory_id"
            ).fetchall(),
            "fts": conn.execute("SELECT rowid FROM memories_fts ORDER BY rowid").fetchall(),
            "data_version": mem.store.data_version,
        }
        if cache:
            state["cache"] = conn.execute(
                "SELECT model, hash, vector FROM embeddings ORDER BY model, hash"
            ).fetchall()
    ids, vectors, missing = mem.store.memory_vectors(mem.embedder.model_id)
    state["vectors"] = (ids.tolist(), None if vectors is None else vectors.tolist(), missing)
    return state


def _write_all(
    path: Path, *, pipeline: bool, records: list[Record] | None = None
) -> tuple[AddResult, dict[str, Any], Recording]:
    embedder = Recording()
    with _open(path, embedder, pipeline=pipeline) as mem:
        result = mem.add_many(records if records is not None else _records())
        assert mem.check() == []
        return result, _state(mem), embedder


# -- same results as the sequential path ----------------------------------------------------


def test_pipelined_write_stores_what_the_sequential_one_does(
    tmp_path: Path, small_windows: None
) -> None:
    piped, piped_state, piped_embedder = _write_all(tmp_path / "a.db", pipeline=True)
    seq, seq_state, seq_embedder = _write_all(tmp_path / "b.db", pipeline=False)
    assert piped == seq
    assert piped_state == seq_state
    assert piped_embedder.threads.isdisjoint({threading.get_ident()})  # its own thread
    assert seq_embedder.threads == {threading.get_ident()}
    assert piped_embedder.calls == seq_embedder.calls  # the same groups, in the same order


def test_window_and_group_sizes_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_write, "_WINDOW", 10_000)  # one window: one snapshot, one scope
    whole, whole_state, _ = _write_all(tmp_path / "a.db", pipeline=True)
    monkeypatch.setattr(_write, "_WINDOW", 7)
    monkeypatch.setattr(_write, "_SCOPE", 1)
    cut, cut_state, embedder = _write_all(tmp_path / "b.db", pipeline=True)
    assert len(embedder.calls) > 4
    assert whole == cut
    assert whole_state == cut_state


def test_stored_vectors_are_the_embedders_and_ids_follow_the_input(
    tmp_path: Path, small_windows: None
) -> None:
    result, _, embedder = _write_all(tmp_path / "a.db", pipeline=True)
    with _open(tmp_path / "a.db") as mem:
        ids, vectors, missing = mem.store.memory_vectors(mem.embedder.model_id)
        assert not missing and vectors is not None
        texts = mem.store.texts(ids.tolist())
    expected = HashEmbedder(DIM).embed_documents([texts[i] for i in ids.tolist()])
    np.testing.assert_array_equal(vectors, expected)
    new_ids = [i for i, d in zip(result.ids, result.decisions, strict=True) if d == "new"]
    assert new_ids == sorted(new_ids) == list(range(1, len(new_ids) + 1))
    embedded = [t for call in embedder.calls for t in call]
    assert len(embedded) == len(set(embedded)) == result.embedded == result.added


def test_groups_reach_the_embedder_sorted_by_length(tmp_path: Path, small_windows: None) -> None:
    _, _, embedder = _write_all(tmp_path / "a.db", pipeline=True)
    assert len(embedder.calls) >= 4
    for call in embedder.calls:
        lengths = [len(t) for t in call]
        assert lengths == sorted(lengths)


# -- duplicates across windows and groups -----------------------------------------------------


def test_duplicates_across_windows_and_groups_are_recognised(
    tmp_path: Path, small_windows: None
) -> None:
    result, _, embedder = _write_all(tmp_path / "a.db", pipeline=True)
    decisions, ids = result.decisions, result.ids
    assert decisions[250] == "exact" and ids[250] == ids[3]
    assert decisions[140] == "exact" and ids[140] == ids[70]
    assert decisions[200] == "near" and ids[200] == ids[10]
    assert decisions[299] == "skipped" and ids[299] == ids[3]
    assert result.added == 296 and result.exact == 2 and result.near == 1
    assert result.skipped == 1
    with _open(tmp_path / "a.db") as mem:
        assert mem.get(ids[3]).count == 2
        assert [s.kind for s in mem.get(ids[10]).sightings] == ["origin", "near"]
    assert len(embedder.calls) >= 4  # the first copies and the duplicates fell in other groups


def test_a_rerun_adds_nothing_and_embeds_nothing(tmp_path: Path, small_windows: None) -> None:
    _write_all(tmp_path / "a.db", pipeline=True)
    with _open(tmp_path / "a.db") as mem:
        before = _state(mem)
        again = mem.add_many(_records())
        assert again.added == 0 and again.embedded == 0
        assert again.skipped == len(_records())
        assert _state(mem) == before


# -- atomicity ----------------------------------------------------------------------------------


def _seeded(path: Path, embedder: Recording, *, pipeline: bool = True) -> Memory:
    mem = _open(path, embedder, pipeline=pipeline)
    mem.add_many([f"seed note {i} about {_VOCAB[i]} and {_VOCAB[-i]}" for i in range(1, 21)])
    return mem


@pytest.mark.parametrize("pipeline", [True, False])
def test_an_embedder_failure_in_a_later_group_writes_no_memory(
    tmp_path: Path, small_windows: None, pipeline: bool
) -> None:
    embedder = Recording(fail_on=4, error=ModelError("the model broke on group 3"))
    with _seeded(tmp_path / "a.db", embedder, pipeline=pipeline) as mem:
        before = _state(mem, cache=False)
        hits = mem.recall("seed note", k=5).ids
        with pytest.raises(ModelError, match="group 3") as raised:
            mem.add_many(_records())
        assert raised.value is embedder.error  # the embedder's own error, as it raised it
        assert not _embed_threads()
        assert _state(mem, cache=False) == before
        assert mem.recall("seed note", k=5).ids == hits
        assert mem.check() == []
        cached = {row[0] for row in mem.store.conn.execute("SELECT hash FROM embeddings")}
        done = [t for call in embedder.calls[1:3] for t in call]  # groups before the failure
        embedder.fail_on = None
        retry = mem.add_many(_records())
    assert retry.added == 296
    assert retry.embedded == 296 - len(done)  # the groups done before were kept in the cache
    assert len(cached) == 20 + len(done)


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_store_failure_at_commit_writes_no_memory(
    tmp_path: Path, small_windows: None, pipeline: bool
) -> None:
    with _seeded(tmp_path / "a.db", Recording(), pipeline=pipeline) as mem:
        mem.store.conn_write.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON memories WHEN new.text LIKE '%boom%'"
            " BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
        before = _state(mem, cache=False)
        records = _records()
        records[280] = Record(text="This boom is refused by the store.", source="x")
        with pytest.raises(StoreError, match="boom refused"):
            mem.add_many(records)
        assert not _embed_threads()
        assert _state(mem, cache=False) == before
        assert mem.check() == []


def test_an_error_in_recognition_stops_the_embedder(
    tmp_path: Path, small_windows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _write.Recognizer.run

    def failing(self: _write.Recognizer, start: int, stop: int) -> None:
        if start >= 160:
            raise RuntimeError("recognition failed")
        run(self, start, stop)

    monkeypatch.setattr(_write.Recognizer, "run", failing)
    embedder = Recording()
    with _seeded(tmp_path / "a.db", embedder) as mem:
        before = _state(mem, cache=False)
        with pytest.raises(RuntimeError, match="recognition failed"):
            mem.add_many(_records())
        assert not _embed_threads()
        assert _state(mem, cache=False) == before
    assert len(embedder.calls) > 1  # the embedder had started on this write


# -- overlap, progress, threads -----------------------------------------------------------------


def test_the_embedder_runs_while_later_windows_are_recognised(
    tmp_path: Path, small_windows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    run = _write.Recognizer.run

    def recognise(self: _write.Recognizer, start: int, stop: int) -> None:
        run(self, start, stop)
        if start >= 160:
            gate.set()

    monkeypatch.setattr(_write.Recognizer, "run", recognise)
    embedder = Recording(gate=gate)
    with _open(tmp_path / "a.db", embedder) as mem:
        result = mem.add_many(_records())
    assert embedder.gate_open is True  # the first group waited for window 10: they overlapped
    assert result.added == 296


def test_progress_counts_every_embedded_text(tmp_path: Path, small_windows: None) -> None:
    calls: list[tuple[str, int, int]] = []
    with _open(tmp_path / "a.db") as mem:
        result = mem.add_many(_records(), progress=lambda *a: calls.append(a))
    embeds = [(done, total) for stage, done, total in calls if stage == "embed"]
    assert len(embeds) >= 4
    assert [d for d, _ in embeds] == sorted(d for d, _ in embeds)
    assert [t for _, t in embeds] == sorted(t for _, t in embeds)
    assert all(done <= total for done, total in embeds)
    assert embeds[-1] == (result.embedded, result.embedded)


def test_no_thread_outlives_a_write(tmp_path: Path, small_windows: None) -> None:
    before = set(threading.enumerate())
    with _open(tmp_path / "a.db") as mem:
        for _ in range(3):
            mem.add_many(_records())
            assert not _embed_threads()
    assert set(threading.enumerate()) <= before


def test_recognizer_parts_must_come_in_order() -> None:
    recognizer = _write.Recognizer([], None, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of order"):
        recognizer.run(5, 10)


# -- EmbedAhead ---------------------------------------------------------------------------------


def _rows(texts: list[str]) -> Matrix:
    return np.asarray([[float(len(t))] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("threaded", [True, False])
def test_embed_ahead_returns_groups_in_order(threaded: bool) -> None:
    groups = [[f"{'x' * (g + i)}" for i in range(3)] for g in range(8)]
    with EmbedAhead(_rows, threaded=threaded) as ahead:
        got: list[tuple[list[str], Matrix]] = []
        for g, texts in enumerate(groups):
            ahead.submit([f"{g}.{i}" for i in range(3)], texts)
            got += list(ahead.ready())
        got += list(ahead.finish())
    assert [keys for keys, _ in got] == [[f"{g}.{i}" for i in range(3)] for g in range(8)]
    for (_, vectors), texts in zip(got, groups, strict=True):
        np.testing.assert_array_equal(vectors, _rows(texts))
    assert not _embed_threads()


def test_embed_ahead_keeps_at_most_depth_groups_waiting() -> None:
    started: list[int] = []

    def embed(texts: list[str]) -> Matrix:
        started.append(len(started))
        return _rows(texts)

    with EmbedAhead(embed, depth=2) as ahead:
        for g in range(6):
            ahead.submit([str(g)], ["text"])
        deadline = time.monotonic() + 10
        while len(started) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert len(started) == 3  # two finished groups waiting, a third held by the thread
        assert [keys for keys, _ in ahead.finish()] == [[str(g)] for g in range(6)]
    assert len(started) == 6


def test_embed_ahead_closed_while_full_or_busy_leaves_no_thread() -> None:
    release = threading.Event()

    def embed(texts: list[str]) -> Matrix:
        release.wait(10)
        return _rows(texts)

    ahead = EmbedAhead(embed, depth=1)
    for g in range(5):
        ahead.submit([str(g)], ["t"])
    release.set()
    time.sleep(0.05)
    ahead.close()
    assert not _embed_threads()
    ahead.close()  # idempotent


def test_embed_ahead_hands_the_error_of_a_later_group_to_the_caller() -> None:
    def embed(texts: list[str]) -> Matrix:
        if texts == ["bad"]:
            raise ModelError("bad group")
        return _rows(texts)

    with EmbedAhead(embed) as ahead:
        for g, text in enumerate(["a", "b", "bad", "c"]):
            ahead.submit([str(g)], [text])
        got: list[list[str]] = []
        with pytest.raises(ModelError, match="bad group"):
            for keys, _ in ahead.finish():
                got.append(keys)
    assert got == [["0"], ["1"]]
    assert not _embed_threads()
