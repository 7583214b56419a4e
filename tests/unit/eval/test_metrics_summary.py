"""Hand-computed values for the multi-hop, grouped and summary metrics."""

from __future__ import annotations

import pytest

from engramdb.errors import InvalidInputError
from engramdb.eval.metrics import (
    all_recall_at_k,
    group_recall_at_k,
    mean_over_queries,
    percentile,
    recall_at_k,
    roc_auc,
    two_afc_accuracy,
)

# A 3-hop question: gold passages p1, p2, p3; the run finds p2 at rank 1, p1 at rank 4.
RUN = ["p2", "x", "y", "p1", "z", "p3"]
GOLD = {"p1": 1, "p2": 1, "p3": 1}


def test_multihop_recall_is_mean_share_of_gold_in_top_k() -> None:
    assert recall_at_k(RUN, GOLD, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RUN, GOLD, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RUN, GOLD, 6) == pytest.approx(1.0)
    # Two questions: (1/3 + 1/2) / 2 at k = 2.
    second = recall_at_k(["a", "q"], {"a": 1, "b": 1}, 2)
    assert mean_over_queries([recall_at_k(RUN, GOLD, 2), second]) == pytest.approx(5 / 12)


def test_all_recall_needs_every_gold_passage() -> None:
    assert all_recall_at_k(RUN, GOLD, 5) == 0.0
    assert all_recall_at_k(RUN, GOLD, 6) == 1.0
    assert all_recall_at_k(["a", "b"], {"a": 1, "b": 2, "c": 0}, 2) == 1.0  # grade 0 is not gold
    assert all_recall_at_k(["a"], {"a": 0}, 5) is None
    assert all_recall_at_k([], {"a": 1}, 5) == 0.0
    with pytest.raises(InvalidInputError):
        all_recall_at_k(RUN, GOLD, 0)


def test_group_recall_counts_groups_touched_by_the_top_k_items() -> None:
    session = {"D1:1": 1, "D1:2": 1, "D2:1": 2, "D3:1": 3}
    ranked = ["D1:2", "D1:1", "D3:1", "D2:1"]
    # Top 2 turns touch session 1 only; gold sessions {1, 2}.
    assert group_recall_at_k(ranked, session, {1, 2}, 2) == pytest.approx(0.5)
    assert group_recall_at_k(ranked, session, [1, 2], 4) == pytest.approx(1.0)
    assert group_recall_at_k(["unknown"], session, {1}, 1) == 0.0
    assert group_recall_at_k(ranked, session, set(), 3) is None


def test_percentile_interpolates_linearly() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 50) == pytest.approx(25.0)  # rank 1.5
    assert percentile(values, 99) == pytest.approx(39.7)  # rank 2.97
    assert percentile(values, 0) == 10.0
    assert percentile(values, 100) == 40.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(InvalidInputError, match="percentile"):
        percentile(values, 101)


def test_roc_auc_counts_pairs_and_half_ties() -> None:
    # Pairs (p, n): (0.9 > 0.5), (0.9 > 0.7), (0.6 > 0.5), (0.6 < 0.7) -> 3 / 4.
    assert roc_auc([0.9, 0.6], [0.5, 0.7]) == pytest.approx(0.75)
    # A tie counts 1/2: (1.0 vs 1.0) = 0.5, (1.0 > 0.2) = 1 -> 1.5 / 2.
    assert roc_auc([1.0], [1.0, 0.2]) == pytest.approx(0.75)
    assert roc_auc([0.1], [0.9]) == 0.0
    assert roc_auc([], [0.5]) is None
    assert roc_auc([0.5], []) is None


def test_two_afc_accuracy() -> None:
    assert two_afc_accuracy([(1.0, 0.8), (0.5, 0.5), (0.2, 0.9)]) == pytest.approx(1.5 / 3)
    assert two_afc_accuracy([]) is None
