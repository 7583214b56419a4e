"""Sequence order recall (SORT): "which of two segments of a book came first?".

For each of a few books, a contiguous excerpt of about L_E words is ingested paragraph by
paragraph, with its position (``ordinal``) and a reading time (``event_time``). Pairs of
non-overlapping segments of L_S words are drawn from it (balanced over four distance bins);
each segment is recalled, and the answer comes only from what the store returns: the
earlier of the two top hits by position, then by the offset of the segment in the hit's
text. Unrecalled or equal positions are answered by a coin flip (counted as ``ties``).

Reference accuracies (Pink et al. 2024, Book-SORT, with LLM readers): in-context 77-95%,
vanilla RAG 55-67%, human readers 56-64%; chance is 50%.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engramdb import Hit, Record
from engramdb.eval.books import BookCorpus, Paragraph
from engramdb.eval.datasets import EvalDataError
from engramdb.eval.metrics import mean_over_queries
from engramdb.eval.probes import DISTANCE_BINS, OrderPair, order_pairs
from engramdb.eval.runner import (
    IngestStats,
    QueryRun,
    RunContext,
    TaskResult,
    ingest,
    latency_summary,
    run_queries,
)

__all__ = ["BOOKS", "DEFAULT_EXCERPTS", "PAIRS", "SEGMENT_WORDS", "evaluate_sort"]

DEFAULT_EXCERPTS = (1_000, 10_000)
"""Excerpt lengths L_E in words (``--sizes``)."""
SEGMENT_WORDS = (20, 50)
"""Segment lengths L_S in words."""
BOOKS = 4
PAIRS = 50
"""Pairs per book and excerpt length (``--limit``)."""
EPOCH = 1_600_000_000.0


@dataclass(frozen=True, slots=True)
class _Excerpt:
    book: str
    paragraphs: list[Paragraph]
    words: list[str]
    owner: list[int]  # the paragraph index of each word


def _excerpt(paragraphs: Sequence[Paragraph], rng: random.Random, length: int) -> _Excerpt | None:
    counts = [len(p.text.split()) for p in paragraphs]
    remaining = list(itertools.accumulate(reversed(counts)))[::-1]
    starts = [i for i, r in enumerate(remaining) if r >= length and counts[i] > 0]
    if not starts:
        return None
    first = rng.choice(starts)
    taken: list[Paragraph] = []
    words: list[str] = []
    owner: list[int] = []
    for para in paragraphs[first:]:
        taken.append(para)
        tokens = para.text.split()
        words += tokens
        owner += [para.index] * len(tokens)
        if len(words) >= length:
            break
    return _Excerpt(paragraphs[first].book, taken, words[:length], owner[:length])


def _position(hit: Hit | None, segment: str) -> tuple[float, int] | None:
    """Where the store says a segment is: the hit's position, then the offset in its text."""
    if hit is None:
        return None
    order = hit.position.ordinal if hit.position.ordinal is not None else hit.event_time
    if order is None:
        return None
    offset = hit.text.find(" ".join(segment.split()[:4]))
    return float(order), max(offset, 0)


def _answer(
    pair: OrderPair, runs: tuple[QueryRun, QueryRun], texts: tuple[str, str], rng: random.Random
) -> tuple[bool, bool]:
    """(correct, tie) for one pair; ``runs``/``texts`` are (earlier, later) segments."""
    earlier, later = _position(runs[0].top, texts[0]), _position(runs[1].top, texts[1])
    if earlier is None or later is None or earlier == later:
        return rng.random() < 0.5, True
    shown_a, shown_b = (earlier, later) if pair.shown_first_is_first else (later, earlier)
    says_a_first = shown_a < shown_b
    return says_a_first == pair.shown_first_is_first, False


def _books(corpus: BookCorpus, rng: random.Random, length: int) -> list[_Excerpt]:
    grouped = corpus.by_book()
    excerpts = [e for book in sorted(grouped) if (e := _excerpt(grouped[book], rng, length))]
    return rng.sample(excerpts, min(BOOKS, len(excerpts)))


def _ingest_excerpt(
    ctx: RunContext, excerpt: _Excerpt, namespace: str
) -> tuple[dict[int, list[str]], IngestStats]:
    items = [
        (
            f"{p.book}:{p.index}",
            Record(
                text=p.text,
                source="eval:sort",
                document=p.book,
                ordinal=p.index,
                event_time=EPOCH + 60.0 * i,
                chunk=False,
            ),
        )
        for i, p in enumerate(excerpt.paragraphs)
        if p.text.strip()
    ]
    return ingest(ctx.memory, items, namespace=namespace, progress=ctx.progress)


def evaluate_sort(ctx: RunContext, corpus: BookCorpus) -> TaskResult:
    """SORT accuracy per channel, by distance bin, segment length and excerpt length.

    ``ctx.sizes`` are excerpt lengths in words (default 1,000 and 10,000); ``ctx.limit`` is
    the number of pairs per book and excerpt length (default 50).

    Raises:
        EvalDataError: no book is long enough for any excerpt length.
    """
    rows: dict[str, list[dict[str, Any]]] = {c: [] for c in ctx.channels}
    ms: dict[str, list[float]] = {c: [] for c in ctx.channels}
    total = IngestStats()
    lengths = sorted(set(ctx.sizes or DEFAULT_EXCERPTS))
    for length in lengths:
        rng = random.Random(f"sort/{ctx.seed}/{length}")
        for excerpt in _books(corpus, rng, length):
            namespace = f"sort.s{ctx.seed}.w{length}.{excerpt.book}"
            labels, stats = _ingest_excerpt(ctx, excerpt, namespace)
            total += stats
            pairs = order_pairs(rng, len(excerpt.words), ctx.limit or PAIRS, SEGMENT_WORDS)
            texts = [
                (
                    " ".join(excerpt.words[p.first : p.first + p.length]),
                    " ".join(excerpt.words[p.second : p.second + p.length]),
                )
                for p in pairs
            ]
            for channel in ctx.channels:
                runs = run_queries(
                    ctx,
                    [t for pair in texts for t in pair],
                    channel=channel,
                    k=1,
                    namespace=namespace,
                    labels=labels,
                )
                coin = random.Random(f"sort/coin/{ctx.seed}/{length}/{excerpt.book}/{channel}")
                for i, pair in enumerate(pairs):
                    both = (runs[2 * i], runs[2 * i + 1])
                    rows[channel].append(_row(excerpt, length, pair, both, texts[i], coin))
                    ms[channel] += [both[0].ms, both[1].ms]
    if not any(rows.values()) and ctx.channels:
        raise EvalDataError(
            f"no book has {min(lengths)} words for an excerpt (use smaller --sizes)",
            path=corpus.files[0],
        )
    return _result(ctx, lengths, rows, ms, total)


def _row(
    excerpt: _Excerpt,
    length: int,
    pair: OrderPair,
    runs: tuple[QueryRun, QueryRun],
    texts: tuple[str, str],
    coin: random.Random,
) -> dict[str, Any]:
    correct, tie = _answer(pair, runs, texts, coin)
    found = 0
    for run, start in zip(runs, (pair.first, pair.second), strict=True):
        gold = {f"{excerpt.book}:{i}" for i in excerpt.owner[start : start + pair.length]}
        found += int(bool(run.ranked) and run.ranked[0] in gold)
    return {
        "id": f"{excerpt.book}/w{length}/{pair.first}-{pair.second}",
        "excerpt": length,
        "segment": pair.length,
        "distance_bin": pair.distance_bin,
        "correct": correct,
        "tie": tie,
        "segments_found": found,
        "ms": round(runs[0].ms + runs[1].ms, 3),
    }


def _mean(rows: Sequence[dict[str, Any]], key: str, scale: float = 1.0) -> float | None:
    value = mean_over_queries(float(r[key]) / scale for r in rows)
    return round(value, 6) if value is not None else None


def _bin_name(b: int) -> str:
    lo, hi = DISTANCE_BINS[b]
    return f"dist={int(lo * 100)}-{int(hi * 100)}%"


def _result(
    ctx: RunContext,
    lengths: Sequence[int],
    rows: dict[str, list[dict[str, Any]]],
    ms: dict[str, list[float]],
    total: IngestStats,
) -> TaskResult:
    result = TaskResult(metrics={}, latency_ms={}, ingest=total.as_dict(), per_query=rows)
    by_bin: dict[str, list[float | None]] = {}
    for channel in ctx.channels:
        mine = rows[channel]
        metrics: dict[str, float | None] = {
            "accuracy": _mean(mine, "correct"),
            "segment-recall@1": _mean(mine, "segments_found", 2.0),
            "ties": _mean(mine, "tie"),
        }
        for b in range(len(DISTANCE_BINS)):
            metrics[f"accuracy/{_bin_name(b)}"] = _mean(
                [r for r in mine if r["distance_bin"] == b], "correct"
            )
        for seg in SEGMENT_WORDS:
            metrics[f"accuracy/segment={seg}"] = _mean(
                [r for r in mine if r["segment"] == seg], "correct"
            )
        for length in lengths:
            metrics[f"accuracy/excerpt={length}"] = _mean(
                [r for r in mine if r["excerpt"] == length], "correct"
            )
        result.metrics[channel] = metrics
        result.latency_ms[channel] = latency_summary(ms[channel])
        by_bin[channel] = [metrics[f"accuracy/{_bin_name(b)}"] for b in range(len(DISTANCE_BINS))]
    result.series["sort"] = {"bins": [_bin_name(b) for b in range(len(DISTANCE_BINS))], **by_bin}
    result.params.update(
        excerpts=list(lengths),
        segments=list(SEGMENT_WORDS),
        books=BOOKS,
        pairs_per_book=ctx.limit or PAIRS,
    )
    result.info.update(pairs=len(next(iter(rows.values()), [])))
    return result
