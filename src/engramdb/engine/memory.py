"""Memory: the public facade over the store, the channels and the write path."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from engramdb.calibrate import (
    ConformalCalibration,
    RelevanceModel,
)
from engramdb.config import EngineConfig, load_config
from engramdb.context import Context, Order, TokenCounter, pack, select_counter
from engramdb.embed.base import Embedder
from engramdb.embed.registry import create_embedder
from engramdb.engine import _proposals as proposals
from engramdb.engine import _validity as validity
from engramdb.engine._calibration import Calibrations
from engramdb.engine._dense import DenseIndex
from engramdb.engine._lexical import LexicalIndex
from engramdb.engine._precision import (
    Precision,
    RerankLike,
    apply_precision,
    check_precision,
    stack,
)
from engramdb.engine._read import Reader, ReadOptions, check_channels, check_k
from engramdb.engine._steps import StepPlan, make_plan, recall_in_steps
from engramdb.engine._tools import ToolBook
from engramdb.engine._transfer import backup, export_records, import_file, import_numbered
from engramdb.engine._write import (
    Progress,
    Writer,
    check_forget,
    check_namespace,
    recognize,
    to_record,
)
from engramdb.errors import (
    InvalidInputError,
    NotAStoreError,
    StoreClosedError,
    StoreError,
    StoreNotFoundError,
)
from engramdb.graph.channel import GraphChannel
from engramdb.ingest import load_path, normalize_text
from engramdb.ingest.moments import strict_time
from engramdb.ingest.turns import Place, Turn, turn_records, turns_around
from engramdb.recognize.judge import Judge
from engramdb.recognize.minhash import MinHasher
from engramdb.store.sqlite import SQLiteStore, store_error
from engramdb.tools.hits import AddToolsResult, Demo, DemoHits, Tool, ToolHits
from engramdb.tools.rank import Floats
from engramdb.tools.rank import Fusion as ToolFusion
from engramdb.types import (
    AddResult,
    GraphStats,
    History,
    Hit,
    Hits,
    ImportResult,
    LexicalStats,
    Matrix,
    MemoryRecord,
    Recognition,
    Record,
    Stats,
    Supersession,
)

__all__ = ["DEFAULT_NAMESPACE", "Memory"]

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "default"
RecordLike = Record | Mapping[str, Any] | str
_F = TypeVar("_F", bound=Callable[..., Any])


def _source_names(source: str) -> list[str]:
    """The source as given and, for a relative file path, as loaders record it (resolved)."""
    names = [source]
    if "://" not in source:
        resolved = str(Path(source).expanduser().resolve())
        if resolved != source:
            names.append(resolved)
    return names


def _prepare_folder(path: Path, *, create: bool) -> None:
    """Check (and with ``create``, make) the folder of a store file.

    Raises:
        StoreNotFoundError: ``create`` is false and no file exists at ``path``.
        NotAStoreError: a parent of ``path`` is a file, or the folder cannot be made.
    """
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise NotAStoreError(f"cannot use {path}: {parent} is a file, not a folder", path=path)
    if not create:
        if not path.exists():
            raise StoreNotFoundError(
                f"no store at {path}; check the path (--db), or add memories to create one"
            )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotAStoreError(f"cannot create the folder of {path}: {exc}", path=path) from exc


def _sqlite_errors(method: _F) -> _F:
    """Turn an SQLite failure inside a public verb into the engramdb error that says what it
    means (a damaged file: :class:`CorruptStoreError`), never a bare ``sqlite3`` error."""

    @functools.wraps(method)
    def wrapper(self: Memory, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            path = self._store.path if self._store is not None else "the store"
            raise store_error(exc, path, method.__name__) from exc

    return wrapper  # type: ignore[return-value]


def _remove_store_files(path: Path) -> None:
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        name.unlink(missing_ok=True)


class Memory:
    """A long-term memory on one SQLite file.

    Open it with :meth:`open`; use it as a context manager or call :meth:`close`.

    Example:
        >>> from engramdb import Memory
        >>> with Memory.open(":memory:", embed={"model": "hash", "dim": 64}) as mem:
        ...     _ = mem.add("Alice moved the deploy freeze to Friday.", source="slack")
        ...     mem.recall("deploy freeze", k=1)[0].text
        'Alice moved the deploy freeze to Friday.'
    """

    def __init__(self, store: SQLiteStore, config: EngineConfig, embedder: Embedder):
        self._store: SQLiteStore | None = store
        self.config = config
        self.embedder = embedder
        self._lexical = LexicalIndex(store, config.lexical)
        rc = config.recognize
        self._hasher = MinHasher(num_perm=rc.num_perm, bands=rc.bands, shingle=rc.shingle)
        self._dense = DenseIndex(store, embedder, config.ann)
        self._graph = (
            GraphChannel(lambda: store.conn, config.graph, embedder)
            if config.graph.enabled
            else None
        )
        self._prepare_schema()
        self._dense.load()
        self._lexical.load()
        self._writer = Writer(store, embedder, self._dense, self._hasher, config, graph=self._graph)
        self._reader = Reader(
            store, self._lexical, embedder, self._dense, config, graph=self._graph
        )
        self._relevance: RelevanceModel | None = None
        self._tools = ToolBook(store, embedder)
        self._calibrations = Calibrations(
            store, embedder.model_id, self._reader.where, self.recall_many
        )

    def _prepare_schema(self) -> None:
        """Create (or check, on a read-only store) the lexical and graph tables."""
        store = self.store
        if store.readonly:
            if not self._lexical.is_current():
                raise StoreError(
                    f"{store.path} needs its lexical index rebuilt, which needs write access"
                )
            return
        with store.atomic(bump=False):  # serialised with other processes opening it too
            self._lexical.ensure()
        filled = validity.fill_fact_keys(store)
        if filled:
            logger.info("gave %d memories of %s their fact keys (once)", filled, store.path)
        self._load_graph()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        config: EngineConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        embedder: Embedder | None = None,
        create: bool = True,
        readonly: bool = False,
        **overrides: Any,
    ) -> Memory:
        """Open (or create) the store at ``path`` (``":memory:"`` for a throwaway one).

        Args:
            path: the store file.
            config: an EngineConfig, a mapping of sections or a TOML path.
            embedder: an Embedder to use instead of the configured one.
            create: create the store (and its folder) when missing; ``False`` for verbs that
                only read, so that a mistyped path is an error rather than a new empty store.
            readonly: open without writing anything (also chosen by itself when the file or
                its folder is not writable); writes then raise :class:`StoreError`.
            **overrides: config sections, e.g. ``embed={"model": "hash"}``.

        Raises:
            ConfigError: invalid configuration.
            StoreNotFoundError: ``create=False`` and no store exists at ``path``.
            NotAStoreError: the file is not an engramdb store, or its folder is a file.
            MigrationError: the store was written by an incompatible engramdb.
            ModelError: the embedding model file is missing or corrupt.
        """
        cfg = load_config(config, **overrides)
        path = str(path)
        if path != ":memory:":
            path = str(Path(path).expanduser())
            _prepare_folder(Path(path), create=create and not readonly)
        fresh = path != ":memory:" and not Path(path).exists()
        try:
            store = SQLiteStore(path, readonly=readonly)
        except BaseException:
            if fresh:
                _remove_store_files(Path(path))
            raise
        try:
            try:
                model = embedder if embedder is not None else create_embedder(cfg.embed)
                return cls(store, cfg, model)
            except sqlite3.Error as exc:
                raise store_error(exc, path, "opening it") from exc
        except BaseException:
            store.close()
            if fresh:  # leave no empty store behind a failed first open
                _remove_store_files(Path(path))
            raise

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def store(self) -> SQLiteStore:
        """The underlying store.

        Raises:
            StoreClosedError: the memory was closed.
        """
        if self._store is None:
            raise StoreClosedError("this Memory is closed")
        return self._store

    def close(self) -> None:
        """Close the store; later calls raise :class:`StoreClosedError`."""
        if self._store is not None:
            store, self._store = self._store, None
            store.close()  # waits for the reads in progress: nothing searches the index after
            self._dense.close()
            self._lexical.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def graph(self) -> GraphChannel:
        """The memory graph (``graph.enabled``): stats, neighbours, paths, recall.

        Raises:
            InvalidInputError: the graph is off.
            StoreClosedError: the memory was closed.
        """
        self.store  # noqa: B018 - raises when closed
        if self._graph is None:
            raise InvalidInputError(
                "the graph is off: open the Memory with graph={'enabled': True} "
                '(needs pip install "engramdb[graph]")'
            )
        return self._graph

    def _load_graph(self) -> None:
        """Create the graph tables and add memories stored while the graph was off."""
        if self._graph is not None:
            with self.store.atomic(bump=False):
                self._graph.ensure()
            added = self._graph.backfill(self.store.atomic)
            if added:
                logger.info("added %d memories to the graph", added)

    @property
    def dense_index(self) -> DenseIndex:
        """The dense index (flat or SPANN): its stats, and ``build``/``rebuild`` by hand.

        Raises:
            StoreClosedError: the memory was closed.
        """
        self.store  # noqa: B018 - raises when closed
        return self._dense

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
        """Remember one text (chunked when long).

        Raises:
            InvalidInputError: empty text, a bad namespace or a bad field.
            StoreClosedError: the memory was closed.
        """
        record = to_record(
            Record(text=text, source=source, meta=dict(meta or {}), event_time=event_time)
        )
        return self.add_many([record], namespace=namespace)

    @_sqlite_errors
    def add_many(
        self,
        records: Iterable[RecordLike],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        progress: Progress | None = None,
    ) -> AddResult:
        """Remember many records in one transaction: all of them, or on error none.

        Exact duplicates and near-duplicates merge into the memory already stored (its
        count and sightings grow); re-adding the same input at the same place changes nothing.

        New texts are embedded on a thread of this call while it recognises the next
        records; the vectors made before an error stay in the embedding cache (no memory
        is written), so a retry does not embed them again.

        Raises:
            InvalidInputError: a record without text, a bad namespace or field.
            StoreClosedError: the memory was closed.
        """
        self.store  # noqa: B018 - raises when closed
        return self._writer.add_many(records, namespace=namespace, progress=progress)

    @_sqlite_errors
    def add_turns(  # noqa: PLR0913 - a conversation's fields
        self,
        turns: Iterable[Turn | Mapping[str, Any] | str],
        *,
        conversation: str,
        session: str | int | None = None,
        session_time: float | str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        source: str | None = None,
    ) -> AddResult:
        """Remember turns of a conversation, in order, each one a memory.

        The conversation id is the memories' document; turns are numbered after the ones
        the conversation already has, so sessions added later keep their order. Each keeps
        ``speaker``, ``role``, ``session`` and ``session_time`` in its metadata and its time
        (else its session's) as ``event_time`` (see :mod:`engramdb.ingest.turns`).

        Example:
            >>> mem.add_turns(
            ...     [{"speaker": "Ann", "role": "user", "text": "I moved to Lisbon."},
            ...      {"speaker": "Bot", "role": "assistant", "text": "Congratulations!"}],
            ...     conversation="ann", session=3, session_time="2024-05-02T10:00:00Z",
            ... )  # doctest: +SKIP

        Raises:
            InvalidInputError: a turn without text or with a bad field, a bad time, an
                empty conversation id or a bad namespace.
            StoreClosedError: the memory was closed.
        """
        check_namespace(namespace)
        store = self.store
        with store.reading():
            last = store.last_ordinal(namespace, conversation)
        records = turn_records(
            turns,
            conversation=conversation,
            session=session,
            session_time=session_time,
            source=source,
            start=0 if last is None else last + 1,
        )
        if not records:
            raise InvalidInputError("no turns to add")
        return self._writer.add_many(records, namespace=namespace)

    def ingest(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> AddResult:
        """Load files and directories, then add everything in one transaction.

        Every input is loaded and checked before anything is written, so one bad file
        leaves the store unchanged.

        Raises:
            IngestError: a path is missing, unreadable, binary, badly encoded or malformed.
        """
        check_namespace(namespace)
        records: list[Record] = []
        for path in paths:
            records += load_path(path, include=include, exclude=exclude)
        if progress is not None:
            progress("load", len(paths), len(paths))
        return self.add_many(records, namespace=namespace, progress=progress)

    @_sqlite_errors
    def forget(
        self,
        ids: Sequence[int] | None = None,
        *,
        source: str | None = None,
        namespace: str | None = None,
        where: Any = None,
    ) -> int:
        """Forget memories by id, by source (optionally in one namespace), or by namespace
        and/or filter.

        Everything derived from them goes too: index entries, near-duplicate bands, cached
        embeddings no other memory uses. Forgetting a source removes its sightings; a memory
        also seen elsewhere stays, with the next sighting as its origin.

        Returns:
            The number of memories removed.

        Raises:
            InvalidInputError: no criterion, ids together with another criterion, or a
                source together with a filter.
            NotFoundError: an unknown namespace.
        """
        check_forget(ids, source, namespace, where)
        store = self.store
        sql, params = self._reader.where(namespace, where)  # a bad filter fails before a write

        def select() -> list[int]:
            if ids is not None:
                return store.delete_memories([int(i) for i in ids])
            if source is not None:
                return [
                    i
                    for name in _source_names(source)
                    for i in store.forget_source(name, namespace=namespace)[0]
                ]
            return store.delete_memories(store.select_ids(sql or "1", params).tolist())

        return self._writer.forget(select)

    # -- reading -------------------------------------------------------------------------

    def recall(  # noqa: PLR0913 - keyword-only options of the main read verb
        self,
        query: str,
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
        steps: int | None = None,
        clues: Sequence[str] | str | None = None,
    ) -> Hits:
        """The ``k`` memories most relevant to ``query``, best first.

        Every hit carries ``relevance``, a calibrated probability that it is relevant
        (monotone in the fused order). With ``min_relevance`` or ``coverage``, only hits that
        pass are returned, and when none does the result is empty with ``abstain=True`` and
        a ``reason``.

        Args:
            query: the question or cue.
            k: how many hits (at most).
            namespace: search only this namespace (default: all).
            where: a filter on columns and metadata, e.g. ``{"speaker": "Alice"}``.
            channels: ``"lexical"``, ``"dense"``, ``"graph"`` (with ``graph.enabled``), or
                groups: ``"hybrid"`` (lexical + dense, the default) and ``"hybrid+graph"``.
            min_relevance: keep hits whose relevance is at least this probability.
            coverage: keep hits above the store's conformal threshold, so that a memory a
                query is about is kept with this probability (e.g. ``0.9``); the threshold
                is computed from the store on first use (see :meth:`calibrate`).
            rerank: ``"lambdarank"`` (``rerank`` extra), ``"mmr"`` (diversity) or a
                :class:`~engramdb.rerank.Reranker`, applied to the fused candidates.
            as_of: read the memory as it was at this time (epoch seconds or ISO-8601): only
                memories valid then — begun by then and not yet superseded — are recalled.
            include_superseded: rank superseded memories where they fall; by default the
                memories still valid come first. Either way each hit shows its
                supersessions and conflicts in ``relations`` (and ``valid_to``).
            now: the time the question is asked (epoch seconds or ISO-8601; default: the
                clock), against which its time expressions ("last Tuesday", "two weeks
                ago") are read.
            steps: recall in up to this many steps (1..5): each step after the first adds
                clues drawn from the previous step's confident hits to the query, and the
                steps' rankings fuse into one; recall stops early when a step adds no new
                confident hit. Each hit's ``why["step"]`` gives the step that found it
                (``rank``) and the clues that led there (``phrases``).
            clues: what later steps add to the query: ``"phrases"`` (the graph's bridge
                phrases as query words, and as new PageRank seeds with the graph channel),
                ``"terms"`` (RM3 expansion terms; default: both with ``graph.enabled``,
                terms alone without the graph),
                ``"centroid"`` (the dense query moved toward the hits' centroid) and/or
                ``"llm"`` (clues drafted by the chat model of ``graph.llm_url``; on failure
                the memory's own clues, with a ``ClueWarning``). Clues without ``steps``
                mean two steps.

        Raises:
            InvalidInputError: an empty query, ``k < 1``, an unknown channel or reranker,
                ``min_relevance``/``coverage`` out of range, a bad ``as_of``, ``steps``
                out of range or an unknown clue.
            NotFoundError: an unknown namespace.
            InvalidFilterError: a malformed filter.
            MissingDependencyError: the reranker needs an extra that is not installed.
            ConfigError: clue ``"llm"`` without ``graph.llm_url`` and ``graph.llm_model``.
        """
        return self.recall_many(
            [query],
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
            steps=steps,
            clues=clues,
        )[0]

    @_sqlite_errors
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
        steps: int | None = None,
        clues: Sequence[str] | str | None = None,
    ) -> list[Hits]:
        """:meth:`recall` for many queries at once (batched per channel).

        Raises:
            InvalidInputError: an empty query, ``k < 1``, an unknown channel or reranker,
                ``min_relevance``/``coverage`` out of range, a bad ``as_of``, ``steps``
                out of range or an unknown clue.
            NotFoundError: an unknown namespace.
            InvalidFilterError: a malformed filter.
            MissingDependencyError: the reranker needs an extra that is not installed.
            ConfigError: clue ``"llm"`` without ``graph.llm_url`` and ``graph.llm_model``.
        """
        if isinstance(queries, str):
            raise InvalidInputError("recall_many takes a list of queries; use recall for one")
        precision = check_precision(min_relevance, coverage, rerank)
        check_k(k)
        moment = strict_time(as_of, "as_of")
        asked = strict_time(now, "now")
        self.store  # noqa: B018 - raises when closed
        chosen = check_channels(channels)
        plan = make_plan(steps, clues, graph=self._graph is not None, config=self.config)
        options = ReadOptions(
            as_of=moment,
            include_superseded=bool(include_superseded),
            now=time.time() if asked is None else asked,
        )
        depth = max(k, self.config.recall.candidates)
        if plan.steps == 1:
            pools = self._reader.recall_many(
                list(queries),
                k=depth,
                namespace=namespace,
                where=where,
                channels=chosen,
                options=options,
            )
        else:
            pools = self._in_steps(list(queries), depth, namespace, where, chosen, options, plan)
        return self._precise(pools, precision, k=k, namespace=namespace)

    def _in_steps(  # noqa: PLR0913 - the parts of one recall
        self,
        queries: list[str],
        depth: int,
        namespace: str | None,
        where: Any,
        channels: tuple[str, ...],
        options: ReadOptions,
        plan: StepPlan,
    ) -> list[Hits]:
        try:
            return recall_in_steps(
                self._reader,
                queries,
                k=depth,
                namespace=namespace,
                where=where,
                channels=channels,
                options=options,
                plan=plan,
                model=self.relevance_model,
            )
        finally:
            if plan.drafter is not None:
                plan.drafter.close()

    def _precise(
        self, pools: list[Hits], precision: Precision, *, k: int, namespace: str | None
    ) -> list[Hits]:
        cal = self._calibrations.get(namespace) if precision.alpha is not None else None
        return [
            apply_precision(
                hits,
                precision,
                k=k,
                model=self.relevance_model,
                calibration=cal,
                vectors_for=self._vectors_for,
            )
            for hits in pools
        ]

    @property
    def relevance_model(self) -> RelevanceModel:
        """The per-query relevance calibration (the bundled one unless replaced).

        Raises:
            IndexFormatError: the bundled model file is corrupt.
        """
        if self._relevance is None:
            self._relevance = RelevanceModel.load()
        return self._relevance

    @relevance_model.setter
    def relevance_model(self, model: RelevanceModel) -> None:
        self._relevance = model

    def _vectors_for(self, hits: Sequence[Hit]) -> Matrix:
        store = self.store
        hashes = {r.id: r.hash for r in store.get_many([h.id for h in hits])}
        cached = store.cached_embeddings(self.embedder.model_id, list(hashes.values()))
        rows = [cached.get(hashes.get(h.id, "")) for h in hits]
        return stack(rows, self.embedder.dim)  # type: ignore[arg-type]

    # -- tools and demonstrations (engramdb.engine._tools) ------------------------------------

    @_sqlite_errors
    def add_tools(
        self, specs: Any, *, namespace: str = DEFAULT_NAMESPACE, server: str | None = None
    ) -> AddToolsResult:
        """Remember tools: OpenAI function/tool JSON, an MCP ``tools/list`` result or JSON
        Schema (see :mod:`engramdb.tools.specs`), one or a list, parsed or as JSON text.

        A tool is its namespace, server and name: given again with an identical spec it is
        left as it is; with a changed spec the new version supersedes the old one (which
        keeps its ``valid_to`` and ``superseded_by``), so only the current one is recalled.

        Args:
            specs: the tool specs.
            namespace: where to keep them.
            server: the source server of specs that name none.

        Raises:
            InvalidInputError: malformed specs, or a bad namespace.
            StoreClosedError: the memory was closed.
        """
        check_namespace(namespace)
        self.store  # noqa: B018 - raises when closed
        return self._tools.add_tools(specs, namespace=namespace, server=server)

    @_sqlite_errors
    def tools(self, *, namespace: str | None = None, versions: bool = False) -> list[Tool]:
        """The stored tools (current versions; every version with ``versions=True``)."""
        self.store  # noqa: B018 - raises when closed
        return self._tools.tools(namespace=namespace, versions=versions)

    @_sqlite_errors
    def add_demo(
        self,
        request: str,
        calls: Any = None,
        answer: str | None = None,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        meta: Mapping[str, Any] | None = None,
    ) -> Demo:
        """Remember a served request with the call(s) it led to (arguments kept), or the
        answer given without one. It attaches to the tools its calls name (and server, when a
        call gives one), current and later versions, and makes them easier to recall for
        similar requests.

        Args:
            request: the request as the agent received it.
            calls: ``[{"name": ..., "arguments": {...}, "server"?: ...}]`` (OpenAI's
                ``{"function": {"name", "arguments"}}`` tool calls are accepted too).
            answer: the answer, when the request was served without a call.
            namespace: where to keep it (the namespace of its tools).
            meta: JSON-serialisable fields of your own.

        Raises:
            InvalidInputError: an empty request, neither calls nor answer, a call without a
                name or with arguments that are not an object, or a bad namespace.
        """
        check_namespace(namespace)
        self.store  # noqa: B018 - raises when closed
        return self._tools.add_demo(request, calls, answer, namespace=namespace, meta=meta)

    @_sqlite_errors
    def demos(self, *, namespace: str = DEFAULT_NAMESPACE) -> list[Demo]:
        """The demonstrations of ``namespace``, oldest first."""
        check_namespace(namespace)
        self.store  # noqa: B018 - raises when closed
        return self._tools.demos(namespace=namespace)

    @_sqlite_errors
    def forget_demos(self, ids: Sequence[int]) -> int:
        """Forget demonstrations by id (their tools stop learning from them at the next
        recall); returns how many were deleted. Unknown ids are ignored.

        Raises:
            InvalidInputError: an id that is not an integer.
        """
        self.store  # noqa: B018 - raises when closed
        return self._tools.forget_demos(ids)

    @_sqlite_errors
    def recall_tools(  # noqa: PLR0913 - keyword-only options of one read
        self,
        request: str,
        k: int = 5,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        min_relevance: float | None = None,
        among: Sequence[int | str] | None = None,
    ) -> ToolHits:
        """The ``k`` tools ``request`` most likely calls, best first (current versions).

        Tools are ranked by their text (dense and BM25) and their usage (the requests of
        demonstrations that called them), fused by a model fitted from the namespace's own
        demonstrations once it has enough of them. Each hit's ``relevance`` is a calibrated
        probability that the request calls it; with ``min_relevance`` only hits that pass
        are returned and, when none does, the result is empty with ``abstain=True``.

        Args:
            request: the request.
            k: how many tools (at most).
            namespace: the namespace of the tools.
            min_relevance: keep hits whose relevance is at least this probability.
            among: choose only among these tools (ids or names), e.g. those connected now.

        Raises:
            InvalidInputError: an empty request, ``k < 1``, ``min_relevance`` outside
                [0, 1] or a bad ``among``.
        """
        self.store  # noqa: B018 - raises when closed
        return self._tools.recall_tools(
            request, k=k, namespace=namespace, min_relevance=min_relevance, among=among
        )

    @_sqlite_errors
    def recall_demos(  # noqa: PLR0913 - keyword-only options of one read
        self,
        request: str,
        k: int = 3,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        min_relevance: float | None = None,
        lambda_: float = 0.7,
    ) -> DemoHits:
        """Worked examples for the prompt: ``k`` demonstrations whose requests are like
        ``request``, diverse (MMR with weight ``lambda_`` on similarity). ``relevance`` is a
        calibrated probability that a demonstration calls a tool the request needs;
        ``min_relevance`` and ``abstain`` work as in :meth:`recall_tools`.

        Raises:
            InvalidInputError: an empty request, ``k < 1``, or ``min_relevance`` or
                ``lambda_`` outside [0, 1].
        """
        self.store  # noqa: B018 - raises when closed
        return self._tools.recall_demos(
            request, k=k, namespace=namespace, min_relevance=min_relevance, lambda_=lambda_
        )

    @_sqlite_errors
    def tool_features(
        self, request: str, *, namespace: str = DEFAULT_NAMESPACE
    ) -> tuple[tuple[Tool, ...], Floats]:
        """The current tools of ``namespace`` and, row by row, their features for
        ``request`` (columns :attr:`ToolFusion.FEATURES`): what a :class:`ToolFusion` ranks.
        For evaluating several fusions on one embedding of the request.

        Raises:
            InvalidInputError: an empty request.
        """
        check_namespace(namespace)
        self.store  # noqa: B018 - raises when closed
        return self._tools.features_of(request, namespace=namespace)

    @_sqlite_errors
    def fit_tool_fusion(
        self, use: Sequence[str], *, namespace: str = DEFAULT_NAMESPACE
    ) -> ToolFusion:
        """A fusion over the features ``use`` fitted from ``namespace``'s demonstrations as
        :meth:`recall_tools` fits its own (:meth:`ToolFusion.default` when there are too
        few).

        Raises:
            InvalidInputError: a feature that is not one of :attr:`ToolFusion.FEATURES`.
        """
        check_namespace(namespace)
        unknown = sorted(set(use) - set(ToolFusion.FEATURES))
        if not use or unknown:
            raise InvalidInputError(
                f"use must name features among {list(ToolFusion.FEATURES)}, got {list(use)}"
            )
        self.store  # noqa: B018 - raises when closed
        return self._tools.fit(namespace, tuple(use))

    @_sqlite_errors
    def calibrate(
        self, *, namespace: str | None = None, cues: int = 200, seed: int = 0
    ) -> ConformalCalibration:
        """Compute and store the conformal relevance threshold of a scope.

        Cues are made from ``cues`` memories drawn at random (a window of each one's
        words, some dropped); each cue is recalled and its source memory's relevance is
        recorded (0 when not among the candidates). :meth:`recall` with ``coverage`` uses
        these scores, and recomputes them when the embedder changes or the scope's
        memory count moves by more than 10%.

        Args:
            namespace: the scope (default: the whole store).
            cues: how many cue → memory pairs (at least ``1/α`` are needed for error
                rate ``α``; 200 serves α ≥ 0.005).
            seed: seed of the draw.

        Raises:
            NotFoundError: an unknown namespace.
            InvalidInputError: ``cues < 1``.
        """
        if cues < 1:
            raise InvalidInputError(f"cues must be >= 1, got {cues}")
        self.store  # noqa: B018 - raises when closed
        return self._calibrations.calibrate(namespace, cues=cues, seed=seed)

    def context(
        self,
        query: str | Sequence[Hit],
        *,
        budget_tokens: int = 1000,
        order: Order = "relevance",
        k: int = 20,
        count_tokens: TokenCounter | str | None = None,
        neighbours: int = 1,
        **recall: Any,
    ) -> Context:
        """A packed, cited context block for a prompt: recall (or given hits) → pack.

        Overlapping chunks are deduplicated, neighbouring chunks or turns of one source
        merge, and blocks are ordered by ``order``; see :func:`engramdb.context.pack`. A
        conversation turn comes with the ``neighbours`` turns before and after it in its
        session (its round: the question it answers, the reply it got), as budget allows.

        Args:
            query: a query to recall for, or hits already recalled (best first).
            budget_tokens: the most tokens the context may count.
            order: ``"relevance"``, ``"edges"`` (best at both ends, for long contexts) or
                ``"chronological"`` (for episodic questions).
            k: how many hits to recall before packing.
            count_tokens: a counter, ``"estimate"`` (default), ``"tiktoken"`` or
                ``"tiktoken:<encoding>"`` (``context`` extra).
            neighbours: turns packed on each side of a turn hit (0: none, at most 5).
            **recall: more :meth:`recall` options (``namespace``, ``where``, ``channels``,
                ``min_relevance``, ``coverage``, ``rerank``).

        Raises:
            InvalidInputError: a bad budget, order or recall option.
            ConfigError: an unknown token counter.
            MissingDependencyError: tiktoken asked for and not installed.
        """
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
        """The turns around each turn hit, within its session, nearest first."""
        store = self.store

        def fetch(places: list[Place]) -> dict[Place, MemoryRecord]:
            found: dict[Place, MemoryRecord] = {}
            with store.reading():
                for (namespace, document), group in itertools.groupby(places, lambda p: p[:2]):
                    ordinals = [ordinal for _, _, ordinal in group]
                    for record in store.at_ordinals(namespace, document, ordinals):
                        if record.position.ordinal is not None:
                            found[(namespace, document, record.position.ordinal)] = record
            return found

        return turns_around(hits, n, fetch)

    @_sqlite_errors
    def recognize(self, text: str, *, namespace: str | None = DEFAULT_NAMESPACE) -> Recognition:
        """Have I seen this? Exact (same normalised content), near-duplicate, or new.

        Args:
            text: the text to look for.
            namespace: where to look (default: the default namespace, as :meth:`add`
                writes); ``None`` looks in every namespace.

        Raises:
            InvalidInputError: empty text or a bad namespace.
        """
        if not isinstance(text, str) or not normalize_text(text):
            raise InvalidInputError("recognize needs non-empty text")
        if namespace is not None:
            check_namespace(namespace)
        return recognize(
            self.store, self._hasher, self.config.recognize.near_threshold, text, namespace
        )

    @_sqlite_errors
    def namespaces(self) -> dict[str, int]:
        """Every namespace that holds memories, with its count of memories."""
        store = self.store
        with store.reading():
            return store.namespaces()

    @_sqlite_errors
    def ids(self, *, namespace: str | None = None, where: Any = None) -> list[int]:
        """The ids of the memories in a namespace and/or matching a filter (all by default),
        in id order.

        Raises:
            NotFoundError: an unknown namespace.
            InvalidFilterError: a malformed filter.
        """
        store = self.store
        with store.reading():
            sql, params = self._reader.where(namespace, where)
            return [int(i) for i in store.select_ids(sql or "1", params).tolist()]

    @_sqlite_errors
    def get_many(self, ids: Sequence[int], *, sightings: bool = False) -> list[MemoryRecord]:
        """Memories by id, in the order asked (missing ids are left out); ``sightings``
        adds every place each was seen."""
        store = self.store
        with store.reading():
            return store.get_many([int(i) for i in ids], sightings=sightings)

    @_sqlite_errors
    def get(self, memory_id: int) -> MemoryRecord:
        """One memory with every place it was seen.

        Raises:
            NotFoundError: no memory has this id.
        """
        store = self.store
        with store.reading():
            return store.get(memory_id)

    @_sqlite_errors
    def related(
        self, memory_id: int, *, k: int = 10, namespaces: Sequence[str] | None = None
    ) -> list[tuple[MemoryRecord, tuple[str, ...]]]:
        """Memories that share the most specific phrases with ``memory_id`` in the memory
        graph, each with the phrases shared; empty when the graph is off.

        Args:
            memory_id: the memory to start from.
            k: how many at most.
            namespaces: keep memories of these namespaces only (default: all).
        """
        check_k(k)
        if self._graph is None:
            return []
        store = self.store
        with store.reading():
            found = self._graph.related(memory_id, limit=k, namespaces=namespaces)
            records = {r.id: r for r in store.get_many([i for i, _ in found])}
        return [(records[i], phrases) for i, phrases in found if i in records]

    # -- facts that change ------------------------------------------------------------------

    @_sqlite_errors
    def supersede(self, old: int, new: int, *, at: float | str | None = None) -> Supersession:
        """Record that memory ``new`` supersedes memory ``old``: ``old`` stays (never
        deleted) but is valid only until ``at`` (default: ``new``'s event time, else its
        ingest time); recall ranks it after the valid memories, and ``as_of`` before ``at``
        still finds it. A conflict recorded between the two is resolved by this.

        Raises:
            NotFoundError: either memory does not exist.
            InvalidInputError: the same memory, two namespaces, ``old`` already superseded
                (undo that first), a cycle, or a bad ``at``.
        """
        moment = strict_time(at, "at")
        now = time.time()
        return self._writer.queue.run(
            lambda _known: validity.supersede(self.store, int(old), int(new), at=moment, now=now)
        )

    @_sqlite_errors
    def unsupersede(self, old: int) -> Supersession:
        """Undo the supersession of ``old`` in force: it is valid again. The link is kept in
        its history, marked undone. Returns the link.

        Raises:
            NotFoundError: no such memory, or it is not superseded.
        """
        now = time.time()
        return self._writer.queue.run(
            lambda _known: validity.undo_supersede(self.store, int(old), now=now)
        )

    @_sqlite_errors
    def history(self, memory_id: int) -> History:
        """The chain of ``memory_id``'s fact: the memories that superseded it or that it
        superseded (and conflicts), oldest first, with every link and its times (undone
        links included).

        Raises:
            NotFoundError: no memory has this id.
        """
        store = self.store
        with store.reading():
            return validity.history(store, int(memory_id))

    @_sqlite_errors
    def propose_changes(
        self,
        judge: Judge,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        limit: int = 200,
        min_similarity: float = 0.5,
    ) -> list[Supersession]:
        """Ask ``judge`` (e.g. :class:`~engramdb.recognize.judge.LLMJudge`) which memories
        of ``namespace`` state a new value of an older one's fact in other words, and record
        its answers as proposals: conflict links with origin ``"judge"`` and detail
        ``{"proposal": "supersede" | "conflict", "reason": ...}``. Nothing becomes invalid;
        accept a proposal with :meth:`supersede`, which resolves it.

        Pairs asked: valid memories with the same ``speaker`` (or none), cached embeddings
        with cosine similarity >= ``min_similarity``, not linked yet; the ``limit`` most
        similar, the older memory first. Pairs judged unrelated are asked again next time.

        Raises:
            InvalidInputError: ``limit < 1``, ``min_similarity`` outside [-1, 1], or more
                than 50,000 valid memories in the namespace.
            StoreError: the store is open read-only.
            ModelError: the judge failed (the proposals it made before are recorded).
        """
        return proposals.propose(
            self.store,
            self.embedder.model_id,
            judge,
            write=lambda fn: self._writer.queue.run(lambda _known: fn()),
            namespace=check_namespace(namespace),
            limit=limit,
            min_similarity=min_similarity,
        )

    # -- export, import, backup -----------------------------------------------------------

    @_sqlite_errors
    def export(
        self, *, namespace: str | None = None, vectors: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every memory of ``namespace`` (all with ``None``), in id order, as JSON-ready
        records with their sightings, times and metadata; a header record comes first.

        The records stream: memories are read a page at a time, each page in one read
        snapshot (so writes that land during a long export may or may not be in it). One
        JSON object per line makes an ``engramdb.export`` JSON Lines file, the format of
        :meth:`import_records` and :meth:`import_file` (described in
        :mod:`engramdb.engine._transfer_format`).

        Args:
            namespace: the namespace to export (default: every one).
            vectors: add each memory's embedding, as base64 of little-endian float32,
                with the embedder's ``model_id`` (an import by the same embedder then
                embeds nothing).

        Raises:
            NotFoundError: an unknown namespace (raised at once, not on iteration).
            StoreClosedError: the memory was closed.
        """
        store = self.store
        if namespace is not None:
            with store.reading():
                self._reader.where(namespace, None)
        return export_records(store, self.embedder, namespace=namespace, vectors=vectors)

    @_sqlite_errors
    def import_records(
        self, records: Iterable[Mapping[str, Any]], *, namespace: str | None = None
    ) -> ImportResult:
        """Import exported memory records (from :meth:`export`), with their sightings,
        times and metadata, a transaction per batch of records.

        A memory whose namespace already holds its content merges: its sightings are added,
        those already recorded skipped (so importing twice changes nothing the second time).
        A vector in a record is used when the store's embedder made it; other texts are
        embedded. Records in a list or tuple are all checked before anything is written;
        from another iterable, each batch is checked before it is written (earlier batches
        stay).

        Args:
            records: export records (header records are checked and skipped).
            namespace: import every record into this namespace instead of its own.

        Raises:
            IngestError: a malformed record (an :class:`InvalidInputError`), naming its
                1-based position as "line N"; its batch is not written.
            InvalidInputError: a bad ``namespace``.
            StoreClosedError: the memory was closed.
        """
        self.store  # noqa: B018 - raises when closed
        check_first = enumerate(records, start=1) if isinstance(records, list | tuple) else None
        return import_numbered(
            self._writer,
            enumerate(records, start=1),
            namespace=namespace,
            name=None,
            check_first=check_first,
        )

    @_sqlite_errors
    def import_file(
        self, source: str | os.PathLike[str] | IO[bytes], *, namespace: str | None = None
    ) -> ImportResult:
        """:meth:`import_records` from an ``engramdb.export`` JSON Lines file (checked in
        full before the first write) or a binary stream such as ``sys.stdin.buffer``
        (checked batch by batch). Lines are read one at a time.

        Raises:
            IngestError: the file cannot be read, or a line is malformed, too long, or
                nested too deeply (naming the file and the line).
            InvalidInputError: a bad ``namespace``.
            StoreClosedError: the memory was closed.
        """
        self.store  # noqa: B018 - raises when closed
        return import_file(self._writer, source, namespace=namespace)

    @_sqlite_errors
    def backup(self, dest: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy the store, while others go on writing, to the file ``dest``.

        The copy is one consistent state, made with SQLite's backup API from a read
        connection into a temporary file beside ``dest``, checked with ``PRAGMA
        integrity_check``, then renamed into place (``dest`` never holds a partial copy).

        Args:
            dest: the backup file.
            overwrite: replace ``dest`` when it exists.

        Returns:
            The path of the backup.

        Raises:
            InvalidInputError: ``dest`` exists (without ``overwrite``), is the store
                itself, is a folder, or its folder is missing.
            CorruptStoreError: the copy fails its integrity check.
            StoreError: the copy could not be written.
            StoreClosedError: the memory was closed.
        """
        return backup(self.store, dest, overwrite=overwrite)

    @_sqlite_errors
    def check(self) -> list[str]:
        """Problems found in the store and its indexes (an empty list: all is well).

        Runs SQLite's ``integrity_check`` (reads the whole file) and compares the memories
        with the lexical index's rows and the dense index's vectors, in one snapshot.
        """
        store = self.store
        with store.reading() as seq:
            problems = [f"sqlite: {p}" for p in store.integrity()]
            memories = store.counts()["memories"]
            rows = int(self._lexical.stats()["rows"])
            view = self._dense.view(seq)
            vectors = len(view) if view is not None else len(self._dense)
        if rows != memories:
            problems.append(f"the lexical index has {rows} rows for {memories} memories")
        if vectors != memories:
            problems.append(f"the dense index has {vectors} vectors for {memories} memories")
        return problems

    @_sqlite_errors
    def stats(self) -> Stats:
        """Counts, sizes and index freshness."""
        store = self.store
        with store.reading():
            counts = store.counts()
            return Stats(
                path=store.path,
                namespaces=store.namespaces(),
                memories=counts["memories"],
                sightings=counts["sightings"],
                sources=counts["sources"],
                embeddings=counts["embeddings"],
                db_bytes=store.size_bytes(),
                data_version=store.data_version,
                embedder=self.embedder.model_id,
                lexical=LexicalStats(**self._lexical.stats()),  # type: ignore[arg-type]
                dense=self._dense.stats(),
                graph=self._graph_stats(),
            )

    def _graph_stats(self) -> GraphStats | None:
        if self._graph is None:
            return None
        info = self._graph.stats()
        return GraphStats(
            extractor=str(info["extractor"]),
            phrases=int(info["phrases"]),
            passages=int(info["passages"]),
            mentions=int(info["mentions"]),
            pair_edges=int(info["pair_edges"]),
            synonym_edges=int(info["synonym_edges"]),
        )
