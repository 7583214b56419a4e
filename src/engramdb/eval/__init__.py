"""Offline evaluation: data set loaders, probes, metrics, the harness and its reports.

Example:
    >>> from engramdb.eval import EvalOptions, evaluate
    >>> report = evaluate("../shared/data/scifact", EvalOptions(limit=50))  # doctest: +SKIP
    >>> report.metrics["hybrid"]["ndcg@10"]  # doctest: +SKIP
"""

from __future__ import annotations

from engramdb.eval.datasets import KINDS, EvalDataError, detect_kind
from engramdb.eval.harness import EvalOptions, evaluate
from engramdb.eval.metrics import (
    all_recall_at_k,
    group_recall_at_k,
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    percentile,
    precision_at_k,
    recall_at_k,
    roc_auc,
    two_afc_accuracy,
)
from engramdb.eval.report import (
    Comparison,
    Delta,
    Report,
    compare_reports,
    comparison_markdown,
    flat_metrics,
    load_report,
    to_markdown,
)
from engramdb.eval.runner import CHANNELS

__all__ = [
    "CHANNELS",
    "KINDS",
    "Comparison",
    "Delta",
    "EvalDataError",
    "EvalOptions",
    "Report",
    "all_recall_at_k",
    "compare_reports",
    "comparison_markdown",
    "detect_kind",
    "evaluate",
    "flat_metrics",
    "group_recall_at_k",
    "load_report",
    "mean_over_queries",
    "mrr_at_k",
    "ndcg_at_k",
    "percentile",
    "precision_at_k",
    "recall_at_k",
    "roc_auc",
    "to_markdown",
    "two_afc_accuracy",
]
