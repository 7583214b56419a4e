"""Memory: add, recognise, recall, forget, get, stats — with the hash embedder."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb import (
    InvalidFilterError,
    InvalidInputError,
    Memory,
    NotAStoreError,
    NotFoundError,
    Record,
    StoreClosedError,
)

FREEZE = "Alice moved the deploy freeze to Friday."


def snapshot(mem: Memory) -> dict[str, Any]:
    """Every table's rows, the FTS index's answers and the dense index's content."""
    conn = mem.store.conn
    tables = ["memories", "sightings", "minhash_bands", "minhash_signatures", "embeddings"]
    out: dict[str, Any] = {
        t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in tables
    }
    out["fts"] = conn.execute(
        "SELECT rowid FROM memories_fts WHERE memories_fts MATCH 'deploy OR freeze OR cats'"
        " ORDER BY rowid"
    ).fetchall()
    ids, vectors = mem._dense.vectors()
    out["dense"] = (ids.tolist(), vectors.tobytes())
    return out


def test_add_then_recall_finds_it(memory: Memory) -> None:
    memory.add("Cats sleep most of the day.", source="a.md")
    result = memory.add(FREEZE, source="slack", meta={"team": "infra"}, event_time=1_700_000_000)
    assert result.added == 1 and len(result.ids) == 1
    hits = memory.recall("deploy freeze", k=2)
    assert hits[0].text == FREEZE
    assert hits[0].source == "slack"
    assert hits[0].meta == {"team": "infra"}
    assert hits[0].event_time == 1_700_000_000
    assert set(hits[0].why) == {"lexical", "dense"}
    assert hits[0].why["lexical"].rank == 1


def test_exact_duplicate_merges_and_counts_sources(memory: Memory) -> None:
    first = memory.add(FREEZE, source="slack")
    again = memory.add("  alice moved the DEPLOY freeze to friday. ", source="email")
    assert again.exact == 1 and again.added == 0
    assert again.ids == first.ids
    record = memory.get(first.ids[0])
    assert record.count == 2
    assert [s.source for s in record.sightings] == ["slack", "email"]
    assert [s.kind for s in record.sightings] == ["origin", "exact"]


def test_reingest_same_input_is_a_noop(memory: Memory) -> None:
    records = [
        Record(text=FREEZE, source="n.md"),
        Record(text="Bob fixed the cache.", source="n.md", ordinal=1),
    ]
    memory.add_many(records)
    before = snapshot(memory)
    again = memory.add_many(records)
    assert again.skipped == 2 and again.added == 0 and again.exact == 0
    after = snapshot(memory)
    assert before == after


def test_near_duplicate_merges_into_existing(memory: Memory) -> None:
    base = memory.add(
        "The quarterly report is due on the fifteenth of March, reviewed by the finance team."
    )
    near = memory.add(
        "The quarterly report is due on the fifteenth of March; reviewed by the finance team!!",
        source="copy",
    )
    assert near.near == 1 and near.added == 0
    assert near.ids == base.ids
    record = memory.get(base.ids[0])
    assert record.count == 2
    assert record.sightings[1].kind == "near"
    assert 0.8 <= record.sightings[1].score <= 1.0


def test_different_fact_is_not_merged(memory: Memory) -> None:
    memory.add(FREEZE)
    other = memory.add("Alice moved the deploy freeze to Monday.")
    assert other.added == 1


def test_near_duplicates_within_one_batch(memory: Memory) -> None:
    text = "Meeting notes: the database migration is scheduled for next Tuesday at noon."
    result = memory.add_many([text, text.replace("noon", "noon."), "Unrelated note about lunch."])
    assert result.added == 2
    assert result.ids[0] == result.ids[1]


def test_recognize_exact_near_new(memory: Memory) -> None:
    memory.add(FREEZE, source="slack")
    exact = memory.recognize("alice moved the deploy freeze to friday.")
    assert exact.kind == "exact" and exact.score == 1.0 and exact.match is not None
    long = "The build server restarts every night at two in the morning for maintenance work."
    memory.add(long)
    near = memory.recognize(long.replace("work", "work!"))
    assert near.kind == "near" and near.match is not None and near.match.text == long
    new = memory.recognize("Completely different sentence about gardening tomatoes.")
    assert new.kind == "new" and new.match is None and new.score < 0.8


def test_long_text_is_chunked_with_positions(memory: Memory) -> None:
    sentences = [
        f"Sentence number {i} talks about topic {i} in some detail here." for i in range(80)
    ]
    text = " ".join(sentences)
    result = memory.add(text, source="long.txt")
    assert result.added > 1
    records = [memory.get(i) for i in result.ids]
    assert [r.position.ordinal for r in records] == list(range(len(records)))
    for r in records:
        assert r.position.start is not None and r.position.end is not None
        assert text[r.position.start : r.position.end] == r.text


def test_crash_in_the_middle_of_add_many_leaves_store_as_before(
    memory: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory.add("Cats sleep most of the day.", source="a")
    before = snapshot(memory)
    version = memory.store.data_version
    real = memory.store.insert_memory
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(memory.store, "insert_memory", failing)
    records = [f"Fact number {i}: the deploy freeze item {i} is unique." for i in range(10)]
    with pytest.raises(RuntimeError, match="injected"):
        memory.add_many(records)
    assert calls["n"] == 6
    after = snapshot(memory)
    kept = after.pop("embeddings")  # the vectors computed are kept in the cache ...
    assert len(kept) == len(before.pop("embeddings")) + 10
    assert after == before  # ... and nothing else changed
    assert memory.store.data_version == version
    monkeypatch.undo()
    again = memory.add_many(records)
    assert again.added == 10 and again.embedded == 0  # a rerun does not embed them again


def test_forget_by_source_removes_derived_data(memory: Memory) -> None:
    memory.add(FREEZE, source="old.md")
    keep = memory.add("Cats sleep most of the day.", source="keep.md")
    assert memory.forget(source="old.md") == 1
    assert memory.recall("deploy freeze", k=5).ids == list(keep.ids)
    conn = memory.store.conn
    assert conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 1
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM minhash_bands WHERE memory_id NOT IN (SELECT id FROM memories)"
        ).fetchone()[0]
        == 0
    )
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM memories_fts WHERE memories_fts MATCH 'freeze'"
        ).fetchone()[0]
        == 0
    )
    assert len(memory._dense) == 1
    assert memory.recognize(FREEZE).kind == "new"
    again = memory.add(FREEZE, source="old.md")
    assert again.added == 1
    assert memory.recall("deploy freeze", k=1)[0].text == FREEZE


def test_forget_source_keeps_memory_seen_elsewhere(memory: Memory) -> None:
    first = memory.add(FREEZE, source="old.md", event_time=100.0)
    memory.add(FREEZE, source="new.md", event_time=200.0)
    assert memory.forget(source="old.md") == 0
    record = memory.get(first.ids[0])
    assert record.count == 1 and record.source == "new.md" and record.event_time == 200.0
    assert [s.kind for s in record.sightings] == ["origin"]


def test_forget_by_id_namespace_and_filter(memory: Memory) -> None:
    a = memory.add("Apples are red.", namespace="fruit", meta={"color": "red"})
    memory.add("Bananas are yellow.", namespace="fruit", meta={"color": "yellow"})
    memory.add("Kale is green.", namespace="veg")
    assert memory.forget(a.ids) == 1
    assert memory.forget(namespace="fruit", where={"color": "yellow"}) == 1
    assert memory.forget(namespace="veg") == 1
    assert memory.stats().memories == 0
    assert memory.forget([12345]) == 0


def test_forget_needs_exactly_one_criterion(memory: Memory) -> None:
    with pytest.raises(InvalidInputError):
        memory.forget()
    with pytest.raises(InvalidInputError):
        memory.forget([1], source="x")


def test_recall_filters_namespace_and_metadata(memory: Memory) -> None:
    memory.add("Deploy freeze starts Friday.", namespace="work", meta={"team": "infra"})
    memory.add("Deploy freeze for the garden shed.", namespace="home", meta={"team": "family"})
    memory.add("Deploy freeze notes from ML.", namespace="work", meta={"team": "ml"})
    hits = memory.recall("deploy freeze", k=5, namespace="work", where={"team": "infra"})
    assert [h.text for h in hits] == ["Deploy freeze starts Friday."]
    assert all(h.namespace == "home" for h in memory.recall("deploy", k=5, namespace="home"))
    for channel in ("lexical", "dense"):
        hits = memory.recall(
            "deploy freeze", k=5, where={"team": {"$in": ["ml", "family"]}}, channels=channel
        )
        assert {h.meta["team"] for h in hits} <= {"ml", "family"}


def test_event_time_range_filter(memory: Memory) -> None:
    memory.add("Standup moved to ten.", event_time=1_000.0)
    memory.add("Standup moved to eleven.", event_time=2_000.0)
    hits = memory.recall("standup moved", k=5, where={"event_time": {"$gte": 1_500}})
    assert [h.text for h in hits] == ["Standup moved to eleven."]


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_fusion_methods_return_union_of_channels(fusion: str) -> None:
    with Memory.open(
        ":memory:", embed={"model": "hash", "dim": 64}, recall={"fusion": fusion}
    ) as mem:
        mem.add_many([f"note {i} about item{i}" for i in range(20)])
        hits = mem.recall("item3", k=20)
        lex = mem.recall("item3", k=20, channels="lexical").ids
        dense = mem.recall("item3", k=20, channels="dense").ids
        assert set(hits.ids) <= set(lex) | set(dense)
        assert hits[0].text == "note 3 about item3"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"query": ""}, InvalidInputError),
        ({"query": "   "}, InvalidInputError),
        ({"query": "x", "k": 0}, InvalidInputError),
        ({"query": "x", "k": -3}, InvalidInputError),
        ({"query": "x", "namespace": "nope"}, NotFoundError),
        ({"query": "x", "channels": "graphx"}, InvalidInputError),
        ({"query": "x", "where": {"$bogus": 1}}, InvalidFilterError),
    ],
)
def test_recall_bad_input(memory: Memory, kwargs: dict[str, Any], error: type[Exception]) -> None:
    memory.add("something")
    with pytest.raises(error):
        memory.recall(**kwargs)


def test_bad_adds_change_nothing(memory: Memory) -> None:
    memory.add("keep me")
    before = snapshot(memory)
    for bad in (
        lambda: memory.add(""),
        lambda: memory.add("   \n"),
        lambda: memory.add("x", namespace="bad namespace!"),
        lambda: memory.add_many([{"text": "ok"}, {"txt": "typo"}]),
        lambda: memory.add_many(["fine", 42]),
    ):  # type: ignore[list-item]
        with pytest.raises(InvalidInputError):
            bad()
    assert snapshot(memory) == before


def test_get_missing_id(memory: Memory) -> None:
    with pytest.raises(NotFoundError, match="no memory with id 99"):
        memory.get(99)


def test_closed_memory_raises(db_path: Path) -> None:
    mem = Memory.open(db_path, embed={"model": "hash", "dim": 64})
    mem.close()
    with pytest.raises(StoreClosedError):
        mem.recall("x")
    with pytest.raises(StoreClosedError):
        mem.add("x")


def test_reopen_keeps_everything(open_memory: Any, db_path: Path) -> None:
    mem = open_memory()
    mem.add(FREEZE, source="slack")
    mem.close()
    mem = open_memory()
    assert mem.recall("freeze", k=1)[0].text == FREEZE
    assert mem.stats().dense.stale is False


def test_not_a_store_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"hello, I am not a database" * 10)
    with pytest.raises(NotAStoreError, match="not an engramdb store"):
        Memory.open(junk, embed={"model": "hash", "dim": 64})
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAStoreError, match="not an engramdb store"):
        Memory.open(other, embed={"model": "hash", "dim": 64})
    assert junk.read_bytes().startswith(b"hello")


def test_stats_counts(memory: Memory) -> None:
    memory.add("one", source="s1", namespace="a")
    memory.add("two", source="s2", namespace="b")
    memory.add("one", source="s3", namespace="a")
    s = memory.stats()
    assert s.memories == 2 and s.sightings == 3 and s.sources == 3
    assert dict(s.namespaces) == {"a": 1, "b": 1}
    assert s.dense.count == 2


def test_dense_channel_equals_brute_force(memory: Memory) -> None:
    texts = [f"memory {i} with words w{i % 7} and v{i % 5}" for i in range(60)]
    result = memory.add_many(texts)
    query = "words w3 and v2"
    hits = memory.recall(query, k=10, channels="dense")
    vectors = memory.embedder.embed_documents(texts)
    q = memory.embedder.embed_queries([query])[0]
    scores = vectors @ q
    order = sorted(range(len(texts)), key=lambda i: (-scores[i], result.ids[i]))[:10]
    assert hits.ids == [result.ids[i] for i in order]
    np.testing.assert_allclose([h.score for h in hits], scores[order], rtol=1e-5)
