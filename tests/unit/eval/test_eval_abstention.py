"""Abstention metrics of the LoCoMo task: category 5 should be abstained on."""

from __future__ import annotations

import pytest

from engramdb.eval.retrieval import ABSTAIN_BELOW, _abstention


def test_abstention_counts_low_relevance_and_empty_recall_as_abstaining() -> None:
    low, high = ABSTAIN_BELOW / 2, (1 + ABSTAIN_BELOW) / 2
    rows = [
        {"category": 5, "relevance": low},  # abstained, right
        {"category": 5, "relevance": None},  # nothing recalled: abstained, right
        {"category": 5, "relevance": high},  # answered, wrong
        {"category": 1, "relevance": low},  # abstained, wrong
        {"category": 2, "relevance": high},  # answered, right
    ]
    got = _abstention(rows)
    assert got["abstention/precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["abstention/recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert got["abstention/f1"] == pytest.approx(2 / 3, abs=1e-6)


def test_abstention_is_undefined_without_unanswerable_questions() -> None:
    got = _abstention([{"category": 1, "relevance": 0.9}])
    assert got["abstention/recall"] is None and got["abstention/f1"] is None
