"""The coordinator's behaviour with in-process shards: growing, the write journal, pins,
forgetting, context, and the errors a caller gets."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from _cluster_support import HASH, held_ids

from engramdb import (
    ConfigError,
    InvalidFilterError,
    InvalidInputError,
    Memory,
    NotFoundError,
    Record,
    ShardUnavailableError,
    StoreClosedError,
)
from engramdb.cluster import Cluster
from engramdb.cluster._catalog import SLOTS, Catalog, slot_of


def open_local(root: Path, shards: int | None = 2, **options: Any) -> Cluster:
    return Cluster.open(root=root, shards=shards, backend="local", **HASH, **options)


def test_add_shard_moves_memories_without_loss_while_recall_answers(
    tmp_path: Path, records: list[Record], queries: list[str]
) -> None:
    with open_local(tmp_path, 2) as cluster, Memory.open(":memory:", **HASH) as memory:
        for target in (cluster, memory):
            target.add_many(records[:300])
        expected = [h.ids for h in memory.recall_many(queries[:20], k=10)]
        before = held_ids(cluster)
        answers: list[list[list[int]]] = []
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                answers.append([h.ids for h in cluster.recall_many(queries[:5], k=10)])

        reader = threading.Thread(target=read)
        reader.start()
        try:
            grown = cluster.add_shard()
        finally:
            stop.set()
            reader.join(timeout=60)
        assert grown["shard"] == "shard-2" and grown["memories"] == 300
        assert grown["slots"] == SLOTS // 3 and grown["moved"] > 0
        assert held_ids(cluster) == before  # each id once, none lost
        assert len(held_ids(cluster, "shard-2")) == grown["moved"]
        assert cluster.shards == ["shard-0", "shard-1", "shard-2"]
        assert answers and all(len(a) == 5 for a in answers)  # recall kept answering
        assert [h.ids for h in cluster.recall_many(queries[:20], k=10)] == expected
        # new writes route to the grown layout and still meet their duplicates
        again = cluster.add_many(records[:300])
        assert set(again.decisions) == {"skipped"}
        fresh = cluster.add_many(records[300:])
        assert fresh.ids == memory.add_many(records[300:]).ids
        assert cluster.stats().memories == memory.stats().memories


def test_reopening_keeps_the_layout_and_ids(tmp_path: Path, records: list[Record]) -> None:
    with open_local(tmp_path, 3) as cluster:
        first = cluster.add_many(records[:50])
    with Cluster.open(root=tmp_path, backend="local", **HASH) as cluster:  # count omitted
        assert cluster.shards == ["shard-0", "shard-1", "shard-2"]
        assert cluster.stats().memories == 50
        assert cluster.add_many(records[50:60]).ids[0] == max(first.ids) + 1
    with pytest.raises(InvalidInputError, match="has 3 shards, not 2"):
        open_local(tmp_path, 2)


class Flaky:
    """Wraps a shard; its writes fail (as a shard that is down) while ``down`` is set."""

    def __init__(self, shard: Any):
        self.shard = shard
        self.down = True

    def __getattr__(self, name: str) -> Any:
        if name in ("apply", "forget_as") and self.down:

            def fail(*args: Any) -> Any:
                raise ConnectionError("shard unreachable")

            return fail
        return getattr(self.shard, name)


def test_a_write_to_a_down_shard_is_queued_and_applied_once(
    tmp_path: Path, records: list[Record]
) -> None:
    with open_local(tmp_path, 2) as cluster, Memory.open(":memory:", **HASH) as memory:
        flaky = Flaky(cluster.handles["shard-1"])
        cluster.handles["shard-1"] = flaky
        with pytest.raises(ShardUnavailableError, match="queued") as caught:
            cluster.add_many(records[:40])
        assert caught.value.shards == ("shard-1",)
        assert cluster.stats().pending == 1
        on_zero = len(held_ids(cluster, "shard-0"))
        assert 0 < on_zero < 40  # the shard that was up has its part
        assert cluster.flush() == 0  # still down: stays queued
        flaky.down = False
        assert cluster.flush() == 1
        assert cluster.stats().pending == 0
        assert cluster.flush() == 0
        memory.add_many(records[:40])
        assert held_ids(cluster) == memory.ids()
        # applying the same batch again (a retry after a lost answer) changes nothing
        flaky.down = True
        with pytest.raises(ShardUnavailableError):
            cluster.forget(source=records[0].source)
        flaky.down = False
        cluster.add_many(records[40:45])  # a later write applies what is queued first
        assert cluster.stats().pending == 0
        assert cluster.stats().memories == 44


def test_a_queued_write_survives_the_coordinator(tmp_path: Path, records: list[Record]) -> None:
    cluster = open_local(tmp_path, 2)
    flaky = Flaky(cluster.handles["shard-0"])
    cluster.handles["shard-0"] = flaky
    with pytest.raises(ShardUnavailableError):
        cluster.add_many(records[:30])
    cluster.close()
    with Cluster.open(root=tmp_path, backend="local", **HASH) as again:  # replays at open
        assert again.stats().pending == 0
        assert again.stats().memories == 30


def test_pinned_namespace_lives_on_its_shard(tmp_path: Path, records: list[Record]) -> None:
    with open_local(tmp_path, 3) as cluster:
        cluster.pin("tenant", "shard-2")
        cluster.add_many(records[:30], namespace="tenant")
        cluster.add_many(records[30:60])
        assert cluster.stats().shards["shard-2"].namespaces.get("tenant") == 30
        for shard in ("shard-0", "shard-1"):
            assert "tenant" not in cluster.stats().shards[shard].namespaces
        assert cluster.recall("cancer", namespace="tenant", k=5).ids
        with pytest.raises(InvalidInputError, match="already holds memories"):
            cluster.pin("default", "shard-0")
        with pytest.raises(NotFoundError):
            cluster.pin("other", "shard-9")
        grown = cluster.add_shard()  # a pinned namespace does not move
        assert cluster.stats().shards["shard-2"].namespaces.get("tenant") == 30
        assert grown["memories"] == 60


def test_forget_get_context_and_namespaces(tmp_path: Path) -> None:
    turns = [
        Record(
            text=f"{who}: message {i} about the garden",
            document="chat",
            ordinal=i,
            meta={"speaker": who, "session": 1},
        )
        for i, who in enumerate(["Ann", "Bob"] * 6)
    ]
    with open_local(tmp_path, 3) as cluster, Memory.open(":memory:", **HASH) as memory:
        for target in (cluster, memory):
            target.add_many(turns, namespace="chat")
            target.add_many(["a note about tulips", "a note about roses"], namespace="notes")
        assert cluster.namespaces() == memory.namespaces()
        a = memory.context("garden message 5", k=3, namespace="chat")
        b = cluster.context("garden message 5", k=3, namespace="chat")
        assert b.text == a.text
        hit = cluster.recall("tulips", k=1)[0]
        assert cluster.get(hit.id).text == "a note about tulips"
        assert [r.id for r in cluster.get_many([hit.id, 10_000])] == [hit.id]
        with pytest.raises(NotFoundError):
            cluster.get(10_000)
        assert cluster.forget([hit.id]) == 1
        assert cluster.forget(namespace="chat", where={"speaker": "Bob"}) == 6
        assert cluster.namespaces() == {"chat": 6, "notes": 1}
        with pytest.raises(NotFoundError):
            cluster.forget(namespace="nowhere")
        with pytest.raises(NotFoundError):
            cluster.recall("garden", namespace="nowhere")


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="on_missing"):
        open_local(tmp_path, on_missing="maybe")
    with pytest.raises(InvalidInputError, match="timeout"):
        open_local(tmp_path, timeout=0)
    with pytest.raises(InvalidInputError, match="embedders"):
        open_local(tmp_path, embedders=-1)
    with pytest.raises(InvalidInputError, match="backend"):
        Cluster.open(root=tmp_path, backend="carrier-pigeon", **HASH)
    with pytest.raises(ConfigError, match="embed.model='hash'"):
        open_local(tmp_path, 1).close()
        Cluster.open(root=tmp_path, backend="local", embed={"model": "hash", "dim": 32})
    with Cluster.open(root=tmp_path, backend="local") as remembered:  # its own settings
        assert remembered.embedder.dim == 64
        with pytest.raises(InvalidInputError, match="graph channel is off"):
            remembered.recall("x", channels="graph")
    with pytest.raises(ConfigError):
        Cluster.open(root=tmp_path / "new", backend="local", graph={"nonsense": 1})
    assert not (tmp_path / "new").exists()  # a bad configuration makes nothing
    cluster = open_local(tmp_path, None)
    cluster.add("one memory")
    for bad in (
        lambda: cluster.recall("x", coverage=0.9),
        lambda: cluster.recall("x", channels="graph"),
        lambda: cluster.recall("x", k=0),
        lambda: cluster.recall("   "),
        lambda: cluster.recall_many("one string"),
        lambda: cluster.recall("x", on_missing="sometimes"),
        lambda: cluster.recall("x", where={"$bad": 1}),
        lambda: cluster.forget(),
        lambda: cluster.forget([1], source="s"),
        lambda: cluster.recognize(""),
        lambda: cluster.add_many([], namespace="bad namespace!"),
    ):
        with pytest.raises((InvalidInputError, InvalidFilterError)):
            bad()
    cluster.close()
    cluster.close()  # twice is fine
    with pytest.raises(StoreClosedError):
        cluster.recall("x")


def test_catalog_routing() -> None:
    slots = [slot_of("default", f"{i:064x}") for i in range(4000)]
    assert all(0 <= s < SLOTS for s in slots)
    assert len(set(slots)) > SLOTS * 0.9  # spread over the slots
    assert slot_of("a", "h") == slot_of("a", "h") != slot_of("b", "h")


def test_catalog_allocates_ids_that_never_repeat(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.create(2)
    firsts = [catalog.allocate(n) for n in (3, 1, 5)]
    assert firsts == [1, 4, 5]
    with pytest.raises(InvalidInputError):
        catalog.create(0)
    catalog.close()
    again = Catalog(tmp_path)
    assert again.allocate(1) == 10
    again.close()


def test_ingest_and_recall_options(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Tulips bloom in spring in the garden.", encoding="utf-8")
    (folder / "b.md").write_text("# Roses\n\nRoses need sun and water.", encoding="utf-8")
    with open_local(tmp_path / "c", 2) as cluster, Memory.open(":memory:", **HASH) as memory:
        for target in (cluster, memory):
            target.ingest([folder], namespace="docs")
            target.add("The deploy freeze moved to Friday.", event_time=1_700_000_000.0)
        for options in (
            {"min_relevance": 0.0},
            {"rerank": "mmr"},
            {"as_of": 1_800_000_000.0},
            {"include_superseded": True, "now": "2024-01-01"},
        ):
            a = memory.recall("tulips garden spring", k=3, **options)
            b = cluster.recall("tulips garden spring", k=3, **options)
            assert b.ids == a.ids, options
            assert [h.relevance for h in b] == pytest.approx([h.relevance for h in a])
        assert cluster.recognize("the deploy freeze moved to friday.").kind == "exact"
        assert cluster.recognize("Tulips", namespace=None).kind == "new"


def test_embedder_processes_give_the_same_memories(
    tmp_path: Path, records: list[Record], queries: list[str], one_store: Memory
) -> None:
    with open_local(tmp_path, 2, embedders=3) as cluster:
        for start in range(0, len(records), 100):
            result = cluster.add_many(records[start : start + 100])
            assert result.embedded == result.added
        for a, b in zip(
            one_store.recall_many(queries[:10], k=10, channels="dense"),
            cluster.recall_many(queries[:10], k=10, channels="dense"),
            strict=True,
        ):
            assert b.ids == a.ids
            assert [h.score for h in b] == pytest.approx([h.score for h in a], abs=1e-6)


def test_an_interrupted_add_shard_leaves_nothing_twice_and_finishes_later(
    tmp_path: Path, records: list[Record], queries: list[str]
) -> None:
    with open_local(tmp_path, 2) as cluster:
        cluster.add_many(records[:120])
        before = held_ids(cluster)
        expected = [h.ids for h in cluster.recall_many(queries[:10], k=10)]
        real = cluster.handles["shard-1"]
        cluster.handles["shard-1"] = Broken(real, "export")
        with pytest.raises(ShardUnavailableError):
            cluster.add_shard()
        cluster.handles["shard-1"] = real
        assert held_ids(cluster) == before  # the copies were taken back out
        assert held_ids(cluster, "shard-2") == []
        assert [h.ids for h in cluster.recall_many(queries[:10], k=10)] == expected
        grown = cluster.add_shard()  # finishes on the shard added before
        assert grown["shard"] == "shard-2" and grown["moved"] > 0
        assert cluster.shards == ["shard-0", "shard-1", "shard-2"]
        assert held_ids(cluster) == before
        assert [h.ids for h in cluster.recall_many(queries[:10], k=10)] == expected


class Broken:
    """Wraps a shard; one of its methods fails as a shard that went down."""

    def __init__(self, shard: Any, method: str):
        self.shard = shard
        self.method = method

    def __getattr__(self, name: str) -> Any:
        if name == self.method:

            def fail(*args: Any) -> Any:
                raise ConnectionError("shard unreachable")

            return fail
        return getattr(self.shard, name)


def test_two_coordinators_share_a_cluster(tmp_path: Path, records: list[Record]) -> None:
    """Writers in two coordinators (as two server processes) take turns under the
    cluster's writer lock: the same texts written by both at once are stored once; a shard
    one adds is found by the other."""
    first = open_local(tmp_path, 2)
    second = Cluster.open(root=tmp_path, backend="local")
    try:
        errors: list[BaseException] = []

        def write(cluster: Cluster) -> None:
            try:
                for start in range(0, 120, 20):
                    cluster.add_many(records[start : start + 20])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(c,)) for c in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors
        assert len(held_ids(first)) == 120  # each text once, whoever wrote it first
        assert first.stats().memories == second.stats().memories == 120
        grown = first.add_shard()
        assert second.recall("cancer", k=5).ids == first.recall("cancer", k=5).ids
        assert "shard-2" in second.shards
        fresh = second.add_many(records[120:160])
        assert fresh.added == 40
        assert len(held_ids(first)) == 160
        assert grown["memories"] == 120
    finally:
        first.close()
        second.close()
