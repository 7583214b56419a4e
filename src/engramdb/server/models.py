"""Response bodies: the JSON shapes of docs/service.md as pydantic models.

They are read from the engine's result dataclasses (``from_attributes``), so each field here
names a field there; nullable fields are typed as such, which the OpenAPI schema says too.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "AddOut",
    "AddedOut",
    "BlockOut",
    "ChannelScoreOut",
    "CitationOut",
    "ContextOut",
    "ForgetOut",
    "GraphStatsOut",
    "HealthOut",
    "HitOut",
    "IndexStatsOut",
    "JobFileOut",
    "JobOut",
    "JobsOut",
    "LexicalStatsOut",
    "MemoryOut",
    "NeighbourOut",
    "NeighboursOut",
    "PositionOut",
    "RecallOut",
    "HistoryOut",
    "LinkOut",
    "VersionOut",
    "RecognizeOut",
    "SightingOut",
    "StatsOut",
    "StoreStatsOut",
    "WhoAmIOut",
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays (which index statistics may hold) as plain
    Python values, so that it serialises as JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)
    return _plain(tolist()) if callable(tolist) else value


PlainMapping = Annotated[dict[str, Any], BeforeValidator(_plain)]


class PositionOut(_Out):
    """Where a memory sits in its document."""

    document: str | None
    ordinal: int | None
    start: int | None
    end: int | None


class SightingOut(_Out):
    """One place a memory was seen."""

    source: str | None
    position: PositionOut
    event_time: float | None
    seen_time: float
    kind: Literal["origin", "exact", "near"]
    score: float


class MemoryOut(_Out):
    """A stored memory with every place it was seen."""

    id: int
    namespace: str
    text: str
    source: str | None
    position: PositionOut
    event_time: float | None = Field(description="UTC epoch seconds.")
    ingest_time: float
    meta: dict[str, Any]
    count: int = Field(description="How many times it was seen.")
    sightings: list[SightingOut]


class AddedOut(BaseModel):
    """One stored chunk of an add."""

    id: int
    decision: Literal["new", "exact", "near", "skipped"]
    input: int = Field(description="The index of the item the chunk came from.")


class AddOut(BaseModel):
    """What an add did."""

    namespace: str
    added: int
    exact: int
    near: int
    skipped: int
    memories: list[AddedOut]


class NeighbourOut(BaseModel):
    """A memory that shares phrases with another in the memory graph."""

    id: int
    text: str
    phrases: list[str]


class NeighboursOut(BaseModel):
    """A memory's graph neighbours (none when the graph is off)."""

    graph: bool
    neighbours: list[NeighbourOut]


class ForgetOut(BaseModel):
    """How many memories were forgotten."""

    forgotten: int


class ChannelScoreOut(_Out):
    """One channel's rank and score for a hit, before fusion."""

    rank: int
    score: float
    phrases: list[str]


class LinkOut(_Out):
    """A supersession (``new`` replaced ``old`` from ``at``) or a conflict between two
    memories of one fact."""

    id: int
    old: int
    new: int | None = Field(description="null once the newer memory was forgotten.")
    kind: Literal["supersede", "conflict"]
    origin: Literal["manual", "auto", "judge"]
    at: float = Field(description="When the old memory stopped being valid (epoch seconds).")
    recorded: float
    undone: float | None
    detail: dict[str, Any]


class VersionOut(_Out):
    """One memory of a fact's chain."""

    id: int
    text: str
    valid_from: float
    valid_to: float | None
    event_time: float | None
    ingest_time: float


class HistoryOut(_Out):
    """A memory's fact through time: the chain, oldest first, and every link."""

    id: int
    versions: list[VersionOut]
    links: list[LinkOut]


class HitOut(_Out):
    """One recalled memory."""

    id: int
    score: float
    relevance: float | None
    text: str
    namespace: str
    source: str | None
    position: PositionOut
    event_time: float | None
    meta: dict[str, Any]
    why: dict[str, ChannelScoreOut]
    valid_to: float | None = Field(
        default=None, description="When another memory superseded it (null: still valid)."
    )
    relations: list[LinkOut] = Field(
        default_factory=list, description="Its supersessions and conflicts in force."
    )


class RecallOut(BaseModel):
    """The hits for a query, best first."""

    query: str
    abstain: bool
    reason: str | None
    hits: list[HitOut]


class RecognizeOut(_Out):
    """Have I seen this?"""

    kind: Literal["exact", "near", "new"]
    score: float
    match: MemoryOut | None


class CitationOut(BaseModel):
    """Where a context block comes from."""

    source: str | None
    document: str | None
    ordinal: int | None
    ordinal_end: int | None
    start: int | None
    end: int | None
    event_time: float | None
    label: str


class BlockOut(BaseModel):
    """One cited block of a packed context."""

    n: int
    text: str
    ids: list[int]
    rank: int
    score: float
    relevance: float | None
    tokens: int
    truncated: bool
    citation: CitationOut


class ContextOut(BaseModel):
    """A packed, cited context block for a prompt."""

    query: str | None
    order: Literal["relevance", "edges", "chronological"]
    budget_tokens: int
    tokens: int
    counter: str
    text: str
    blocks: list[BlockOut]
    dropped: list[int]


class LexicalStatsOut(_Out):
    """The lexical index."""

    fts_table: str
    table: str
    column: str
    rows: int
    tokenizer: str


class IndexStatsOut(_Out):
    """The dense index."""

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
    spann: PlainMapping | None


class GraphStatsOut(_Out):
    """The memory graph."""

    extractor: str
    phrases: int
    passages: int
    mentions: int
    pair_edges: int
    synonym_edges: int


class StoreStatsOut(_Out):
    """The whole store file's statistics."""

    path: str
    namespaces: dict[str, int]
    memories: int
    sightings: int
    sources: int
    embeddings: int
    db_bytes: int
    data_version: int
    embedder: str
    lexical: LexicalStatsOut
    dense: IndexStatsOut
    graph: GraphStatsOut | None


class StatsOut(_Out):
    """What the caller may know of the store."""

    namespaces: dict[str, int]
    memories: int
    embedder: str
    store: StoreStatsOut | None = Field(description="Only for a caller with every namespace.")


class WhoAmIOut(BaseModel):
    """The caller's key and rights."""

    key: str | None = Field(description="The key's name; null without keys.")
    namespaces: list[str] | None = Field(description="null: every namespace.")
    write: bool
    keys_required: bool


class JobFileOut(_Out):
    """One file of an ingest job and how far it got."""

    name: str
    bytes: int
    records: int | None = Field(description="null until the file is loaded.")
    done: int
    added: int
    merged: int
    skipped: int
    error: str | None


class JobOut(_Out):
    """A bulk ingest job."""

    id: str
    namespace: str
    state: Literal["queued", "running", "done", "failed"]
    created: float
    started: float | None
    finished: float | None
    attempts: int
    error: str | None
    records: int
    done: int
    files: list[JobFileOut]


class JobsOut(BaseModel):
    """The latest jobs, newest first."""

    jobs: list[JobOut]


class HealthOut(BaseModel):
    """The server is up."""

    status: Literal["ok"]
    version: str
