from __future__ import annotations

import math

import pytest

from engramdb.errors import InvalidInputError
from engramdb.eval.metrics import (
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

RANKED = ["d1", "d2", "d3", "d4"]
GRADED = {"d2": 2, "d4": 1, "d9": 3, "d3": 0}  # d9 is relevant but never retrieved


def test_ndcg_graded_uses_all_judgments_for_the_ideal() -> None:
    # DCG@3 = 2/log2(3); ideal grades (3, 2, 1) -> 3 + 2/log2(3) + 1/2.
    assert ndcg_at_k(RANKED, GRADED, 3) == pytest.approx(0.26499301486112564, abs=1e-12)
    # DCG@4 adds 1/log2(5); the ideal stays at three relevant documents.
    assert ndcg_at_k(RANKED, GRADED, 4) == pytest.approx(0.35543595158098623, abs=1e-12)


def test_ndcg_binary_perfect_and_reversed() -> None:
    qrels = {"a": 1, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], qrels, 10) == pytest.approx(1.0)
    # Relevant at ranks 2 and 3: (1/log2(3) + 1/2) / (1 + 1/log2(3)).
    expected = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["c", "a", "b"], qrels, 10) == pytest.approx(expected)


def test_ndcg_cutoff_before_any_relevant_is_zero() -> None:
    assert ndcg_at_k(["x", "y", "a"], {"a": 1}, 2) == 0.0


def test_recall_precision_mrr_hand_values() -> None:
    assert recall_at_k(RANKED, GRADED, 3) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, GRADED, 4) == pytest.approx(2 / 3)
    assert precision_at_k(RANKED, GRADED, 3) == pytest.approx(1 / 3)
    assert precision_at_k(RANKED, GRADED, 4) == pytest.approx(2 / 4)
    assert mrr_at_k(RANKED, GRADED, 4) == pytest.approx(1 / 2)
    assert mrr_at_k(RANKED, GRADED, 1) == 0.0


def test_precision_divides_by_k_even_for_short_runs() -> None:
    assert precision_at_k(["a"], {"a": 1}, 5) == pytest.approx(1 / 5)


def test_repeated_ids_count_once() -> None:
    ranked = ["a", "a", "a", "b"]
    assert recall_at_k(ranked, {"a": 1, "b": 1}, 2) == pytest.approx(1.0)
    assert precision_at_k(ranked, {"a": 1, "b": 1}, 2) == pytest.approx(1.0)
    assert ndcg_at_k(ranked, {"a": 1, "b": 1}, 2) == pytest.approx(1.0)


@pytest.mark.parametrize("qrels", [{}, {"a": 0}, {"a": -1, "b": 0}])
def test_queries_without_relevant_judgments_are_undefined(qrels: dict[str, int]) -> None:
    for metric in (ndcg_at_k, recall_at_k, precision_at_k, mrr_at_k):
        assert metric(["a", "b"], qrels, 10) is None


def test_integer_ids_work() -> None:
    assert ndcg_at_k([3, 1, 2], {1: 1}, 3) == pytest.approx(1 / math.log2(3))


@pytest.mark.parametrize("k", [0, -1, True, 2.5])
def test_bad_k_is_rejected(k: object) -> None:
    with pytest.raises(InvalidInputError, match="k must be"):
        ndcg_at_k(["a"], {"a": 1}, k)  # type: ignore[arg-type]


def test_mean_over_queries_skips_undefined() -> None:
    assert mean_over_queries([0.5, None, 1.0]) == pytest.approx(0.75)
    assert mean_over_queries([None, None]) is None
    assert mean_over_queries([]) is None
    assert mean_over_queries(iter([0.25])) == pytest.approx(0.25)
