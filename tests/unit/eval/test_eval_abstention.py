"""Abstention metrics: unanswerable queries (LoCoMo category 5, a holdout) are abstained on."""

from __future__ import annotations

import pytest

from engramdb.eval.precision import ABSTAIN_BELOW, abstention, abstention_scores
from engramdb.eval.runner import QueryRun


def _run(best: float | None) -> QueryRun:
    return QueryRun(ranked=(), top=None, ms=0.0, hits=0 if best is None else 1, best=best)


def test_abstention_counts_low_relevance_and_empty_recall_as_abstaining() -> None:
    low, high = ABSTAIN_BELOW / 2, (1 + ABSTAIN_BELOW) / 2
    runs = [
        _run(low),  # unanswerable, abstained: right
        _run(None),  # unanswerable, nothing recalled: abstained, right
        _run(high),  # unanswerable, answered: wrong
        _run(low),  # answerable, abstained: wrong
        _run(high),  # answerable, answered: right
    ]
    got = abstention(runs, [True, True, True, False, False])
    assert set(got) == {"precision", "recall", "f1"}
    assert got["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["f1"] == pytest.approx(2 / 3, abs=1e-6)


def test_abstention_at_the_threshold_answers() -> None:
    assert abstention([_run(ABSTAIN_BELOW)], [True])["recall"] == 0.0


def test_abstention_is_undefined_without_unanswerable_questions() -> None:
    got = abstention([_run(0.9)], [False])
    assert got["recall"] is None and got["f1"] is None
    assert got["precision"] is None  # nothing abstained on


def test_queries_without_truth_are_left_out() -> None:
    got = abstention_scores([True, True, False], [True, None, False])
    assert got == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_precision_and_recall_asymmetric() -> None:
    # 3 unanswerable, 1 of them flagged; 2 answerable, both flagged → P = 1/3, R = 1/3
    got = abstention_scores([True, False, False, True, True], [True, True, True, False, False])
    assert got["precision"] == pytest.approx(1 / 3, abs=1e-6)
    assert got["recall"] == pytest.approx(1 / 3, abs=1e-6)
    # 1 unanswerable flagged, 1 answerable flagged of 2 → P = 1/2, R = 1
    got = abstention_scores([True, True, False], [True, False, False])
    assert (got["precision"], got["recall"]) == (0.5, 1.0)
    assert got["f1"] == pytest.approx(2 / 3, abs=1e-6)
