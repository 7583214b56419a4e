"""Driving a :class:`~engramdb.Memory` through its public API: timed ingest and timed recall.

Every evaluated item is added as one un-chunked memory and carries a *label* (a document
id, a turn id, a probe item). Because the store merges exact and near duplicates, one
memory can stand for several labels; a hit is expanded to all of them, in input order.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engramdb import ClusterMemory, Hit, InvalidInputError, Memory, Record
from engramdb.eval.metrics import percentile

__all__ = [
    "CHANNELS",
    "DEFAULT_CHANNELS",
    "IngestStats",
    "Progress",
    "QueryRun",
    "RERANK_SUFFIXES",
    "RunContext",
    "TaskResult",
    "channel_steps",
    "check_channels",
    "ingest",
    "latency_summary",
    "rerank_channels",
    "run_queries",
    "split_channel",
    "uses_graph",
]

Progress = Callable[[str, int, int], None]
"""Progress callback: ``(stage, done, total)``."""
TimeLike = float | str
"""A point in time as recall takes it: epoch seconds or an ISO-8601 string."""

CHANNELS = ("lexical", "dense", "graph", "hybrid", "hybrid+graph")
"""The recall channels an evaluation can compare: ``hybrid`` fuses lexical and dense,
``hybrid+graph`` fuses lexical, dense and the associative graph. A channel that uses the
graph turns the graph on in the evaluation store (built as the data is added)."""
DEFAULT_CHANNELS = ("lexical", "dense", "hybrid")
"""The channels an evaluation compares when none are named (no graph: it costs a build)."""
RERANK_SUFFIXES = {"lambdarank": "rerank", "mmr": "mmr"}
"""Reranker name → channel suffix, always last: ``hybrid+rerank`` is hybrid reranked by
LambdaRank, ``hybrid+graph+mmr`` hybrid+graph reranked by MMR."""
_RERANKER_OF = {suffix: name for name, suffix in RERANK_SUFFIXES.items()}


def _valid_channels() -> str:
    suffixes = ", ".join(f"+{s}" for s in _RERANKER_OF)
    return f"{', '.join(CHANNELS)}, each optionally followed by {suffixes}"


MAX_STEPS = 5
"""The most recall steps a ``<channel>@N`` variant may take."""


def _steps_of(name: str) -> tuple[str, int | None] | None:
    """``"hybrid+graph@2"`` → ``("hybrid+graph", 2)``; ``None`` for a bad ``@`` part."""
    head, at, tail = name.rpartition("@")
    if not at:
        return name, None
    if not tail.isdigit() or not 1 <= int(tail) <= MAX_STEPS:
        return None
    return head, int(tail)


def channel_steps(channel: str) -> int | None:
    """The recall steps of a ``<channel>@N`` variant (``None``: a plain recall).

    Raises:
        InvalidInputError: an unknown channel or a step count outside 1..5.
    """
    split_channel(channel)
    found = _steps_of(channel)
    return None if found is None else found[1]


def step_channels(channels: Sequence[str], steps: int | None) -> tuple[str, ...]:
    """``channels`` followed by each of them without a step count recalled in ``steps``
    steps: ``(["hybrid+graph"], 2)`` → ``("hybrid+graph", "hybrid+graph@2")``.

    Raises:
        InvalidInputError: ``steps`` outside 1..5.
    """
    if steps is None:
        return tuple(channels)
    if not 1 <= steps <= MAX_STEPS:
        raise InvalidInputError(f"steps must be in 1..{MAX_STEPS}, got {steps}")
    added = [f"{c}@{steps}" for c in channels if "@" not in c]
    return tuple(dict.fromkeys([*channels, *added]))


def _split(name: str) -> tuple[str, str | None] | None:
    stepped = _steps_of(name)
    if stepped is None:
        return None
    name = stepped[0]
    if name in CHANNELS:
        return name, None
    base, plus, suffix = name.rpartition("+")
    if plus and base in CHANNELS and suffix in _RERANKER_OF:
        return base, _RERANKER_OF[suffix]
    return None


def _is_channel(name: str) -> bool:
    return _split(name) is not None


def split_channel(channel: str) -> tuple[str, str | None]:
    """``"hybrid+rerank"`` → ``("hybrid", "lambdarank")``; ``"dense"`` → ``("dense", None)``;
    ``"hybrid+graph+mmr"`` → ``("hybrid+graph", "mmr")``. A step count (``@N``, always
    last: ``hybrid+graph+rerank@2``) is left out (see :func:`channel_steps`).

    Raises:
        InvalidInputError: an unknown channel or reranker suffix.
    """
    found = _split(channel)
    if found is None:
        raise InvalidInputError(f"unknown channel {channel!r}; valid: {_valid_channels()}")
    return found


def uses_graph(channels: Sequence[str]) -> bool:
    """Whether any of ``channels`` (checked names) recalls through the graph."""
    return any("graph" in split_channel(c)[0].split("+") for c in channels)


def check_channels(channels: Sequence[str] | str) -> tuple[str, ...]:
    """Normalise a channel list (``"lexical,dense"`` or a sequence), keeping its order.

    A channel may carry a reranker suffix (:data:`RERANK_SUFFIXES`), e.g. ``hybrid+rerank``.

    Raises:
        InvalidInputError: an unknown channel or an empty list.
    """
    names = channels.split(",") if isinstance(channels, str) else list(channels)
    out = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in out if not _is_channel(n)]
    if unknown or not out:
        raise InvalidInputError(
            f"unknown channel(s) {', '.join(unknown) or '(none given)'}; valid: {_valid_channels()}"
        )
    return out


def rerank_channels(channels: Sequence[str], rerankers: Sequence[str]) -> tuple[str, ...]:
    """``channels`` followed by each plain channel reranked by each of ``rerankers``.

    ``(["lexical", "hybrid"], ["lambdarank", "mmr"])`` → ``("lexical", "hybrid",
    "lexical+rerank", "hybrid+rerank", "lexical+mmr", "hybrid+mmr")``.

    Raises:
        InvalidInputError: an unknown reranker name.
    """
    unknown = [r for r in rerankers if r not in RERANK_SUFFIXES]
    if unknown:
        raise InvalidInputError(
            f"unknown reranker(s) {', '.join(unknown)}; valid: {', '.join(RERANK_SUFFIXES)}"
        )
    plain = [c for c in channels if split_channel(c)[1] is None and "@" not in c]
    added = [f"{c}+{RERANK_SUFFIXES[r]}" for r in dict.fromkeys(rerankers) for c in plain]
    return tuple(dict.fromkeys([*channels, *added]))


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """What every evaluation task gets: the store, the channels and the run settings.

    Attributes:
        memory: the open store the task writes to and recalls from (or a cluster).
        channels: channels to compare, e.g. ``("lexical", "dense", "hybrid")``.
        seed: seed of every random choice the task makes.
        limit: the task's size cap (queries, probe items), ``None`` for all.
        sizes: haystack sizes (needle) or distractor counts (retention); empty for defaults.
        alphas: conformal error rates; each adds a recall pass with ``coverage=1-α``
            (retrieval and LoCoMo tasks).
        unanswerable: how many judged queries to make unanswerable by leaving their
            relevant documents out of the store (retrieval tasks); 0 for none.
        clues: the clue kinds of ``<channel>@N`` channels (empty: recall's default).
        progress: optional progress callback.
    """

    memory: Memory | ClusterMemory
    channels: tuple[str, ...]
    seed: int = 0
    limit: int | None = None
    sizes: tuple[int, ...] = ()
    alphas: tuple[float, ...] = ()
    unanswerable: int = 0
    clues: tuple[str, ...] = ()
    progress: Progress | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """What a task measured, before the harness adds config, versions and checksums."""

    metrics: dict[str, dict[str, Any]]
    latency_ms: dict[str, dict[str, float | None]]
    ingest: dict[str, Any]
    per_query: dict[str, list[dict[str, Any]]]
    series: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestStats:
    """Counts and wall time of one or more ``add_many`` calls."""

    records: int = 0
    memories: int = 0
    added: int = 0
    merged: int = 0
    embedded: int = 0
    seconds: float = 0.0

    def __add__(self, other: IngestStats) -> IngestStats:
        return IngestStats(
            records=self.records + other.records,
            memories=self.memories + other.memories,
            added=self.added + other.added,
            merged=self.merged + other.merged,
            embedded=self.embedded + other.embedded,
            seconds=self.seconds + other.seconds,
        )

    def as_dict(self) -> dict[str, Any]:
        """The counts plus ``records_per_s``, for the report."""
        rate = self.records / self.seconds if self.seconds > 0 else None
        return {
            "records": self.records,
            "memories": self.memories,
            "added": self.added,
            "merged": self.merged,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
            "records_per_s": round(rate, 1) if rate is not None else None,
        }


def ingest(
    memory: Memory | ClusterMemory,
    items: Sequence[tuple[str, Record]],
    *,
    namespace: str,
    labels: Mapping[int, Sequence[str]] | None = None,
    progress: Progress | None = None,
) -> tuple[dict[int, list[str]], IngestStats]:
    """Add ``(label, record)`` pairs in one ``add_many`` and map memory ids to labels.

    Records must be un-chunked (``chunk=False``) and hold text, so that each yields
    exactly one memory.

    Args:
        memory: the store.
        items: ``(label, record)`` pairs.
        namespace: where to add them.
        labels: the labels this run already added to ``namespace``, when adding in steps.
        progress: optional progress callback.

    Returns:
        ``({memory id: [labels]}, stats)``, the map including ``labels``.

    Raises:
        InvalidInputError: a record that may be chunked, or one without text; or the
            namespace already holds memories this run did not add (a reused store filled
            by a different run).
    """
    for label, record in items:
        if record.chunk or not record.text.strip():
            raise InvalidInputError(f"item {label!r}: evaluation records must be un-chunked text")
    started = time.perf_counter()
    result = memory.add_many([r for _, r in items], namespace=namespace, progress=progress)
    seconds = time.perf_counter() - started
    if len(result.ids) != len(items):
        raise InvalidInputError(
            f"{len(items)} records became {len(result.ids)} memories: "
            "some text normalised to nothing"
        )
    out = {memory_id: list(names) for memory_id, names in (labels or {}).items()}
    before = len(out)
    for (label, _), memory_id in zip(items, result.ids, strict=True):
        out.setdefault(memory_id, []).append(label)
    held = memory.stats().namespaces.get(namespace, 0)
    if held != len(out):
        raise InvalidInputError(
            f"namespace {namespace!r} holds {held} memories but this run stored {len(out)}: "
            "the store was filled by a different run; use a fresh --db"
        )
    stats = IngestStats(
        records=len(items),
        memories=len(out) - before,
        added=result.added,
        merged=result.exact + result.near,
        embedded=result.embedded,
        seconds=seconds,
    )
    return out, stats


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryRun:
    """One query's recall: ranked labels (hits expanded), top hit, latency, abstention.

    Attributes:
        ranked: the labels of the hits, best first (a merged memory gives several).
        top: the first hit, if any.
        ms: the recall's latency in milliseconds.
        hits: how many memories were returned (the set size of a conformal recall).
        best: the highest calibrated relevance among the hits (``None`` without hits).
        abstain: whether recall abstained (only with ``coverage``).
    """

    ranked: tuple[str, ...]
    top: Hit | None
    ms: float
    hits: int = 0
    best: float | None = None
    abstain: bool = False


def run_queries(  # noqa: PLR0913 - keyword-only options of one recall pass
    ctx: RunContext,
    queries: Sequence[str],
    *,
    channel: str,
    k: int,
    namespace: str,
    labels: Mapping[int, Sequence[str]],
    coverage: float | None = None,
    now: TimeLike | None = None,
    as_of: TimeLike | None = None,
) -> list[QueryRun]:
    """Recall each query alone (so that its latency is its own) on one channel.

    Hits whose memory has no label (not part of this run) are dropped from the ranking.
    A channel with a reranker suffix (``hybrid+rerank``) recalls its base channel with
    that reranker; ``coverage`` keeps only the hits above the conformal threshold.
    ``now`` (the time the questions are asked) and ``as_of`` (the time the answer should
    hold at) are passed to :meth:`Memory.recall_many` only when given.

    Raises:
        InvalidInputError: an empty query, a bad ``k``, an unknown channel, or ``now`` or
            ``as_of`` that the engine does not take or cannot read.
        NotFoundError: the namespace holds no memories.
        MissingDependencyError: the reranker needs an extra that is not installed.
    """
    base, rerank = split_channel(channel)
    steps = _step_options(ctx, channel)
    stage = f"recall {channel}" + (f" coverage={coverage:g}" if coverage is not None else "")
    times = _time_options(ctx.memory, now=now, as_of=as_of)
    if as_of is not None:
        stage += " as_of"
    runs: list[QueryRun] = []
    for done, query in enumerate(queries, 1):
        started = time.perf_counter()
        hits = ctx.memory.recall_many(
            [query],
            k=k,
            namespace=namespace,
            channels=base,
            rerank=rerank,
            coverage=coverage,
            **times,
            **steps,
        )[0]
        ms = (time.perf_counter() - started) * 1000
        ranked = tuple(label for hit in hits for label in labels.get(hit.id, ()))
        scores = [h.relevance for h in hits if h.relevance is not None]
        runs.append(
            QueryRun(
                ranked=ranked,
                top=hits[0] if len(hits) else None,
                ms=ms,
                hits=len(hits),
                best=max(scores) if scores else None,
                abstain=hits.abstain,
            )
        )
        if ctx.progress is not None and (done % 25 == 0 or done == len(queries)):
            ctx.progress(stage, done, len(queries))
    return runs


def _step_options(ctx: RunContext, channel: str) -> dict[str, Any]:
    """``steps`` and ``clues`` for a ``<channel>@N`` recall (none for a plain one)."""
    steps = channel_steps(channel)
    if steps is None:
        return {}
    if not _accepts(ctx.memory, "steps"):
        raise InvalidInputError(f"this engine's recall takes no steps: cannot run {channel}")
    return {"steps": steps, "clues": ctx.clues or None}


def _accepts(memory: Memory | ClusterMemory, option: str) -> bool:
    """Whether ``memory.recall_many`` takes the keyword ``option`` (e.g. ``"as_of"``)."""
    return option in inspect.signature(memory.recall_many).parameters


def _time_options(
    memory: Memory | ClusterMemory, *, now: TimeLike | None, as_of: TimeLike | None
) -> dict[str, Any]:
    pairs = (("now", now), ("as_of", as_of))
    given: dict[str, Any] = {name: value for name, value in pairs if value is not None}
    missing = [name for name in given if not _accepts(memory, name)]
    if missing:
        raise InvalidInputError(
            f"this engine's recall takes no {' or '.join(missing)}: cannot recall at a given time"
        )
    return given


def latency_summary(ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p99, mean and max of per-query latencies, in milliseconds, and their count."""

    def rounded(value: float | None) -> float | None:
        return round(value, 3) if value is not None else None

    return {
        "p50": rounded(percentile(ms, 50)),
        "p99": rounded(percentile(ms, 99)),
        "mean": rounded(sum(ms) / len(ms)) if ms else None,
        "max": rounded(max(ms)) if ms else None,
        "n": len(ms),
    }
