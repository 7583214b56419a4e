"""The read path: channels (lexical, dense, graph) → fusion → hits with explanations."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from engramdb.config import CHANNEL_GROUPS, CHANNELS, MAX_K, EngineConfig
from engramdb.embed.base import Embedder
from engramdb.engine._dense import DenseIndex
from engramdb.engine._lexical import LexicalIndex
from engramdb.engine._validity import current_first, relations
from engramdb.engine._views import DenseView
from engramdb.errors import InvalidInputError, NotFoundError
from engramdb.filter import compile_filter, parse_filter
from engramdb.graph.channel import GraphChannel
from engramdb.query import parse_time_intent
from engramdb.retrieve.conversation import Turn as ConvTurn
from engramdb.retrieve.conversation import as_turn, rescore
from engramdb.retrieve.fusion import Run, fuse, fuse_with_graph
from engramdb.store.sqlite import SQLiteStore, TurnRow
from engramdb.store.validity import valid_as_of_sql
from engramdb.types import ChannelScore, Hit, Hits, IdMatrix, Matrix, MemoryRecord, Supersession

if TYPE_CHECKING:
    from engramdb.lexical.bm25 import TermStats

__all__ = [
    "CHANNELS",
    "DEFAULT_CHANNELS",
    "HitLookups",
    "ReadOptions",
    "Reader",
    "StoreLookups",
    "build_hits",
    "fusion_of",
    "check_channels",
    "check_k",
]

DEFAULT_CHANNELS = CHANNEL_GROUPS["hybrid"]
_GROUPS = CHANNEL_GROUPS
_GRAPH_OFF = (
    "the graph channel is off: open the Memory with graph={'enabled': True} "
    '(needs pip install "engramdb[graph]")'
)


def check_channels(channels: Sequence[str] | str | None) -> tuple[str, ...]:
    """Normalise a channel selection (``"lexical,dense"``, ``"hybrid+graph"`` or a sequence).

    Raises:
        InvalidInputError: an unknown channel or an empty selection.
    """
    if channels is None:
        return DEFAULT_CHANNELS
    names = channels.split(",") if isinstance(channels, str) else list(channels)
    names = [n.strip() for n in names if n.strip()]
    unknown = [n for n in names if n not in CHANNELS and n not in _GROUPS]
    if unknown or not names:
        raise InvalidInputError(
            f"unknown channel(s) {', '.join(unknown) or '(none)'}; "
            f"valid: {', '.join(CHANNELS)}, {', '.join(_GROUPS)}"
        )
    out: list[str] = []
    for n in names:
        for c in _GROUPS.get(n, (n,)):
            if c not in out:
                out.append(c)
    return tuple(out)


def check_k(k: object) -> int:
    """Validate how many hits are asked for.

    Raises:
        InvalidInputError: not an integer in ``1..MAX_K``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    if k > MAX_K:
        raise InvalidInputError(f"k is at most {MAX_K}, got {k}")
    return k


def _runs(ids: IdMatrix, scores: Matrix) -> list[list[tuple[int, float]]]:
    return [
        [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]


class Reader:
    """Runs recall for a Memory."""

    def __init__(
        self,
        store: SQLiteStore,
        lexical: LexicalIndex,
        embedder: Embedder,
        dense: DenseIndex,
        config: EngineConfig,
        graph: GraphChannel | None = None,
    ):
        self.store = store
        self.lexical = lexical
        self.embedder = embedder
        self.dense = dense
        self.config = config
        self.graph = graph

    def where(
        self, namespace: str | None, where: Any, as_of: float | None = None
    ) -> tuple[str | None, list[object]]:
        """The SQL condition (alias ``m``) for a namespace, a filter and the memories valid
        at ``as_of``, or ``None``.

        Raises:
            NotFoundError: the namespace holds no memories.
            InvalidFilterError: the filter is malformed.
        """
        parts: list[str] = []
        params: list[object] = []
        if namespace is not None:
            known = self.store.namespaces()
            if namespace not in known:
                raise NotFoundError(
                    f"unknown namespace {namespace!r}; "
                    f"known: {', '.join(known) or '(none: the store is empty)'}"
                )
            parts.append("m.namespace = ?")
            params.append(namespace)
        if where is not None:
            sql, values = compile_filter(parse_filter(where), alias="m")
            parts.append(f"({sql})")
            params.extend(values)
        if as_of is not None:
            parts.append(f"({valid_as_of_sql('m')})")
            params.extend([as_of, as_of])
        return (" AND ".join(parts) if parts else None), params

    def recall_many(
        self,
        queries: Sequence[str],
        *,
        k: int,
        namespace: str | None,
        where: Any,
        channels: tuple[str, ...],
        options: ReadOptions | None = None,
    ) -> list[Hits]:
        """Hits for each query, all channels answering from one read snapshot.

        Memories still valid come first, superseded ones after them (``include_superseded``:
        in their fused order); ``as_of`` keeps only the memories valid at that time."""
        check_k(k)
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise InvalidInputError(f"queries must be non-empty text, got {q!r}")
        if "graph" in channels and self.graph is None:
            raise InvalidInputError(_GRAPH_OFF)
        validity = options or ReadOptions()
        return self.dense.at_snapshot(
            lambda view: self._recall(queries, k, namespace, where, channels, view, validity)
        )

    def _recall(  # noqa: PLR0913 - the parts of one recall
        self,
        queries: Sequence[str],
        k: int,
        namespace: str | None,
        where: Any,
        channels: tuple[str, ...],
        view: DenseView,
        validity: ReadOptions,
    ) -> list[Hits]:
        sql, params = self.where(namespace, where, validity.as_of)
        depth = max(k, self.config.recall.candidates)
        per_channel: dict[str, list[list[tuple[int, float]]]] = {}
        if "lexical" in channels:
            per_channel["lexical"] = _runs(
                *self.lexical.search(queries, depth, where=sql, params=params)
            )
        via: list[Mapping[int, tuple[str, ...]]] = [{} for _ in queries]
        vector = "graph" in channels or "dense" in channels
        allow = self._allow(view, sql, params) if vector else None
        if "graph" in channels:
            seeds = max(depth, min(len(view), self.config.graph.dense_seeds))
            dense = self._dense(view, queries, seeds, allow)
            per_channel["graph"], via = self._graph(queries, dense, depth, allow)
            per_channel["dense"] = [run[:depth] for run in dense]
        elif "dense" in channels:
            per_channel["dense"] = self._dense(view, queries, depth, allow)
        out = []
        for qi, query in enumerate(queries):
            runs = {c: per_channel[c][qi] for c in channels}
            out.append(self._hits(query, runs, k, via[qi], validity, (sql, params)))
        return out

    def _graph(
        self,
        queries: Sequence[str],
        dense: list[list[tuple[int, float]]],
        depth: int,
        allow: npt.NDArray[np.int64] | None,
    ) -> tuple[list[list[tuple[int, float]]], list[Mapping[int, tuple[str, ...]]]]:
        """Graph runs seeded by the dense runs, and each hit's phrases for ``why``.

        ``allow``: the ids the filter lets through (``None``: no filter)."""
        assert self.graph is not None
        version = self.store.data_version
        found = self.graph.recall_many(queries, dense, depth=depth, allow=allow, version=version)
        return [list(r.run) for r in found], [r.via for r in found]

    def _dense(
        self,
        view: DenseView,
        queries: Sequence[str],
        depth: int,
        allow: npt.NDArray[np.int64] | None,
        vectors: Matrix | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Dense runs over ``view`` (``vectors``: the queries' vectors, made elsewhere;
        ``None``: embedded here)."""
        if len(view) == 0:
            return [[] for _ in queries]
        if allow is not None and allow.size == 0:
            return [[] for _ in queries]
        if vectors is None:
            vectors = self.embedder.embed_queries(list(queries))
        return _runs(*view.search(vectors, depth, allow=allow))

    def _allow(
        self, view: DenseView, sql: str | None, params: list[object]
    ) -> npt.NDArray[np.int64] | None:
        """The ids a filter lets through, or ``None`` when every vector passes it."""
        if sql is not None and self.store.count_where(sql, params) < len(view):
            return self.store.select_ids(sql, params)
        return None

    def _hits(
        self,
        query: str,
        runs: Mapping[str, Run],
        k: int,
        via: Mapping[int, tuple[str, ...]],
        validity: ReadOptions,
        condition: tuple[str | None, list[object]],
    ) -> Hits:
        lookups = StoreLookups(self.store, *condition)
        return build_hits(query, runs, k, via, validity, lookups, self.config)

    def shard_runs(  # noqa: PLR0913 - the parts of one shard's share of a recall
        self,
        queries: Sequence[str],
        *,
        depth: int,
        namespace: str | None,
        where: Any,
        channels: tuple[str, ...],
        as_of: float | None,
        stats: TermStats | None,
        vectors: Matrix | None,
    ) -> dict[str, list[list[tuple[int, float]]]] | None:
        """One shard's share of a cluster's recall: each channel's best ``depth`` memories
        of this store with their raw scores, BM25 computed with the cluster's ``stats``
        (``None``: this store's own) and dense scores for the cluster's query ``vectors``;
        ``None`` when this store holds no memory of ``namespace``."""
        if namespace is not None and namespace not in self.store.namespaces():
            return None
        sql, params = self.where(namespace, where, as_of)
        out: dict[str, list[list[tuple[int, float]]]] = {}
        if "lexical" in channels and stats is None:  # the cluster is this store alone
            out["lexical"] = _runs(*self.lexical.search(queries, depth, where=sql, params=params))
        elif "lexical" in channels and stats is not None:
            out["lexical"] = self.lexical.search_stats(
                queries, depth, stats, where=sql, params=params
            )
        if "dense" in channels and vectors is not None:

            def dense(view: DenseView) -> list[list[tuple[int, float]]]:
                allow = self._allow(view, sql, params)
                return self._dense(view, queries, depth, allow, vectors)

            out["dense"] = self.dense.at_snapshot(dense)
        return out


class HitLookups(Protocol):
    """What building hits reads about the memories a recall found: from one store, or
    gathered from a cluster's shards."""

    def records(self, ids: Sequence[int]) -> dict[int, MemoryRecord]:
        """The memories among ``ids`` (missing ones left out)."""
        ...

    def superseded(self, ids: Sequence[int]) -> dict[int, float | None]:
        """``{id: valid_to}`` of the superseded memories among ``ids``."""
        ...

    def relations(self, ids: Sequence[int]) -> dict[int, tuple[Supersession, ...]]:
        """The links in force of each memory among ``ids``."""
        ...

    def turns_around(self, ids: Sequence[int]) -> list[TurnRow]:
        """As :meth:`~engramdb.store.sqlite.SQLiteStore.turns_around`, under the recall's
        filter."""
        ...


class StoreLookups:
    """:class:`HitLookups` on one store, with the recall's filter (SQL over alias ``m``)."""

    def __init__(self, store: SQLiteStore, where: str | None = None, params: Sequence[object] = ()):
        self.store = store
        self.filter = where
        self.params = params

    def records(self, ids: Sequence[int]) -> dict[int, MemoryRecord]:
        return {r.id: r for r in self.store.get_many(ids)}

    def superseded(self, ids: Sequence[int]) -> dict[int, float | None]:
        return self.store.superseded(ids)

    def relations(self, ids: Sequence[int]) -> dict[int, tuple[Supersession, ...]]:
        return relations(self.store.conn, ids)

    def turns_around(self, ids: Sequence[int]) -> list[TurnRow]:
        return self.store.turns_around(ids, self.filter, self.params)


def fusion_of(runs: Mapping[str, Run], config: EngineConfig) -> tuple[str, dict[str, float]]:
    """The method and weights that fuse ``runs``: ``recall.fusion`` and ``recall.weights``
    without the graph channel; with it, ``graph.fusion`` and lexical, dense and graph
    weighing ``graph.fusion_lexical_weight``, 1 and ``graph.fusion_weight`` (a ``"graph"``
    entry of ``recall.weights`` takes the graph's place), used when the graph's run is not
    steep enough to stand alone (``graph.fusion_alone_below``)."""
    if "graph" not in runs:
        return config.recall.fusion, dict(config.recall.weights)
    graph = config.graph
    weights = {
        "lexical": graph.fusion_lexical_weight,
        "dense": 1.0,
        "graph": config.recall.weights.get("graph", graph.fusion_weight),
    }
    return graph.fusion, weights


def build_hits(  # noqa: PLR0913 - the parts of one query's answer
    query: str,
    runs: Mapping[str, Run],
    k: int,
    via: Mapping[int, tuple[str, ...]],
    validity: ReadOptions,
    lookups: HitLookups,
    config: EngineConfig,
) -> Hits:
    """Fuse one query's channel runs and make its hits: conversation turns re-ranked,
    memories still valid first, each hit explained by its channels."""
    method, weights = fusion_of(runs, config)
    if "graph" in runs:
        fused = fuse_with_graph(
            runs,
            alone_below=config.graph.fusion_alone_below,
            agree_within=config.graph.fusion_agree_within,
            method=method,
            k=config.recall.rrf_k,
            weights=weights,
        )
    else:
        fused = fuse(runs, method=method, k=config.recall.rrf_k, weights=weights)
    if config.conversation.enabled:
        now = time.time() if validity.now is None else validity.now
        fused = _conversation(query, runs, fused, now, lookups, config)
    if validity.as_of is None and not validity.include_superseded:
        fused = current_first(fused, lookups.superseded([doc for doc, _ in fused]))
    fused = fused[:k]
    why: dict[int, dict[str, ChannelScore]] = {}
    for channel, run in runs.items():
        for rank, (doc, score) in enumerate(run, start=1):
            phrases = via.get(doc, ()) if channel == "graph" else ()
            why.setdefault(doc, {})[channel] = ChannelScore(rank=rank, score=score, phrases=phrases)
    records = lookups.records([doc for doc, _ in fused])
    linked = lookups.relations(list(records))
    hits = tuple(
        Hit(
            id=doc,
            score=score,
            text=r.text,
            namespace=r.namespace,
            source=r.source,
            position=r.position,
            event_time=r.event_time,
            meta=r.meta,
            why=why.get(doc, {}),
            valid_to=r.valid_to,
            relations=linked.get(doc, ()),
        )
        for doc, score in fused
        if (r := records.get(doc)) is not None
    )
    return Hits(query, hits)


def _conversation(  # noqa: PLR0913 - the parts of one query's answer
    query: str,
    runs: Mapping[str, Run],
    fused: list[tuple[int, float]],
    now: float,
    lookups: HitLookups,
    config: EngineConfig,
) -> list[tuple[int, float]]:
    """The fused list with its conversation turns re-ranked by their rounds, speakers,
    sessions and the query's time expressions read at ``now``
    (:mod:`engramdb.retrieve.conversation`); other memories keep their ranks.
    Neighbours are read under the recall's own filter."""
    rows = lookups.turns_around([doc for doc, _ in fused])
    turns: dict[int, ConvTurn] = {}
    at: dict[tuple[str, int], int] = {}
    for memory_id, namespace, document, ordinal, text, meta, when in rows:
        # a document id is a namespace's own: two namespaces' "chat" are two documents
        turn = as_turn(f"{namespace}\x00{document}", ordinal, meta, text, when)
        if turn is not None:
            turns[memory_id] = turn
            at[(turn.document, ordinal)] = memory_id
    if not turns:
        return fused
    asked = {doc for doc, _ in fused}
    neighbours = {
        i: (at.get((t.document, t.ordinal - 1)), at.get((t.document, t.ordinal + 1)))
        for i, t in turns.items()
        if i in asked
    }
    intent = parse_time_intent(query, now)
    return rescore(query, runs, fused, turns, neighbours, config.conversation, intent)


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How a recall reads time: ``as_of`` (only memories valid then), whether superseded
    memories keep their fused rank (else they come after the valid ones), and ``now``, the
    time the question is asked (``None``: the clock)."""

    as_of: float | None = None
    include_superseded: bool = False
    now: float | None = None


def as_matrix(rows: Sequence[np.ndarray[Any, Any]], dim: int) -> Matrix:
    """Stack vectors into ``(n, dim)`` float32."""
    if not rows:
        return np.empty((0, dim), dtype=np.float32)
    return np.stack(rows).astype(np.float32)
