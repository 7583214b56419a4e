"""Value types shared by every layer: inputs, stored memories, hits, results."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "AddResult",
    "ChannelScore",
    "Chunk",
    "Decision",
    "Hit",
    "Hits",
    "History",
    "GraphStats",
    "IdMatrix",
    "ImportResult",
    "IndexStats",
    "Matrix",
    "LexicalStats",
    "MemoryRecord",
    "Position",
    "Recognition",
    "Record",
    "Sighting",
    "Stats",
    "Supersession",
    "Vector",
]

Matrix = npt.NDArray[np.float32]
"""A float32 matrix, shape ``(n, d)``."""
Vector = npt.NDArray[np.float32]
"""A float32 vector, shape ``(d,)``."""
IdMatrix = npt.NDArray[np.int64]
"""An int64 matrix of memory ids, shape ``(n, k)``; ``-1`` pads short rows."""

RecognitionKind = Literal["new", "exact", "near"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One unit of input before chunking: a document, a note or a chat turn.

    Attributes:
        text: the text to remember.
        source: where it came from (a path or URI); ``None`` for direct adds.
        document: the document it belongs to (defaults to ``source``).
        ordinal: its position in the document (a chat turn's index), if the loader knows it.
        event_time: when it happened, as UTC epoch seconds (chat turn time, file mtime).
        meta: JSON-serialisable metadata (``speaker``, ``role``, user fields).
        chunk: whether the text may be split into several memories.
    """

    text: str
    source: str | None = None
    document: str | None = None
    ordinal: int | None = None
    event_time: float | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    chunk: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """A piece of a :class:`Record`'s text, ready to store.

    ``start``/``end`` are character offsets into the record's text; ``index`` is the
    chunk's ordinal within its record.
    """

    text: str
    start: int
    end: int
    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """Where a memory sits in its document: ordinal and character span."""

    document: str | None
    ordinal: int | None
    start: int | None
    end: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Sighting:
    """One place a memory was seen: its origin, or an exact or near duplicate of it."""

    source: str | None
    position: Position
    event_time: float | None
    seen_time: float
    kind: Literal["origin", "exact", "near"]
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRecord:
    """A stored memory, as :meth:`Memory.get` returns it."""

    id: int
    namespace: str
    text: str
    hash: str
    source: str | None
    position: Position
    event_time: float | None
    ingest_time: float
    meta: Mapping[str, Any]
    count: int
    sightings: tuple[Sighting, ...] = ()
    valid_to: float | None = None

    @property
    def valid_from(self) -> float:
        """When the memory became valid: its event time, else when it was recorded."""
        return self.event_time if self.event_time is not None else self.ingest_time


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelScore:
    """One channel's view of a hit before fusion (``rank`` is 1-based).

    Attributes:
        rank: the hit's rank in this channel's run.
        score: its score there.
        phrases: graph channel only: the phrases that brought the hit — query-linked seed
            phrases it contains first, then its phrases holding the most PageRank mass.
    """

    rank: int
    score: float
    phrases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """One recalled memory.

    Attributes:
        id: the memory id.
        score: the fused score (higher is better).
        text: the memory text.
        namespace: its namespace.
        source: where it was first seen.
        position: document, ordinal and character span.
        event_time: when it happened (UTC epoch seconds), if known.
        meta: its metadata.
        why: each channel's rank and score for this hit, e.g. ``{"lexical": ChannelScore}``;
            a channel that did not return the hit is absent.
        relevance: calibrated probability that the hit is relevant to the query, in [0, 1];
            ``None`` when recall did not calibrate.
        valid_to: when another memory superseded this one (``None``: still valid).
        relations: the supersessions and conflicts this memory takes part in (in force,
            not undone): how it relates to the other memories of its fact.
    """

    id: int
    score: float
    text: str
    namespace: str
    source: str | None
    position: Position
    event_time: float | None
    meta: Mapping[str, Any]
    why: Mapping[str, ChannelScore]
    relevance: float | None = None
    valid_to: float | None = None
    relations: tuple[Supersession, ...] = ()

    @property
    def superseded(self) -> bool:
        """Whether another memory superseded this one."""
        return self.valid_to is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Supersession:
    """A link between two memories of one fact: ``new`` supersedes ``old``, or they conflict.

    Attributes:
        id: the link's id.
        old: the memory that stopped being valid (for a conflict: the older one).
        new: the memory that replaced it; ``None`` once that memory was forgotten (the old
            one stays superseded: forgetting never brings a value back).
        kind: ``"supersede"`` or ``"conflict"`` (recorded when unsure; changes no validity).
        origin: ``"manual"`` (:meth:`Memory.supersede`), ``"auto"`` (found at write time) or
            ``"judge"`` (proposed by an LLM judge).
        at: valid time: when ``old`` stopped being valid (``new``'s valid-from time).
        recorded: when the link was made (UTC epoch seconds).
        undone: when it was undone or resolved; ``None`` while it holds.
        detail: what was found, e.g. ``{"old_value": "porto", "new_value": "lisbon"}``.
    """

    id: int
    old: int
    new: int | None
    kind: Literal["supersede", "conflict"]
    origin: Literal["manual", "auto", "judge"]
    at: float
    recorded: float
    undone: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """A memory's fact through time, as :meth:`Memory.history` returns it.

    Attributes:
        id: the memory asked about.
        versions: the memories of the chain, oldest first (following supersessions in both
            directions, undone ones included); forgotten ones are absent.
        links: every supersession and conflict between them, in the order made (undone ones
            included, with their ``undone`` time).
    """

    id: int
    versions: tuple[MemoryRecord, ...]
    links: tuple[Supersession, ...]


@dataclass(frozen=True, slots=True)
class Hits(Sequence[Hit]):
    """The ranked hits for one query (best first).

    Attributes:
        query: the query.
        items: the hits.
        abstain: ``True`` when recall was asked to filter by relevance (``min_relevance`` or
            ``coverage``) and no candidate passed: the store holds nothing relevant.
        reason: why recall abstained (or why hits were cut), for people; ``None`` otherwise.
        partial: ``True`` when a cluster answered without some of its shards (the caller
            asked for a partial answer rather than an error); ``missing`` names them.
        missing: the shards a partial answer lacks.
    """

    query: str
    items: tuple[Hit, ...]
    abstain: bool = False
    reason: str | None = None
    partial: bool = False
    missing: tuple[str, ...] = ()

    @overload
    def __getitem__(self, index: int) -> Hit: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Hit]: ...
    def __getitem__(self, index: int | slice) -> Hit | Sequence[Hit]:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.items)

    @property
    def ids(self) -> list[int]:
        """The memory ids, best first."""
        return [h.id for h in self.items]


@dataclass(frozen=True, slots=True, kw_only=True)
class Recognition:
    """The answer to "have I seen this?".

    Attributes:
        kind: ``"new"``, ``"exact"`` (same normalized content) or ``"near"`` (a near duplicate).
        score: similarity to the match in [0, 1] (estimated Jaccard of character shingles;
            1.0 for exact); the best candidate's similarity when ``kind == "new"``, else 0.
        match: the matching memory, if any.
    """

    kind: RecognitionKind
    score: float
    match: MemoryRecord | None


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexStats:
    """The dense index in use, its size and whether it reflects the store.

    Attributes:
        kind: ``"flat"`` (exact search in RAM) or ``"spann"``.
        configured: ``[ann] kind`` (``"auto"``, ``"flat"`` or ``"spann"``).
        spann_threshold: memories above which ``"auto"`` uses SPANN.
        count: vectors the index answers for (its base plus the changes since).
        memories: memories in the store (same read snapshot).
        pending: changes since the base (vectors added plus base vectors hidden), not yet
            folded into it.
        data_version: the store's write counter.
        log_seq: the store's change-log position the index reflects.
        store_version: the change-log position the SPANN folder was saved at (``None``: flat).
        stale: whether the index does not hold exactly the store's memories.
        path: the SPANN folder (``None`` for an in-memory store).
        last_build: why this process last built or rebuilt the SPANN index.
        spann: the SPANN index's own figures (lists, sizes, bytes, calibration), or ``None``;
            for a flat index, the manifest of a SPANN folder found beside the store, if any.
    """

    kind: str
    configured: str
    spann_threshold: int
    count: int
    memories: int
    pending: int
    data_version: int
    log_seq: int
    store_version: int | None
    stale: bool
    path: str | None
    last_build: str | None
    spann: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LexicalStats:
    """The lexical (FTS5) index: its table, rows and tokenizer."""

    fts_table: str
    table: str
    column: str
    rows: int
    tokenizer: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphStats:
    """The memory graph: its extractor and row counts."""

    extractor: str
    phrases: int
    passages: int
    mentions: int
    pair_edges: int
    synonym_edges: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """Counts, sizes and index freshness of a store, as of one read snapshot.

    Attributes:
        lexical: the lexical index.
        dense: the dense index (:class:`IndexStats`; ``dense.stale`` is false when it holds
            exactly the store's memories).
        graph: the memory graph, when it is on.
    """

    path: str
    namespaces: Mapping[str, int]
    memories: int
    sightings: int
    sources: int
    embeddings: int
    db_bytes: int
    data_version: int
    embedder: str
    lexical: LexicalStats
    dense: IndexStats
    graph: GraphStats | None = None


Decision = Literal["new", "exact", "near", "skipped"]
"""What recognition decided for one added chunk (``"skipped"``: already recorded there)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AddResult:
    """What an ``add`` or ``add_many`` did.

    Attributes:
        ids: the memory id each input chunk now lives in, in input order.
        added: new memories created.
        exact: inputs merged into an existing memory with the same content.
        near: inputs merged into a near-duplicate memory.
        skipped: inputs already recorded at the same place (re-ingest; nothing changed).
        embedded: texts run through the embedder (the rest came from the cache).
        decisions: what recognition decided for each chunk, in the order of ``ids``:
            ``"new"``, ``"exact"``, ``"near"`` or ``"skipped"``.
        inputs: for each chunk, the index of the input record it came from.
    """

    ids: tuple[int, ...]
    added: int
    exact: int
    near: int
    skipped: int
    embedded: int
    decisions: tuple[Decision, ...] = ()
    inputs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """What an import of exported memories did.

    Attributes:
        records: memory records read (header records not counted).
        added: memories created.
        merged: records whose memory was there already (same namespace and content hash);
            their sightings were added to it.
        sightings: sightings written, the origins of the added memories included.
        known_sightings: sightings that were recorded already (nothing written for them).
        reused: vectors taken from the input (made by the store's embedder).
        embedded: texts run through the embedder (the rest came from the input or the
            store's embedding cache).
    """

    records: int
    added: int
    merged: int
    sightings: int
    known_sightings: int
    reused: int
    embedded: int
