"""Cued recall and interference: does a stored paragraph stay findable as memories pile up?

Target paragraphs (30-150 words, from a few books) are stored, then each is recalled from
its first half (cued recall@1 and @10). Distractor paragraphs are added in steps (default
10, 100, 1k, 10k in total), drawn first from the targets' own books (interference), then
from other books, and recall is measured again after each step: the retention curve.
Recognition AUC of the targets against word-swap foils is tracked at every step too.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engramdb import Record
from engramdb.eval.books import BookCorpus, Paragraph
from engramdb.eval.datasets import EvalDataError
from engramdb.eval.metrics import mean_over_queries, roc_auc
from engramdb.eval.probes import word_swap
from engramdb.eval.recognition import normalized, recognize_all
from engramdb.eval.runner import (
    IngestStats,
    RunContext,
    TaskResult,
    ingest,
    latency_summary,
    run_queries,
)

__all__ = ["DEFAULT_LEVELS", "TARGETS", "evaluate_retention"]

TARGETS = 200
"""Stored paragraphs (``--limit``)."""
DEFAULT_LEVELS = (10, 100, 1_000, 10_000)
"""Cumulative distractor counts of the curve (``--sizes``)."""
TARGET_BOOKS = 5


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def _material(
    corpus: BookCorpus, rng: random.Random, count: int, need: int
) -> tuple[list[Paragraph], list[Paragraph]]:
    """Targets spread over a few books, and distractors from those books first."""
    seen: set[str] = set()
    usable: dict[str, list[Paragraph]] = {}
    for para in corpus.paragraphs:
        key = normalized(para.text)
        if 40 <= len(key) <= 1_200 and key not in seen:
            seen.add(key)
            usable.setdefault(para.book, []).append(para)
    fits = {b: [p for p in ps if 30 <= len(p.text.split()) <= 150] for b, ps in usable.items()}
    books = rng.sample(sorted(b for b in fits if fits[b]), min(TARGET_BOOKS, len(fits)))
    for book in books:
        rng.shuffle(fits[book])
    rounds = itertools.zip_longest(*(fits[b] for b in books))
    targets = [p for batch in rounds for p in batch if p is not None][:count]
    chosen = {(p.book, p.index) for p in targets}
    near = [p for b in books for p in usable[b] if (p.book, p.index) not in chosen]
    far = [p for b in sorted(usable) if b not in books for p in usable[b]]
    rng.shuffle(near)
    rng.shuffle(far)
    if len(targets) < count or len(near) + len(far) < need:
        raise EvalDataError(
            f"needs {count} target paragraphs of 30-150 words and {need} distractors; found "
            f"{len(targets)} and {len(near) + len(far)} (use a smaller --limit or --sizes)",
            path=corpus.files[0],
        )
    return targets, (near + far)[:need]


def _records(paragraphs: Sequence[Paragraph], prefix: str) -> list[tuple[str, Record]]:
    return [
        (
            f"{prefix}:{p.book}:{p.index}",
            Record(
                text=p.text, source="eval:retention", document=p.book, ordinal=p.index, chunk=False
            ),
        )
        for p in paragraphs
    ]


def _cue(text: str) -> str:
    words = text.split()
    return " ".join(words[: max(1, len(words) // 2)])


@dataclass(slots=True)
class _State:
    """What the probe accumulates over the steps of the curve."""

    namespace: str
    targets: list[Paragraph]
    cues: list[str]
    foils: list[str]
    labels: dict[int, list[str]]
    result: TaskResult
    curve: dict[str, list[Any]]
    ms: dict[str, list[float]] = field(default_factory=dict)


def _measure(ctx: RunContext, state: _State, level: int) -> None:
    """Cued recall on every channel and recognition AUC, after ``level`` distractors."""
    state.curve["distractors"].append(level)
    for channel in ctx.channels:
        runs = run_queries(
            ctx, state.cues, channel=channel, k=10, namespace=state.namespace, labels=state.labels
        )
        metrics = state.result.metrics.setdefault(channel, {})
        rows = state.result.per_query.setdefault(channel, [])
        ranks: list[int | None] = []
        for i, (run, target) in enumerate(zip(runs, state.targets, strict=True)):
            label = f"t:{target.book}:{target.index}"
            rank = run.ranked.index(label) + 1 if label in run.ranked else None
            ranks.append(rank)
            rows.append(
                {
                    "id": f"target{i}/+{level}",
                    "distractors": level,
                    "rank": rank,
                    "ms": round(run.ms, 3),
                }
            )
        for k in (1, 10):
            metrics[f"cued-recall@{k}/+{level}"] = _round(
                mean_over_queries(float(r is not None and r <= k) for r in ranks)
            )
        state.curve.setdefault(channel, []).append(metrics[f"cued-recall@1/+{level}"])
        state.ms.setdefault(channel, []).extend(r.ms for r in runs)
    seen, _ = recognize_all(ctx.memory, [t.text for t in state.targets], state.namespace)
    lures, _ = recognize_all(ctx.memory, state.foils, state.namespace)
    auc = _round(roc_auc([s for _, s in seen], [s for _, s in lures]))
    state.result.metrics.setdefault("recognize", {})[f"auc/+{level}"] = auc
    state.curve["recognize"].append(auc)


def evaluate_retention(ctx: RunContext, corpus: BookCorpus) -> TaskResult:
    """Cued recall of stored paragraphs from their first half as distractors pile up.

    ``ctx.sizes`` are the cumulative distractor counts (default 10, 100, 1,000, 10,000);
    ``ctx.limit`` is the number of targets (default 200). The headline ``cued-recall@1``
    and ``cued-recall@10`` are measured before any distractor.

    Raises:
        EvalDataError: the corpus is too small for the targets and distractors.
    """
    rng = random.Random(f"retention/{ctx.seed}")
    levels = sorted(set(ctx.sizes or DEFAULT_LEVELS))
    count = ctx.limit or TARGETS
    targets, distractors = _material(corpus, rng, count, levels[-1])
    namespace = f"retention.s{ctx.seed}"
    labels, total = ingest(
        ctx.memory, _records(targets, "t"), namespace=namespace, progress=ctx.progress
    )
    state = _State(
        namespace=namespace,
        targets=targets,
        cues=[_cue(t.text) for t in targets],
        foils=[word_swap(t.text, rng) or t.text.upper() for t in targets],
        labels=labels,
        result=TaskResult(metrics={}, latency_ms={}, ingest={}, per_query={}),
        curve={"distractors": [], "recognize": []},
    )
    _measure(ctx, state, 0)
    added = 0
    for level in levels:
        state.labels, stats = ingest(
            ctx.memory,
            _records(distractors[added:level], "d"),
            namespace=namespace,
            labels=state.labels,
            progress=ctx.progress,
        )
        total += stats
        added = level
        _measure(ctx, state, level)
    return _finish(ctx, state, total, levels)


def _finish(ctx: RunContext, state: _State, total: IngestStats, levels: list[int]) -> TaskResult:
    result = state.result
    for channel in ctx.channels:
        metrics = result.metrics[channel]
        headline = {f"cued-recall@{k}": metrics[f"cued-recall@{k}/+0"] for k in (1, 10)}
        result.metrics[channel] = {**headline, **metrics}
        result.latency_ms[channel] = latency_summary(state.ms[channel])
    result.metrics["recognize"] = result.metrics.pop("recognize")
    result.ingest.update(total.as_dict())
    result.series["retention"] = state.curve
    result.params.update(targets=len(state.targets), levels=levels, target_books=TARGET_BOOKS)
    result.info.update(targets=len(state.targets), distractors=levels[-1])
    return result
