"""End-to-end runs of every evaluation kind on the tiny fixtures with the hash embedder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engramdb import InvalidInputError, Memory, Record
from engramdb.eval import EvalDataError, EvalOptions, Report, evaluate
from engramdb.eval.metrics import mean_over_queries, ndcg_at_k

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
HASH = {"model": "hash", "dim": 64}


def _run(name: str, **options: Any) -> Report:
    return evaluate(DATA / name, EvalOptions(embed=HASH, **options))


def _without_timing(report: Report) -> dict[str, Any]:
    data = report.as_dict()
    for key in ("latency_ms", "created", "ingest"):
        data.pop(key)
    for rows in data["per_query"].values():
        for row in rows:
            row.pop("ms", None)
    return data


def test_beir_report_has_the_documented_shape() -> None:
    report = _run("tiny_beir")
    data = json.loads(json.dumps(report.as_dict()))  # JSON-clean
    assert set(data["metrics"]) == {"lexical", "dense", "hybrid"}
    for channel in ("lexical", "dense", "hybrid"):
        assert set(data["metrics"][channel]) == {"ndcg@10", "recall@10", "recall@100", "mrr@10"}
        assert {"p50", "p99"} <= set(data["latency_ms"][channel])
        assert len(data["per_query"][channel]) == 5
    assert data["config"]["kind"] == "beir"
    assert data["config"]["embedder"].startswith("hash")
    assert data["dataset"]["counts"] == {"documents": 12, "queries": 5, "judged": 4}
    assert len(data["dataset"]["sha256"]) == 64
    assert data["ingest"]["records"] == 12 and data["ingest"]["records_per_s"] > 0
    assert set(data["series"]["recall@k"]["hybrid"]) == {
        "1",
        "2",
        "3",
        "5",
        "10",
        "20",
        "50",
        "100",
    }


def test_beir_metrics_agree_with_a_direct_recall() -> None:
    """Oracle: the same store built by hand, recalled directly, scored by the metric."""
    report = _run("tiny_beir", channels=("lexical",))
    rows = {r["id"]: r for r in report.per_query["lexical"]}
    assert rows["q5"]["ndcg@10"] is None  # only non-relevant judgments: left out of the mean
    docs = [
        json.loads(line) for line in (DATA / "tiny_beir" / "corpus.jsonl").read_text().splitlines()
    ]
    qrels = {
        "q1": {"d3": 2, "d4": 1, "d11": 0},
        "q2": {"d5": 2, "d2": 1},
        "q3": {"d1": 1},
        "q4": {"d7": 1},
    }
    queries = {
        "q1": "why does the moon cause tides",
        "q2": "what makes bread dough rise",
        "q3": "which metal conducts heat best in a kettle",
        "q4": "how do gears help on hills",
    }
    with Memory.open(":memory:", embed=HASH) as mem:
        added = mem.add_many(
            [Record(text=f"{d['title']} {d['text']}".strip(), chunk=False) for d in docs],
            namespace="x",
        )
        to_doc = dict(zip(added.ids, (d["_id"] for d in docs), strict=True))
        expected = []
        for qid, text in queries.items():
            ranked = [
                to_doc[h.id] for h in mem.recall(text, k=100, namespace="x", channels="lexical")
            ]
            assert rows[qid]["top"] == ranked[:10]
            expected.append(ndcg_at_k(ranked, qrels[qid], 10))
    assert report.metrics["lexical"]["ndcg@10"] == pytest.approx(
        mean_over_queries(expected), abs=1e-6
    )


def test_runs_repeat_exactly_with_the_same_seed() -> None:
    first = _run("tiny_books", kind="needle", sizes=(20, 40), channels=("lexical", "dense"))
    second = _run("tiny_books", kind="needle", sizes=(20, 40), channels=("lexical", "dense"))
    assert _without_timing(first) == _without_timing(second)
    third = _run("tiny_books", kind="needle", sizes=(20, 40), channels=("lexical", "dense"), seed=1)
    assert [r["cue"] for r in third.per_query["lexical"]] != [
        r["cue"] for r in first.per_query["lexical"]
    ]


def test_multihop_metrics() -> None:
    report = _run("tiny_multihop")
    assert set(report.metrics["hybrid"]) == {
        "recall@2",
        "recall@5",
        "all-recall@5",
        "ndcg@10",
        "recall@10",
    }
    for channel in ("lexical", "dense", "hybrid"):
        metrics = report.metrics[channel]
        assert metrics["all-recall@5"] is not None and metrics["recall@5"] is not None
        assert metrics["all-recall@5"] <= metrics["recall@5"]
        assert metrics["recall@2"] <= metrics["recall@5"]  # type: ignore[operator]
    # The corpus has 8 passages and no question more than 3 gold ones: all of them in the top 5
    # is not guaranteed, but all in the top 10 is.
    assert report.metrics["lexical"]["recall@10"] == 1.0


def test_locomo_namespaces_categories_and_adversarial_apart() -> None:
    report = _run("tiny_locomo", channels=("lexical",))
    metrics = report.metrics["lexical"]
    rows = report.per_query["lexical"]
    assert len(rows) == 9
    headline = mean_over_queries(r["recall@5"] for r in rows if r["category"] != 5)
    assert metrics["recall@5"] == pytest.approx(headline)
    assert "cat5/recall@5" in metrics and "cat5/session-recall@20" in metrics
    assert metrics["cat5/recall@5"] == pytest.approx(
        mean_over_queries(r["recall@5"] for r in rows if r["category"] == 5)
    )
    counts = report.dataset["counts"]
    assert counts["conversations"] == 2 and counts["turns"] == 14
    assert counts["unresolved_evidence"] == ["conv-a#3:D9:9"]
    assert counts["without_evidence"] == 1
    curve = report.series["recall@k"]["lexical"]
    assert list(curve) == ["1", "2", "3", "5", "10", "20"]
    assert curve["5"] == pytest.approx(metrics["recall@5"])
    # Every hit of a conversation's question comes from that conversation.
    conv_b = {"D1:1", "D1:2", "D1:3", "D2:1", "D2:2", "D2:3"}
    assert all(set(r["top"]) <= conv_b for r in rows if r["id"].startswith("conv-b"))


def test_locomo_limit_ingests_only_the_conversations_asked_about() -> None:
    report = _run("tiny_locomo", channels=("dense",), limit=3)
    assert report.dataset["counts"]["conversations"] == 1
    assert report.ingest["records"] == 8


def test_needle_grid_and_recall() -> None:
    report = _run("tiny_books", kind="needle", sizes=(20, 60))
    grid = report.series["needle"]
    assert grid["sizes"] == [20, 60] and len(grid["depths"]) == 10
    assert len(grid["hybrid"]) == 2 and all(len(row) == 10 for row in grid["hybrid"])
    # Needles carry invented words that no paragraph holds: lexical finds every one first.
    assert report.metrics["lexical"]["recall@1"] == 1.0
    assert report.dataset["counts"]["needles"] == 40
    assert report.ingest["records"] == (20 + 20) + (60 + 20)


def test_needle_too_large_for_the_corpus() -> None:
    with pytest.raises(EvalDataError, match="a haystack of 5000 needs"):
        _run("tiny_books", kind="needle", sizes=(5000,))


def test_sort_answers_from_positions() -> None:
    report = _run("tiny_books", kind="sort", sizes=(300, 1000), limit=8, channels=("lexical",))
    metrics = report.metrics["lexical"]
    assert report.dataset["counts"]["pairs"] == 2 * 3 * 8
    assert metrics["segment-recall@1"] is not None and metrics["segment-recall@1"] > 0.8
    assert metrics["accuracy"] is not None and metrics["accuracy"] > 0.8
    assert {f"accuracy/dist={d}" for d in ("0-25%", "25-50%", "50-75%", "75-100%")} <= set(metrics)
    assert report.series["sort"]["bins"][0] == "dist=0-25%"


def test_sort_with_excerpts_longer_than_every_book() -> None:
    with pytest.raises(EvalDataError, match="no book has 100000 words"):
        _run("tiny_books", kind="sort", sizes=(100_000,), limit=2)


def test_recognition_separates_stored_from_foils() -> None:
    report = _run("tiny_books", kind="recognition", limit=20)
    metrics = report.metrics["recognize"]
    assert set(report.metrics) == {"recognize"}
    assert metrics["hit-rate"] == 1.0  # stored sentences are recognised exactly
    assert metrics["auc/new"] == 1.0
    assert metrics["auc"] is not None and metrics["auc"] > 0.9
    for key in ("false-alarm/word-swap", "false-alarm/entity-swap", "false-alarm/new"):
        assert metrics[key] is not None and 0.0 <= metrics[key] <= 1.0
    assert report.dataset["counts"]["foils"] >= 20


def test_retention_curve() -> None:
    report = _run("tiny_books", kind="retention", limit=6, sizes=(5, 30))
    curve = report.series["retention"]
    assert curve["distractors"] == [0, 5, 30]
    assert len(curve["lexical"]) == 3 and len(curve["recognize"]) == 3
    assert (
        report.metrics["lexical"]["cued-recall@1"] == report.metrics["lexical"]["cued-recall@1/+0"]
    )
    assert report.ingest["records"] == 6 + 30
    assert report.metrics["recognize"]["auc/+30"] is not None


def test_reused_store_skips_ingest_and_gives_the_same_metrics(tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    first = _run("tiny_beir", db=db)
    second = _run("tiny_beir", db=db)
    assert second.ingest["added"] == 0 and second.ingest["embedded"] == 0
    assert second.metrics == first.metrics


def test_store_filled_by_another_run_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    with Memory.open(db, embed=HASH) as mem:
        mem.add("a stray memory", namespace="eval.tiny_beir")
    with pytest.raises(InvalidInputError, match="filled by a different run"):
        _run("tiny_beir", db=db)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="unknown channel"):
        EvalOptions(channels=("lexical", "graf"))
    with pytest.raises(InvalidInputError, match="unknown channel"):
        EvalOptions(channels=("graph+hybrid",))  # the reranker suffix comes last
    with pytest.raises(InvalidInputError, match="unknown channel"):
        EvalOptions(channels=("hybrid+mmr+graph",))
    with pytest.raises(InvalidInputError, match="unknown kind"):
        EvalOptions(kind="trivia")
    with pytest.raises(InvalidInputError, match="limit"):
        EvalOptions(limit=0)
