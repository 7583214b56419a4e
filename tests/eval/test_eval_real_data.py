"""The shared benchmark data sets: loader checks (fast) and real-model runs (slow).

The data lives outside the repository (``../shared/data`` or ``$ENGRAMDB_EVAL_DATA``);
every test here is skipped when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engramdb.eval import EvalOptions, evaluate
from engramdb.eval.books import load_books
from engramdb.eval.conversations import load_locomo
from engramdb.eval.datasets import load_beir, load_multihop

SHARED = Path(
    os.environ.get("ENGRAMDB_EVAL_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)


def _data(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"shared data set {name} not present at {path}")
    return path


def test_scifact_counts() -> None:
    data = load_beir(_data("scifact"))
    assert len(data.documents) == 5183
    assert len(data.queries) == 300
    assert sum(len(q.qrels) for q in data.queries) == 339


def test_musique_counts_match_its_beir_view() -> None:
    raw = load_multihop(_data("musique"))
    view = load_multihop(_data("musique") / "beir")
    assert (len(raw.documents), len(raw.queries)) == (1890, 100)
    assert sum(len(q.qrels) for q in raw.queries) == 237
    assert {q.id: set(q.qrels) for q in raw.queries} == {q.id: set(q.qrels) for q in view.queries}


def test_locomo_counts_and_malformed_evidence() -> None:
    data = load_locomo(_data("locomo"))
    assert len(data.turns) == 5882
    assert len(data.questions) == 1986
    assert sum(1 for q in data.questions if q.category == 5) == 446
    # Upstream has 9 malformed evidence strings; after splitting and normalising, these
    # ids still name no turn of their conversation.
    unresolved = sorted(f"{q.id}:{e}" for q in data.questions for e in q.unresolved)
    assert unresolved == ["conv-42#58:D10:19", "conv-42#88:D", "conv-47#38:D4:36"]


@pytest.mark.slow
def test_gutenberg_loads_in_reading_order() -> None:
    corpus = load_books(_data("gutenberg"))
    assert len(corpus.paragraphs) == 184_786
    assert len(corpus.titles) == 100


@pytest.mark.slow
@pytest.mark.model
def test_scifact_dense_matches_the_published_minilm_score(tmp_path: Path) -> None:
    """all-MiniLM-L6-v2 scores nDCG@10 = 0.645 on SciFact (MTEB); int8 stays close."""
    report = evaluate(_data("scifact"), EvalOptions(channels=("dense",), db=tmp_path / "s.db"))
    ndcg = report.metrics["dense"]["ndcg@10"]
    assert ndcg is not None and 0.62 <= ndcg <= 0.67


@pytest.mark.slow
@pytest.mark.model
def test_musique_all_channels(tmp_path: Path) -> None:
    report = evaluate(_data("musique"), EvalOptions(db=tmp_path / "m.db"))
    for channel in ("lexical", "dense", "hybrid"):
        recall = report.metrics[channel]["recall@5"]
        assert recall is not None and recall > 0.3
