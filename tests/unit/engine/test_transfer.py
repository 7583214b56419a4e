"""Export, import and backup through Memory (hash embedder)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb import ImportResult, Memory
from engramdb.engine import _transfer, _transfer_format
from engramdb.errors import IngestError, InvalidInputError, NotFoundError, StoreError

HASH = {"model": "hash", "dim": 64}
FREEZE = "Alice moved the deploy freeze to Friday."


def _fill(mem: Memory) -> None:
    """Memories with merged sightings (exact and near), times, metadata, two namespaces."""
    mem.add(
        FREEZE, source="slack", meta={"team": "infra", "tags": ["a", {"b": 1}]}, event_time=100.0
    )
    mem.add(FREEZE, source="email", event_time=200.0)
    mem.add("Alice moved the deploy freeze to Friday!!", source="wiki")
    mem.add("Alice moved the deploy freeze to Friday, again.", source="notes", event_time=300.5)
    mem.add_many(
        [{"text": "Cats sleep most of the day.", "source": "cats.txt", "ordinal": 3}],
        namespace="pets",
    )
    mem.add("Cats sleep most of the day.", source="cats.txt")  # another namespace: a memory
    mem.add("The deploy window opens on Monday at nine.", source="chat", meta={"speaker": "Bo"})
    mem.add("Bob owns two dogs and a parrot.", source="old", namespace="pets")
    mem.add("Bob owns two dogs and a parrot.", source="new", namespace="pets")
    mem.forget(source="old")  # the origin moves to the next sighting


def _strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without what differs between stores: ids and the export time."""
    return [{k: v for k, v in r.items() if k not in ("id", "exported_at")} for r in records]


def _plain(mem: Memory) -> list[dict[str, Any]]:
    """Every memory with its sightings, as comparable values (ids left out)."""
    out = []
    for record in mem.get_many(mem.ids(), sightings=True):
        values = {k: getattr(record, k) for k in record.__dataclass_fields__ if k != "id"}
        out.append(values)
    return out


@pytest.fixture
def source() -> Iterator[Memory]:
    with Memory.open(":memory:", embed=HASH) as mem:
        _fill(mem)
        yield mem


@pytest.fixture
def target() -> Iterator[Memory]:
    with Memory.open(":memory:", embed=HASH) as mem:
        yield mem


def test_round_trip_keeps_sightings_times_and_meta(source: Memory, target: Memory) -> None:
    records = list(source.export())
    assert records[0]["format"] == "engramdb.export" and records[0]["version"] == 1
    result = target.import_records(records)
    assert result.records == 5 and result.added == 5 and result.merged == 0
    assert result.sightings == source.stats().sightings

    assert _plain(target) == _plain(source)
    assert _strip(list(target.export())) == _strip(records)
    freeze = target.get(target.ids(namespace="default")[0])
    assert [s.kind for s in freeze.sightings] == ["origin", "exact", "near", "near"]
    assert freeze.count == 4 and freeze.meta == {"team": "infra", "tags": ["a", {"b": 1}]}
    bob = target.get(target.ids(where={"source": "new"})[0])
    assert bob.source == "new" and [s.kind for s in bob.sightings] == ["origin"]
    assert target.check() == []


def test_imported_memories_are_found_by_every_channel(source: Memory, target: Memory) -> None:
    target.import_records(source.export())
    for channel in ("lexical", "dense"):
        assert target.recall("cats sleep", k=1, channels=channel)[0].text.startswith("Cats")
    near = target.recognize("Alice moved the deploy freeze to Friday, again!", namespace="default")
    assert near.kind in ("exact", "near") and near.match is not None
    stats = target.stats()
    assert stats.dense.count == stats.memories == stats.lexical.rows == 5
    assert not stats.dense.stale


def test_importing_twice_changes_nothing(source: Memory, target: Memory) -> None:
    records = list(source.export())
    target.import_records(records)
    before = (target.stats().data_version, _plain(target))
    again = target.import_records(records)
    assert again == ImportResult(
        records=5,
        added=0,
        merged=5,
        sightings=0,
        known_sightings=source.stats().sightings,
        reused=0,
        embedded=0,
    )
    assert (target.stats().data_version, _plain(target)) == before


def test_import_merges_into_a_memory_already_there(source: Memory, target: Memory) -> None:
    target.add(FREEZE, source="calendar", event_time=50.0)
    result = target.import_records(source.export(namespace="default"))
    assert result.merged == 1 and result.added == 2
    memory = target.get(target.ids(where={"source": "calendar"})[0])
    assert memory.source == "calendar" and memory.count == 5
    sightings = [(s.source, s.kind, s.event_time) for s in memory.sightings]
    assert sightings == [
        ("calendar", "origin", 50.0),
        ("slack", "exact", 100.0),
        ("email", "exact", 200.0),
        ("wiki", "near", None),
        ("notes", "near", 300.5),
    ]


def test_namespace_override_moves_every_record(source: Memory, target: Memory) -> None:
    result = target.import_records(list(source.export()), namespace="archive")
    assert (result.added, result.merged) == (4, 1)  # the cats of both namespaces merge
    assert target.namespaces() == {"archive": 4}
    cats = target.get(target.ids(where={"source": "cats.txt"})[0])
    assert cats.count == 2 and cats.sightings[1].position.ordinal is None
    with pytest.raises(InvalidInputError, match="namespace"):
        target.import_records(source.export(), namespace="no spaces")


def test_export_of_one_namespace_and_unknown_namespace(source: Memory) -> None:
    records = list(source.export(namespace="pets"))
    assert records[0]["namespace"] == "pets"
    assert [r["namespace"] for r in records[1:]] == ["pets", "pets"]
    with pytest.raises(NotFoundError, match="unknown namespace"):
        source.export(namespace="nope")  # at once, before any iteration


def test_vectors_of_the_same_embedder_are_used(source: Memory, target: Memory) -> None:
    records = list(source.export(vectors=True))
    unit = np.zeros(64, dtype="<f4")
    unit[7] = 1.0
    records[1]["embedding"]["data"] = base64.b64encode(unit.tobytes()).decode()

    def refuse(texts: Any) -> Any:
        raise AssertionError("nothing should be embedded")

    target.embedder.embed_documents = refuse  # type: ignore[method-assign]
    result = target.import_records(records)
    assert result.reused == 4 and result.embedded == 0  # both cats share one vector
    first = target.get(target.ids()[0])
    stored = target.store.cached_embeddings(target.embedder.model_id, [first.hash])[first.hash]
    np.testing.assert_array_equal(stored, unit)  # the file's bytes, not a recomputation
    assert _strip(list(target.export(vectors=True))) == _strip(records)


def test_a_cached_vector_wins_over_the_files(source: Memory, target: Memory) -> None:
    target.add("Cats sleep most of the day.", namespace="mine")
    records = list(source.export(namespace="pets", vectors=True))
    cats = next(r for r in records[1:] if r["text"].startswith("Cats"))
    cats["embedding"]["data"] = base64.b64encode(np.ones(64, dtype="<f4").tobytes()).decode()
    result = target.import_records(records)
    assert result.added == 2 and result.reused == 1  # Bob's vector only
    cached = target.store.cached_embeddings(target.embedder.model_id, [cats["hash"]])
    own = target.embedder.embed_documents([cats["text"]])[0]
    np.testing.assert_array_equal(cached[cats["hash"]], own)
    ids, vectors = target.dense_index.vectors()
    pets = target.ids(namespace="pets")
    for memory_id in pets:
        row = vectors[list(ids).index(memory_id)]
        assert not np.allclose(row, 1.0)


def test_vectors_of_another_embedder_are_recomputed(source: Memory) -> None:
    records = list(source.export(vectors=True))
    assert all(len(base64.b64decode(r["embedding"]["data"])) == 64 * 4 for r in records[1:])
    with Memory.open(":memory:", embed={"model": "hash", "dim": 32}) as other:
        result = other.import_records(records)
        assert result.embedded == 4 and result.reused == 0  # both cats share one text
        assert other.check() == [] and other.stats().dense.count == 5
        first = other.get(other.ids()[0])
        cached = other.store.cached_embeddings(other.embedder.model_id, [first.hash])
        np.testing.assert_allclose(
            cached[first.hash], other.embedder.embed_documents([first.text])[0]
        )


def _memory_line(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"namespace": "default", "text": "A fine memory.", "ingest_time": 1.0}
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not an object", "expected a JSON object"),
        (_memory_line(text=""), "'text' must be a non-empty string"),
        (_memory_line(text=None), "'text'"),
        (_memory_line(colour="red"), "unknown field"),
        (_memory_line(namespace=None), "no 'namespace'"),
        (_memory_line(ingest_time=float("nan")), "'ingest_time' must be a finite number"),
        (_memory_line(event_time=True), "'event_time'"),
        (_memory_line(position={"ordinal": 1.5}), "'ordinal' must be an integer"),
        (_memory_line(meta=[1]), "'meta' must be an object"),
        (_memory_line(meta={"x": float("inf")}), "'meta' is not JSON"),
        (_memory_line(sightings=[{"kind": "seen", "seen_time": 1}]), "'kind' must be one of"),
        (_memory_line(sightings=[{"kind": "exact"}]), "'seen_time'"),
        (
            _memory_line(sightings=[{"kind": "origin", "seen_time": 1}] * 2),
            "at most one",
        ),
        (_memory_line(embedding={"model": "m", "dim": 2, "data": "!!"}), "not base64"),
        (_memory_line(embedding={"model": "m", "dim": 3, "data": "AAAAAA=="}), "holds 4 bytes"),
        ({"format": "engramdb.export", "version": 2}, "version 2 is not supported"),
        ({"format": "something.else", "version": 1}, "not an engramdb export"),
    ],
)
def test_a_malformed_record_names_its_line_and_writes_nothing(
    target: Memory, bad: Any, message: str
) -> None:
    records = [_memory_line(text="first"), _memory_line(text="second"), bad]
    version = target.stats().data_version
    with pytest.raises(IngestError, match=message) as info:
        target.import_records(records)
    assert info.value.line == 3 and str(info.value).startswith("line 3: ")
    assert target.ids() == [] and target.stats().data_version == version


def test_deeply_nested_meta_is_refused_without_recursion(target: Memory) -> None:
    meta: dict[str, Any] = {}
    inner = meta
    for _ in range(50_000):
        inner["x"] = {}
        inner = inner["x"]
    with pytest.raises(IngestError, match="nested more than"):
        target.import_records([_memory_line(meta=meta)])


def test_a_stream_is_written_batch_by_batch(
    target: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transfer, "_BATCH_RECORDS", 2)
    commits = target._writer.queue.batches

    def lines() -> Iterator[dict[str, Any]]:  # an iterator: read once, checked per batch
        for i in range(4):
            yield _memory_line(text=f"memory number {i}")
        yield _memory_line(text=7)

    with pytest.raises(IngestError, match="line 5"):
        target.import_records(lines())
    assert len(target.ids()) == 4  # the two batches before the bad record
    assert target._writer.queue.batches == commits + 2


def _write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_file_is_checked_in_full_before_writing(
    target: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transfer, "_BATCH_RECORDS", 2)
    rows = [_memory_line(text=f"memory number {i}") for i in range(6)] + [_memory_line(meta=3)]
    path = _write_lines(tmp_path / "in.jsonl", rows)
    with pytest.raises(IngestError, match="'meta' must be an object") as info:
        target.import_file(path)
    assert info.value.line == 7 and str(info.value).startswith(f"{path}:7: ")
    assert target.ids() == []


def test_a_file_with_blank_lines_and_two_headers(
    source: Memory, target: Memory, tmp_path: Path
) -> None:
    first = list(source.export(namespace="default"))
    second = list(source.export(namespace="pets"))
    text = "\n".join(json.dumps(r) for r in first) + "\n\n  \n"
    text += "\n".join(json.dumps(r) for r in second) + "\n"
    (tmp_path / "both.jsonl").write_text(text, encoding="utf-8")
    result = target.import_file(tmp_path / "both.jsonl")
    assert result.added == 5

    def key(values: dict[str, Any]) -> tuple[str, str]:
        return values["namespace"], values["text"]

    assert sorted(_plain(target), key=key) == sorted(_plain(source), key=key)


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        (b'{"format": "engramdb.export", "version": 1}\n{"text": \n', "malformed JSON", 2),
        (b"\n\n" + b"[" * 200_000 + b"]" * 200_000 + b"\n", "nested more than", 3),
        (b'{"text": "caf\xe9", "namespace": "x"}\n', "not UTF-8", 1),
        (b'{"text": "x", "namespace": "x", "meta": {"n": 1' + b"0" * 5000 + b"}}\n", "JSON", 1),
    ],
)
def test_a_bad_line_is_reported_with_its_number(
    target: Memory, tmp_path: Path, content: bytes, message: str, line: int
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(IngestError, match=message) as info:
        target.import_file(path)
    assert info.value.line == line
    assert target.ids() == []


def test_a_line_over_the_limit_is_refused_unread(
    target: Memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transfer_format, "MAX_LINE_BYTES", 100)
    path = _write_lines(tmp_path / "long.jsonl", [_memory_line(), _memory_line(text="x" * 500)])
    with pytest.raises(IngestError, match="longer than 100 bytes") as info:
        target.import_file(path)
    assert info.value.line == 2


def test_a_missing_file_is_an_ingest_error(target: Memory, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="cannot read"):
        target.import_file(tmp_path / "nope.jsonl")


def test_export_reads_a_page_at_a_time(target: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    target.add_many([f"memory number {i} of ten" for i in range(10)])
    monkeypatch.setattr(_transfer, "_PAGE", 3)
    pages: list[list[int]] = []
    original = target.store.page_ids

    def spy(namespace: str | None, *, after: int, limit: int) -> list[int]:
        pages.append(original(namespace, after=after, limit=limit))
        return pages[-1]

    monkeypatch.setattr(target.store, "page_ids", spy)
    records = target.export()
    assert pages == []  # nothing read before iteration
    assert next(records)["format"] == "engramdb.export"
    assert next(records)["text"] == "memory number 0 of ten"
    assert len(pages) == 1 and len(pages[0]) == 3
    rest = list(records)
    assert [len(p) for p in pages] == [3, 3, 3, 1, 0]
    assert [r["id"] for r in rest] == sorted(r["id"] for r in rest) and len(rest) == 9


def test_export_is_json_ready(source: Memory) -> None:
    for record in source.export(vectors=True):
        assert json.loads(json.dumps(record, allow_nan=False)) == record


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[Callable[..., Memory]]:
    mems: list[Memory] = []

    def _open(path: Path = tmp_path / "store.db", **kwargs: Any) -> Memory:
        mem = Memory.open(path, embed=HASH, **kwargs)
        mems.append(mem)
        return mem

    yield _open
    for mem in mems:
        mem.close()


def test_backup_while_another_writer_adds(tmp_path: Path, opened: Callable[..., Memory]) -> None:
    mem = opened()
    mem.add_many([f"first memory {i}" for i in range(50)])
    writer = opened()  # a second connection set, as another process would have
    stop, started = threading.Event(), threading.Event()
    written = [0]

    def keep_writing() -> None:
        while not stop.is_set():
            writer.add(f"written during the backup {written[0]}")
            written[0] += 1
            started.set()

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        assert started.wait(10)
        copies = [mem.backup(tmp_path / f"copy{i}.db") for i in range(3)]
    finally:
        stop.set()
        thread.join()
    assert written[0] > 0
    for path in copies:
        copy = opened(path, create=False)
        assert copy.check() == []
        count = len(copy.ids())
        assert 50 <= count <= 50 + written[0]
    assert not [p for p in tmp_path.iterdir() if ".backup-" in p.name]


def test_backup_refuses_to_overwrite_or_copy_onto_itself(
    tmp_path: Path, opened: Callable[..., Memory]
) -> None:
    mem = opened()
    mem.add(FREEZE)
    dest = tmp_path / "copy.db"
    dest.write_bytes(b"keep me")
    with pytest.raises(InvalidInputError, match="overwrite"):
        mem.backup(dest)
    assert dest.read_bytes() == b"keep me"
    assert mem.backup(dest, overwrite=True) == dest
    assert opened(dest, create=False).recall("freeze", k=1)[0].text == FREEZE
    for itself in (tmp_path / "store.db", tmp_path / "." / "store.db"):
        with pytest.raises(InvalidInputError, match="onto itself"):
            mem.backup(itself, overwrite=True)
    with pytest.raises(InvalidInputError, match="folder"):
        mem.backup(tmp_path)
    with pytest.raises(InvalidInputError, match="no folder"):
        mem.backup(tmp_path / "missing" / "copy.db")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == [
        "copy.db",
        "store.db",
    ]


def test_backup_of_an_in_memory_store(source: Memory, tmp_path: Path) -> None:
    path = source.backup(tmp_path / "mem.db")
    with Memory.open(path, embed=HASH, create=False) as copy:
        assert _plain(copy) == _plain(source) and copy.check() == []


def test_backup_of_a_closed_memory_fails(tmp_path: Path) -> None:
    mem = Memory.open(":memory:", embed=HASH)
    mem.close()
    with pytest.raises(StoreError, match="closed"):
        mem.backup(tmp_path / "x.db")
    assert not (tmp_path / "x.db").exists()


def test_import_into_a_graph_store_adds_passages(source: Memory) -> None:
    pytest.importorskip("spacy")
    with Memory.open(":memory:", embed=HASH, graph={"enabled": True}) as graph:
        graph.import_records(source.export())
        stats = graph.stats().graph
        assert stats is not None and stats.passages == 5


def test_a_memory_forgotten_during_the_import_is_prepared_again(
    source: Memory, target: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    target.add(FREEZE, source="calendar")
    original = _transfer._prepare
    calls = [0]

    def prepare_then_forget(writer: Any, batch: Any) -> Any:
        prepared = original(writer, batch)
        calls[0] += 1
        if calls[0] == 1:  # another writer forgets the memory the batch merges into
            target.forget(source="calendar")
        return prepared

    monkeypatch.setattr(_transfer, "_prepare", prepare_then_forget)
    result = target.import_records(source.export(namespace="default"))
    assert calls[0] == 2 and (result.added, result.merged) == (3, 0)
    assert target.check() == [] and target.stats().dense.count == 3
