"""Retrieval tasks over judged data sets: BEIR, multi-hop QA and conversational memory.

Each task ingests the corpus through :meth:`Memory.add_many` (one un-chunked memory per
document or turn), recalls every query alone on each channel, and scores the rankings.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engramdb import Record
from engramdb.eval.conversations import ConversationSet, Question, Turn
from engramdb.eval.datasets import Document, Query, RetrievalSet
from engramdb.eval.metrics import (
    all_recall_at_k,
    group_recall_at_k,
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from engramdb.eval.precision import (
    ABSTAIN_BELOW,
    CONFORMAL_K,
    Holdout,
    abstention,
    conformal,
    holdout,
)
from engramdb.eval.runner import (
    QueryRun,
    RunContext,
    TaskResult,
    ingest,
    latency_summary,
    run_queries,
)

__all__ = [
    "BEIR_METRICS",
    "LOCOMO_METRICS",
    "MULTIHOP_METRICS",
    "evaluate_locomo",
    "evaluate_retrieval",
    "ingest_conversations",
    "last_session_time",
    "turn_text",
]

MetricFn = Callable[[Sequence[str], Mapping[str, int], int], float | None]
MetricSpec = tuple[str, MetricFn, int]

BEIR_METRICS: tuple[MetricSpec, ...] = (
    ("ndcg@10", ndcg_at_k, 10),
    ("recall@10", recall_at_k, 10),
    ("recall@100", recall_at_k, 100),
    ("mrr@10", mrr_at_k, 10),
)
MULTIHOP_METRICS: tuple[MetricSpec, ...] = (
    ("recall@2", recall_at_k, 2),
    ("recall@5", recall_at_k, 5),
    ("all-recall@5", all_recall_at_k, 5),
    ("ndcg@10", ndcg_at_k, 10),
    ("recall@10", recall_at_k, 10),
)
CURVE_CUTOFFS = (1, 2, 3, 5, 10, 20, 50, 100)
"""Cutoffs of the recall@k curves in ``series``."""
LOCOMO_CUTOFFS = (5, 10, 20)
LOCOMO_METRICS = (
    "recall@1",
    *(f"recall@{k}" for k in LOCOMO_CUTOFFS),
    *(f"session-recall@{k}" for k in LOCOMO_CUTOFFS),
    "mrr@10",
)
"""LoCoMo's per-question metrics, each also per category (``cat<N>/<metric>``)."""
LOCOMO_CURVE = (1, 2, 3, 5, 10, 20)
"""Cutoffs of the turn-level recall@k curve (categories 1-4) in ``series``."""
TOP_SHOWN = 10
"""How many ranked ids each per-query row keeps."""


def _rounded(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def _curve(
    runs: Sequence[QueryRun],
    gold: Sequence[Mapping[str, int]],
    cutoffs: Sequence[int] = CURVE_CUTOFFS,
) -> dict[str, float | None]:
    return {
        str(k): _rounded(
            mean_over_queries(recall_at_k(r.ranked, g, k) for r, g in zip(runs, gold, strict=True))
        )
        for k in cutoffs
    }


def _precision_params(ctx: RunContext) -> dict[str, Any]:
    out: dict[str, Any] = {"abstain_below": ABSTAIN_BELOW}
    if ctx.alphas:
        out.update(alphas=list(ctx.alphas), conformal_k=CONFORMAL_K)
    return out


def _split(
    ctx: RunContext, data: RetrievalSet, namespace: str
) -> tuple[list[Query], list[Document], Holdout | None]:
    """The queries to run and documents to store, without a holdout's."""
    queries = list(data.queries[: ctx.limit] if ctx.limit else data.queries)
    if not ctx.unanswerable:
        return queries, list(data.documents), None
    held = holdout(queries, ctx.unanswerable, seed=ctx.seed, namespace=namespace)
    kept = [
        dataclasses.replace(q, qrels={}) if q.id in held.gone else q
        for q in queries
        if q.id not in held.dropped
    ]
    return kept, [d for d in data.documents if d.id not in held.removed], held


def _unanswerable(queries: Sequence[Query], held: Holdout | None) -> list[bool | None]:
    """``True`` for a held-out query, ``False`` for an answerable one, else ``None``."""
    if held is None:
        return [None] * len(queries)
    return [
        True if q.id in held.gone else (False if any(g > 0 for g in q.qrels.values()) else None)
        for q in queries
    ]


def evaluate_retrieval(
    ctx: RunContext, data: RetrievalSet, metrics: Sequence[MetricSpec] = BEIR_METRICS
) -> TaskResult:
    """Ingest a corpus, recall its queries on each channel and score them.

    Queries without a relevant judgment get ``None`` for every metric and are left out
    of the means. With ``ctx.unanswerable`` (a holdout), that many judged queries lose
    their relevant documents (stored in a namespace of their own) and
    ``metrics[channel]["abstention"]`` scores abstaining on them; with ``ctx.alphas``,
    ``metrics[channel]["conformal"]`` holds each α's coverage and set size.

    Raises:
        InvalidInputError: a channel the engine does not know, a holdout that leaves no
            answerable query, or a reused store that holds other memories in this data
            set's namespace.
    """
    namespace = "eval." + re.sub(r"[^\w.\-]", "_", data.name)[:100]
    queries, documents, held = _split(ctx, data, namespace)
    if held is not None:
        namespace = held.namespace
    items = [
        (doc.id, Record(text=doc.text, document=doc.id, source=f"eval:{data.name}", chunk=False))
        for doc in documents
        if doc.text.strip()
    ]
    labels, stats = ingest(ctx.memory, items, namespace=namespace, progress=ctx.progress)
    depth = max(max(k for _, _, k in metrics), max(CURVE_CUTOFFS))
    result = TaskResult(
        metrics={},
        latency_ms={},
        ingest=stats.as_dict(),
        per_query={},
        params=_precision_params(ctx),
    )
    truth = _unanswerable(queries, held)
    texts = [q.text for q in queries]
    curves: dict[str, dict[str, float | None]] = {}
    for channel in ctx.channels:
        runs = run_queries(ctx, texts, channel=channel, k=depth, namespace=namespace, labels=labels)
        rows = [_score_row(q, r, metrics) for q, r in zip(queries, runs, strict=True)]
        scores: dict[str, Any] = {
            name: _rounded(mean_over_queries(row[name] for row in rows)) for name, _, _ in metrics
        }
        if held is not None:
            scores["abstention"] = abstention(runs, truth)
            for row, unanswerable in zip(rows, truth, strict=True):
                row["unanswerable"] = bool(unanswerable)
        if ctx.alphas:
            scores["conformal"] = conformal(
                ctx,
                [(namespace, texts, labels)],
                channel=channel,
                gold=[q.qrels for q in queries],
                truth=truth,
            )
        result.metrics[channel] = scores
        result.latency_ms[channel] = latency_summary([r.ms for r in runs])
        result.per_query[channel] = rows
        curves[channel] = _curve(runs, [q.qrels for q in queries])
    result.series["recall@k"] = curves
    result.info.update(
        documents=len(items),
        queries=len(queries),
        judged=sum(1 for q in queries if any(g > 0 for g in q.qrels.values())),
    )
    if held is not None:
        result.info.update(
            unanswerable=len(held.gone),
            dropped=len(held.dropped),
            removed_documents=len(held.removed),
        )
    return result


def _score_row(query: Query, run: QueryRun, metrics: Sequence[MetricSpec]) -> dict[str, Any]:
    row: dict[str, Any] = {"id": query.id, "ms": round(run.ms, 3)}
    for name, fn, k in metrics:
        row[name] = fn(run.ranked, query.qrels, k)
    row["top"] = list(dict.fromkeys(run.ranked))[:TOP_SHOWN]
    row["relevance"] = run.best
    return row


# -- conversations ----------------------------------------------------------------------------


def turn_record(turn: Turn, name: str) -> Record:
    """How a LoCoMo turn is added: :func:`turn_text`, its conversation as the document, its
    session time as event time, speaker, session and ``dia_id`` in meta."""
    return Record(
        text=turn_text(turn),
        source=f"eval:{name}",
        document=turn.conv,
        ordinal=turn.ordinal,
        event_time=turn.event_time,
        chunk=False,
        meta={"speaker": turn.speaker, "session": turn.session, "dia_id": turn.dia_id},
    )


def turn_text(turn: Turn) -> str:
    """How a turn is remembered: ``"<speaker>: <text>"``, plus a shared image's caption."""
    text = f"{turn.speaker}: {turn.text}".strip()
    if turn.image_caption:
        text += f" [shares {turn.image_caption}]"
    return text


def ingest_conversations(
    ctx: RunContext, data: ConversationSet, convs: set[str], *, prefix: str = "locomo"
) -> tuple[dict[str, dict[int, list[str]]], dict[str, Any]]:
    """Add the turns of ``convs``, each conversation in its own namespace
    ``<prefix>.<conv>``.

    Returns:
        ``({conv: {memory id: [turn ids]}}, ingest stats as a dict)``.

    Raises:
        InvalidInputError: a namespace holds memories this run did not add.
    """
    labels: dict[str, dict[int, list[str]]] = {}
    total = None
    for conv in sorted(convs):
        items = [(t.dia_id, turn_record(t, data.name)) for t in data.turns if t.conv == conv]
        labels[conv], stats = ingest(
            ctx.memory, items, namespace=f"{prefix}.{conv}", progress=ctx.progress
        )
        total = stats if total is None else total + stats
    return labels, total.as_dict() if total is not None else {}


def _locomo_row(question: Question, run: QueryRun, session_of: Mapping[str, int]) -> dict[str, Any]:
    gold = dict.fromkeys(question.evidence, 1)
    sessions = {session_of[e] for e in question.evidence}
    row: dict[str, Any] = {"id": question.id, "category": question.category, "ms": round(run.ms, 3)}
    row["recall@1"] = recall_at_k(run.ranked, gold, 1)
    for k in LOCOMO_CUTOFFS:
        row[f"recall@{k}"] = recall_at_k(run.ranked, gold, k)
        row[f"session-recall@{k}"] = group_recall_at_k(run.ranked, session_of, sessions, k)
    row["mrr@10"] = mrr_at_k(run.ranked, gold, 10)
    row["top"] = list(dict.fromkeys(run.ranked))[:TOP_SHOWN]
    row["relevance"] = run.best
    return row


def _locomo_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    main = [r for r in rows if r["category"] != 5]
    for name in LOCOMO_METRICS:
        out[name] = _rounded(mean_over_queries(r[name] for r in main))
    for category in sorted({r["category"] for r in rows}):
        part = [r for r in rows if r["category"] == category]
        for name in LOCOMO_METRICS:
            out[f"cat{category}/{name}"] = _rounded(mean_over_queries(r[name] for r in part))
    return out


def last_session_time(data: ConversationSet, conv: str) -> float:
    """When a conversation's last session took place (epoch seconds): the time its
    questions are asked at."""
    return max(t.event_time for t in data.turns if t.conv == conv)


def _locomo_channel(
    ctx: RunContext,
    data: ConversationSet,
    mine: Mapping[str, Sequence[Question]],
    labels: Mapping[str, Mapping[int, Sequence[str]]],
    channel: str,
) -> tuple[list[dict[str, Any]], list[QueryRun]]:
    """Per-question rows and runs of one channel, conversation by conversation.

    Questions are asked after their conversation: ``now`` is the time of the
    conversation's last session.
    """
    rows: list[dict[str, Any]] = []
    runs: list[QueryRun] = []
    for conv, questions in mine.items():
        conv_runs = run_queries(
            ctx,
            [q.text for q in questions],
            channel=channel,
            k=max(LOCOMO_CUTOFFS),
            namespace=f"locomo.{conv}",
            labels=labels[conv],
            now=last_session_time(data, conv),
        )
        conv_sessions = {t.dia_id: t.session for t in data.turns if t.conv == conv}
        rows += [
            _locomo_row(q, r, conv_sessions) for q, r in zip(questions, conv_runs, strict=True)
        ]
        runs += conv_runs
    return rows, runs


def evaluate_locomo(ctx: RunContext, data: ConversationSet) -> TaskResult:
    """Conversational memory: one namespace per conversation, turns in order.

    Turn-level recall@k is the share of evidence turns among the top ``k`` hits (k = 1, 5,
    10, 20) and mrr@10 the reciprocal rank of the first evidence turn within the top 10;
    session-level recall@k is the share of evidence sessions that the top ``k`` hits touch.
    Each question is recalled at its conversation's last session (``now=``;
    ``params["now"]`` records it).
    The headline metrics cover categories 1-4; category 5 (adversarial) is reported only
    under its own ``cat5/`` names. ``metrics[channel]["abstention"]`` scores abstaining
    (best hit's calibrated relevance below ``ABSTAIN_BELOW``) on category 5 against the
    rest; with ``ctx.alphas``, ``metrics[channel]["conformal"]`` holds each α's coverage
    of the evidence turns (categories 1-4) and set size.

    Raises:
        InvalidInputError: a channel the engine does not know, or a reused store that holds
            other memories in a conversation's namespace.
    """
    questions = list(data.questions[: ctx.limit] if ctx.limit else data.questions)
    labels, ingested = ingest_conversations(ctx, data, {q.conv for q in questions})
    mine = {conv: [q for q in questions if q.conv == conv] for conv in sorted(labels)}
    ordered = [q for qs in mine.values() for q in qs]
    truth: list[bool | None] = [q.category == 5 for q in ordered]
    gold = [None if q.category == 5 else dict.fromkeys(q.evidence, 1) for q in ordered]
    groups = [(f"locomo.{conv}", [q.text for q in qs], labels[conv]) for conv, qs in mine.items()]
    params = _precision_params(ctx)
    params["now"] = "last session"
    result = TaskResult(metrics={}, latency_ms={}, ingest=ingested, per_query={}, params=params)
    curves: dict[str, dict[str, float | None]] = {}
    for channel in ctx.channels:
        rows, runs = _locomo_channel(ctx, data, mine, labels, channel)
        scored = [(r, g) for r, g in zip(runs, gold, strict=True) if g is not None]
        curves[channel] = _curve([r for r, _ in scored], [g for _, g in scored], LOCOMO_CURVE)
        metrics = _locomo_metrics(rows)
        metrics["abstention"] = abstention(runs, truth)
        if ctx.alphas:
            metrics["conformal"] = conformal(ctx, groups, channel=channel, gold=gold, truth=truth)
        result.metrics[channel] = metrics
        result.latency_ms[channel] = latency_summary([r.ms for r in runs])
        result.per_query[channel] = rows
    result.series["recall@k"] = curves
    result.info.update(
        conversations=len(labels),
        turns=sum(1 for t in data.turns if t.conv in labels),
        questions=len(questions),
        by_category={
            str(c): sum(1 for q in questions if q.category == c)
            for c in sorted({q.category for q in questions})
        },
        without_evidence=sum(1 for q in questions if not q.evidence),
        unresolved_evidence=sorted({f"{q.id}:{e}" for q in questions for e in q.unresolved}),
    )
    return result
