"""Needle in a haystack: a unique fact hidden at depth d among N book paragraphs.

For each haystack size N, N paragraphs (a seeded sample, nested across sizes) are
ingested in a seeded order with two invented facts inserted in each of the
:data:`~engramdb.eval.probes.DEPTH_BINS` depth bins (20 needles, 20 different templates,
each with its own invented words). Each fact is then recalled by a
paraphrased cue; a needle counts at ``k`` when it is among the top ``k`` hits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from engramdb import Record
from engramdb.eval.books import BookCorpus, Paragraph
from engramdb.eval.datasets import EvalDataError
from engramdb.eval.metrics import mean_over_queries
from engramdb.eval.probes import DEPTH_BINS, Needle, make_needles
from engramdb.eval.runner import (
    IngestStats,
    RunContext,
    TaskResult,
    ingest,
    latency_summary,
    run_queries,
)

__all__ = ["DEFAULT_SIZES", "PER_BIN", "evaluate_needle", "haystack_pool"]

DEFAULT_SIZES = (100, 1_000, 10_000)
PER_BIN = 2
"""Needles per depth bin: each haystack holds 20 needles, all from different templates."""
EPOCH = 1_600_000_000.0
"""``event_time`` of the first memory of a probe; each later one is a minute later."""
MIN_CHARS, MAX_CHARS = 40, 1_000


def haystack_pool(corpus: BookCorpus, rng: random.Random, need: int) -> list[Paragraph]:
    """``need`` distinct paragraphs of 40-1,000 characters, in a seeded random order.

    Raises:
        EvalDataError: the corpus has fewer such paragraphs.
    """
    seen: set[str] = set()
    pool: list[Paragraph] = []
    for para in corpus.paragraphs:
        key = para.text.strip().lower()
        if MIN_CHARS <= len(key) <= MAX_CHARS and key not in seen:
            seen.add(key)
            pool.append(para)
    if len(pool) < need:
        raise EvalDataError(
            f"a haystack of {need} needs as many paragraphs of {MIN_CHARS}-{MAX_CHARS} characters; "
            f"the corpus has {len(pool)} (use smaller --sizes)",
            path=corpus.files[0],
        )
    rng.shuffle(pool)
    return pool[:need]


def _haystack(
    hay: Sequence[Paragraph], needles: Sequence[Needle], rng: random.Random
) -> list[tuple[str, Record]]:
    """Labelled records in ingest order; needle ``i`` lies in depth bin ``i % DEPTH_BINS``."""
    order = list(hay)
    rng.shuffle(order)
    slots = sorted(
        (int((i % DEPTH_BINS + rng.random()) / DEPTH_BINS * len(order)), i)
        for i in range(len(needles))
    )
    items: list[tuple[str, str, str]] = [(f"{p.book}:{p.index}", p.text, p.book) for p in order]
    for slot, i in reversed(slots):
        items.insert(slot, (f"needle:{i}", needles[i].fact, "needle"))
    return [
        (
            label,
            Record(
                text=text,
                source="eval:needle",
                document=doc,
                ordinal=n,
                event_time=EPOCH + 60.0 * n,
                chunk=False,
            ),
        )
        for n, (label, text, doc) in enumerate(items)
    ]


def _sizes(ctx: RunContext) -> list[int]:
    sizes = sorted(set(ctx.sizes or DEFAULT_SIZES))
    if ctx.limit:
        sizes = [s for s in sizes if s <= ctx.limit] or [ctx.limit]
    return sizes


def evaluate_needle(ctx: RunContext, corpus: BookCorpus) -> TaskResult:
    """Recall@1 and recall@10 of needles by paraphrased cue, per channel, size and depth.

    ``ctx.sizes`` are the haystack sizes (default 100, 1,000, 10,000); ``ctx.limit`` drops
    larger ones.

    Raises:
        EvalDataError: the corpus is too small for the largest haystack.
    """
    sizes = _sizes(ctx)
    pool = haystack_pool(corpus, random.Random(ctx.seed), max(sizes))
    found: dict[str, dict[int, list[tuple[int, int | None]]]] = {c: {} for c in ctx.channels}
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in ctx.channels}
    ms: dict[str, list[float]] = {c: [] for c in ctx.channels}
    total = IngestStats()
    for size in sizes:
        rng = random.Random(f"needle/{ctx.seed}/{size}")
        needles = make_needles(rng, DEPTH_BINS * PER_BIN)
        namespace = f"needle.s{ctx.seed}.n{size}"
        labels, stats = ingest(
            ctx.memory,
            _haystack(pool[:size], needles, rng),
            namespace=namespace,
            progress=ctx.progress,
        )
        total += stats
        for channel in ctx.channels:
            runs = run_queries(
                ctx,
                [n.cue for n in needles],
                channel=channel,
                k=10,
                namespace=namespace,
                labels=labels,
            )
            for i, run in enumerate(runs):
                label, depth = f"needle:{i}", i % DEPTH_BINS
                rank = run.ranked.index(label) + 1 if label in run.ranked else None
                found[channel].setdefault(size, []).append((depth, rank))
                rows[channel].append(
                    {
                        "id": f"n{size}/{i}",
                        "size": size,
                        "depth_bin": depth,
                        "rank": rank,
                        "ms": round(run.ms, 3),
                        "cue": needles[i].cue,
                    }
                )
                ms[channel].append(run.ms)
    return _result(ctx, sizes, found, rows, ms, total)


def _share(ranks: Sequence[int | None], k: int) -> float | None:
    value = mean_over_queries(1.0 if r is not None and r <= k else 0.0 for r in ranks)
    return round(value, 6) if value is not None else None


def _result(
    ctx: RunContext,
    sizes: Sequence[int],
    found: dict[str, dict[int, list[tuple[int, int | None]]]],
    rows: dict[str, list[dict[str, Any]]],
    ms: dict[str, list[float]],
    total: IngestStats,
) -> TaskResult:
    result = TaskResult(metrics={}, latency_ms={}, ingest=total.as_dict(), per_query=rows)
    grid: dict[str, Any] = {
        "sizes": list(sizes),
        "depths": [b / DEPTH_BINS for b in range(DEPTH_BINS)],
    }
    for channel in ctx.channels:
        every = [rank for size in sizes for _, rank in found[channel][size]]
        metrics: dict[str, float | None] = {
            "recall@1": _share(every, 1),
            "recall@10": _share(every, 10),
        }
        cells = []
        for size in sizes:
            metrics[f"recall@1/n={size}"] = _share([r for _, r in found[channel][size]], 1)
            cells.append(
                [
                    _share([r for b, r in found[channel][size] if b == depth], 1)
                    for depth in range(DEPTH_BINS)
                ]
            )
        grid[channel] = cells
        result.metrics[channel] = metrics
        result.latency_ms[channel] = latency_summary(ms[channel])
    result.series["needle"] = grid
    result.params.update(sizes=list(sizes), needles_per_bin=PER_BIN, depth_bins=DEPTH_BINS)
    result.info.update(needles=len(sizes) * PER_BIN * DEPTH_BINS, haystack_paragraphs=max(sizes))
    return result
