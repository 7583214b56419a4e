"""``--kind tools``: loading, the k-fold usage protocol (no leak), and an end-to-end run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engramdb import Memory
from engramdb.eval import EvalOptions, evaluate
from engramdb.eval.datasets import EvalDataError, detect_kind
from engramdb.eval.tools import FOLDS, folds_of, load_tools, train_demos
from engramdb.tools.rank import normalize_request

TINY = Path(__file__).parents[1] / "data" / "eval" / "tiny_tools"
HASH = {"model": "hash", "dim": 64}


def test_load_and_detect() -> None:
    data = load_tools(TINY)
    assert detect_kind(TINY) == "tools"
    assert len(data.specs) == 6 and len(data.queries) == 10 and len(data.unanswerable) == 2
    q2 = next(q for q in data.queries if q.id == "q2")
    assert q2.relevant == {"fn_area2"} and q2.candidates == ("fn_area2", "fn_email")
    assert data.names["fn_area"] == data.names["fn_area2"] == "calculate_triangle_area"


def test_a_held_query_never_has_its_demo_or_a_same_text_one() -> None:
    """q9 is planted with q1's request text (as BFCL repeats requests across categories):
    holding q1 out drops both demonstrations."""
    data = load_tools(TINY)
    held = [q for q in data.queries if q.id == "q1"]
    kept = train_demos(data, held)
    ids = {qid for qid, _, _ in kept}
    assert "q1" not in ids and "q9" not in ids and len(kept) == 8
    texts = {normalize_request(r) for _, r, _ in kept}
    assert normalize_request(held[0].text) not in texts
    skipped = train_demos(data, [], skip_names=frozenset({"get_weather"}))
    assert {qid for qid, _, _ in skipped} == {f"q{i}" for i in (1, 2, 5, 6, 7, 8, 9, 10)}


def test_folds_are_stable_and_cover_every_query() -> None:
    ids = [f"q{i}" for i in range(50)]
    folds = folds_of(ids, FOLDS, 0)
    assert folds == folds_of(list(reversed(ids)), FOLDS, 0)[::-1]
    assert set(folds) == set(range(FOLDS))


def test_the_run_never_holds_an_asked_query_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    stored: dict[str, set[str]] = {}
    asked: dict[str, set[str]] = {}
    add_demo, recall_tools = Memory.add_demo, Memory.recall_tools

    def spy_add(self: Memory, request: str, *args: Any, **kwargs: Any) -> Any:
        stored.setdefault(kwargs["namespace"], set()).add(normalize_request(request))
        return add_demo(self, request, *args, **kwargs)

    def spy_recall(self: Memory, request: str, *args: Any, **kwargs: Any) -> Any:
        asked.setdefault(kwargs["namespace"], set()).add(normalize_request(request))
        return recall_tools(self, request, *args, **kwargs)

    monkeypatch.setattr(Memory, "add_demo", spy_add)
    monkeypatch.setattr(Memory, "recall_tools", spy_recall)
    report = evaluate(TINY, EvalOptions(kind="tools", embed=HASH))
    assert asked and set(asked) <= {f"fold{f}" for f in range(FOLDS)} | {
        f"unseen{g}" for g in range(FOLDS)
    }
    for namespace, requests in asked.items():
        assert not requests & stored.get(namespace, set()), namespace
    metrics = report.metrics
    assert set(metrics) == {"lexical", "dense", "text", "pooled", "matched", "hybrid"}
    for figures in metrics.values():
        for name in ("recall@1", "recall@5", "ndcg@10", "name-recall@1", "name-recall@5"):
            assert 0.0 <= figures[name] <= 1.0
        assert figures["queries"] == 10
    assert metrics["hybrid"]["abstention"]["unanswerable"] == 2
    assert metrics["lexical"]["name-recall@1"] >= metrics["lexical"]["recall@1"]
    assert "unseen" in metrics["hybrid"] and report.latency_ms["hybrid"]["n"] == 10


def test_a_reused_store_holds_each_fold_demos_once(tmp_path: Path) -> None:
    options = EvalOptions(kind="tools", embed=HASH, db=tmp_path / "e.db")
    first = evaluate(TINY, options).metrics
    second = evaluate(TINY, options).metrics
    assert first["hybrid"]["ndcg@10"] == second["hybrid"]["ndcg@10"]
    with Memory.open(tmp_path / "e.db", embed=HASH) as mem:
        per_fold = [len(mem._tools.demos(namespace=f"fold{f}")) for f in range(FOLDS)]
    assert sum(per_fold) <= 4 * 10


def test_bad_tools_data_is_a_clear_error(tmp_path: Path) -> None:
    for name in ("corpus.jsonl", "queries.jsonl", "demos.jsonl", "unanswerable.jsonl"):
        (tmp_path / name).write_text((TINY / name).read_text())
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnope\t1\n")
    with pytest.raises(EvalDataError, match="unknown corpus id"):
        load_tools(tmp_path)
