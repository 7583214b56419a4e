"""The write path: records → chunks → recognition → embeddings → one transaction."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from engramdb.config import EngineConfig
from engramdb.embed.base import Embedder
from engramdb.engine._commit import CommitQueue
from engramdb.engine._dense import DenseIndex
from engramdb.engine._validity import NewFact, keys_of, link_new
from engramdb.errors import InvalidInputError, StoreError
from engramdb.graph.channel import GraphChannel, Prepared
from engramdb.ingest import chunk_text, content_hash, normalize_for_hash, normalize_text
from engramdb.recognize import best_near, scan_near
from engramdb.recognize.minhash import MinHasher, Signature, shingles
from engramdb.store.sqlite import NewMemory, NewSighting, SQLiteStore
from engramdb.types import AddResult, Matrix, MemoryRecord, Recognition, Record

__all__ = [
    "MAX_CANDIDATES",
    "Item",
    "Lookup",
    "Progress",
    "StoreLookup",
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


class Writer:
    """Runs ``add_many`` for a Memory: owns nothing, uses the Memory's parts."""

    def __init__(
        self,
        store: SQLiteStore,
        embedder: Embedder,
        dense: DenseIndex,
        hasher: MinHasher,
        config: EngineConfig,
        graph: GraphChannel | None = None,
    ):
        self.store = store
        self.embedder = embedder
        self.dense = dense
        self.hasher = hasher
        self.config = config
        self.graph = graph
        self.queue = CommitQueue(store, dense)

    def add_many(
        self,
        records: Iterable[Record | Mapping[str, Any] | str],
        *,
        namespace: str,
        progress: Progress | None = None,
    ) -> AddResult:
        """Chunk, recognise, embed and store ``records`` in one transaction.

        The slow steps (chunking, recognition, embedding, phrase extraction) run on a read
        snapshot without any lock; the commit re-checks what may have changed meanwhile
        (another writer stored the same text, a matched memory was forgotten) and, when a
        decision no longer holds, prepares again (a few times at most).

        Raises:
            StoreError: other writers kept invalidating this write.
        """
        check_namespace(namespace)
        checked = [to_record(r) for r in records]
        for _ in range(_ATTEMPTS):
            items = self._chunk(checked, namespace)
            with self.store.reading():
                self._recognize(items)
            new = [i for i, it in enumerate(items) if it.kind == "new"]
            if self.config.recognize.supersede:
                for i in new:
                    items[i].facts = keys_of(items[i].text, items[i].meta)
            vectors, embedded = self._embed([items[i] for i in new], progress)
            graph = self._prepare_graph([items[i].text for i in new], progress)
            try:
                ids = self._commit(items, new, vectors, graph)
            except _Conflict:
                continue
            self.dense.maintain()
            return add_result(items, ids, embedded)
        raise StoreError(
            f"this write was overtaken by other writers {_ATTEMPTS} times (the memories it "
            "matched kept being forgotten); nothing was written, try again"
        )

    # -- steps ------------------------------------------------------------------------------

    def _chunk(self, records: Sequence[Record], namespace: str) -> list[Item]:
        return chunk_items(records, namespace, self.config)

    def _recognize(self, items: list[Item]) -> None:
        recognize_items(items, StoreLookup(self.store, self.hasher), self.hasher, self.config)

    def _embed(self, items: Sequence[Item], progress: Progress | None) -> tuple[Matrix, int]:
        """Vectors of ``items``; new ones are cached batch by batch as they are computed
        (a write killed later keeps them, and a rerun does not embed them again)."""
        model = self.embedder.model_id
        dim = self.embedder.dim
        if not items:
            return np.empty((0, dim), dtype=np.float32), 0
        with self.store.reading():
            cached = self.store.cached_embeddings(model, [it.hash for it in items])
        todo: dict[str, str] = {}
        for it in items:
            if it.hash not in cached:
                todo.setdefault(it.hash, it.text)
        fresh: dict[str, np.ndarray[Any, Any]] = {}
        hashes = list(todo)
        batch = max(self.config.embed.batch_size * 8, 64)
        for start in range(0, len(hashes), batch):
            part = hashes[start : start + batch]
            vecs = self.embedder.embed_documents([todo[h] for h in part])
            fresh.update(zip(part, vecs, strict=True))
            if not self.store.readonly:
                with self.store.atomic(bump=False):
                    self.store.put_embeddings(model, part, np.asarray(vecs), replace=False)
            if progress is not None:
                progress("embed", min(start + batch, len(hashes)), len(hashes))
        known = {**cached, **fresh}
        vectors = np.stack([known[it.hash] for it in items]).astype(np.float32)
        return vectors, len(fresh)

    def _prepare_graph(self, texts: Sequence[str], progress: Progress | None) -> Prepared | None:
        """Phrases and new-phrase vectors for the graph (slow: runs before the transaction)."""
        if self.graph is None or not texts:
            return None
        prepared = self.graph.prepare(texts)
        if progress is not None:
            progress("graph", len(texts), len(texts))
        return prepared

    def _commit(
        self,
        items: list[Item],
        new: list[int],
        vectors: Matrix,
        graph: Prepared | None = None,
    ) -> list[int]:
        return self.queue.run(lambda known: self._write(items, new, vectors, graph, known))

    def _write(
        self,
        items: list[Item],
        new: list[int],
        vectors: Matrix,
        graph: Prepared | None,
        known: dict[int, Any],
    ) -> list[int]:
        """The commit step, inside the (shared) write transaction."""
        ids: list[int] = [0] * len(items)
        now = time.time()
        store = self.store
        row = dict(zip(new, range(len(new)), strict=True))
        self._recheck(items)
        kept = [i for i in new if items[i].kind == "new"]
        if kept:  # forgetting may have dropped them from the cache meanwhile
            store.put_embeddings(
                self.embedder.model_id,
                [items[i].hash for i in kept],
                vectors[[row[i] for i in kept]],
                replace=False,
            )
        for index, item in enumerate(items):
            if item.kind == "new":
                memory = NewMemory(
                    namespace=item.namespace,
                    text=item.text,
                    hash=item.hash,
                    sighting=item.sighting,
                    meta=item.meta,
                )
                ids[index] = store.insert_memory(memory, now=now)
                known[ids[index]] = vectors[row[index]]
                if item.signature is not None:
                    store.put_bands(ids[index], item.signature.bands, item.signature.to_bytes())
                continue
            target = item.target if item.target is not None else ids[item.batch_target or 0]
            ids[index] = target
            added = store.add_sighting(
                target, item.sighting, kind=item.kind, score=item.score, now=now
            )
            if not added:
                item.score = -1.0  # already recorded here: a re-ingest, nothing changed
        facts = [
            NewFact(
                id=ids[i],
                namespace=items[i].namespace,
                text=items[i].text,
                valid_from=_valid_from(items[i].sighting.event_time, now),
                keys=items[i].facts,
            )
            for i in kept
            if items[i].kind == "new" and items[i].facts
        ]
        if facts:
            link_new(store.conn, facts, now=now)
        if graph is not None and self.graph is not None and kept:
            keep = set(kept)
            part = Prepared(
                extractions=tuple(
                    ex for i, ex in zip(new, graph.extractions, strict=True) if i in keep
                ),
                vectors=graph.vectors,
            )
            self.graph.write([ids[i] for i in kept], part)
        return ids

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
    seen: dict[tuple[str, str], int] = {}
    bands: dict[tuple[int, bytes], list[int]] = {}
    for index, item in enumerate(items):
        existing = lookup.find_hash(item.namespace, item.hash)
        if existing is not None:
            item.kind, item.target = "exact", existing
        elif (item.namespace, item.hash) in seen:
            item.kind, item.batch_target = "exact", seen[(item.namespace, item.hash)]
        else:
            if item.signature is None:  # (a cluster computes them first, to look up bands)
                item.grams, item.signature = hasher.signatures([item.norm])[0]
            if config.recognize.enabled:
                _near(item, items, bands, lookup, hasher, config)
            item.grams = frozenset()  # large: remade from the text if a later item needs it
        if item.kind == "new":
            seen[(item.namespace, item.hash)] = index
            if item.signature is not None:
                for band, key in enumerate(item.signature.bands):
                    bands.setdefault((band, key), []).append(index)


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
