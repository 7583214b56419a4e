"""The MCP tools: what each one says to the model, what it accepts and what it answers.

Each tool is a :class:`ToolSpec`: a name, a description written for the model that will call
it, an arguments model (its JSON schema is what clients list; it also validates every call),
annotations (read-only, destructive, idempotent) and a plain function over
:class:`~engramdb.service.MemoryService` and the caller's :class:`~engramdb.service.Scope`.
Answers are compact: a JSON text (also sent as structured content) or, for ``context``, the
packed, cited text itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mcp.types import ToolAnnotations
from pydantic import BaseModel

from engramdb.errors import InvalidInputError
from engramdb.mcp._arguments import (
    ContextArgs,
    ForgetArgs,
    RecallArgs,
    RecognizeArgs,
    RememberArgs,
    StatsArgs,
)
from engramdb.mcp._tool_arguments import RecallDemosArgs, RecallToolsArgs
from engramdb.service import MemoryService, Scope, event_time
from engramdb.service import tools as tool_verbs
from engramdb.types import Hit, MemoryRecord, Record

__all__ = ["TOOLS", "Answer", "ToolSpec"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a tool returns: the text the model reads, and the same as data when it is data."""

    text: str
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """One tool.

    Attributes:
        name: the tool's name.
        title: a short human-readable name.
        description: what it does and when to use it, for the model.
        arguments: the pydantic model of its arguments.
        annotations: the behaviour hints clients see.
        run: the tool itself, on validated arguments (blocking: called on a worker thread).
    """

    name: str
    title: str
    description: str
    arguments: type[BaseModel]
    annotations: ToolAnnotations
    run: Callable[[MemoryService, Scope, Any], Answer]


def _json(data: dict[str, Any]) -> Answer:
    return Answer(text=json.dumps(data, ensure_ascii=False, separators=(",", ":")), data=data)


def _iso(epoch: float | None) -> str | float | None:
    """``epoch`` as ISO-8601 UTC, or as it is when no calendar date has it (year 10000 on)."""
    if epoch is None:
        return None
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return epoch
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _compact(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _hit(hit: Hit) -> dict[str, Any]:
    relevance = None if hit.relevance is None else round(hit.relevance, 3)
    newer = [link.new for link in hit.relations if link.old == hit.id and link.kind == "supersede"]
    return _compact(
        id=hit.id,
        text=hit.text,
        source=hit.source,
        relevance=relevance,
        event_time=_iso(hit.event_time),
        superseded_by=newer[0] if newer and newer[0] is not None else None,
        valid_to=_iso(hit.valid_to),
    )


def _memory(record: MemoryRecord) -> dict[str, Any]:
    return _compact(
        id=record.id, text=record.text, source=record.source, event_time=_iso(record.event_time)
    )


def _remember(service: MemoryService, scope: Scope, args: RememberArgs) -> Answer:
    record = Record(
        text=args.text,
        source=args.source,
        meta=dict(args.meta or {}),
        event_time=event_time(args.event_time),
    )
    result = service.remember(scope, [record], namespace=args.namespace)
    memories = [
        {"id": memory_id, "decision": decision}
        for memory_id, decision in zip(result.ids, result.decisions, strict=True)
    ]
    return _json(
        {
            "namespace": scope.writable(args.namespace),
            "added": result.added,
            "exact": result.exact,
            "near": result.near,
            "skipped": result.skipped,
            "memories": memories,
        }
    )


def _with_abstention(data: dict[str, Any], hits: Any) -> dict[str, Any]:
    """``data`` with ``abstain`` and its ``reason`` when the recall abstained."""
    return {**data, "abstain": True, "reason": hits.reason} if hits.abstain else data


def _recall(service: MemoryService, scope: Scope, args: RecallArgs) -> Answer:
    hits = service.recall(
        scope,
        args.query,
        k=args.k,
        namespace=args.namespace,
        where=args.where,
        channels=args.channels,
        min_relevance=args.min_relevance,
        as_of=args.as_of,
        now=args.now,
        steps=args.steps,
    )
    data: dict[str, Any] = {"hits": [_hit(hit) for hit in hits]}
    return _json(_with_abstention(data, hits))


def _recognize(service: MemoryService, scope: Scope, args: RecognizeArgs) -> Answer:
    found = service.recognize(scope, args.text, namespace=args.namespace)
    return _json(
        {
            "kind": found.kind,
            "score": round(found.score, 3),
            "match": None if found.match is None else _memory(found.match),
        }
    )


def _forget(service: MemoryService, scope: Scope, args: ForgetArgs) -> Answer:
    given = [name for name in ("id", "source", "where") if getattr(args, name) is not None]
    if len(given) != 1:
        raise InvalidInputError(
            f"forget needs exactly one of: id, source, where (got {', '.join(given) or 'none'})"
        )
    if args.id is not None:
        if args.namespace is not None:
            raise InvalidInputError("namespace goes with source or where, not with id")
        service.delete(scope, args.id)
        return _json({"forgotten": 1})
    removed = service.forget(scope, source=args.source, where=args.where, namespace=args.namespace)
    return _json({"forgotten": removed})


def _context(service: MemoryService, scope: Scope, args: ContextArgs) -> Answer:
    packed = service.context(
        scope,
        args.query,
        budget_tokens=args.budget_tokens,
        order=args.order,
        k=args.k,
        namespace=args.namespace,
        where=args.where,
        channels=args.channels,
        min_relevance=args.min_relevance,
    )
    ids = [memory_id for block in packed.blocks for memory_id in block.ids]
    data = {
        "text": packed.text,
        "tokens": packed.tokens,
        "budget_tokens": packed.budget_tokens,
        "ids": ids,
        "dropped": list(packed.dropped),
    }
    return Answer(text=packed.text or "No memory matches this query.", data=data)


def _stats(service: MemoryService, scope: Scope, args: StatsArgs) -> Answer:
    stats = service.stats(scope)
    namespaces: Mapping[str, int] = stats.namespaces
    return _json(
        {"namespaces": dict(namespaces), "memories": stats.memories, "embedder": stats.embedder}
    )


def _tool_hit(hit: Any) -> dict[str, Any]:
    tool = hit.tool
    return _compact(
        id=tool.id,
        name=tool.name,
        server=tool.server or None,
        description=tool.description,
        parameters=dict(tool.parameters),
        relevance=round(hit.relevance, 3),
    )


def _recall_tools(service: MemoryService, scope: Scope, args: RecallToolsArgs) -> Answer:
    hits = tool_verbs.recall_tools(
        service,
        scope,
        args.request,
        k=args.k,
        namespace=args.namespace,
        min_relevance=args.min_relevance,
        among=args.among,
    )
    data: dict[str, Any] = {"tools": [_tool_hit(h) for h in hits]}
    return _json(_with_abstention(data, hits))


def _recall_demos(service: MemoryService, scope: Scope, args: RecallDemosArgs) -> Answer:
    hits = tool_verbs.recall_demos(
        service,
        scope,
        args.request,
        k=args.k,
        namespace=args.namespace,
        min_relevance=args.min_relevance,
        lambda_=1.0 - args.diversity,
    )
    demos = [
        _compact(
            id=h.demo.id,
            request=h.demo.request,
            calls=[dict(c) for c in h.demo.calls] or None,
            answer=h.demo.answer,
            relevance=round(h.relevance, 3),
        )
        for h in hits
    ]
    data: dict[str, Any] = {"demos": demos}
    return _json(_with_abstention(data, hits))


# -- the tools ----------------------------------------------------------------------------------


def _hints(*, read_only: bool, destructive: bool = False, idempotent: bool) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=False,
    )


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        name="remember",
        title="Remember",
        description=(
            "Store something in long-term memory so that it can be recalled later, in this "
            "conversation or a future one: a fact about the user, a decision, an event, a "
            "preference. Write one self-contained statement per call, with the names and the "
            "date it needs to make sense on its own. Repeats are recognized: a text already "
            "stored ('exact') or nearly so ('near') is merged into that memory instead of "
            "stored twice; a long text is cut into several memories. Returns the memory ids "
            "and, for each, the decision: new, exact, near or skipped (already recorded from "
            "that source)."
        ),
        arguments=RememberArgs,
        annotations=_hints(read_only=False, idempotent=False),
        run=_remember,
    ),
    ToolSpec(
        name="recall",
        title="Recall",
        description=(
            "Search long-term memory for what is relevant to a query, by meaning and by "
            "keywords. Use it before answering anything that may depend on earlier "
            "conversations, the user, people, decisions or events. Returns the best hits "
            "first, each with its id, text, source, relevance (the estimated probability, 0 to "
            "1, that it is relevant) and event_time. No hits means nothing relevant is "
            "remembered. For a ready-to-quote block within a token budget, use context."
        ),
        arguments=RecallArgs,
        annotations=_hints(read_only=True, idempotent=True),
        run=_recall,
    ),
    ToolSpec(
        name="recognize",
        title="Recognize",
        description=(
            "Check whether a text is already in memory: 'exact' (the same text is stored), "
            "'near' (a near-duplicate is stored) or 'new'. Returns the kind, a similarity score "
            "(0 to 1) and the matching memory. Useful before remember, or to tell whether "
            "something was seen before."
        ),
        arguments=RecognizeArgs,
        annotations=_hints(read_only=True, idempotent=True),
        run=_recognize,
    ),
    ToolSpec(
        name="forget",
        title="Forget",
        description=(
            "Delete memories for good: one memory by id (from recall or remember), every "
            "memory from a source, or every memory matching a where filter. Give exactly one "
            "of id, source and where. This cannot be undone. Returns how many memories were "
            "removed."
        ),
        arguments=ForgetArgs,
        annotations=_hints(read_only=False, destructive=True, idempotent=True),
        run=_forget,
    ),
    ToolSpec(
        name="context",
        title="Context",
        description=(
            "Gather what memory knows about a question into one text that fits a token budget: "
            "the most relevant memories, deduplicated, ordered and each cited as '[n] source "
            "(date)'. Use it when you need background to answer; cite the [n] you rely on. "
            "Returns the text, ready to read."
        ),
        arguments=ContextArgs,
        annotations=_hints(read_only=True, idempotent=True),
        run=_context,
    ),
    ToolSpec(
        name="stats",
        title="Memory statistics",
        description=(
            "How much is in memory: the number of memories in each namespace you can read, "
            "their total and the embedding model in use."
        ),
        arguments=StatsArgs,
        annotations=_hints(read_only=True, idempotent=True),
        run=_stats,
    ),
    ToolSpec(
        name="recall_tools",
        title="Recall tools",
        description=(
            "Find the few tools that fit a request among the many remembered (with their "
            "specs), ranked by their descriptions and by the past requests that called them. "
            "Returns each tool's name, server, description, parameter schema and relevance "
            "(the estimated probability, 0 to 1, that the request calls it). With "
            "min_relevance, no tools and abstain=true means no remembered tool fits."
        ),
        arguments=RecallToolsArgs,
        annotations=_hints(read_only=True, idempotent=True),
        run=_recall_tools,
    ),
    ToolSpec(
        name="recall_demos",
        title="Recall worked examples",
        description=(
            "Find worked examples for a request: past requests like it with the tool calls "
            "(and arguments) they led to, varied rather than near-copies. Put them in the "
            "prompt as examples of how to call tools. Each has a relevance (0 to 1)."
        ),
        arguments=RecallDemosArgs,
        annotations=_hints(read_only=True, idempotent=True),
        run=_recall_demos,
    ),
)
"""Every tool, in the order clients list them."""
