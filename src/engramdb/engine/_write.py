"""The write path: records → chunks → recognition → embeddings → one transaction."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from engramdb.config import EngineConfig
from engramdb.embed.base import Embedder
from engramdb.engine._commit import CommitQueue
from engramdb.engine._dense import DenseIndex
from engramdb.engine._pipeline import EmbedAhead, Todo
from engramdb.engine._validity import NewFact, keys_of, link_new
from engramdb.errors import InvalidInputError, StoreError
from engramdb.graph.channel import GraphChannel, Prepared
from engramdb.ingest import chunk_text, content_hash, normalize_for_hash, normalize_text
from engramdb.ingest.chunk import estimate_tokens
from engramdb.recognize import best_near, scan_near
from engramdb.recognize.minhash import MinHasher, Signature, shingles
from engramdb.store.sqlite import NewMemory, NewSighting, SQLiteStore
from engramdb.types import AddResult, Matrix, MemoryRecord, Recognition, Record

__all__ = [
    "MAX_CANDIDATES",
    "Item",
    "Lookup",
    "Progress",
    "Recognizer",
    "StoreLookup",
    "Timings",
    "Writer",
    "add_result",
    "check_forget",
    "check_namespace",
    "chunk_items",
    "decide",
    "grams_of",
    "ranked_candidates",
    "recognize",
    "recognize_items",
    "to_record",
]

Progress = Callable[[str, int, int], None]
"""Progress callback: ``(stage, done, total)``."""

_NAMESPACE = re.compile(r"^[\w.\-:@]{1,128}$")
MAX_CANDIDATES = 64
_ATTEMPTS = 4
_WINDOW = 256
"""Items recognised per read snapshot (the embedder learns their decisions after each)."""
_GROUP = 256
"""Texts per group handed to the embedder, at least (else ``16 x embed.batch_size``)."""


class _Conflict(Exception):
    """A decision made before the transaction no longer holds; prepare the write again."""


def add_result(items: Sequence[Item], ids: Sequence[int], embedded: int) -> AddResult:
    """What an ``add_many`` did with its chunks (an item's negative score: its sighting
    was already recorded there)."""
    return AddResult(
        ids=tuple(ids),
        added=sum(1 for it in items if it.kind == "new"),
        exact=sum(1 for it in items if it.kind == "exact" and it.score >= 0),
        near=sum(1 for it in items if it.kind == "near" and it.score >= 0),
        skipped=sum(1 for it in items if it.score < 0),
        embedded=embedded,
        decisions=tuple("skipped" if it.score < 0 else it.kind for it in items),
        inputs=tuple(it.origin for it in items),
    )


def check_forget(
    ids: Sequence[int] | None, source: str | None, namespace: str | None, where: Any
) -> None:
    """Check that a forget names exactly one kind of criterion.

    Raises:
        InvalidInputError: no criterion, or criteria that do not go together.
    """
    given = [ids is not None, source is not None, where is not None]
    if sum(given) > 1 or (ids is not None and namespace is not None):
        raise InvalidInputError(
            "forget needs exactly one of: ids, source (with or without a namespace), "
            "or namespace/where"
        )
    if not any(given) and namespace is None:
        raise InvalidInputError("forget needs exactly one of: ids, source, or namespace/where")


def check_namespace(namespace: str) -> str:
    """Validate a namespace name.

    Raises:
        InvalidInputError: not a string of 1–128 word characters, ``.``, ``-``, ``:`` or ``@``.
    """
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise InvalidInputError(
            f"invalid namespace {namespace!r}: use 1-128 letters, digits, '_', '.', '-', ':' or '@'"
        )
    return namespace


def to_record(item: Record | Mapping[str, Any] | str) -> Record:
    """Accept a Record, a plain string or a mapping with ``text`` and Record fields.

    Raises:
        InvalidInputError: the item has no usable text or unknown fields.
    """
    if isinstance(item, Record):
        record = item
    elif isinstance(item, str):
        record = Record(text=item)
    elif isinstance(item, Mapping):
        allowed = set(Record.__dataclass_fields__)
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise InvalidInputError(
                f"unknown record field(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}"
            )
        try:
            record = Record(**dict(item))
        except TypeError as exc:
            raise InvalidInputError(f"invalid record: {exc}") from exc
    else:
        raise InvalidInputError(
            f"cannot add a {type(item).__name__}; give a str, a Record or a mapping"
        )
    if not isinstance(record.text, str):
        raise InvalidInputError(f"record text must be a str, got {type(record.text).__name__}")
    if record.event_time is not None and not (
        isinstance(record.event_time, (int, float)) and math.isfinite(record.event_time)
    ):
        raise InvalidInputError(f"event_time must be epoch seconds, got {record.event_time!r}")
    return record


@dataclass(slots=True)
class Item:
    """One chunk on its way into the store."""

    namespace: str
    text: str
    hash: str
    norm: str
    sighting: NewSighting
    meta: Mapping[str, Any]
    kind: Literal["new", "exact", "near"] = "new"
    target: int | None = None  # existing memory id for exact/near
    batch_target: int | None = None  # index of an earlier new item in this batch
    score: float = 1.0
    grams: frozenset[str] = field(default_factory=frozenset)
    signature: Signature | None = None
    origin: int = 0  # the index of the input record this chunk came from
    facts: tuple[bytes, ...] = ()  # fact keys (engramdb.recognize.facts), new items only


class Timings:
    """Seconds the write path spent per step, summed over every write since it was made (or
    since :meth:`reset`); ``bench/ingest.py`` reports them per memory.

    Steps before the transaction: ``chunk`` (records checked, normalised, chunked, hashed),
    ``recognize`` (exact and near-duplicate lookups, MinHash signatures), ``cache_read``
    (cached vectors looked up), ``facts`` (fact keys of new memories), ``cache_write`` (fresh
    vectors cached, a short transaction per group), ``graph_prepare`` (phrase extraction),
    ``embed`` (inside the embedder, on its own thread: it overlaps the other steps) and
    ``embed_wait`` (the write waiting for the embedder with nothing else left to do).
    Inside the transaction: ``begin`` (waiting for the write lock), ``recheck``, ``vectors``
    (cache rows again, for vectors forgotten meanwhile), ``rows`` (memory rows with their
    origin sighting: the lexical index's, the change log's and the id triggers fire here),
    ``bands`` (MinHash bands and signatures), ``sightings`` (duplicates' sightings),
    ``fact_links``, ``graph_write``, ``dense_stage`` and ``commit`` (``COMMIT`` and publishing
    the dense view); after it, ``maintain`` (the dense index's upkeep).

    Updated without a lock: writes of several threads at once may lose a few additions.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        """Add the time the ``with`` block takes to ``step``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(step, time.perf_counter() - start)

    def add(self, step: str, seconds: float) -> None:
        """Add ``seconds`` to ``step``."""
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds

    def reset(self) -> None:
        """Start again from nothing."""
        self.seconds = {}


@dataclass(slots=True)
class _Ready:
    """What a write brings to its transaction: the indices of its new items, their vectors
    row for row, how many vectors it embedded, and the graph's prepared passages."""

    new: list[int]
    vectors: Matrix
    embedded: int
    graph: Prepared | None


class Writer:
    """Runs ``add_many`` for a Memory: owns nothing, uses the Memory's parts.

    Attributes:
        pipeline: embed on a thread of its own while the rest of the write goes on (the
            default); ``False`` embeds in turn on the calling thread once recognition is
            done (the sequential path: the same store, the same groups less the texts the
            thread would have embedded before they were found to be duplicates).
        timings: seconds spent per step (:class:`Timings`).
    """

    def __init__(  # noqa: PLR0913 - the Memory's parts
        self,
        store: SQLiteStore,
        embedder: Embedder,
        dense: DenseIndex,
        hasher: MinHasher,
        config: EngineConfig,
        graph: GraphChannel | None = None,
        *,
        pipeline: bool = True,
    ):
        self.store = store
        self.embedder = embedder
        self.dense = dense
        self.hasher = hasher
        self.config = config
        self.graph = graph
        self.pipeline = pipeline
        self.timings = Timings()
        self.queue = CommitQueue(store, dense, timings=self.timings)

    def add_many(
        self,
        records: Iterable[Record | Mapping[str, Any] | str],
        *,
        namespace: str,
        progress: Progress | None = None,
    ) -> AddResult:
        """Chunk, recognise, embed and store ``records`` in one transaction.

        The slow steps (chunking, recognition, embedding, phrase extraction) run on read
        snapshots without any lock, the embedding beside the others (:meth:`_prepare`); the
        commit re-checks what may have changed meanwhile (another writer stored the same
        text, a matched memory was forgotten) and, when a decision no longer holds, prepares
        again (a few times at most).

        Raises:
            StoreError: other writers kept invalidating this write.
        """
        check_namespace(namespace)
        checked = [to_record(r) for r in records]
        for _ in range(_ATTEMPTS):
            with self.timings("chunk"):
                items = self._chunk(checked, namespace)
            ready = self._prepare(items, progress)
            try:
                ids = self._commit(items, ready)
            except _Conflict:
                continue
            with self.timings("maintain"):
                self.dense.maintain()
            return add_result(items, ids, ready.embedded)
        raise StoreError(
            f"this write was overtaken by other writers {_ATTEMPTS} times (the memories it "
            "matched kept being forgotten); nothing was written, try again"
        )

    # -- steps ------------------------------------------------------------------------------

    def _chunk(self, records: Sequence[Record], namespace: str) -> list[Item]:
        return chunk_items(records, namespace, self.config)

    def _prepare(self, items: list[Item], progress: Progress | None) -> _Ready:
        """Recognise ``items`` in order, ``_WINDOW`` of them per read snapshot, while the
        embedder, on its own thread, embeds the texts without a cached vector in order of
        their token counts (:class:`_Embedding`); fact keys and the graph's phrases are made
        meanwhile.

        Decisions are the same as with one snapshot for the whole call (a later item is
        compared with every earlier one of the call, whatever window it was in): only what
        other writers commit between two windows may be seen by the later one, and the
        commit re-checks that anyway.
        """
        store, timings = self.store, self.timings
        recognizer = Recognizer(items, StoreLookup(store, self.hasher), self.hasher, self.config)
        new: list[int] = []
        with _Embedding(self, items, progress) as embedding:
            with store.reading(), timings("cache_read"):
                embedding.start()
            for start in range(0, len(items), _WINDOW):
                window = range(start, min(start + _WINDOW, len(items)))
                with store.reading(), timings("recognize"):
                    recognizer.run(window.start, window.stop)
                embedding.decided(items[window.start : window.stop])
                fresh = [i for i in window if items[i].kind == "new"]
                if self.config.recognize.supersede:
                    with timings("facts"):
                        for i in fresh:
                            items[i].facts = keys_of(items[i].text, items[i].meta)
                new += fresh
                embedding.take_ready()
            graph = self._prepare_graph([items[i].text for i in new], progress)
            embedding.take_all()
            vectors = embedding.matrix([items[i].hash for i in new])
            return _Ready(new, vectors, embedding.embedded, graph)

    def _prepare_graph(self, texts: Sequence[str], progress: Progress | None) -> Prepared | None:
        """Phrases and new-phrase vectors for the graph (slow: runs before the transaction)."""
        if self.graph is None or not texts:
            return None
        with self.timings("graph_prepare"):
            prepared = self.graph.prepare(texts)
        if progress is not None:
            progress("graph", len(texts), len(texts))
        return prepared

    def _commit(self, items: list[Item], ready: _Ready) -> list[int]:
        return self.queue.run(lambda known: self._write(items, ready, known))

    def _write(self, items: list[Item], ready: _Ready, known: dict[int, Any]) -> list[int]:
        """The commit step, inside the (shared) write transaction: the new memories' rows in
        item order (so their ids are), then the sightings of the duplicates."""
        ids: list[int] = [0] * len(items)
        now = time.time()
        store, timings = self.store, self.timings
        with timings("recheck"):
            self._recheck(items)
        row = dict(zip(ready.new, range(len(ready.new)), strict=True))
        kept = [i for i in ready.new if items[i].kind == "new"]
        if kept:  # forgetting may have dropped them from the cache meanwhile
            with timings("vectors"):
                store.put_embeddings(
                    self.embedder.model_id,
                    [items[i].hash for i in kept],
                    ready.vectors[[row[i] for i in kept]],
                    replace=False,
                )
        with timings("rows"):
            for i in kept:
                item = items[i]
                memory = NewMemory(
                    namespace=item.namespace,
                    text=item.text,
                    hash=item.hash,
                    sighting=item.sighting,
                    meta=item.meta,
                )
                ids[i] = store.insert_memory(memory, now=now)
                known[ids[i]] = ready.vectors[row[i]]
        with timings("bands"):
            for i in kept:
                signature = items[i].signature
                if signature is not None:
                    store.put_bands(ids[i], signature.bands, signature.to_bytes())
        with timings("sightings"):
            self._sightings(items, ids, now)
        facts = [
            NewFact(
                id=ids[i],
                namespace=items[i].namespace,
                text=items[i].text,
                valid_from=_valid_from(items[i].sighting.event_time, now),
                keys=items[i].facts,
            )
            for i in kept
            if items[i].facts
        ]
        if facts:
            with timings("fact_links"):
                link_new(store.conn, facts, now=now)
        graph = ready.graph
        if graph is not None and self.graph is not None and kept:
            keep = set(kept)
            part = Prepared(
                extractions=tuple(
                    ex for i, ex in zip(ready.new, graph.extractions, strict=True) if i in keep
                ),
                vectors=graph.vectors,
            )
            with timings("graph_write"):
                self.graph.write([ids[i] for i in kept], part)
        return ids

    def _sightings(self, items: list[Item], ids: list[int], now: float) -> None:
        """Record each duplicate item as a sighting of the memory it matched (``ids`` holds
        those of this write's new items)."""
        for index, item in enumerate(items):
            if item.kind == "new":
                continue
            target = item.target if item.target is not None else ids[item.batch_target or 0]
            ids[index] = target
            added = self.store.add_sighting(
                target, item.sighting, kind=item.kind, score=item.score, now=now
            )
            if not added:
                item.score = -1.0  # already recorded here: a re-ingest, nothing changed

    def forget(self, select: Callable[[], list[int]]) -> int:
        """Delete the memories ``select`` returns (it runs inside the transaction, and
        deletes what it selects), with the cached vectors no memory uses any more."""

        def job(known: dict[int, Any]) -> int:
            gone = select()
            if gone:
                self.store.drop_orphan_embeddings()
            return len(gone)

        count = self.queue.run(job)
        self.dense.maintain()
        return count

    def _recheck(self, items: list[Item]) -> None:
        """Inside the transaction: redo the decisions another writer may have changed.

        A text decided new that another writer stored meanwhile becomes a sighting of that
        memory; a matched memory that was forgotten meanwhile makes the write start over.

        Raises:
            _Conflict: a memory this write matched no longer exists.
        """
        store = self.store
        for item in items:
            if item.kind == "new":
                existing = store.find_hash(item.namespace, item.hash)
                if existing is not None:
                    item.kind, item.target, item.score = "exact", existing, 1.0
            elif item.target is not None and not store.exists(item.target):
                raise _Conflict
        for item in items:  # an item merged into a batch item that is no longer new
            if item.batch_target is not None and items[item.batch_target].kind != "new":
                first = items[item.batch_target]
                item.target, item.batch_target = first.target, None


class _Embedding:
    """The vectors of one write's new texts, embedded ahead of recognition.

    Every text of the call without a cached vector is a candidate. Candidates are embedded
    in order of their estimated token count over the whole call, ``16 x embed.batch_size``
    (at least ``_GROUP``) at a time, by an :class:`EmbedAhead` thread that starts before
    recognition and runs beside it. The embedder pads each batch to its longest text: groups
    cut from the input in order cost about 15% more padded tokens than the bare embedder
    sorting all of it (27% more attention, on mixed-length texts), groups sorted within
    parts of the input 6%, groups of 512 from the whole call sorted by estimated tokens
    under 1% (``bench/ingest.py``). Each group leaves out the texts that recognition has
    found no use for (every item with that text a duplicate); a text taken before its items
    were decided is embedded anyway, and its vector is kept only if one of them is new.

    Vectors are cached group by group as they come (a write killed later keeps them, and a
    rerun does not embed them again); those of texts not decided yet wait for the decision.
    """

    def __init__(self, writer: Writer, items: list[Item], progress: Progress | None):
        self.store = writer.store
        self.model = writer.embedder.model_id
        self.dim = writer.embedder.dim
        self.timings = writer.timings
        self.progress = progress
        self.size = max(writer.config.embed.batch_size * 16, _GROUP)
        self.ahead = EmbedAhead(
            writer.embedder.embed_documents, self._next_group, threaded=writer.pipeline
        )
        self.texts: dict[str, str] = {}
        for it in items:
            self.texts.setdefault(it.hash, it.text)
        self.todo: deque[str] = deque()  # candidates not handed to the embedder yet
        self.undecided = Counter(it.hash for it in items)  # items not decided yet, per text
        self.needed: set[str] = set()  # texts of new items
        self.unneeded: set[str] = set()  # texts whose every item is a duplicate
        self.known: dict[str, np.ndarray[Any, Any]] = {}
        self.held: dict[str, np.ndarray[Any, Any]] = {}  # fresh vectors of undecided texts
        self.lock = threading.Lock()
        self.total = 0  # candidates still wanted
        self.embedded = 0  # fresh vectors kept

    def __enter__(self) -> _Embedding:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ahead.close()
        self.timings.add("embed", self.ahead.busy)

    def start(self) -> None:
        """Find the cached vectors (in the caller's read snapshot), sort the candidates and
        start the embedder."""
        cached = self.store.cached_embeddings(self.model, list(self.texts))
        self.known.update(cached)
        fresh = [h for h in self.texts if h not in cached]
        self.todo.extend(sorted(fresh, key=lambda h: estimate_tokens(self.texts[h])))
        self.total = len(fresh)
        self.ahead.start()

    def decided(self, items: Sequence[Item]) -> None:
        """Learn the decisions of ``items`` (recognised just now)."""
        with self.lock:
            for it in items:
                digest = it.hash
                if it.kind == "new":
                    self.needed.add(digest)
                self.undecided[digest] -= 1
                if not self.undecided[digest] and digest not in self.needed:
                    self.unneeded.add(digest)
                    if digest not in self.known:
                        self.total -= 1

    def take_ready(self) -> None:
        """Keep the groups the embedder finished so far (its error waits for
        :meth:`take_all`, so that the vectors made before it are all cached)."""
        for keys, vectors in self.ahead.ready():
            self._keep(keys, vectors)

    def take_all(self) -> None:
        """Once every item is decided: keep the vectors held back, then wait for every
        group left, keeping each."""
        held, self.held = self.held, {}
        self._keep(list(held), list(held.values()))
        groups = self.ahead.finish()
        while True:
            with self.timings("embed_wait"):
                group = next(groups, None)
            if group is None:
                return
            self._keep(*group)

    def matrix(self, hashes: Sequence[str]) -> Matrix:
        """The vectors of ``hashes``, row for row."""
        if not hashes:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([self.known[h] for h in hashes]).astype(np.float32, copy=False)

    def _next_group(self) -> Todo | None:
        """The next candidates to embed, leaving out those known to be of no use (on the
        embedder's thread)."""
        keys: list[str] = []
        with self.lock:
            while self.todo and len(keys) < self.size:
                digest = self.todo.popleft()
                if digest not in self.unneeded:
                    keys.append(digest)
        return (keys, [self.texts[h] for h in keys]) if keys else None

    def _keep(self, keys: Sequence[str], vectors: Iterable[np.ndarray[Any, Any]]) -> None:
        keep: list[str] = []
        for digest, vector in zip(keys, vectors, strict=True):
            if digest in self.needed:
                self.known[digest] = vector
                keep.append(digest)
            elif digest not in self.unneeded:
                self.held[digest] = vector
        if keep and not self.store.readonly:
            with self.timings("cache_write"), self.store.atomic(bump=False):
                self.store.put_embeddings(
                    self.model, keep, np.stack([self.known[h] for h in keep]), replace=False
                )
        self.embedded += len(keep)
        if keep and self.progress is not None:
            self.progress("embed", self.embedded, self.total)


def _valid_from(event_time: float | None, now: float) -> float:
    return now if event_time is None else event_time


def recognize(
    store: SQLiteStore,
    hasher: MinHasher,
    threshold: float,
    text: str,
    namespace: str | None,
) -> Recognition:
    """Exact, near-duplicate or new: the decision :meth:`Writer.add_many` would make for
    ``text`` (one read snapshot; ``namespace=None`` looks everywhere)."""

    def exact(digest: str) -> int | None:
        where = "m.hash = ?" + (" AND m.namespace = ?" if namespace is not None else "")
        found = store.select_ids(where, [digest] + ([namespace] if namespace else []))
        return int(found[0]) if found.size else None

    with store.reading():
        return decide(
            text,
            hasher,
            threshold,
            exact=exact,
            near=lambda bands: _stored_candidates(store, hasher, namespace, bands),
            get=store.get,
        )


def decide(  # noqa: PLR0913 - the text and where to look for it
    text: str,
    hasher: MinHasher,
    threshold: float,
    *,
    exact: Callable[[str], int | None],
    near: Callable[[Sequence[bytes]], list[tuple[int, str, frozenset[str]]]],
    get: Callable[[int], MemoryRecord],
) -> Recognition:
    """Recognition of one text: ``exact`` finds the memory with its content hash (the
    smallest id), ``near`` the stored candidates sharing its MinHash bands, ``get`` reads
    the memory matched (one store, or a cluster's shards)."""
    text = normalize_text(text)
    found = exact(content_hash(text))
    if found is not None:
        return Recognition(kind="exact", score=1.0, match=get(found))
    grams, sig = hasher.signatures([normalize_for_hash(text)])[0]
    scan = scan_near(text, grams, near(sig.bands), threshold=threshold)
    if scan.match is not None:
        return Recognition(kind="near", score=scan.match.score, match=get(scan.match.key))
    return Recognition(kind="new", score=scan.top.score if scan.top else 0.0, match=None)


def ranked_candidates(
    matches: Sequence[tuple[int, int]], texts: Mapping[int, str], hasher: MinHasher
) -> list[tuple[int, str, frozenset[str]]]:
    """Band matches gathered from several stores (``(id, bands shared)``) as one store
    ranks them: most shared bands first, then by id, at most ``MAX_CANDIDATES``, as
    ``(id, text, shingles)``."""
    ranked = sorted(matches, key=lambda m: (-m[1], m[0]))[:MAX_CANDIDATES]
    return [(i, texts[i], grams_of(hasher, texts[i])) for i, _ in ranked]


def _stored_candidates(
    store: SQLiteStore, hasher: MinHasher, namespace: str | None, bands: Sequence[bytes]
) -> list[tuple[int, str, frozenset[str]]]:
    """Stored memories that share a MinHash band: ``(id, text, shingles)``, as
    :func:`~engramdb.recognize.best_near` takes them."""
    found = store.band_candidates(namespace, bands, MAX_CANDIDATES)
    return [
        (memory_id, text, grams_of(hasher, text)) for memory_id, text in store.texts(found).items()
    ]


def grams_of(hasher: MinHasher, text: str) -> frozenset[str]:
    """The shingles near-duplicate scores compare (as MinHash signatures are made)."""
    return shingles(normalize_for_hash(text), hasher.shingle)


class Lookup(Protocol):
    """Where recognition finds stored memories: one store, or a cluster's shards."""

    def find_hash(self, namespace: str, text_hash: str) -> int | None:
        """The memory of this namespace with this content hash, if any."""
        ...

    def candidates(
        self, namespace: str, bands: Sequence[bytes]
    ) -> list[tuple[int, str, frozenset[str]]]:
        """Stored memories sharing a band key: ``(id, text, shingles)``, most shared bands
        first (at most ``MAX_CANDIDATES``)."""
        ...


class StoreLookup:
    """:class:`Lookup` on one store."""

    def __init__(self, store: SQLiteStore, hasher: MinHasher):
        self.store = store
        self.hasher = hasher

    def find_hash(self, namespace: str, text_hash: str) -> int | None:
        return self.store.find_hash(namespace, text_hash)

    def candidates(
        self, namespace: str, bands: Sequence[bytes]
    ) -> list[tuple[int, str, frozenset[str]]]:
        return _stored_candidates(self.store, self.hasher, namespace, bands)


def chunk_items(records: Sequence[Record], namespace: str, config: EngineConfig) -> list[Item]:
    """The chunks of ``records`` on their way into a store (nothing recognised yet)."""
    items: list[Item] = []
    for origin, record in enumerate(records):
        text = normalize_text(record.text)
        if not text:
            continue
        pieces = chunk_text(text, config.chunk) if record.chunk else None
        if not pieces or len(pieces) == 1:
            spans = [(text, 0, len(text), record.ordinal)]
        else:
            spans = [(p.text, p.start, p.end, p.index) for p in pieces]
        for piece, start, end, ordinal in spans:
            norm = normalize_for_hash(piece)
            digest = content_hash(piece)
            sighting = NewSighting(
                source=record.source,
                document=record.document if record.document is not None else record.source,
                ordinal=ordinal,
                start=start,
                end=end,
                event_time=record.event_time,
                text_hash=digest,
            )
            meta = dict(record.meta)
            items.append(Item(namespace, piece, digest, norm, sighting, meta, origin=origin))
    if not items and records:
        raise InvalidInputError("nothing to add: every text is empty or whitespace")
    return items


def recognize_items(
    items: list[Item], lookup: Lookup, hasher: MinHasher, config: EngineConfig
) -> None:
    """Decide, in order, whether each item is new, an exact or a near duplicate of a stored
    memory (``lookup``) or of an earlier new item of the batch."""
    Recognizer(items, lookup, hasher, config).run(0, len(items))


class Recognizer:
    """:func:`recognize_items` a part at a time: :meth:`run` decides items ``start`` to
    ``stop`` (parts in order, each after the one before), comparing each with the stored
    memories and with every earlier new item of ``items``, whichever part it was in."""

    def __init__(self, items: list[Item], lookup: Lookup, hasher: MinHasher, config: EngineConfig):
        self.items = items
        self.lookup = lookup
        self.hasher = hasher
        self.config = config
        self.seen: dict[tuple[str, str], int] = {}
        self.bands: dict[tuple[int, bytes], list[int]] = {}
        self.done = 0

    def run(self, start: int, stop: int) -> None:
        """Decide items ``start`` to ``stop`` (``start`` is where the last part stopped)."""
        if start != self.done:
            raise ValueError(f"items {start}..{stop} out of order: {self.done} decided so far")
        items, lookup, hasher, seen, bands = (
            self.items, self.lookup, self.hasher, self.seen, self.bands
        )  # fmt: skip
        for index in range(start, stop):
            item = items[index]
            existing = lookup.find_hash(item.namespace, item.hash)
            if existing is not None:
                item.kind, item.target = "exact", existing
            elif (item.namespace, item.hash) in seen:
                item.kind, item.batch_target = "exact", seen[(item.namespace, item.hash)]
            else:
                if item.signature is None:  # (a cluster computes them first, to look up bands)
                    item.grams, item.signature = hasher.signatures([item.norm])[0]
                if self.config.recognize.enabled:
                    _near(item, items, bands, lookup, hasher, self.config)
                item.grams = frozenset()  # large: remade from the text if a later item needs it
            if item.kind == "new":
                seen[(item.namespace, item.hash)] = index
                if item.signature is not None:
                    for band, key in enumerate(item.signature.bands):
                        bands.setdefault((band, key), []).append(index)
        self.done = stop


def _near(  # noqa: PLR0913 - the batch so far and the parts that decide
    item: Item,
    items: list[Item],
    bands: dict[tuple[int, bytes], list[int]],
    lookup: Lookup,
    hasher: MinHasher,
    config: EngineConfig,
) -> None:
    """Merge ``item`` into a stored memory or an earlier new item of this batch, when
    :func:`~engramdb.recognize.best_near` says so (stored memories win ties)."""
    sig = item.signature
    assert sig is not None
    candidates: list[tuple[tuple[int, int], str, frozenset[str]]] = [
        ((0, memory_id), text, grams)
        for memory_id, text, grams in lookup.candidates(item.namespace, sig.bands)
    ]
    local = {j for band, key in enumerate(sig.bands) for j in bands.get((band, key), ())}
    candidates += [((1, j), items[j].text, grams_of(hasher, items[j].text)) for j in sorted(local)]
    match = best_near(item.text, item.grams, candidates, threshold=config.recognize.near_threshold)
    if match is not None:
        where, key = match.key
        item.kind, item.score = "near", match.score
        item.target, item.batch_target = (key, None) if where == 0 else (None, key)
