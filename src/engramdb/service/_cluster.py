"""A :class:`~engramdb.cluster.Cluster` in the place of a :class:`~engramdb.Memory`.

:class:`ClusterMemory` gives the service (and the evaluation harness) what they read from a
Memory, answered by the cluster's verbs: adding, recall, context, recognition, forgetting,
reading memories, namespaces and statistics. The verbs a cluster does not offer yet
(supersessions and their history, id listings, export, conformal calibration) raise
:class:`~engramdb.errors.InvalidInputError` saying so.

A served cluster keeps its API keys and ingest jobs in a store of its own beside the
cluster's catalog, ``ROOT/service.db`` (:data:`SERVICE_STORE`), which holds no memories:
``engram keys add ... --db ROOT/service.db`` makes keys for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engramdb.config import EngineConfig
from engramdb.context import Context, Order
from engramdb.embed.base import Embedder
from engramdb.engine import DEFAULT_NAMESPACE, Memory
from engramdb.errors import EngramError, InvalidInputError, ShardUnavailableError, StoreError
from engramdb.rerank import Reranker
from engramdb.store.sqlite import SQLiteStore
from engramdb.types import (
    AddResult,
    History,
    Hit,
    Hits,
    IndexStats,
    LexicalStats,
    MemoryRecord,
    Recognition,
    Record,
    Stats,
    Supersession,
)

if TYPE_CHECKING:
    from engramdb.cluster import Cluster, ClusterStats

__all__ = ["SERVICE_STORE", "ClusterMemory", "cluster_address", "combined_stats", "not_on_cluster"]

SERVICE_STORE = "service.db"
"""The file, under a served cluster's root, that holds the service's keys and jobs."""

RecordLike = Record | Mapping[str, Any] | str


def not_on_cluster(verb: str) -> InvalidInputError:
    """The error of a verb that a cluster does not offer yet."""
    return InvalidInputError(f"{verb} is not available on a cluster yet")


def cluster_address(value: str) -> str | None:
    """The Ray address of a ``--cluster`` value: ``"local"`` starts or joins a Ray
    instance on this machine (``None``); ``"auto"`` and ``"ray://HOST:PORT"`` pass as given.

    Raises:
        InvalidInputError: an empty value.
    """
    text = value.strip()
    if not text:
        raise InvalidInputError(
            "a cluster address is 'local', 'auto' or ray://HOST:PORT, got an empty value"
        )
    return None if text == "local" else text


class ClusterMemory:
    """A cluster seen as the service's Memory.

    Args:
        cluster: the open cluster (closed with this object when ``own``).
        home: the store of the service's keys and jobs (see :data:`SERVICE_STORE`); without
            one, :attr:`store` is an error (the evaluation harness needs none).
        own: close ``cluster`` and ``home`` on :meth:`close`.

    The cluster is shared by the caller's threads (the service's request threads).
    """

    def __init__(self, cluster: Cluster, *, home: Memory | None = None, own: bool = True):
        self.cluster = cluster
        self._home = home
        self._own = own

    @classmethod
    def open(  # noqa: PLR0913 - keyword-only options of a cluster
        cls,
        address: str | None,
        *,
        root: str | os.PathLike[str],
        shards: int | None = None,
        config: EngineConfig | Mapping[str, Any] | str | Path | None = None,
        backend: str = "ray",
        home: bool = True,
        **overrides: Any,
    ) -> ClusterMemory:
        """Open (or create) the cluster under ``root`` and, with ``home``, the service's
        store ``root/service.db`` beside its catalog.

        Args:
            address: the Ray cluster (``"ray://host:10001"``, ``"auto"``); ``"local"`` or
                ``None`` starts or joins a Ray instance on this machine.
            root: the cluster's folder.
            shards: the number of shards of a new cluster (an existing one opens as it is).
            config: the engine configuration.
            backend: ``"ray"``, or ``"local"`` for shards in this process.
            home: also open the store of the service's keys and jobs.
            **overrides: config sections, e.g. ``embed={"model": "hash"}``.

        Raises:
            InvalidInputError: an empty address, a bad shard count or backend, or a cluster
                with a different number of shards.
            MissingDependencyError: Ray is not installed (``engramdb[ray]``).
            StoreError: Ray could not reach the cluster (the message says why).
        """
        from engramdb.cluster import Cluster

        ray_address = None if address is None else cluster_address(address)
        try:
            cluster = Cluster.open(
                ray_address,
                root=Path(root),
                shards=shards,
                config=config,
                backend=backend,
                **overrides,
            )
        except EngramError:
            raise
        except Exception as exc:  # Ray's own errors: a bad address, no cluster there
            where = "a local Ray instance" if ray_address is None else ray_address
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(f"cannot open the cluster on {where}: {detail}") from exc
        try:
            store = None
            if home:
                path = Path(root).expanduser() / SERVICE_STORE
                store = Memory.open(path, cluster.config, embedder=cluster.embedder)
            return cls(cluster, home=store)
        except BaseException:
            cluster.close()
            raise

    def close(self) -> None:
        """Close the cluster and the service's store (when owned)."""
        if not self._own:
            return
        try:
            self.cluster.close()
        finally:
            if self._home is not None:
                self._home.close()

    def __enter__(self) -> ClusterMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the service reads -------------------------------------------------------------

    @property
    def config(self) -> EngineConfig:
        """The cluster's engine configuration."""
        return self.cluster.config

    @property
    def embedder(self) -> Embedder:
        """The cluster's embedder (queries are embedded with it)."""
        return self.cluster.embedder

    @property
    def store(self) -> SQLiteStore:
        """The store of the service's keys and jobs (it holds no memories).

        Raises:
            InvalidInputError: opened without one.
        """
        if self._home is None:
            raise InvalidInputError(
                "this cluster was opened without a service store: keys and ingest jobs "
                f"need ROOT/{SERVICE_STORE}"
            )
        return self._home.store

    @property
    def root(self) -> Path:
        """The cluster's folder."""
        return Path(self.cluster.catalog.root)

    # -- writing ----------------------------------------------------------------------------

    def add_many(
        self,
        records: Iterable[RecordLike],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        progress: Any = None,
    ) -> AddResult:
        """Remember records (see :meth:`Cluster.add_many`); ``progress`` hears
        ``("add", n, n)`` once they are written."""
        batch = list(records)
        result = self.cluster.add_many(batch, namespace=namespace)
        if progress is not None:
            progress("add", len(batch), len(batch))
        return result

    def forget(
        self,
        ids: Sequence[int] | None = None,
        *,
        source: str | None = None,
        namespace: str | None = None,
        where: Any = None,
    ) -> int:
        """Forget on every shard (see :meth:`Cluster.forget`)."""
        return self.cluster.forget(ids, source=source, namespace=namespace, where=where)

    def supersede(self, old: int, new: int, *, at: float | str | None = None) -> Supersession:
        """Not on a cluster yet.

        Raises:
            InvalidInputError: always.
        """
        raise not_on_cluster("recording a supersession")

    def unsupersede(self, old: int) -> Supersession:
        """Not on a cluster yet.

        Raises:
            InvalidInputError: always.
        """
        raise not_on_cluster("undoing a supersession")

    # -- reading ----------------------------------------------------------------------------

    def recall(self, query: str, **options: Any) -> Hits:
        """Recall (see :meth:`Cluster.recall_many`).

        Raises:
            InvalidInputError: recall in steps (``steps`` or ``clues``), which a cluster
                does not do.
        """
        if options.pop("steps", None) is not None or options.pop("clues", None) is not None:
            raise not_on_cluster("recall in steps")
        return self.cluster.recall(query, **options)

    def recall_many(  # noqa: PLR0913 - keyword-only options of the main read verb
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        namespace: str | None = None,
        where: Any = None,
        channels: Sequence[str] | str | None = None,
        min_relevance: float | None = None,
        coverage: float | None = None,
        rerank: str | Reranker | None = None,
        as_of: float | str | None = None,
        include_superseded: bool = False,
        now: float | str | None = None,
    ) -> list[Hits]:
        """Recall by scatter–gather, as one store would rank (see
        :meth:`Cluster.recall_many`)."""
        return self.cluster.recall_many(
            queries,
            k=k,
            namespace=namespace,
            where=where,
            channels=channels,
            min_relevance=min_relevance,
            coverage=coverage,
            rerank=rerank,
            as_of=as_of,
            include_superseded=include_superseded,
            now=now,
        )

    def context(
        self,
        query: str | Sequence[Hit],
        *,
        budget_tokens: int = 1000,
        order: Order = "relevance",
        **options: Any,
    ) -> Context:
        """A packed, cited context block (see :meth:`Cluster.context`)."""
        return self.cluster.context(query, budget_tokens=budget_tokens, order=order, **options)

    def recognize(self, text: str, *, namespace: str | None = DEFAULT_NAMESPACE) -> Recognition:
        """Exact, near or new over every shard (see :meth:`Cluster.recognize`)."""
        return self.cluster.recognize(text, namespace=namespace)

    def get(self, memory_id: int) -> MemoryRecord:
        """One memory with its sightings.

        Raises:
            NotFoundError: no shard holds it.
        """
        return self.cluster.get(memory_id)

    def get_many(self, ids: Sequence[int], *, sightings: bool = False) -> list[MemoryRecord]:
        """The memories among ``ids``, in the order given (missing ones left out)."""
        return self.cluster.get_many(ids, sightings=sightings)

    def namespaces(self) -> dict[str, int]:
        """Every namespace that holds memories, with its count over all shards."""
        return self.cluster.namespaces()

    def stats(self) -> Stats:
        """The shards' statistics summed as one store's (``path`` is the cluster's folder).

        Raises:
            ShardUnavailableError: no shard answered.
        """
        return combined_stats(self.cluster_stats(), str(self.root), self.embedder.model_id)

    def cluster_stats(self) -> ClusterStats:
        """The cluster's own counts: each shard's, the missing shards, pending writes."""
        return self.cluster.stats()

    def add_shard(self) -> dict[str, Any]:
        """Add a shard and move its share of the memories to it (see
        :meth:`Cluster.add_shard`)."""
        return self.cluster.add_shard()

    def flush(self) -> int:
        """Apply the journaled writes of shards that were down; how many were applied."""
        return self.cluster.flush()

    @property
    def shards(self) -> list[str]:
        """The shards' names."""
        return self.cluster.shards

    def related(
        self, memory_id: int, *, k: int = 10, namespaces: Sequence[str] | None = None
    ) -> list[tuple[MemoryRecord, tuple[str, ...]]]:
        """No memory graph runs on a cluster: no phrase neighbours (as with the graph off)."""
        return []

    def history(self, memory_id: int) -> History:
        """Not on a cluster yet.

        Raises:
            InvalidInputError: always.
        """
        raise not_on_cluster("a memory's history")

    def ids(self, *, namespace: str | None = None, where: Any = None) -> list[int]:
        """Not on a cluster yet.

        Raises:
            InvalidInputError: always.
        """
        raise not_on_cluster("listing memory ids")

    def export(
        self, *, namespace: str | None = None, vectors: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Not on a cluster yet.

        Raises:
            InvalidInputError: always.
        """
        raise not_on_cluster("export")

    def calibrate(self, *, namespace: str | None = None, cues: int = 200, seed: int = 0) -> Any:
        """Not on a cluster yet (a cluster keeps no conformal calibration).

        Raises:
            InvalidInputError: always.
        """
        raise not_on_cluster("conformal calibration (coverage)")


def combined_stats(stats: ClusterStats, path: str, embedder: str) -> Stats:
    """One store's :class:`Stats` from a cluster's: counts summed over the shards that
    answered (a source seen on two shards counts on each), the lexical and dense indexes
    described by the first one's kind.

    Raises:
        ShardUnavailableError: no shard answered.
    """
    parts = list(stats.shards.values())
    if not parts:
        raise ShardUnavailableError(
            f"no shard of the cluster answered ({', '.join(stats.missing) or 'none known'})",
            shards=tuple(stats.missing),
        )
    first = parts[0]
    lexical = LexicalStats(
        fts_table=first.lexical.fts_table,
        table=first.lexical.table,
        column=first.lexical.column,
        rows=sum(p.lexical.rows for p in parts),
        tokenizer=first.lexical.tokenizer,
    )
    kinds = {p.dense.kind for p in parts}
    dense = IndexStats(
        kind=first.dense.kind if len(kinds) == 1 else "mixed",
        configured=first.dense.configured,
        spann_threshold=first.dense.spann_threshold,
        count=sum(p.dense.count for p in parts),
        memories=sum(p.dense.memories for p in parts),
        pending=sum(p.dense.pending for p in parts),
        data_version=sum(p.dense.data_version for p in parts),
        log_seq=sum(p.dense.log_seq for p in parts),
        store_version=None,
        stale=any(p.dense.stale for p in parts),
        path=None,
        last_build=None,
    )
    return Stats(
        path=path,
        namespaces=dict(stats.namespaces),
        memories=stats.memories,
        sightings=sum(p.sightings for p in parts),
        sources=sum(p.sources for p in parts),
        embeddings=sum(p.embeddings for p in parts),
        db_bytes=sum(p.db_bytes for p in parts),
        data_version=sum(p.data_version for p in parts),
        embedder=embedder,
        lexical=lexical,
        dense=dense,
    )
