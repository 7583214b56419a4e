"""End-to-end runs of the conversation kinds that involve time: LongMemEval, the
knowledge-update probe, and LoCoMo's added metrics, on tiny fixtures with the hash embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engramdb import Hits, InvalidInputError, Memory
from engramdb.eval import EvalOptions, Report, evaluate, to_markdown
from engramdb.eval.conversations import load_locomo
from engramdb.eval.longmemeval import LONGMEMEVAL_METRICS, load_longmemeval
from engramdb.eval.metrics import mean_over_queries, mrr_at_k, recall_at_k
from engramdb.eval.runner import RunContext, run_queries

ROOT = Path(__file__).resolve().parents[1] / "data"
MINI = ROOT / "longmemeval" / "mini.json"
UPDATES = ROOT / "eval" / "tiny_updates"
LOCOMO = ROOT / "eval" / "tiny_locomo"
HASH = {"model": "hash", "dim": 64}


def _run(path: Path, **options: Any) -> Report:
    return evaluate(path, EvalOptions(embed=HASH, **options))


# -- LongMemEval ------------------------------------------------------------------------------


def test_longmemeval_stores_each_distinct_haystack_once(tmp_path: Path) -> None:
    db = tmp_path / "lme.db"
    report = _run(MINI, channels=("lexical",), db=db)
    assert report.kind == "longmemeval" and report.dataset["name"] == "mini"
    counts = report.dataset["counts"]
    assert counts["questions"] == 6 and counts["haystacks"] == 3 and counts["abstention"] == 1
    assert counts["turns"] == 11 + 6 + 8
    assert report.ingest["records"] == 25
    assert list(report.dataset["files"]) == ["mini.json"]
    with Memory.open(db, embed=HASH) as mem:
        spaces = {n: c for n, c in mem.stats().namespaces.items() if n.startswith("longmemeval.")}
    assert sorted(spaces.values()) == [6, 8, 11]


def test_longmemeval_rows_match_a_direct_recall(tmp_path: Path) -> None:
    """Oracle: the same store recalled directly gives each row's top turns and scores."""
    db = tmp_path / "lme.db"
    report = _run(MINI, channels=("lexical",), db=db)
    data = load_longmemeval(MINI)
    rows = {r["id"]: r for r in report.per_query["lexical"]}
    with Memory.open(db, embed=HASH) as mem:
        for question in data.questions:
            haystack = data.haystacks[question.haystack]
            hits = mem.recall(
                question.text,
                k=50,
                namespace=haystack.namespace,
                channels="lexical",
                now=question.date,
            )
            by_ordinal = [haystack.labels[h.position.ordinal] for h in hits]  # type: ignore[index]
            row = rows[question.id]
            assert row["top"] == by_ordinal[:10]
            if question.abstention:
                assert row["unanswerable"] and row["recall_any@5"] is None
                continue
            turns = dict.fromkeys(question.answer_turns, 1)
            assert row["turn-recall@5"] == recall_at_k(by_ordinal, turns, 5)
            sessions = {haystack.session_of[label] for label in by_ordinal[:5]}
            assert row["recall_any@5"] == float(bool(sessions & set(question.answer_sessions)))
    assert report.config["params"]["now"] == "question date"


def test_longmemeval_means_and_table_per_question_type() -> None:
    report = _run(MINI, channels=("lexical", "dense"))
    for channel in ("lexical", "dense"):
        rows = report.per_query[channel]
        metrics = report.metrics[channel]
        for name in LONGMEMEVAL_METRICS:
            assert metrics[name] == pytest.approx(mean_over_queries(r[name] for r in rows))
            part = [r for r in rows if r["question_type"] == "single-session-user"]
            assert metrics[f"single-session-user/{name}"] == pytest.approx(
                mean_over_queries(r[name] for r in part)
            )
        assert set(metrics["abstention"]) == {"precision", "recall", "f1"}
    # The puppy's name is in one turn only: words find it first.
    assert report.metrics["lexical"]["single-session-user/recall_any@1"] == 1.0
    summary = to_markdown(report)
    assert "| question type | n | lexical recall_any@5 |" in summary
    assert "| knowledge-update | 1 |" in summary
    assert report.series["recall@k"]["lexical"]["10"] == report.metrics["lexical"]["turn-recall@10"]


def test_longmemeval_limit_stores_only_the_haystacks_asked_about() -> None:
    report = _run(MINI, channels=("lexical",), limit=2)
    assert report.dataset["counts"]["haystacks"] == 1
    assert report.ingest["records"] == 11


def test_longmemeval_has_no_holdout() -> None:
    with pytest.raises(InvalidInputError, match="_abs questions"):
        _run(MINI, unanswerable=1)


# -- knowledge updates ------------------------------------------------------------------------


def test_updates_rows_agree_with_their_top_turns() -> None:
    report = _run(UPDATES, channels=("lexical", "hybrid"))
    assert report.kind == "updates"  # inferred from truth.jsonl
    counts = report.dataset["counts"]
    assert counts["questions"] == 3 and counts["without_gold"] == 1 and counts["as_of"] == 2
    assert counts["by_tag"] == {"city": 1, "employer": 1, "new-wording": 2}
    assert set(report.dataset["files"]) == {"turns.jsonl", "qa.jsonl", "truth.jsonl"}
    for channel in ("lexical", "hybrid"):
        rows = report.per_query[channel]
        for row in rows:  # no two turns of the fixture merge: the top hit is one turn
            assert row["current@1"] == float(row["top"][0] == row["gold"])
            assert row["stale@1"] == float(row["top"][0] in row["stale"])
            assert row["mrr@10"] == mrr_at_k(row["top"], {row["gold"]: 1}, 10)
        metrics = report.metrics[channel]
        assert metrics["current@1"] == pytest.approx(
            mean_over_queries(r["current@1"] for r in rows)
        )
        city = [r for r in rows if "city" in r["tags"]]
        assert metrics["city/stale@1"] == city[0]["stale@1"]


def test_updates_as_of_expects_the_value_valid_then() -> None:
    """Recalled as of 5 March, Ann's only statement of her city is the Porto one."""
    report = _run(UPDATES, channels=("lexical",))
    assert report.config["params"]["as_of"] == "truth"
    rows = {r["id"]: r for r in report.per_query["lexical"]}
    city = rows["u1#0"]
    assert city["as_of/valid"] == "D1:1"
    assert city["as_of/top"][0] == "D1:1"
    assert city["as_of/current@1"] == 1.0 and city["as_of/stale@1"] == 0.0
    assert "D2:2" not in city["as_of/top"]  # stated on 10 March: not yet said
    assert "as_of/current@1" not in rows["u1#2"]  # no as_of in its truth
    metrics = report.metrics["lexical"]
    assert metrics["as_of/current@1"] == pytest.approx(
        mean_over_queries(r.get("as_of/current@1") for r in rows.values())
    )
    assert metrics["city/as_of/current@1"] == 1.0


# -- LoCoMo -----------------------------------------------------------------------------------


def test_locomo_recall_at_1_and_mrr_per_category() -> None:
    report = _run(LOCOMO, channels=("lexical",))
    metrics = report.metrics["lexical"]
    rows = report.per_query["lexical"]
    evidence = {q.id: dict.fromkeys(q.evidence, 1) for q in load_locomo(LOCOMO).questions}
    for row in rows:
        assert row["recall@1"] == recall_at_k(row["top"], evidence[row["id"]], 1)
        assert row["mrr@10"] == mrr_at_k(row["top"], evidence[row["id"]], 10)
    headline = [r for r in rows if r["category"] != 5]
    assert metrics["mrr@10"] == pytest.approx(mean_over_queries(r["mrr@10"] for r in headline))
    assert metrics["cat5/recall@1"] == pytest.approx(
        mean_over_queries(r["recall@1"] for r in rows if r["category"] == 5)
    )
    assert {"recall@5", "session-recall@20", "cat1/mrr@10", "cat4/recall@1"} <= set(metrics)
    summary = to_markdown(report)
    assert "| category | n | lexical recall@1 | lexical recall@5 |" in summary
    assert report.config["params"]["now"] == "last session"


# -- the recall options -----------------------------------------------------------------------


class _Recorder:
    """A store stand-in whose recall takes ``as_of`` but not ``now``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def recall_many(  # noqa: PLR0913 - the engine's keywords
        self,
        queries: list[str],
        *,
        k: int,
        namespace: str,
        channels: str,
        rerank: Any,
        coverage: Any,
        as_of: Any = None,
    ) -> list[Hits]:
        self.calls.append({"k": k, "as_of": as_of})
        return [Hits(query=q, items=()) for q in queries]


def test_time_options_reach_recall_only_when_given() -> None:
    recorder = _Recorder()
    ctx = RunContext(memory=recorder, channels=("lexical",))  # type: ignore[arg-type]
    run_queries(ctx, ["q"], channel="lexical", k=3, namespace="n", labels={})
    run_queries(ctx, ["q"], channel="lexical", k=3, namespace="n", labels={}, as_of=5.0)
    assert recorder.calls == [{"k": 3, "as_of": None}, {"k": 3, "as_of": 5.0}]
    with pytest.raises(InvalidInputError, match="takes no now"):
        run_queries(ctx, ["q"], channel="lexical", k=3, namespace="n", labels={}, now=5.0)
