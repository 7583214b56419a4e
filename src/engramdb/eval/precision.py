"""The precision stage, measured: abstention and conformal coverage of recall runs.

* **Abstention** (positive = the query should be abstained on): recall abstains on a query
  when the best calibrated relevance among its hits is below :data:`ABSTAIN_BELOW` (or
  nothing was recalled), which is what ``recall(..., min_relevance=ABSTAIN_BELOW)`` flags.
  Precision, recall and F1 are scored against the unanswerable queries: LoCoMo category 5,
  or retrieval queries whose relevant documents were left out of the store
  (:func:`holdout`).
* **Conformal coverage**: for each requested error rate ``α``, every query is recalled with
  ``coverage=1-α``; the empirical coverage is the share of answerable queries with at
  least one relevant item among the returned hits, and the set size is how many hits
  came back (capped at :data:`CONFORMAL_K`).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engramdb import InvalidInputError
from engramdb.eval.datasets import Query
from engramdb.eval.runner import QueryRun, RunContext, run_queries

__all__ = [
    "ABSTAIN_BELOW",
    "CONFORMAL_K",
    "Holdout",
    "abstention",
    "abstention_scores",
    "check_alphas",
    "conformal",
    "conformal_summary",
    "holdout",
]

ABSTAIN_BELOW = 0.5
"""A query counts as abstained on when its best hit's calibrated relevance is below this."""
CONFORMAL_K = 100
"""The most hits a conformal recall returns (the default ``recall.candidates``)."""

Group = tuple[str, Sequence[str], Mapping[int, Sequence[str]]]
"""One recall pass: ``(namespace, query texts, {memory id: labels})``."""


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return round(value, digits) if value is not None else None


def check_alphas(alphas: Sequence[float]) -> tuple[float, ...]:
    """Distinct error rates in the order given.

    Raises:
        InvalidInputError: a rate outside (0, 1).
    """
    out = tuple(dict.fromkeys(float(a) for a in alphas))
    bad = [a for a in out if not 0.0 < a < 1.0]
    if bad:
        raise InvalidInputError(f"alpha must be in (0, 1), e.g. 0.1 for 90% coverage; got {bad}")
    return out


def abstention_scores(
    flags: Sequence[bool], truth: Sequence[bool | None]
) -> dict[str, float | None]:
    """Precision, recall and F1 of abstaining, ``truth`` marking the unanswerable queries.

    Queries whose truth is ``None`` (neither answerable nor unanswerable, e.g. without a
    relevant judgment) are left out. A score is ``None`` where undefined: precision when
    nothing was abstained on, recall when no query is unanswerable.

    Raises:
        InvalidInputError: ``flags`` and ``truth`` differ in length.
    """
    if len(flags) != len(truth):
        raise InvalidInputError(f"{len(flags)} abstention flags for {len(truth)} queries")
    pairs = [(f, t) for f, t in zip(flags, truth, strict=True) if t is not None]
    tp = sum(f and t for f, t in pairs)
    flagged = sum(f for f, _ in pairs)
    positives = sum(t for _, t in pairs)
    precision = tp / flagged if flagged else None
    recall = tp / positives if positives else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": _rounded(precision), "recall": _rounded(recall), "f1": _rounded(f1)}


def abstained(run: QueryRun) -> bool:
    """Whether a plain recall counts as abstaining: no hit reaches :data:`ABSTAIN_BELOW`."""
    return run.best is None or run.best < ABSTAIN_BELOW


def abstention(runs: Sequence[QueryRun], truth: Sequence[bool | None]) -> dict[str, float | None]:
    """:func:`abstention_scores` of plain recall runs, abstaining below :data:`ABSTAIN_BELOW`."""
    return abstention_scores([abstained(r) for r in runs], truth)


def conformal_summary(
    runs: Sequence[QueryRun],
    gold: Sequence[Mapping[str, int] | None],
    truth: Sequence[bool | None],
) -> dict[str, Any]:
    """Coverage, set size and abstention of one conformal pass.

    Args:
        runs: one recall per query, made with ``coverage=1-α``.
        gold: each query's judgments (label → grade, ``> 0`` relevant); a query with no
            relevant label is not answerable and is left out of ``coverage`` and
            ``mean_set_size``.
        truth: each query's unanswerability, as for :func:`abstention_scores`.

    Returns:
        ``{"coverage", "mean_set_size", "abstain_rate", "answerable"}``, plus
        ``"abstention"`` (precision, recall, F1 of the abstain flag) when some query is
        unanswerable. ``abstain_rate`` covers every query.
    """
    relevant = [{d for d, g in (g or {}).items() if g > 0} for g in gold]
    answerable = [(r, rel) for r, rel in zip(runs, relevant, strict=True) if rel]
    covered = [any(label in rel for label in r.ranked) for r, rel in answerable]
    out: dict[str, Any] = {
        "coverage": _rounded(sum(covered) / len(covered)) if covered else None,
        "mean_set_size": (
            _rounded(sum(r.hits for r, _ in answerable) / len(answerable), 3)
            if answerable
            else None
        ),
        "abstain_rate": _rounded(sum(r.abstain for r in runs) / len(runs)) if runs else None,
        "answerable": len(answerable),
    }
    if any(t for t in truth):
        out["abstention"] = abstention_scores([r.abstain for r in runs], truth)
    return out


def conformal(
    ctx: RunContext,
    groups: Sequence[Group],
    *,
    channel: str,
    gold: Sequence[Mapping[str, int] | None],
    truth: Sequence[bool | None],
) -> dict[str, dict[str, Any]]:
    """One conformal pass per ``ctx.alphas``: ``{str(α): conformal_summary(...)}``.

    ``gold`` and ``truth`` follow the queries of ``groups`` in order.

    Raises:
        InvalidInputError: an empty query or an unknown channel.
        NotFoundError: a namespace holds no memories.
    """
    out: dict[str, dict[str, Any]] = {}
    if ctx.alphas:  # recall never calibrates: calibrate each scope first (once)
        for namespace in dict.fromkeys(namespace for namespace, _, _ in groups):
            ctx.memory.calibrate(namespace=namespace)
    for alpha in ctx.alphas:
        runs = [
            run
            for namespace, texts, labels in groups
            for run in run_queries(
                ctx,
                texts,
                channel=channel,
                k=CONFORMAL_K,
                namespace=namespace,
                labels=labels,
                coverage=1.0 - alpha,
            )
        ]
        out[str(alpha)] = conformal_summary(runs, gold, truth)
    return out


# -- unanswerable retrieval queries ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Holdout:
    """Judged queries made unanswerable by leaving their relevant documents out.

    Attributes:
        namespace: the namespace holding the corpus without ``removed``.
        gone: ids of the queries made unanswerable.
        dropped: ids of other queries that lost a relevant document too (not run).
        removed: ids of the documents left out.
    """

    namespace: str
    gone: frozenset[str]
    dropped: frozenset[str]
    removed: frozenset[str]


def _relevant(query: Query) -> set[str]:
    return {d for d, g in query.qrels.items() if g > 0}


def holdout(queries: Sequence[Query], n: int, *, seed: int, namespace: str) -> Holdout:
    """Draw ``n`` judged queries (seeded) and leave their relevant documents out.

    The corpus without them lives in its own namespace, ``<namespace>.holdout-<digest>``,
    so a reused store keeps the full corpus untouched.

    Raises:
        InvalidInputError: ``n`` leaves no answerable judged query.
    """
    judged = [q for q in queries if _relevant(q)]
    if not 0 < n < len(judged):
        raise InvalidInputError(
            f"unanswerable holdout must be between 1 and {len(judged) - 1} "
            f"(the run has {len(judged)} judged queries), got {n}"
        )
    gone = random.Random(f"holdout/{seed}").sample(judged, n)
    removed = frozenset(d for q in gone for d in _relevant(q))
    gone_ids = frozenset(q.id for q in gone)
    dropped = frozenset(q.id for q in judged if q.id not in gone_ids and _relevant(q) & removed)
    if len(gone_ids) + len(dropped) == len(judged):
        raise InvalidInputError(
            f"an unanswerable holdout of {n} removes a relevant document of every judged "
            "query; choose a smaller one"
        )
    digest = hashlib.sha256("\n".join(sorted(removed)).encode()).hexdigest()[:12]
    return Holdout(
        namespace=f"{namespace}.holdout-{digest}",
        gone=gone_ids,
        dropped=dropped,
        removed=removed,
    )
