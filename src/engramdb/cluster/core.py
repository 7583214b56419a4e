"""A sharded engramdb that answers exactly as one store would (see the package docstring)."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engramdb.calibrate import RelevanceModel
from engramdb.cluster._backend import Backend, Embedders, open_backend
from engramdb.cluster._catalog import SLOTS, Catalog, Pending, slot_of
from engramdb.config import EngineConfig, load_config
from engramdb.context import Context, Order, pack, select_counter
from engramdb.embed.base import Embedder
from engramdb.embed.registry import create_embedder
from engramdb.engine import DEFAULT_NAMESPACE
from engramdb.engine._precision import RerankLike, apply_precision, check_precision, stack
from engramdb.engine._read import ReadOptions, build_hits, check_channels, check_k
from engramdb.engine._shard import About, Found, NewOp, SeenOp
from engramdb.engine._validity import keys_of
from engramdb.engine._write import (
    Item,
    add_result,
    check_forget,
    check_namespace,
    chunk_items,
    decide,
    ranked_candidates,
    recognize_items,
    to_record,
)
from engramdb.errors import (
    ConfigError,
    EngramError,
    InvalidInputError,
    NotFoundError,
    ShardUnavailableError,
    StoreClosedError,
    StoreError,
)
from engramdb.graph.channel import GraphChannel, Prepared
from engramdb.graph.merge import merge_snapshots
from engramdb.graph.recall import GraphIndex, GraphRecall
from engramdb.ingest import load_path, normalize_text
from engramdb.ingest.moments import strict_time
from engramdb.ingest.turns import Place, turns_around
from engramdb.recognize.minhash import MinHasher
from engramdb.store.sqlite import TurnRow
from engramdb.types import (
    AddResult,
    Hit,
    Hits,
    Matrix,
    MemoryRecord,
    Recognition,
    Record,
    Stats,
    Supersession,
)

__all__ = ["Cluster", "ClusterStats"]

logger = logging.getLogger(__name__)

OnMissing = Literal["fail", "partial"]
Runs = dict[str, list[list[tuple[int, float]]]]
_PAGE = 512  # memories moved per step when a shard is added
_PHRASE_CACHE = 200_000  # phrase vectors a coordinator remembers (about 300 MB at 384-d)


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterStats:
    """A cluster's counts: the sum over its shards, and each shard's own statistics.

    Attributes:
        shards: ``{name: Stats}`` of the shards that answered.
        missing: shards that did not answer.
        memories: memories in all shards that answered.
        namespaces: ``{namespace: memories}`` over those shards.
        version: the catalog's routing version.
        pending: journaled writes not yet applied to their shard.
    """

    shards: Mapping[str, Stats]
    missing: tuple[str, ...]
    memories: int
    namespaces: Mapping[str, int]
    version: int
    pending: int


class Cluster:
    """engramdb over shards: the verbs of :class:`~engramdb.Memory`, answering as one store
    holding every shard's memories would.

    Open it with :meth:`open`; use it as a context manager or call :meth:`close`.
    """

    def __init__(  # noqa: PLR0913 - the parts a coordinator holds
        self,
        catalog: Catalog,
        backend: Backend,
        config: EngineConfig,
        *,
        embedders: int,
        timeout: float,
        on_missing: OnMissing,
    ):
        self.catalog = catalog
        self.backend = backend
        self.config = config
        self.timeout = timeout
        self.on_missing: OnMissing = on_missing
        rc = config.recognize
        self._hasher = MinHasher(num_perm=rc.num_perm, bands=rc.bands, shingle=rc.shingle)
        self._lock = threading.RLock()  # this coordinator's writes, one at a time
        self._handles_lock = threading.Lock()
        self._closed = False
        self._embedder: Embedder = create_embedder(config.embed)
        self._model = (self._embedder.model_id, self._embedder.dim)
        self._embedders = (
            Embedders(backend.start_embedders(embedders, config.embed), backend)
            if embedders > 0
            else None
        )
        if self._embedders is not None:
            self._check_embedders(self._embedders)
        self._relevance: RelevanceModel | None = None
        self._graph: GraphChannel | None = None
        self._graph_index: tuple[tuple[tuple[str, int], ...], GraphIndex] | None = None
        self._phrases: dict[str, np.ndarray[Any, Any]] = {}  # phrase vectors made so far
        if config.graph.enabled:  # the merged graph is read here; no store of its own
            idle = sqlite3.connect(":memory:", check_same_thread=False)
            self._graph = GraphChannel(idle, config.graph, self._embedder)
        self.handles: dict[str, Any] = {}
        for name in catalog.shards():
            self._start(name, opening=True)
        self._version = catalog.version()
        with self._lock, catalog.writing():
            self._replay()

    def _sync(self) -> None:
        """Catch up with routing changed by another coordinator (a shard added, a
        namespace pinned): start the shards this one does not know yet."""
        version = self.catalog.version()
        if version == self._version:
            return
        with self._handles_lock:
            for name in self.catalog.shards():
                if name not in self.handles:
                    self._start(name, opening=True)
            self._version = version

    def _check_embedders(self, embedders: Embedders) -> None:
        """Wait for the embedder processes to load their model; one that Ray cannot place
        (each needs a CPU) is an error now rather than a write that waits for ever.

        Raises:
            InvalidInputError: embedder processes did not start within the timeout.
        """
        calls = {str(i): self.backend.call(h, "describe") for i, h in enumerate(embedders.handles)}
        done, failed = self.backend.gather(calls, self.timeout)
        if failed:
            for handle in embedders.handles:
                self.backend.stop(handle)
            raise InvalidInputError(
                f"{len(failed)} of {len(calls)} embedder processes did not start (each needs "
                "one CPU of the Ray cluster: ask for fewer, or give Ray more CPUs)"
            )
        made = {tuple(d) for d in done.values()}
        if made != {self._model}:
            raise InvalidInputError(f"embedder processes load {made}, not {self._model}")

    def _start(self, name: str, *, opening: bool = False) -> None:
        """Start (or restart) a shard on the node that holds its store (when the cluster is
        being opened, that node may be back under a new id at the same address); a new
        shard gets a node, recorded in the catalog."""
        node = self.catalog.nodes().get(name)
        shards = self.catalog.shards()
        if node is None:
            node = self.backend.pick_node(list(shards).index(name))
            self.catalog.place(name, node)
        handle = self.backend.start_shard(
            name, shards[name], self.config, self._model, node, opening
        )
        # a new dict, not a change in place: a recall may be iterating over the old one
        self.handles = {**self.handles, name: handle}

    @classmethod
    def open(  # noqa: PLR0913 - keyword-only options of a cluster
        cls,
        address: str | None = None,
        *,
        root: str | Path,
        shards: int | None = None,
        config: EngineConfig | Mapping[str, Any] | str | Path | None = None,
        embedders: int = 0,
        timeout: float = 30.0,
        on_missing: OnMissing = "fail",
        backend: str = "ray",
        **overrides: Any,
    ) -> Cluster:
        """Open (or create) the cluster whose catalog and shard stores are under ``root``.

        Args:
            address: the Ray cluster (``"ray://host:10001"``, ``"auto"``); ``None`` starts or
                joins a local Ray instance.
            root: the cluster's folder (the catalog, and each shard's store under
                ``shards/``): a path every node sees at the same place.
            shards: the number of shards of a new cluster (default 1); an existing cluster
                opens as it is (a different count is an error: grow it with
                :meth:`add_shard`).
            config: the engine configuration, as for :meth:`Memory.open`; a new cluster
                records it in its catalog, and later opens without one use it (one given
                later must keep the embedder the memories were embedded with).
            embedders: embedder processes for writes (0: embed in this process).
            timeout: seconds a call waits for a shard before it counts as down.
            on_missing: what a recall does when shards are down: ``"fail"`` (raise
                :class:`ShardUnavailableError`) or ``"partial"`` (answer from the others,
                with ``partial=True`` and ``missing`` naming them).
            backend: ``"ray"`` (shards are Ray actors) or ``"local"`` (objects in this
                process, for tests and trials).
            **overrides: config sections, e.g. ``embed={"model": "hash"}``.

        Raises:
            InvalidInputError: a bad shard count, timeout, ``on_missing`` or backend.
            MissingDependencyError: Ray is not installed (``engramdb[ray]``).
        """
        if on_missing not in ("fail", "partial"):
            raise InvalidInputError(f"on_missing must be 'fail' or 'partial', got {on_missing!r}")
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            raise InvalidInputError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        if backend not in ("ray", "local"):
            raise InvalidInputError(f"unknown cluster backend {backend!r}; valid: ray, local")
        if isinstance(embedders, bool) or not isinstance(embedders, int) or embedders < 0:
            raise InvalidInputError(f"embedders must be an integer >= 0, got {embedders!r}")
        load_config(config, **overrides)  # a bad configuration fails before anything is made
        catalog = Catalog(Path(root).expanduser())
        try:
            if shards is not None or not catalog.shards():
                catalog.create(1 if shards is None else shards)
            cfg = _settings(catalog, config, overrides)
            chosen = open_backend(address, backend)
            return cls(
                catalog,
                chosen,
                cfg,
                embedders=embedders,
                timeout=float(timeout),
                on_missing=on_missing,
            )
        except BaseException:
            catalog.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the shards this coordinator started (their stores stay on disk)."""
        if self._closed:
            return
        self._closed = True
        for handle in self.handles.values():
            self.backend.stop(handle)
        if self._embedders is not None:
            for handle in self._embedders.handles:
                self.backend.stop(handle)
        self.catalog.close()
        self.backend.shutdown()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("this Cluster is closed")

    @property
    def embedder(self) -> Embedder:
        """The cluster's embedding model (as this coordinator loaded it, for queries)."""
        return self._embedder

    @property
    def shards(self) -> list[str]:
        """The shards' names, in the order they were added."""
        return list(self.handles)

    # -- scatter / gather ----------------------------------------------------------------

    def _scatter(
        self,
        method: str,
        args: Mapping[str, tuple[Any, ...]] | tuple[Any, ...],
        *,
        on_missing: OnMissing | None = None,
        skip: Collection[str] = (),
    ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Call ``method`` on shards (every shard with the same ``args``, or the shards
        named in a mapping with their own), except those in ``skip`` (already missing from
        the answer being made): results by shard, and the shards missing.

        Raises:
            ShardUnavailableError: a shard failed and ``on_missing`` is ``"fail"``.
            EngramError: a shard refused the call (bad input), as that shard raised it.
        """
        per = args if isinstance(args, Mapping) else dict.fromkeys(self.handles, args)
        per = {name: a for name, a in per.items() if name not in skip}
        calls = {name: self.backend.call(self.handles[name], method, *a) for name, a in per.items()}
        done, failed = self.backend.gather(calls, self.timeout)
        for name, error in failed.items():
            if self.backend.is_dead(error):  # killed for good: a new one for the next call
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                logger.warning("shard %s is gone (%s); starting it again", name, reason)
                self._start(name)
        refused = [e for e in failed.values() if _is_refusal(e)]
        if refused:
            raise refused[0]
        if failed and (on_missing or "fail") == "fail":
            raise _unavailable(failed, f"calling {method}")
        return done, tuple(sorted(failed))

    # -- writing -------------------------------------------------------------------------

    def add(
        self,
        text: str,
        *,
        source: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        meta: Mapping[str, Any] | None = None,
        event_time: float | None = None,
    ) -> AddResult:
        """Remember one text, as :meth:`Memory.add`."""
        record = to_record(
            Record(text=text, source=source, meta=dict(meta or {}), event_time=event_time)
        )
        return self.add_many([record], namespace=namespace)

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> AddResult:
        """Load files and directories, then add everything, as :meth:`Memory.ingest`."""
        check_namespace(namespace)
        records: list[Record] = []
        for path in paths:
            records += load_path(path, include=include, exclude=exclude)
        return self.add_many(records, namespace=namespace)

    def add_many(
        self,
        records: Iterable[Record | Mapping[str, Any] | str],
        *,
        namespace: str = DEFAULT_NAMESPACE,
    ) -> AddResult:
        """Remember records: chunked, recognised against every shard (exact duplicates
        meet on the shard their content routes to; near duplicates are looked up on every
        shard, and merge into their twin wherever it lives), embedded (by the embedder
        processes), given the next ids of the cluster, and written to their shards.

        The batch is journaled in the catalog before it is sent; each shard applies its
        part once, in one transaction. A shard that stays down past the timeout keeps its
        part queued in the journal (applied when it answers again, before any later write)
        and the call raises :class:`ShardUnavailableError` saying so.

        Raises:
            InvalidInputError: a record without text, a bad namespace or field.
            ShardUnavailableError: shards did not answer (their part is queued).
        """
        self._check_open()
        check_namespace(namespace)
        checked = [to_record(r) for r in records]
        with self._lock, self.catalog.writing():
            self._sync()
            self._replay()
            items = chunk_items(checked, namespace, self.config)
            signatures = self._hasher.signatures([it.norm for it in items])
            for item, (grams, sig) in zip(items, signatures, strict=True):
                item.grams, item.signature = grams, sig
            lookup = _Lookup(self, namespace, items)
            recognize_items(items, lookup, self._hasher, self.config)
            new = [i for i, it in enumerate(items) if it.kind == "new"]
            if self.config.recognize.supersede:
                for i in new:
                    items[i].facts = keys_of(items[i].text, items[i].meta)
            vectors, embedded = self._vectors([items[i] for i in new], lookup.cached)
            first = self.catalog.allocate(len(new)) if new else 0
            ids = [0] * len(items)
            for offset, i in enumerate(new):
                ids[i] = first + offset
            batch = _Batch(items, ids, vectors, dict(zip(new, range(len(new)), strict=True)))
            plan = batch.plan(self.catalog, lookup.holder)
            graph = self._prepare_graph(plan, {ids[i]: items[i].text for i in new})
            skipped = self._apply(plan, time.time(), graph)
        for index in skipped:
            items[index].score = -1.0
        targets = [ids[i] if it.kind == "new" else batch.target(i) for i, it in enumerate(items)]
        return add_result(items, targets, embedded)

    def _vectors(
        self, items: Sequence[Item], cached: Mapping[str, np.ndarray[Any, Any]]
    ) -> tuple[Matrix, int]:
        dim = self._model[1]
        if not items:
            return np.empty((0, dim), dtype=np.float32), 0
        todo: dict[str, str] = {}
        for it in items:
            if it.hash not in cached:
                todo.setdefault(it.hash, it.text)
        fresh: dict[str, np.ndarray[Any, Any]] = {}
        if todo:
            texts = list(todo.values())
            source = self._embedders if self._embedders is not None else self._embedder
            made = source.embed_documents(texts)
            fresh = dict(zip(todo, made, strict=True))
        known = {**cached, **fresh}
        return np.stack([known[it.hash] for it in items]).astype(np.float32), len(fresh)

    def _prepare_graph(
        self,
        plan: Mapping[str, tuple[list[NewOp], list[tuple[int, SeenOp]]]],
        texts: Mapping[int, str],
    ) -> dict[str, Prepared]:
        """Each shard's part of the graph for its new memories (see :meth:`_phrases_of`)."""
        if self._graph is None or not texts:
            return {}
        out: dict[str, Prepared] = {}
        for shard, (new, _) in plan.items():
            if new:
                out[shard] = self._phrases_of([(op.id, texts[op.id]) for op in new])
        return out

    def _phrases_of(self, memories: Sequence[tuple[int, str]]) -> Prepared:
        """The graph's share of some memories, in order: their phrases (extracted here)
        and the phrases' vectors (each distinct phrase embedded once by this coordinator,
        then remembered)."""
        assert self._graph is not None
        extractions = tuple(self._graph.extractor.extract([text for _, text in memories]))
        phrases = list(dict.fromkeys(p for ex in extractions for p in ex.phrases))
        todo = [p for p in phrases if p not in self._phrases]
        if todo:
            if len(self._phrases) + len(todo) > _PHRASE_CACHE:
                self._phrases.clear()
            source = self._embedders if self._embedders is not None else self._embedder
            self._phrases.update(zip(todo, source.embed_documents(todo), strict=True))
        return Prepared(extractions=extractions, vectors={p: self._phrases[p] for p in phrases})

    def _apply(
        self,
        plan: Mapping[str, tuple[list[NewOp], list[tuple[int, SeenOp]]]],
        now: float,
        graph: Mapping[str, Prepared],
    ) -> set[int]:
        """Journal the shards' parts of a batch, send them, and clear what was applied;
        the indexes of the items whose sighting was already recorded."""
        batch = uuid.uuid4().hex
        calls = [
            Pending(
                batch, shard, "apply", (batch, new, [op for _, op in seen], now, graph.get(shard))
            )
            for shard, (new, seen) in plan.items()
            if new or seen
        ]
        if not calls:
            return set()
        self.catalog.enqueue(calls)
        done, missing = self._send(calls)
        skipped: set[int] = set()
        for shard, added in done.items():
            for (index, _), fresh in zip(plan[shard][1], added, strict=True):
                if not fresh:
                    skipped.add(index)
        if missing:
            raise ShardUnavailableError(
                f"shard(s) {', '.join(missing)} did not answer within {self.timeout:g} s: "
                "their part of this write is queued in the cluster's journal and is applied "
                "when they answer again (the other shards have theirs)",
                shards=missing,
            )
        return skipped

    def _send(self, calls: Sequence[Pending]) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Send journaled calls (at most one per shard); clear each one applied. Returns
        the results and the shards that did not answer (their calls stay journaled)."""
        done: dict[str, Any] = {}
        missing: list[str] = []
        for method in sorted({c.method for c in calls}):
            per = {c.shard: c for c in calls if c.method == method and c.shard in self.handles}
            got, lost = self._scatter(
                method, {shard: c.args for shard, c in per.items()}, on_missing="partial"
            )
            for shard in got:
                self.catalog.done(per[shard].batch, shard)
            done.update(got)
            missing += lost
        return done, tuple(sorted(missing))

    def _replay(self) -> int:
        """Apply journaled calls left by a write whose shards were down (or a coordinator
        that stopped); returns how many were applied now."""
        pending = self.catalog.pending()
        applied = 0
        for call in pending:
            if call.shard not in self.handles:
                continue
            done, _ = self._send([call])
            applied += len(done)
        return applied

    def flush(self) -> int:
        """Apply the journaled writes whose shards were down; returns how many were
        applied (see :attr:`ClusterStats.pending` for what is left)."""
        self._check_open()
        with self._lock, self.catalog.writing():
            return self._replay()

    def forget(
        self,
        ids: Sequence[int] | None = None,
        *,
        source: str | None = None,
        namespace: str | None = None,
        where: Any = None,
    ) -> int:
        """Forget memories on every shard, as :meth:`Memory.forget`; journaled like writes.

        Raises:
            InvalidInputError: no criterion, or criteria that do not go together.
            NotFoundError: an unknown namespace.
            ShardUnavailableError: shards did not answer (their part is queued).
        """
        self._check_open()
        check_forget(ids, source, namespace, where)
        if namespace is not None and namespace not in self.namespaces():
            raise NotFoundError(f"unknown namespace {namespace!r}")
        args = (None if ids is None else [int(i) for i in ids], source, namespace, where)
        with self._lock, self.catalog.writing():
            self._sync()
            self._replay()
            batch = uuid.uuid4().hex
            calls = [Pending(batch, shard, "forget_as", args) for shard in self.handles]
            self.catalog.enqueue(calls)
            done, missing = self._send(calls)
        if missing:
            raise ShardUnavailableError(
                f"shard(s) {', '.join(missing)} did not answer: forgetting there is queued",
                shards=missing,
            )
        return int(sum(done.values()))

    # -- reading -------------------------------------------------------------------------

    def recall(self, query: str, **options: Any) -> Hits:
        """The ``k`` memories most relevant to ``query``, as :meth:`recall_many`."""
        return self.recall_many([query], **options)[0]

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
        rerank: RerankLike = None,
        as_of: float | str | None = None,
        include_superseded: bool = False,
        now: float | str | None = None,
        on_missing: OnMissing | None = None,
    ) -> list[Hits]:
        """Recall by scatter–gather, ranking exactly as one store holding every shard's
        memories would (:meth:`Memory.recall_many`'s options).

        Every shard scores its memories with the cluster-wide lexical statistics (row
        count, token count, each term's document frequency, gathered first) and the query
        vectors embedded once here, and returns each channel's best candidates with their
        raw scores; fusion, conversation re-ranking, calibration and reranking then run
        once over the union. ``on_missing`` overrides the cluster's choice for shards that
        do not answer.

        Raises:
            InvalidInputError: as :meth:`Memory.recall_many`; ``coverage`` (a cluster keeps
                no conformal calibration yet) is refused.
            NotFoundError: no shard holds the namespace.
            ShardUnavailableError: shards did not answer and a complete answer was asked.
        """
        self._check_open()
        if isinstance(queries, str):
            raise InvalidInputError("recall_many takes a list of queries; use recall for one")
        if coverage is not None:
            raise InvalidInputError(
                "coverage needs a conformal calibration, which a cluster does not keep yet; "
                "use min_relevance"
            )
        precision = check_precision(min_relevance, None, rerank)
        check_k(k)
        chosen = check_channels(channels)
        if "graph" in chosen and self._graph is None:
            raise InvalidInputError(
                "the graph channel is off: open the Cluster with graph={'enabled': True} "
                '(needs pip install "engramdb[graph]")'
            )
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise InvalidInputError(f"queries must be non-empty text, got {q!r}")
        moment = strict_time(as_of, "as_of")
        asked = strict_time(now, "now")
        mode: OnMissing = on_missing or self.on_missing
        if mode not in ("fail", "partial"):
            raise InvalidInputError(f"on_missing must be 'fail' or 'partial', got {mode!r}")
        options = ReadOptions(
            as_of=moment,
            include_superseded=bool(include_superseded),
            now=time.time() if asked is None else asked,
        )
        depth = max(k, self.config.recall.candidates)
        self._sync()  # (never waits for a write in progress)
        runs, via, about, missing = self._runs(
            list(queries), depth, namespace, where, chosen, moment, mode
        )
        lookups = _Lookups(self, (namespace, where, moment), mode, set(missing))
        for part in about:
            lookups.absorb(part)
        # a candidate no shard said anything about is gone: nothing to ask again
        lookups.known.update(i for runs_of in runs.values() for run in runs_of for i, _ in run)
        out = []
        for qi, query in enumerate(queries):
            fused = build_hits(
                query,
                {c: runs[c][qi] for c in chosen},
                depth,
                via[qi],
                options,
                lookups,
                self.config,
            )
            hits = apply_precision(
                fused,
                precision,
                k=k,
                model=self.relevance_model,
                vectors_for=self._vectors_for,
            )
            gone = tuple(sorted({*missing, *lookups.missing}))
            if gone:
                hits = dataclasses.replace(hits, partial=True, missing=gone)
            out.append(hits)
        return out

    def _runs(  # noqa: PLR0913 - the parts of one scatter
        self,
        queries: list[str],
        depth: int,
        namespace: str | None,
        where: Any,
        channels: tuple[str, ...],
        as_of: float | None,
        mode: OnMissing,
    ) -> tuple[Runs, list[Mapping[int, tuple[str, ...]]], list[About], tuple[str, ...]]:
        """Each channel's runs over all shards, the graph's phrases per hit, what the
        shards said about their candidates, and the missing shards. The graph channel
        runs here, on the shards' graphs merged (phrase nodes are global), seeded by the
        dense run over all shards, as one store seeds it."""
        asked = tuple(c for c in channels if c != "graph")
        deep = depth
        if "graph" in channels:
            asked = tuple(dict.fromkeys((*asked, "dense")))
            deep = max(depth, self.config.graph.dense_seeds)
        stats = None
        missing: set[str] = set()
        if "lexical" in asked and len(self.handles) > 1:  # one shard: its own statistics
            parts, lost = self._scatter("term_stats", (queries,), on_missing=mode)
            missing.update(lost)
            if parts:
                values = list(parts.values())
                stats = values[0]
                for more in values[1:]:
                    stats = stats + more
        vectors = self._embedder.embed_queries(queries) if "dense" in asked else None
        answers, lost = self._scatter(
            "runs",
            (queries, deep, namespace, where, asked, as_of, stats, vectors),
            on_missing=mode,
            skip=missing,  # a shard missing from the statistics is missing from the answer
        )
        missing.update(lost)
        known = {name: answer[0] for name, answer in answers.items() if answer is not None}
        about = [answer[1] for answer in answers.values() if answer is not None]
        if namespace is not None and not known and not missing:
            raise NotFoundError(f"unknown namespace {namespace!r}")
        merged: Runs = {}
        for channel in asked:
            cut = deep if channel == "dense" else depth
            merged[channel] = [
                _merge([runs[channel][qi] for runs in known.values()], cut, channel)
                for qi in range(len(queries))
            ]
        via: list[Mapping[int, tuple[str, ...]]] = [{} for _ in queries]
        if "graph" in channels:
            found = self._graph_runs(
                queries, merged["dense"], depth, (namespace, where, as_of), mode, missing
            )
            merged["graph"] = [list(r.run) for r in found]
            via = [r.via for r in found]
            merged["dense"] = [run[:depth] for run in merged["dense"]]
        return merged, via, about, tuple(sorted(missing))

    def _graph_runs(  # noqa: PLR0913 - the parts of the graph's share of a recall
        self,
        queries: list[str],
        dense: list[list[tuple[int, float]]],
        depth: int,
        condition: tuple[str | None, Any, float | None],
        mode: OnMissing,
        missing: set[str],
    ) -> list[GraphRecall]:
        assert self._graph is not None
        versions, lost = self._scatter("graph_version", (), on_missing=mode, skip=missing)
        missing.update(lost)
        key = tuple(sorted(versions.items()))
        with self._lock:
            if self._graph_index is None or self._graph_index[0] != key:
                parts, lost = self._scatter("graph_snapshot", (), on_missing=mode, skip=missing)
                missing.update(lost)
                snapshots = [snap for _, snap in parts.values() if snap is not None]
                cfg = self.config.graph
                merged = merge_snapshots(
                    snapshots,
                    synonym_threshold=cfg.synonym_threshold,
                    min_synonym_chars=cfg.min_synonym_chars,
                )
                self._graph_index = (key, GraphIndex(merged, max_synonyms=cfg.max_synonyms))
            index = self._graph_index[1]
        allow = None
        if any(c is not None for c in condition):
            parts, lost = self._scatter("select", condition, on_missing=mode, skip=missing)
            missing.update(lost)
            allow = np.asarray(sorted(i for ids in parts.values() for i in ids), dtype=np.int64)
        return self._graph.recall_on(index, queries, dense, depth=depth, allow=allow)

    @property
    def relevance_model(self) -> RelevanceModel:
        """The per-query relevance calibration (the bundled one)."""
        if self._relevance is None:
            self._relevance = RelevanceModel.load()
        return self._relevance

    def _vectors_for(self, hits: Sequence[Hit]) -> Matrix:
        found, _ = self._scatter("vectors", ([h.id for h in hits],), on_missing="partial")
        known: dict[int, Any] = {}
        for part in found.values():
            known.update(part)
        return stack([known.get(h.id) for h in hits], self._model[1])  # type: ignore[misc]

    def recognize(self, text: str, *, namespace: str | None = DEFAULT_NAMESPACE) -> Recognition:
        """Exact, near-duplicate or new, as :meth:`Memory.recognize`, over every shard."""
        self._check_open()
        if not isinstance(text, str) or not normalize_text(text):
            raise InvalidInputError("recognize needs non-empty text")
        if namespace is not None:
            check_namespace(namespace)

        def exact(digest: str) -> int | None:
            if namespace is not None:  # an exact copy lives on the shard its content routes to
                owner = self.catalog.owner(namespace, digest)
                found, _ = self._scatter("find_hash", {owner: (namespace, digest)})
            else:
                found, _ = self._scatter("find_hash", (None, digest))
            return min((i for ids in found.values() for i in ids), default=None)

        def near(bands: Sequence[bytes]) -> list[tuple[int, str, frozenset[str]]]:
            parts: dict[str, Found] = self._scatter("lookup", (namespace, [], [bands]))[0]
            matches = [m for part in parts.values() for m in part.bands[0]]
            texts = {i: t for part in parts.values() for i, t in part.texts.items()}
            return ranked_candidates(matches, texts, self._hasher)

        threshold = self.config.recognize.near_threshold
        return decide(text, self._hasher, threshold, exact=exact, near=near, get=self.get)

    def get_many(self, ids: Sequence[int], *, sightings: bool = False) -> list[MemoryRecord]:
        """The memories among ``ids``, in the order given (missing ones left out)."""
        self._check_open()
        parts, _ = self._scatter("get_many", ([int(i) for i in ids], sightings))
        found = {r.id: r for part in parts.values() for r in part}
        return [found[int(i)] for i in ids if int(i) in found]

    def get(self, memory_id: int) -> MemoryRecord:
        """One memory.

        Raises:
            NotFoundError: no shard holds it.
        """
        found = self.get_many([memory_id], sightings=True)
        if not found:
            raise NotFoundError(f"no memory {memory_id}")
        return found[0]

    def namespaces(self) -> dict[str, int]:
        """Every namespace that holds memories, with its count over all shards."""
        self._check_open()
        parts, _ = self._scatter("namespaces", ())
        out: dict[str, int] = {}
        for part in parts.values():
            for name, count in part.items():
                out[name] = out.get(name, 0) + count
        return dict(sorted(out.items()))

    def stats(self) -> ClusterStats:
        """Counts over the shards that answer (``missing`` names the others)."""
        self._check_open()
        parts, missing = self._scatter("stats", (), on_missing="partial")
        names: dict[str, int] = {}
        for stats in parts.values():
            for name, count in stats.namespaces.items():
                names[name] = names.get(name, 0) + count
        return ClusterStats(
            shards={name: parts[name] for name in self.handles if name in parts},
            missing=missing,
            memories=sum(s.memories for s in parts.values()),
            namespaces=dict(sorted(names.items())),
            version=self.catalog.version(),
            pending=len(self.catalog.pending()),
        )

    def context(
        self,
        query: str | Sequence[Hit],
        *,
        budget_tokens: int = 1000,
        order: Order = "relevance",
        k: int = 20,
        count_tokens: Any = None,
        neighbours: int = 1,
        **recall: Any,
    ) -> Context:
        """A packed, cited context block for a prompt, as :meth:`Memory.context`."""
        counter = select_counter(count_tokens)
        if (
            isinstance(neighbours, bool)
            or not isinstance(neighbours, int)
            or not 0 <= neighbours <= 5
        ):
            raise InvalidInputError(f"neighbours must be an integer in 0..5, got {neighbours!r}")
        hits = self.recall(query, k=k, **recall) if isinstance(query, str) else query
        around = self._around(hits, neighbours) if neighbours else {}
        return pack(
            hits, budget_tokens=budget_tokens, order=order, count_tokens=counter, around=around
        )

    def _around(self, hits: Sequence[Hit], n: int) -> dict[int, list[Hit]]:
        def fetch(places: list[Place]) -> dict[Place, MemoryRecord]:
            parts, _ = self._scatter("rows_at", (places, None, None, None), on_missing="partial")
            at = {(r[1], r[2], r[3]): r[0] for part in parts.values() for r in part}
            records = {r.id: r for r in self.get_many(sorted(set(at.values())))}
            return {place: records[i] for place, i in at.items() if i in records}

        return turns_around(hits, n, fetch)

    # -- growing ---------------------------------------------------------------------------

    def pin(self, namespace: str, shard: str) -> None:
        """Route every memory of ``namespace`` to ``shard`` (isolation: a tenant's
        memories on a shard of their own). Only for a namespace no shard holds yet.

        Raises:
            InvalidInputError: the namespace already holds memories.
            NotFoundError: no such shard.
        """
        check_namespace(namespace)
        with self._lock, self.catalog.writing():
            self._sync()
            if namespace in self.namespaces():
                raise InvalidInputError(
                    f"namespace {namespace!r} already holds memories: pin it before its first write"
                )
            self.catalog.pin(namespace, shard)

    def add_shard(self) -> dict[str, Any]:
        """Add a shard and move to it its share of the routing slots with their memories.

        Each moved memory is copied with its id, sightings, vector and links, the slots
        are handed over, then the copies left behind are deleted; a memory is never
        missing, and a recall that runs meanwhile counts a copied memory once. Writes
        wait until the move is done.

        Returns:
            ``{"shard", "moved", "slots", "memories"}`` (memories: the cluster's count,
            checked unchanged).

        Raises:
            ShardUnavailableError: a shard did not answer (nothing handed over; run again).
            StoreError: the check after the move found a memory lost or duplicated.
        """
        self._check_open()
        with self._lock, self.catalog.writing():
            self._sync()
            self._replay()
            owning = set(self.catalog.slots().values()) | set(self.catalog.pins().values())
            idle = [s for s in self.catalog.shards() if s not in owning]
            if idle:  # a shard added before whose move did not finish: finish it now
                name = idle[0]
                self._scatter("drop", {name: ([i for i, _, _ in self._keys(name)],)})
            else:
                name = f"shard-{len(self.catalog.shards())}"
                while name in self.catalog.shards():
                    name += "x"
                self.catalog.add_shard(name)
                self._start(name)
            before = self._count_ids()
            slots = _slots_to_move(self.catalog.slots(), name)
            moving = set(slots)
            pins = self.catalog.pins()
            moved: dict[str, list[int]] = {}
            try:
                for shard in [s for s in self.handles if s != name]:
                    moved[shard] = self._copy(shard, name, moving, pins)
            except BaseException:  # nothing handed over: take the copies back out
                copied = [i for ids in moved.values() for i in ids]
                self._scatter("drop", {name: (copied,)}, on_missing="partial")
                raise
            self.catalog.hand_over(slots, name)
            for shard, ids in moved.items():
                for start in range(0, len(ids), _PAGE):
                    self._scatter("drop", {shard: (ids[start : start + _PAGE],)})
            after = self._count_ids()
            if after != before:
                raise StoreError(
                    f"adding {name} changed the cluster's memories ({len(before)} -> {len(after)})"
                )
            return {
                "shard": name,
                "moved": sum(len(v) for v in moved.values()),
                "slots": len(slots),
                "memories": len(after),
            }

    def _copy(
        self, source: str, target: str, moving: set[int], pins: Mapping[str, str]
    ) -> list[int]:
        """Copy ``source``'s memories of the ``moving`` slots to ``target``; their ids."""
        after = 0
        out: list[int] = []
        while True:
            found, _ = self._scatter("keys", {source: (after, _PAGE)})
            keys = found[source]
            if not keys:
                return out
            after = keys[-1][0]
            ids = [i for i, ns, h in keys if ns not in pins and slot_of(ns, h) in moving]
            if ids:
                found, _ = self._scatter("export", {source: (ids,)})
                records = found[source]
                graph = None
                if self._graph is not None:
                    graph = self._phrases_of([(r["id"], r["text"]) for r in records])
                self._scatter("take", {target: (records, graph)})
                out += ids

    def _keys(self, shard: str) -> list[tuple[int, str, str]]:
        """``(id, namespace, content hash)`` of every memory a shard holds."""
        out: list[tuple[int, str, str]] = []
        while True:
            found, _ = self._scatter("keys", {shard: (out[-1][0] if out else 0, 4096)})
            if not found[shard]:
                return out
            out += found[shard]

    def _count_ids(self) -> list[int]:
        """Every memory id of the cluster, sorted (each once: a check that none is lost
        or duplicated)."""
        out = [i for shard in self.handles for i, _, _ in self._keys(shard)]
        if len(out) != len(set(out)):
            dup = len(out) - len(set(out))
            raise StoreError(f"{dup} memory id(s) are held by two shards")
        return sorted(out)


# -- helpers ---------------------------------------------------------------------------------


def _merge(
    runs: Sequence[Sequence[tuple[int, float]]], depth: int, channel: str
) -> list[tuple[int, float]]:
    """One channel's run over all shards: best first, ties by smaller id, each id once (a
    memory being moved between shards may answer from both)."""
    best: dict[int, float] = {}
    for run in runs:
        for memory_id, score in run:
            if memory_id not in best or score > best[memory_id]:
                best[memory_id] = score
    ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:depth]
    if channel == "lexical":  # as one store reports them (float32), ordered on the exact value
        return [(i, float(np.float32(s))) for i, s in ranked]
    return ranked


def _slots_to_move(slots: Mapping[int, str], new: str) -> list[int]:
    """The slots a new shard takes: an equal share, from the shards holding the most."""
    owners: dict[str, list[int]] = {}
    for slot, shard in sorted(slots.items()):
        owners.setdefault(shard, []).append(slot)
    share = SLOTS // (len(owners) + 1)
    taken: list[int] = []
    while len(taken) < share:
        largest = max(owners, key=lambda s: (len(owners[s]), s))
        taken.append(owners[largest].pop())
    return sorted(taken)


def _settings(
    catalog: Catalog,
    config: EngineConfig | Mapping[str, Any] | str | Path | None,
    overrides: Mapping[str, Any],
) -> EngineConfig:
    """The configuration to open a cluster with: the one it was made with, unless another
    is given; a new cluster records it. Its embedder must stay the one the shards' vectors
    were made with.

    Raises:
        ConfigError: a configuration whose embedder differs from the cluster's.
    """
    recorded = catalog.settings()
    if recorded is None:
        cfg = load_config(config, **overrides)
        catalog.remember(dataclasses.asdict(cfg))
        return cfg
    if config is None and not overrides:
        return load_config(recorded)
    cfg = load_config(config, **overrides)
    made = load_config(recorded).embed
    if (cfg.embed.model, cfg.embed.dim, cfg.embed.remote_model) != (
        made.model,
        made.dim,
        made.remote_model,
    ):
        raise ConfigError(
            f"this cluster's memories were embedded with embed.model={made.model!r} "
            f"(dim {made.dim}); open it with that embedder, or without a configuration to "
            "use the one it was made with"
        )
    return cfg


def _is_refusal(exc: BaseException) -> bool:
    """An error a shard raised on purpose about the call (bad input, unknown id), as
    opposed to a shard that is down."""
    return isinstance(exc, EngramError) and not isinstance(exc, StoreError)


def _unavailable(failed: Mapping[str, BaseException], doing: str) -> ShardUnavailableError:
    names = tuple(sorted(failed))
    first = failed[names[0]]
    return ShardUnavailableError(
        f"shard(s) {', '.join(names)} did not answer {doing} ({type(first).__name__}: "
        f"{str(first).splitlines()[0] if str(first) else 'no detail'}); ask for a partial "
        "answer with on_missing='partial'",
        shards=names,
    )


class _Lookup:
    """Recognition's view of the shards for one batch: what each shard holds of the
    batch's content hashes and band keys, asked once per shard before deciding."""

    def __init__(self, cluster: Cluster, namespace: str, items: Sequence[Item]):
        catalog = cluster.catalog
        owners: dict[str, list[str]] = {}
        for item in items:
            owners.setdefault(catalog.owner(namespace, item.hash), []).append(item.hash)
        bands = sorted({tuple(it.signature.bands) for it in items if it.signature is not None})
        args = {
            shard: (namespace, sorted(set(owners.get(shard, []))), [list(b) for b in bands])
            for shard in cluster.handles
        }
        found: dict[str, Found] = cluster._scatter("lookup", args)[0]
        self.exact: dict[str, int] = {}
        self.cached: dict[str, np.ndarray[Any, Any]] = {}
        self.holder: dict[int, str] = {}
        self.texts: dict[int, str] = {}
        self.matches: dict[tuple[bytes, ...], list[tuple[int, int]]] = {b: [] for b in bands}
        for shard, part in found.items():
            for digest, memory_id in part.exact.items():
                self.exact[digest] = memory_id
                self.holder[memory_id] = shard
            self.cached.update(part.vectors)
            self.texts.update(part.texts)
            for key, matches in zip(bands, part.bands, strict=True):
                self.matches[key] += matches
                for memory_id, _ in matches:
                    self.holder[memory_id] = shard
        self.hasher = cluster._hasher

    def find_hash(self, namespace: str, text_hash: str) -> int | None:
        return self.exact.get(text_hash)

    def candidates(
        self, namespace: str, bands: Sequence[bytes]
    ) -> list[tuple[int, str, frozenset[str]]]:
        return ranked_candidates(self.matches.get(tuple(bands), []), self.texts, self.hasher)


class _Batch:
    """A recognised batch, split into each shard's part."""

    def __init__(self, items: list[Item], ids: list[int], vectors: Matrix, row: dict[int, int]):
        self.items = items
        self.ids = ids
        self.vectors = vectors
        self.row = row

    def target(self, index: int) -> int:
        item = self.items[index]
        if item.target is not None:
            return item.target
        return self.ids[item.batch_target or 0]

    def plan(
        self, catalog: Catalog, holder: Mapping[int, str]
    ) -> dict[str, tuple[list[NewOp], list[tuple[int, SeenOp]]]]:
        plan: dict[str, tuple[list[NewOp], list[tuple[int, SeenOp]]]] = {}
        where_new: dict[int, str] = {}
        for index, item in enumerate(self.items):
            if item.kind == "new":
                shard = catalog.owner(item.namespace, item.hash)
                where_new[index] = shard
                sig = item.signature
                assert sig is not None
                plan.setdefault(shard, ([], []))[0].append(
                    NewOp(
                        id=self.ids[index],
                        namespace=item.namespace,
                        text=item.text,
                        hash=item.hash,
                        sighting=item.sighting,
                        meta=item.meta,
                        vector=self.vectors[self.row[index]],
                        bands=tuple(sig.bands),
                        signature=sig.to_bytes(),
                        facts=item.facts,
                    )
                )
                continue
            if item.target is not None:
                shard = holder.get(item.target) or catalog.owner(item.namespace, item.hash)
            else:
                shard = where_new[item.batch_target or 0]
            op = SeenOp(self.target(index), item.sighting, item.kind, item.score)
            plan.setdefault(shard, ([], []))[1].append((index, op))
        return plan


class _Lookups:
    """:class:`~engramdb.engine._read.HitLookups` gathered from every shard."""

    def __init__(
        self,
        cluster: Cluster,
        condition: tuple[Any, Any, Any],
        mode: OnMissing,
        missing: set[str],
    ):
        self.cluster = cluster
        self.condition = condition
        self.mode = mode
        self.missing = missing  # shards already missing from this answer: not asked again
        self.about = About({}, {}, {}, {})
        self.known: set[int] = set()  # ids whose supersessions and turn places are known
        self.read: set[int] = set()  # ids whose records and links are known

    def _gather(self, method: str, args: tuple[Any, ...]) -> list[Any]:
        parts, lost = self.cluster._scatter(method, args, on_missing=self.mode, skip=self.missing)
        self.missing.update(lost)
        return list(parts.values())

    def learn(self, ids: Sequence[int], *, records: bool = False) -> None:
        """Ask every shard, once, about the memories among ``ids`` it holds (with their
        records and links when ``records``)."""
        seen = self.read if records else self.known
        wanted = [i for i in dict.fromkeys(ids) if i not in seen]
        if not wanted:
            return
        for part in self._gather("about", (wanted, records)):
            self.absorb(part)
        self.known.update(wanted)
        if records:
            self.read.update(wanted)

    def absorb(self, part: About) -> None:
        """Keep what a shard said about its memories."""
        self.about.records.update(part.records)
        self.about.superseded.update(part.superseded)
        for memory_id, links in part.relations.items():  # a memory's links: its shard's
            self.about.relations.setdefault(memory_id, links)
        self.about.turns.update(part.turns)

    def records(self, ids: Sequence[int]) -> dict[int, MemoryRecord]:
        self.learn(ids, records=True)
        held = self.about.records
        return {i: held[i] for i in ids if i in held}

    def superseded(self, ids: Sequence[int]) -> dict[int, float | None]:
        self.learn(ids)
        gone = self.about.superseded
        return {i: gone[i] for i in ids if i in gone}

    def relations(self, ids: Sequence[int]) -> dict[int, tuple[Supersession, ...]]:
        self.learn(ids, records=True)
        links = self.about.relations
        return {i: links[i] for i in ids if i in links}

    def turns_around(self, ids: Sequence[int]) -> list[TurnRow]:
        self.learn(ids)
        asked = set(ids)
        keys = [key for memory_id, key in self.about.turns.items() if memory_id in asked]
        if not keys:
            return []
        near = sorted({(ns, doc, o + d) for ns, doc, o in keys for d in (-1, 0, 1)})
        rows: dict[int, TurnRow] = {}
        for part in self._gather("rows_at", (near, *self.condition)):
            for row in part:
                rows[row[0]] = row
        return list(rows.values())
