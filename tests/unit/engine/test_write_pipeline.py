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
from engramdb.ingest.chunk import estimate_tokens
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
    """16 items per recognition window, 64 texts per group (``embed.batch_size=1``)."""
    monkeypatch.setattr(_write, "_WINDOW", 16)
    monkeypatch.setattr(_write, "_GROUP", 64)


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
    # the thread may have embedded a duplicate's text before it was recognised as one
    piped_texts = {t for call in piped_embedder.calls for t in call}
    assert piped_texts - {t for call in seq_embedder.calls for t in call} <= {_records()[200].text}


def test_window_and_group_sizes_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_write, "_GROUP", 64)
    monkeypatch.setattr(_write, "_WINDOW", 10_000)  # one window: one snapshot
    whole, whole_state, _ = _write_all(tmp_path / "a.db", pipeline=True)
    monkeypatch.setattr(_write, "_WINDOW", 7)
    cut, cut_state, embedder = _write_all(tmp_path / "b.db", pipeline=True)
    assert len(embedder.calls) >= 4
    assert whole == cut
    assert whole_state == cut_state
    with Memory.open(tmp_path / "c.db", embedder=Recording(), embed={"batch_size": 8}) as mem:
        assert mem.add_many(_records()) == whole  # groups of 128 texts instead of 64
        assert _state(mem) == whole_state


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
    embedded = [t for call in embedder.calls for t in call if t != _records()[200].text]
    assert len(embedded) == len(set(embedded)) == result.embedded == result.added


@pytest.mark.parametrize("pipeline", [True, False])
def test_texts_reach_the_embedder_sorted_by_tokens_over_the_whole_call(
    tmp_path: Path, small_windows: None, pipeline: bool
) -> None:
    _, _, embedder = _write_all(tmp_path / "a.db", pipeline=pipeline)
    assert len(embedder.calls) >= 4
    assert max(len(call) for call in embedder.calls) == 64
    tokens = [estimate_tokens(t) for call in embedder.calls for t in call]
    assert tokens == sorted(tokens)


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
        embedder.fail_on = None
        retry = mem.add_many(_records())
    assert retry.added == 296
    kept = len(cached) - 20  # the two groups of 64 done before the failure, less a duplicate
    assert kept >= 127
    assert retry.embedded == 296 - kept  # and the retry did not embed them again


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


def test_a_text_embedded_before_it_was_recognised_as_a_duplicate_is_not_kept(
    tmp_path: Path, small_windows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = Recording()
    run = _write.Recognizer.run

    def after_the_first_group(self: _write.Recognizer, start: int, stop: int) -> None:
        deadline = time.monotonic() + 20
        while not embedder.calls and time.monotonic() < deadline:  # taken before any decision
            time.sleep(0.001)
        run(self, start, stop)

    monkeypatch.setattr(_write.Recognizer, "run", after_the_first_group)
    short = "Tiny note about cats."
    records = [*_records()[:150], Record(text=short), *_records()[150:]]
    records.append(Record(text=short.replace(".", "!!")))  # near: a duplicate
    with _open(tmp_path / "a.db", embedder) as mem:
        result = mem.add_many(records)
        cache = {h for (h,) in mem.store.conn.execute("SELECT hash FROM embeddings")}
        memories = {h for (h,) in mem.store.conn.execute("SELECT hash FROM memories")}
    assert result.decisions[-1] == "near"
    assert short.replace(".", "!!") in embedder.calls[0]  # embedded on speculation
    assert cache == memories  # ... but not kept
    assert result.embedded == result.added == len(memories)


def test_progress_counts_every_embedded_text(tmp_path: Path, small_windows: None) -> None:
    calls: list[tuple[str, int, int]] = []
    with _open(tmp_path / "a.db") as mem:
        result = mem.add_many(_records(), progress=lambda *a: calls.append(a))
    embeds = [(done, total) for stage, done, total in calls if stage == "embed"]
    assert len(embeds) >= 3
    assert [d for d, _ in embeds] == sorted(d for d, _ in embeds)
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


def _source(groups: list[tuple[list[str], list[str]]]) -> Any:
    todo = list(groups)
    return lambda: todo.pop(0) if todo else None


@pytest.mark.parametrize("threaded", [True, False])
def test_embed_ahead_returns_groups_in_order(threaded: bool) -> None:
    groups = [([f"{g}.{i}" for i in range(3)], ["x" * (g + i) for i in range(3)]) for g in range(8)]
    with EmbedAhead(_rows, _source(groups), threaded=threaded) as ahead:
        ahead.start()
        got = list(ahead.ready())
        got += list(ahead.finish())
    assert [keys for keys, _ in got] == [keys for keys, _ in groups]
    for (_, vectors), (_, texts) in zip(got, groups, strict=True):
        np.testing.assert_array_equal(vectors, _rows(texts))
    assert not _embed_threads()


def test_embed_ahead_asks_for_each_group_when_it_is_ready_for_it() -> None:
    wanted = ["a", "b", "c", "d"]
    dropped: set[str] = set()

    def groups() -> tuple[list[str], list[str]] | None:
        while wanted and wanted[0] in dropped:
            wanted.pop(0)
        return ([wanted[0]], [wanted.pop(0)]) if wanted else None

    gate = threading.Event()

    def embed(texts: list[str]) -> Matrix:
        gate.wait(10)
        return _rows(texts)

    with EmbedAhead(embed, groups) as ahead:
        ahead.start()
        dropped.add("c")  # learnt while "a" is being embedded
        gate.set()
        assert [keys for keys, _ in ahead.finish()] == [["a"], ["b"], ["d"]]


def test_embed_ahead_keeps_at_most_depth_groups_waiting() -> None:
    started: list[int] = []

    def embed(texts: list[str]) -> Matrix:
        started.append(len(started))
        return _rows(texts)

    groups = [([str(g)], ["text"]) for g in range(6)]
    with EmbedAhead(embed, _source(groups), depth=2) as ahead:
        ahead.start()
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

    ahead = EmbedAhead(embed, _source([([str(g)], ["t"]) for g in range(5)]), depth=1)
    ahead.start()
    release.set()
    time.sleep(0.05)
    ahead.close()
    assert not _embed_threads()
    ahead.close()  # idempotent


@pytest.mark.parametrize("threaded", [True, False])
def test_embed_ahead_hands_the_error_of_a_later_group_to_the_caller(threaded: bool) -> None:
    def embed(texts: list[str]) -> Matrix:
        if texts == ["bad"]:
            raise ModelError("bad group")
        return _rows(texts)

    groups = [([str(g)], [text]) for g, text in enumerate(["a", "b", "bad", "c"])]
    calls: list[list[str]] = []

    def recorded(texts: list[str]) -> Matrix:
        calls.append(texts)
        return embed(texts)

    with EmbedAhead(recorded, _source(groups), threaded=threaded) as ahead:
        ahead.start()
        got: list[list[str]] = []
        with pytest.raises(ModelError, match="bad group"):
            for keys, _ in ahead.finish():
                got.append(keys)
    assert got == [["0"], ["1"]]
    assert ["c"] not in calls  # nothing after the failing group
    assert not _embed_threads()
