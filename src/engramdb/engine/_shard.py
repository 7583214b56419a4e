"""One shard of a cluster (:mod:`engramdb.cluster`): a store whose memory ids, recognition
decisions and query vectors come from the cluster, and that answers its share of a recall.

Everything a shard takes and returns is plain data (dataclasses, tuples, numpy arrays), so
that it crosses process and machine boundaries as Ray passes it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engramdb.config import EngineConfig
from engramdb.engine._read import StoreLookups
from engramdb.engine._transfer import export_ids, import_numbered
from engramdb.engine._validity import NewFact, link_new
from engramdb.engine._write import MAX_CANDIDATES
from engramdb.engine.memory import Memory
from engramdb.errors import InvalidInputError, ModelError, NotFoundError
from engramdb.graph.channel import Prepared
from engramdb.graph.sqlite import GraphSnapshot
from engramdb.store.sqlite import NewMemory, NewSighting, TurnRow
from engramdb.types import ImportResult, Matrix, MemoryRecord, Stats, Supersession

if TYPE_CHECKING:
    from engramdb.lexical.bm25 import TermStats

__all__ = ["About", "Found", "NewOp", "SeenOp", "Shard", "VectorsOnly"]


class VectorsOnly:
    """The embedder of a shard: it names the cluster's model (the embedding cache and the
    dense index are keyed by it) but embeds nothing, since vectors come with the writes and
    the queries."""

    def __init__(self, model_id: str, dim: int):
        self.model_id = model_id
        self.dim = dim

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        raise ModelError(f"a shard embeds nothing: the cluster sends {self.model_id} vectors")

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        return self.embed_documents(texts)


@dataclass(frozen=True, slots=True)
class NewOp:
    """A new memory, with the id the cluster gave it."""

    id: int
    namespace: str
    text: str
    hash: str
    sighting: NewSighting
    meta: Mapping[str, Any]
    vector: np.ndarray[Any, Any]
    bands: tuple[bytes, ...]
    signature: bytes
    facts: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class SeenOp:
    """Another sighting of a memory this shard holds (an exact or near duplicate)."""

    target: int
    sighting: NewSighting
    kind: str
    score: float


@dataclass(frozen=True, slots=True)
class Found:
    """What a shard holds that recognition of a batch needs: the memories with the asked
    content hashes, those sharing band keys (with how many bands), their texts, and the
    cached vectors of the asked hashes."""

    exact: dict[str, int] = field(default_factory=dict)
    bands: list[list[tuple[int, int]]] = field(default_factory=list)
    texts: dict[int, str] = field(default_factory=dict)
    vectors: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class About:
    """What a shard holds about some memories: their records, which are superseded (their
    ``valid_to``), their links, and where the conversation turns among them are."""

    records: dict[int, MemoryRecord]
    superseded: dict[int, float | None]
    relations: dict[int, tuple[Supersession, ...]]
    turns: dict[int, tuple[str, str, int]]


class Shard:
    """A cluster's shard: one engramdb store on this machine's disk.

    Args:
        path: the store file (reopened as it is after a restart: nothing acknowledged is
            lost, and a batch applied before is not applied twice).
        config: the cluster's engine configuration.
        model_id: the cluster's embedding model.
        dim: its vector dimension.
    """

    def __init__(
        self, path: str, config: EngineConfig | Mapping[str, Any], model_id: str, dim: int
    ):
        self.path = path
        self.memory = Memory.open(path, config, embedder=VectorsOnly(model_id, dim))
        self.store = self.memory.store

    def ping(self) -> int:
        """The process id of the shard (a restarted shard answers with a new one)."""
        return os.getpid()

    def close(self) -> None:
        """Close the store."""
        self.memory.close()

    # -- writing ----------------------------------------------------------------------------

    def lookup(
        self, namespace: str | None, hashes: Sequence[str], bands: Sequence[Sequence[bytes]]
    ) -> Found:
        """The memories of ``namespace`` (``None``: any; then no ``hashes``) with these
        content hashes, the memories sharing each band-key list (``(id, shared)``, most
        shared first, then by id, at most ``MAX_CANDIDATES``), their texts, and cached
        vectors of ``hashes``."""
        store = self.store
        with store.reading():
            exact: dict[str, int] = {}
            if namespace is not None:
                for digest in hashes:
                    found = store.find_hash(namespace, digest)
                    if found is not None:
                        exact[digest] = found
            matches = [store.band_matches(namespace, list(b), MAX_CANDIDATES) for b in bands]
            texts = store.texts(sorted({i for m in matches for i, _ in m}))
            model = self.memory.embedder.model_id
            vectors = store.cached_embeddings(model, list(hashes))
        return Found(exact, matches, texts, dict(vectors))

    def apply(  # noqa: PLR0913 - a routed batch
        self,
        batch: str,
        new: Sequence[NewOp],
        seen: Sequence[SeenOp],
        now: float,
        graph: Prepared | None = None,
    ) -> list[bool]:
        """Write a routed batch in one transaction, once: a batch id applied before returns
        what it returned then and writes nothing.

        ``graph``: the phrases of ``new`` (in order) and their vectors, for this shard's
        part of the cluster's graph.

        Returns:
            For each of ``seen``: whether the sighting was new (``False``: already recorded).
        """
        writer = self.memory._writer
        store = self.store
        model = self.memory.embedder.model_id

        def job(known: dict[int, Any]) -> list[bool]:
            row = store.conn.execute(
                "SELECT result FROM shard_batches WHERE batch = ?", (batch,)
            ).fetchone()
            if row is not None:
                return [bool(x) for x in json.loads(row[0])]
            if new:
                store.put_embeddings(
                    model,
                    [op.hash for op in new],
                    np.stack([op.vector for op in new]),
                    replace=False,
                )
            for op in new:
                memory = NewMemory(
                    namespace=op.namespace,
                    text=op.text,
                    hash=op.hash,
                    sighting=op.sighting,
                    meta=op.meta,
                )
                store.insert_memory(memory, now=now, memory_id=op.id)
                known[op.id] = op.vector
                store.put_bands(op.id, op.bands, op.signature)
            added = [
                store.add_sighting(op.target, op.sighting, kind=op.kind, score=op.score, now=now)
                for op in seen
            ]
            facts = [
                NewFact(
                    id=op.id,
                    namespace=op.namespace,
                    text=op.text,
                    valid_from=now if op.sighting.event_time is None else op.sighting.event_time,
                    keys=op.facts,
                )
                for op in new
                if op.facts
            ]
            if facts:
                link_new(store.conn, facts, now=now)
            if graph is not None and self.memory._graph is not None and new:
                self.memory._graph.write([op.id for op in new], graph)
            store.conn.execute(
                "INSERT INTO shard_batches (batch, result, applied) VALUES (?, ?, ?)",
                (batch, json.dumps([int(a) for a in added]), time.time()),
            )
            return added

        result = writer.queue.run(job)
        writer.dense.maintain()
        return result

    def forget(
        self,
        ids: Sequence[int] | None = None,
        *,
        source: str | None = None,
        namespace: str | None = None,
        where: Any = None,
    ) -> int:
        """Forget as :meth:`Memory.forget` does, on this shard (an unknown namespace: 0)."""
        if ids is not None:
            held = self.store.select_ids(
                "m.id IN (SELECT value FROM json_each(?))", [json.dumps([int(i) for i in ids])]
            )
            return self.memory.forget(held.tolist()) if held.size else 0
        try:
            return self.memory.forget(source=source, namespace=namespace, where=where)
        except NotFoundError:
            return 0

    def forget_as(
        self, ids: Sequence[int] | None, source: str | None, namespace: str | None, where: Any
    ) -> int:
        """:meth:`forget` with its criteria in order (as a cluster's journal sends them)."""
        return self.forget(ids, source=source, namespace=namespace, where=where)

    # -- reading ----------------------------------------------------------------------------

    def term_stats(self, queries: Sequence[str]) -> TermStats:
        """This shard's lexical statistics for the queries' terms."""
        return self.memory._lexical.term_stats(queries)

    def runs(  # noqa: PLR0913 - one shard's share of a recall
        self,
        queries: Sequence[str],
        depth: int,
        namespace: str | None,
        where: Any,
        channels: tuple[str, ...],
        as_of: float | None,
        stats: TermStats | None,
        vectors: Matrix | None,
    ) -> tuple[dict[str, list[list[tuple[int, float]]]], About] | None:
        """Each channel's best ``depth`` memories of this shard for each query, scored as
        one store holding every shard's memories would score them (see
        :meth:`~engramdb.engine._read.Reader.shard_runs`), with what building hits needs
        about them (:meth:`about`: one round trip for both); ``None``: no such namespace
        here. ``stats=None``: this shard's own statistics (a cluster of one shard)."""
        runs = self.memory._reader.shard_runs(
            queries,
            depth=depth,
            namespace=namespace,
            where=where,
            channels=channels,
            as_of=as_of,
            stats=stats,
            vectors=vectors,
        )
        if runs is None:
            return None
        found = [i for per_query in runs.values() for run in per_query for i, _ in run]
        return runs, self.about(list(dict.fromkeys(found)), records=False)

    def about(self, ids: Sequence[int], records: bool = True) -> About:
        """What building hits reads about this shard's memories among ``ids``, in one read
        snapshot: which are superseded and where its turns are, and with ``records`` their
        records and links (a recall needs those only for the few hits it returns)."""
        lookups = StoreLookups(self.store)
        with self.store.reading():
            return About(
                records=lookups.records(ids) if records else {},
                superseded=self.store.superseded(ids),
                relations=lookups.relations(ids) if records else {},
                turns=self.store.turn_keys(ids),
            )

    def graph_version(self) -> int:
        """The store's data version (the cluster's merged graph is rebuilt when it moves)."""
        return self.store.data_version

    def graph_snapshot(self) -> tuple[int, GraphSnapshot | None]:
        """This shard's graph as arrays, with the data version it was read at."""
        graph = self.memory._graph
        with self.store.reading():
            version = self.store.data_version
            return version, (graph.store.snapshot() if graph is not None else None)

    def _condition(
        self, namespace: str | None, where: Any, as_of: float | None
    ) -> tuple[str | None, list[object]] | None:
        """A recall's filter as SQL over this store; ``None`` when this shard holds no
        memory of ``namespace`` (one store would say the namespace is unknown)."""
        if namespace is not None and namespace not in self.store.namespaces():
            return None
        return self.memory._reader.where(namespace, where, as_of)

    def select(self, namespace: str | None, where: Any, as_of: float | None) -> list[int]:
        """The ids of this shard's memories that pass a recall's filter."""
        condition = self._condition(namespace, where, as_of)
        if condition is None:
            return []
        sql, params = condition
        return [int(i) for i in self.store.select_ids(sql or "1", params)]

    def rows_at(
        self,
        keys: Sequence[tuple[str, str, int]],
        namespace: str | None,
        where: Any,
        as_of: float | None,
    ) -> list[TurnRow]:
        """This shard's memories at these places that pass the recall's filter."""
        condition = self._condition(namespace, where, as_of)
        return [] if condition is None else self.store.rows_at(keys, *condition)

    def find_hash(self, namespace: str | None, digest: str) -> list[int]:
        """The memories with this content hash (in ``namespace``; ``None``: any)."""
        where = "m.hash = ?" + (" AND m.namespace = ?" if namespace is not None else "")
        params: list[object] = [digest]
        if namespace is not None:
            params.append(namespace)
        return [int(i) for i in self.store.select_ids(where, params)]

    def vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray[Any, Any]]:
        """The cached vectors of this shard's memories among ``ids``."""
        store = self.store
        hashes = {r.id: r.hash for r in store.get_many(ids)}
        cached = store.cached_embeddings(self.memory.embedder.model_id, list(hashes.values()))
        return {i: cached[h] for i, h in hashes.items() if h in cached}

    def namespaces(self) -> dict[str, int]:
        """This shard's namespaces and their memory counts."""
        return self.memory.namespaces()

    def stats(self) -> Stats:
        """This shard's store statistics."""
        return self.memory.stats()

    def get_many(self, ids: Sequence[int], sightings: bool = False) -> list[MemoryRecord]:
        """This shard's memories among ``ids``."""
        return self.memory.get_many(ids, sightings=sightings)

    # -- moving memories between shards -----------------------------------------------------

    def keys(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        """``(id, namespace, hash)`` of up to ``limit`` memories with ids above ``after``."""
        rows = self.store.conn.execute(
            "SELECT id, namespace, hash FROM memories WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [(int(r[0]), r[1], r[2]) for r in rows]

    def export(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Export records (with vectors and links) of this shard's memories among ``ids``."""
        return export_ids(self.store, self.memory.embedder, [int(i) for i in ids])

    def take(
        self, records: Sequence[Mapping[str, Any]], graph: Prepared | None = None
    ) -> ImportResult:
        """Import moved records keeping their ids (merging into one already here); with
        the graph on, ``graph`` holds their phrases (in order) and the phrases' vectors,
        made by the cluster (a shard embeds nothing)."""
        bad = [r for r in records if not isinstance(r, Mapping) or "id" not in r]
        if bad:
            raise InvalidInputError("moved records must be export records with their ids")
        writer = self.memory._writer
        channel, writer.graph = writer.graph, None  # the graph's part is written below
        try:
            result = import_numbered(
                writer,
                enumerate(records, start=1),
                namespace=None,
                name="moved records",
                keep_ids=True,
            )
        finally:
            writer.graph = channel
        if channel is not None and graph is not None:
            ids = [int(r["id"]) for r in records]
            with self.store.reading():
                missing = set(
                    self.store.select_ids(
                        "m.id IN (SELECT value FROM json_each(?))"
                        " AND m.id NOT IN (SELECT memory_id FROM graph_passages)",
                        [json.dumps(ids)],
                    ).tolist()
                )
            keep = [i for i, memory_id in enumerate(ids) if memory_id in missing]
            if keep:
                part = Prepared(
                    extractions=tuple(graph.extractions[i] for i in keep),
                    vectors=graph.vectors,
                )
                with self.store.atomic():
                    channel.write([ids[i] for i in keep], part)
        return result

    def drop(self, ids: Sequence[int]) -> int:
        """Delete memories that moved to another shard (everything derived from them too)."""
        return self.forget(list(ids)) if ids else 0
