"""Evaluation: ranking metrics (and, later, datasets, runs and reports)."""

from __future__ import annotations

from engramdb.eval.metrics import (
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

__all__ = ["mean_over_queries", "mrr_at_k", "ndcg_at_k", "precision_at_k", "recall_at_k"]
