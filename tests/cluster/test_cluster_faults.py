"""Faults on a real (local) Ray cluster: shard actors killed mid-ingest and mid-recall, and
a node removed from a two-node cluster. Every acknowledged write is present once; recall
answers completely, or partially naming the missing shards, or fails, as asked."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from _cluster_support import HASH, held_ids

from engramdb import InvalidInputError, Memory, Record, ShardUnavailableError
from engramdb.cluster import Cluster

pytestmark = pytest.mark.ray


def batches(records: list[Record], size: int = 20) -> list[list[Record]]:
    return [records[i : i + size] for i in range(0, len(records), size)]


def test_kill_mid_ingest_loses_and_duplicates_nothing(
    ray_local: object, tmp_path: Path, records: list[Record]
) -> None:
    ray = pytest.importorskip("ray")
    parts = batches(records[:200])
    acknowledged: list[int] = []
    failures: list[BaseException] = []
    with Cluster.open(root=tmp_path, shards=3, backend="ray", timeout=20, **HASH) as cluster:
        victim = cluster.handles["shard-1"]
        before = ray.get(victim.ping.remote())

        def write() -> None:
            for part in parts:
                try:
                    acknowledged.extend(cluster.add_many(part).ids)
                except ShardUnavailableError as exc:  # queued in the journal, applied later
                    failures.append(exc)
                except BaseException as exc:
                    failures.append(exc)
                    raise

        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 40 and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(acknowledged) >= 40, failures
        ray.kill(victim, no_restart=False)  # dies mid-ingest; Ray restarts it in place
        writer.join(timeout=300)
        assert not writer.is_alive()
        assert all(isinstance(f, ShardUnavailableError) for f in failures), failures
        assert ray.get(cluster.handles["shard-1"].ping.remote()) != before  # a new process
        cluster.flush()
        assert cluster.stats().pending == 0
        held = held_ids(cluster)
        assert set(acknowledged) <= set(held)
        with Memory.open(":memory:", **HASH) as memory:
            for part in parts:
                memory.add_many(part)
            assert held == memory.ids()  # nothing lost, nothing twice, same ids
            assert cluster.stats().memories == memory.stats().memories


def test_dead_shard_makes_recall_partial_or_fail(
    ray_local: object, tmp_path: Path, records: list[Record], queries: list[str]
) -> None:
    ray = pytest.importorskip("ray")
    with Cluster.open(
        root=tmp_path, shards=3, backend="ray", timeout=5, on_missing="fail", **HASH
    ) as cluster:
        cluster.add_many(records[:150])
        whole = cluster.recall(queries[0], k=10)
        assert not whole.partial
        ray.kill(cluster.handles["shard-2"], no_restart=True)  # gone for good
        with pytest.raises(ShardUnavailableError) as caught:
            cluster.recall(queries[0], k=10)
        assert caught.value.shards == ("shard-2",)
        # the coordinator started it again: the next recall is whole once it answers
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                again = cluster.recall(queries[0], k=10)
                break
            except ShardUnavailableError:
                time.sleep(0.5)
        assert again.ids == whole.ids and not again.partial
        ray.kill(cluster.handles["shard-2"], no_restart=True)
        partial = cluster.recall(queries[0], k=10, on_missing="partial")
        assert partial.partial and partial.missing == ("shard-2",)
        assert partial.ids  # answered by the shards that are up, from their memories only
        assert set(partial.ids) <= set(held_ids(cluster, "shard-0") + held_ids(cluster, "shard-1"))


def test_kill_mid_recall_with_restart_answers_whole(
    ray_local: object, tmp_path: Path, records: list[Record], queries: list[str]
) -> None:
    ray = pytest.importorskip("ray")
    with Cluster.open(root=tmp_path, shards=2, backend="ray", timeout=60, **HASH) as cluster:
        cluster.add_many(records[:150])
        expected = cluster.recall_many(queries, k=10)
        answers: list[object] = []
        reader = threading.Thread(target=lambda: answers.append(cluster.recall_many(queries, k=10)))
        reader.start()
        ray.kill(cluster.handles["shard-0"], no_restart=False)
        reader.join(timeout=120)
        (got,) = answers
        assert [h.ids for h in got] == [h.ids for h in expected]  # type: ignore[attr-defined]
        assert not any(h.partial for h in got)  # type: ignore[attr-defined]


def test_node_removed_from_two_node_cluster(tmp_path: Path, records: list[Record]) -> None:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster as RayCluster

    if ray.is_initialized():
        ray.shutdown()  # the two-node cluster needs its own Ray instance
    nodes = RayCluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    try:
        ray.init(address=nodes.address, log_to_driver=False, logging_level="ERROR")
        with Cluster.open(
            nodes.address, root=tmp_path, shards=4, backend="ray", timeout=10, **HASH
        ) as cluster:
            cluster.add_many(records[:120])
            placed = cluster.catalog.nodes()
            on_worker = sorted(s for s, n in placed.items() if n and n.startswith(worker.node_id))
            assert on_worker and len(on_worker) < 4  # spread over both nodes
            whole = cluster.recall("cancer", k=10, channels="lexical")
            nodes.remove_node(worker)
            partial = cluster.recall("cancer", k=10, channels="lexical", on_missing="partial")
            assert partial.partial and partial.missing == tuple(on_worker)
            with pytest.raises(ShardUnavailableError) as caught:
                cluster.recall("cancer", k=10, channels="lexical", on_missing="fail")
            assert caught.value.shards == tuple(on_worker)
            assert whole.ids and not whole.partial
            live = [s for s in cluster.shards if s not in on_worker]
            assert set(partial.ids) <= {i for s in live for i in held_ids(cluster, s)}
    finally:
        ray.shutdown()
        nodes.shutdown()


def test_embedders_ray_cannot_place_are_an_error(ray_local: object, tmp_path: Path) -> None:
    """Each embedder process needs a CPU; the local Ray instance has two."""
    with pytest.raises(InvalidInputError, match="did not start"):
        Cluster.open(root=tmp_path, shards=1, backend="ray", embedders=3, timeout=5, **HASH)
    with Cluster.open(root=tmp_path, backend="ray", embedders=2, timeout=30, **HASH) as cluster:
        assert cluster.add_many(["one text", "another text"]).embedded == 2
