"""A sharded store answers exactly as one store holding the same memories: the same top-10
ids and channel scores (to 1e-6) for lexical, dense and hybrid recall, and the same
recognition decisions, on 1, 2 and 4 shards."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from _cluster_support import HASH

from engramdb import Hits, Memory, Record
from engramdb.cluster import Cluster


def fill(cluster: Cluster, records: Sequence[Record]) -> None:
    for start in range(0, len(records), 100):
        cluster.add_many(records[start : start + 100])


def assert_same(expected: Hits, got: Hits) -> None:
    assert got.ids == expected.ids, expected.query
    for a, b in zip(expected, got, strict=True):
        assert b.score == pytest.approx(a.score, rel=1e-6, abs=1e-6)
        assert set(b.why) == set(a.why)
        for channel, score in a.why.items():
            assert b.why[channel].rank == score.rank
            assert b.why[channel].score == pytest.approx(score.score, rel=1e-6, abs=1e-6)
        assert (b.text, b.source, b.position) == (a.text, a.source, a.position)


@pytest.mark.parametrize("shards", [1, 2, 4])
def test_recall_equals_one_store(
    shards: int,
    tmp_path: Path,
    records: list[Record],
    queries: list[str],
    one_store: Memory,
) -> None:
    with Cluster.open(root=tmp_path, shards=shards, backend="local", **HASH) as cluster:
        fill(cluster, records)
        counts = [s.memories for s in cluster.stats().shards.values()]
        assert sum(counts) == one_store.stats().memories
        if shards > 1:
            assert min(counts) > 0  # the memories are spread, not all on one shard
        for channels in ("lexical", "dense", "hybrid"):
            expected = one_store.recall_many(queries, k=10, channels=channels)
            got = cluster.recall_many(queries, k=10, channels=channels)
            for a, b in zip(expected, got, strict=True):
                assert_same(a, b)
                assert not b.partial


def test_filters_and_namespaces_equal_one_store(tmp_path: Path, records: list[Record]) -> None:
    half = len(records) // 2
    with (
        Memory.open(":memory:", **HASH) as memory,
        Cluster.open(root=tmp_path, shards=3, backend="local", **HASH) as cluster,
    ):
        for target in (memory, cluster):
            target.add_many(records[:half], namespace="a")
            target.add_many(records[half:], namespace="b")
        for query in ("cancer cell growth", "vitamin D deficiency risk", "protein folding"):
            for options in (
                {"namespace": "a"},
                {"namespace": "b", "channels": "lexical"},
                {"where": {"source": records[3].source}},
            ):
                assert_same(memory.recall(query, **options), cluster.recall(query, **options))


def test_recognition_equals_one_store(tmp_path: Path, records: list[Record]) -> None:
    """A stream with exact copies, copies that differ in case and spacing, and near copies
    (a word dropped, a word changed), in batches that mix new and seen texts."""
    base = [r.text for r in records[:120]]
    stream: list[str] = []
    for i, text in enumerate(base):
        stream.append(text)
        words = text.split()
        if i % 3 == 0:
            stream.append(text)  # exact
        if i % 4 == 1:
            stream.append("  " + text.upper() + " ")  # exact after normalisation
        if i % 5 == 2 and len(words) > 30:
            stream.append(" ".join(words[:10] + words[11:]))  # near: a word dropped
        if i % 7 == 3 and len(words) > 30:
            stream.append(" ".join([*words[:-1], "indeed."]))  # near: the last word changed
    batches = [stream[i : i + 37] for i in range(0, len(stream), 37)]
    with (
        Memory.open(":memory:", **HASH) as memory,
        Cluster.open(root=tmp_path, shards=4, backend="local", **HASH) as cluster,
    ):
        decided: list[str] = []
        for batch in batches:
            one = memory.add_many(batch)
            many = cluster.add_many(batch)
            assert many.decisions == one.decisions
            assert many.ids == one.ids
            assert (many.added, many.exact, many.near, many.skipped) == (
                one.added,
                one.exact,
                one.near,
                one.skipped,
            )
            decided += one.decisions
        assert {"new", "exact", "near"} <= set(decided)
        for batch in batches[:2]:  # the same input again: every chunk already recorded there
            assert cluster.add_many(batch).decisions == memory.add_many(batch).decisions
        for probe in (base[5], base[6].lower(), " ".join(base[7].split()[1:]), "unseen text here"):
            a, b = memory.recognize(probe), cluster.recognize(probe)
            assert (b.kind, b.score) == (a.kind, pytest.approx(a.score))
            assert (b.match.id if b.match else None) == (a.match.id if a.match else None)
            assert cluster.recognize(probe, namespace=None).kind == a.kind


@pytest.mark.ray
@pytest.mark.parametrize("shards", [2, 4])
def test_recall_equals_one_store_on_ray(
    shards: int,
    ray_local: object,
    tmp_path: Path,
    records: list[Record],
    queries: list[str],
    one_store: Memory,
) -> None:
    with Cluster.open(root=tmp_path, shards=shards, backend="ray", **HASH) as cluster:
        fill(cluster, records)
        for channels in ("lexical", "dense", "hybrid"):
            expected = one_store.recall_many(queries, k=10, channels=channels)
            got = cluster.recall_many(queries, k=10, channels=channels)
            for a, b in zip(expected, got, strict=True):
                assert_same(a, b)


def test_graph_recall_equals_one_store(
    tmp_path: Path, records: list[Record], queries: list[str]
) -> None:
    """Phrase nodes are global: the shards' graphs merged (synonym edges found again over
    every phrase) rank as one store's graph, before and after forgetting."""
    pytest.importorskip("spacy")
    graph = {"graph": {"enabled": True}}
    with (
        Memory.open(":memory:", **HASH, **graph) as memory,
        Cluster.open(root=tmp_path, shards=3, backend="local", **HASH, **graph) as cluster,
    ):
        for target in (memory, cluster):
            target.add_many(records[:40])
            target.add_many(records[40:70])
        for step in ("built", "forgotten"):
            for channels in ("graph", "hybrid+graph"):
                expected = memory.recall_many(queries[:15], k=10, channels=channels)
                got = cluster.recall_many(queries[:15], k=10, channels=channels)
                for a, b in zip(expected, got, strict=True):
                    assert_same(a, b)
                    for x, y in zip(a, b, strict=True):
                        if "graph" in x.why:
                            assert y.why["graph"].phrases == x.why["graph"].phrases
            assert any(h.why.get("graph") for hits in got for h in hits), step
            filtered = {"where": {"source": records[5].source}, "channels": "graph"}
            assert_same(memory.recall("cell", **filtered), cluster.recall("cell", **filtered))
            for target in (memory, cluster):
                target.forget(source=records[3].source)


def test_graph_survives_a_new_shard(
    tmp_path: Path, records: list[Record], queries: list[str]
) -> None:
    pytest.importorskip("spacy")
    graph = {"graph": {"enabled": True}}
    with (
        Memory.open(":memory:", **HASH, **graph) as memory,
        Cluster.open(root=tmp_path, shards=2, backend="local", **HASH, **graph) as cluster,
    ):
        for target in (memory, cluster):
            target.add_many(records[:50])
        assert cluster.add_shard()["moved"] > 0
        expected = memory.recall_many(queries[:10], k=10, channels="hybrid+graph")
        got = cluster.recall_many(queries[:10], k=10, channels="hybrid+graph")
        for a, b in zip(expected, got, strict=True):
            assert_same(a, b)
