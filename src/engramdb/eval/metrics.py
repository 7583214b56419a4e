"""Ranking metrics for one query at a time: nDCG@k, recall@k, precision@k, MRR@k.

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

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from engramdb.errors import InvalidInputError

__all__ = ["mean_over_queries", "mrr_at_k", "ndcg_at_k", "precision_at_k", "recall_at_k"]

Id = TypeVar("Id", bound=Hashable)


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
