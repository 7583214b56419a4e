"""Ranking metrics for one query at a time (nDCG@k, recall@k, all-recall@k, precision@k,
MRR@k), and the summary statistics of a run (means, percentiles, ROC AUC, 2-AFC accuracy).

Conventions (those of ``trec_eval``, which BEIR uses through ``pytrec_eval``):

* ``qrels`` maps a document id to a graded judgment; a document is *relevant* when its
  grade is ``> 0``. Grades ``<= 0`` and unjudged documents count as non-relevant.
* nDCG uses linear gains (the grade itself) and the ``log2(rank + 1)`` discount; the ideal
  ranking is built from *all* relevant judgments, not only the retrieved ones.
* A document id repeated in ``ranked_ids`` counts once, at its first position; ``k`` cuts
  the de-duplicated list.
* A query without any relevant judgment has no defined score: every metric returns
  ``None`` for it, and :func:`mean_over_queries` leaves such queries out of the mean.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from engramdb.errors import InvalidInputError

__all__ = [
    "all_recall_at_k",
    "group_recall_at_k",
    "mean_over_queries",
    "mrr_at_k",
    "ndcg_at_k",
    "percentile",
    "precision_at_k",
    "recall_at_k",
    "roc_auc",
    "two_afc_accuracy",
]

Id = TypeVar("Id", bound=Hashable)
G = TypeVar("G", bound=Hashable)


def _top(ranked_ids: Sequence[Id], k: int) -> list[Id]:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be an integer >= 1, got {k!r}")
    seen: dict[Id, None] = {}
    for doc in ranked_ids:
        if len(seen) == k:
            break
        seen.setdefault(doc, None)
    return list(seen)


def _relevant(qrels: Mapping[Id, int]) -> dict[Id, int]:
    return {doc: grade for doc, grade in qrels.items() if grade > 0}


def ndcg_at_k(ranked_ids: Sequence[Id], qrels: Mapping[Id, int], k: int) -> float | None:
    """Normalized discounted cumulative gain of the first ``k`` results.

    ``DCG = sum(grade_i / log2(i + 1))`` over ranks ``i = 1..k``; nDCG divides it by the DCG
    of the ideal ranking of all relevant judgments.

    Args:
        ranked_ids: document ids, best first.
        qrels: graded judgments for this query (document id -> grade).
        k: the cutoff.

    Returns:
        nDCG@k in [0, 1], or ``None`` when the query has no relevant judgment.

    Raises:
        InvalidInputError: ``k < 1``.
    """
    top = _top(ranked_ids, k)
    relevant = _relevant(qrels)
    if not relevant:
        return None
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(top, 1))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, 1))
    return dcg / idcg


def recall_at_k(ranked_ids: Sequence[Id], qrels: Mapping[Id, int], k: int) -> float | None:
    """The share of relevant documents found in the first ``k`` results.

    Args:
        ranked_ids: document ids, best first.
        qrels: graded judgments for this query.
        k: the cutoff.

    Returns:
        Recall@k in [0, 1], or ``None`` when the query has no relevant judgment.

    Raises:
        InvalidInputError: ``k < 1``.
    """
    top = _top(ranked_ids, k)
    relevant = _relevant(qrels)
    if not relevant:
        return None
    return sum(1 for doc in top if doc in relevant) / len(relevant)


def precision_at_k(ranked_ids: Sequence[Id], qrels: Mapping[Id, int], k: int) -> float | None:
    """The share of the first ``k`` ranks that hold a relevant document.

    The denominator is always ``k``, even when fewer than ``k`` results were returned.

    Args:
        ranked_ids: document ids, best first.
        qrels: graded judgments for this query.
        k: the cutoff.

    Returns:
        Precision@k in [0, 1], or ``None`` when the query has no relevant judgment.

    Raises:
        InvalidInputError: ``k < 1``.
    """
    top = _top(ranked_ids, k)
    relevant = _relevant(qrels)
    if not relevant:
        return None
    return sum(1 for doc in top if doc in relevant) / k


def mrr_at_k(ranked_ids: Sequence[Id], qrels: Mapping[Id, int], k: int) -> float | None:
    """Reciprocal rank of the first relevant document within the first ``k`` results.

    Args:
        ranked_ids: document ids, best first.
        qrels: graded judgments for this query.
        k: the cutoff.

    Returns:
        ``1 / rank`` of the first relevant result, ``0.0`` when none is in the top ``k``,
        or ``None`` when the query has no relevant judgment.

    Raises:
        InvalidInputError: ``k < 1``.
    """
    top = _top(ranked_ids, k)
    relevant = _relevant(qrels)
    if not relevant:
        return None
    for rank, doc in enumerate(top, 1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def mean_over_queries(values: Iterable[float | None]) -> float | None:
    """The mean of per-query values, leaving out queries whose value is ``None``.

    Args:
        values: one metric value per query (``None`` for a query without judgments).

    Returns:
        The mean, or ``None`` when no query has a value.
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    return math.fsum(present) / len(present)


def all_recall_at_k(ranked_ids: Sequence[Id], qrels: Mapping[Id, int], k: int) -> float | None:
    """Whether *every* relevant document is in the first ``k`` results (1.0 or 0.0).

    This is the multi-hop "all-recall" of the HippoRAG protocol: a question counts only when
    all of its supporting passages were found. (``recall_at_k`` with binary judgments is the
    protocol's recall@k, the mean of ``|gold ∩ top-k| / |gold|``.)

    Args:
        ranked_ids: document ids, best first.
        qrels: graded judgments for this query.
        k: the cutoff.

    Returns:
        1.0 or 0.0, or ``None`` when the query has no relevant judgment.

    Raises:
        InvalidInputError: ``k < 1``.
    """
    top = set(_top(ranked_ids, k))
    relevant = _relevant(qrels)
    if not relevant:
        return None
    return 1.0 if all(doc in top for doc in relevant) else 0.0


def group_recall_at_k(
    ranked_ids: Sequence[Id], groups: Mapping[Id, G], gold: Iterable[G], k: int
) -> float | None:
    """The share of gold *groups* that the first ``k`` results touch.

    Used for session-level recall of conversation turns: ``groups`` maps a turn to its
    session, and ``k`` still counts results (turns), not groups. Results without a group
    touch nothing.

    Args:
        ranked_ids: item ids, best first.
        groups: the group of each item.
        gold: the groups that hold the evidence.
        k: the cutoff, in items.

    Returns:
        The share in [0, 1], or ``None`` when ``gold`` is empty.

    Raises:
        InvalidInputError: ``k < 1``.
    """
    top = _top(ranked_ids, k)
    wanted = set(gold)
    if not wanted:
        return None
    touched = {groups[doc] for doc in top if doc in groups}
    return len(touched & wanted) / len(wanted)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile with linear interpolation between order statistics.

    The same definition as numpy's default (``method="linear"``): the value at fractional
    rank ``(n - 1) * q / 100`` of the sorted values.

    Args:
        values: the sample.
        q: the percentile, in [0, 100].

    Returns:
        The percentile, or ``None`` for an empty sample.

    Raises:
        InvalidInputError: ``q`` outside [0, 100].
    """
    if not 0 <= q <= 100:
        raise InvalidInputError(f"percentile must be in [0, 100], got {q!r}")
    data = sorted(values)
    if not data:
        return None
    rank = (len(data) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative).

    Computed exactly over all pairs (the Mann-Whitney U statistic); a tie counts one half.

    Args:
        positives: scores of the items that should score high (stored items).
        negatives: scores of the items that should score low (foils).

    Returns:
        The AUC in [0, 1], or ``None`` when either side is empty.
    """
    if not positives or not negatives:
        return None
    ordered = sorted(negatives)
    total = 0.0
    for score in positives:
        below = _count_below(ordered, score)
        ties = _count_below(ordered, score, inclusive=True) - below
        total += below + 0.5 * ties
    return total / (len(positives) * len(negatives))


def _count_below(ordered: Sequence[float], value: float, *, inclusive: bool = False) -> int:
    return (bisect.bisect_right if inclusive else bisect.bisect_left)(ordered, value)


def two_afc_accuracy(pairs: Iterable[tuple[float, float]]) -> float | None:
    """Two-alternative forced choice: the share of (target, foil) pairs where the target wins.

    A tie counts one half (a coin flip).

    Args:
        pairs: ``(target score, foil score)`` for each matched pair.

    Returns:
        The accuracy in [0, 1], or ``None`` without pairs.
    """
    outcomes = [1.0 if t > f else 0.5 if t == f else 0.0 for t, f in pairs]
    return math.fsum(outcomes) / len(outcomes) if outcomes else None
