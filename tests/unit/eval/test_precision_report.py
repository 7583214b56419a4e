"""Precision-stage report pieces: nested metrics, conformal summaries, holdouts, channels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from engramdb import InvalidInputError, MissingDependencyError
from engramdb.eval import EvalOptions, flat_metrics
from engramdb.eval.datasets import Query
from engramdb.eval.precision import check_alphas, conformal_summary, holdout
from engramdb.eval.report import Report, compare_reports, load_report, to_markdown
from engramdb.eval.runner import QueryRun, check_channels, rerank_channels, split_channel

NESTED = {
    "ndcg@10": 0.5,
    "abstention": {"precision": 0.75, "recall": 0.5, "f1": 0.6},
    "conformal": {
        "0.1": {"coverage": 0.9, "mean_set_size": 4.5, "abstain_rate": 0.1, "answerable": 20},
        "0.2": {"coverage": 0.8, "mean_set_size": 2.0, "abstain_rate": 0.3, "answerable": 20},
    },
}


def _report(metrics: dict[str, Any], **config: Any) -> Report:
    return Report(
        kind="beir",
        dataset={"name": "tiny", "sha256": "ab" * 32},
        config={"embedder": "hash", "channels": list(metrics), "seed": 0, **config},
        versions={},
        metrics=metrics,
        latency_ms={c: {"p50": 1.0, "p99": 2.0} for c in metrics},
    )


def test_flat_metrics_joins_nested_names_with_slashes() -> None:
    flat = flat_metrics(NESTED)
    assert flat["ndcg@10"] == 0.5
    assert flat["abstention/precision"] == 0.75
    assert flat["conformal/0.1/coverage"] == 0.9
    assert flat["conformal/0.2/mean_set_size"] == 2.0
    assert len(flat) == 1 + 3 + 2 * 4


def test_nested_metrics_survive_json_round_trip(tmp_path: Path) -> None:
    report = _report({"hybrid": NESTED, "hybrid+rerank": NESTED})
    path = report.save(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["metrics"]["hybrid"]["abstention"] == {"precision": 0.75, "recall": 0.5, "f1": 0.6}
    assert data["metrics"]["hybrid+rerank"]["conformal"]["0.1"]["coverage"] == 0.9
    assert load_report(path).as_dict() == report.as_dict()


def test_markdown_shows_nested_metrics_flattened() -> None:
    text = to_markdown(_report({"hybrid": NESTED, "hybrid+mmr": {"ndcg@10": 0.25}}))
    assert "| metric | hybrid | hybrid+mmr |" in text
    assert "| abstention/f1 | 0.6000 | – |" in text
    assert "| conformal/0.1/coverage | 0.9000 | – |" in text
    assert "{" not in text.split("| metric |")[1]  # no dict printed raw


def test_compare_reports_deltas_nested_numbers() -> None:
    better = json.loads(json.dumps(NESTED))
    better["abstention"]["f1"] = 0.7
    cmp = compare_reports(_report({"hybrid": NESTED}), _report({"hybrid": better}))
    rows = {r.metric: r for r in cmp.rows}
    assert rows["abstention/f1"].delta == pytest.approx(0.1)
    assert rows["conformal/0.2/coverage"].delta == 0.0
    assert "abstention" not in rows


def test_compare_warns_on_a_different_holdout_but_not_on_an_old_report() -> None:
    old = _report({"hybrid": {"ndcg@10": 0.5}})  # written before the holdout option
    new = _report({"hybrid": {"ndcg@10": 0.5}}, unanswerable=0)
    assert compare_reports(old, new).warnings == ()
    held = _report({"hybrid": {"ndcg@10": 0.5}}, unanswerable=50)
    assert compare_reports(new, held).warnings == ("different unanswerable: 0 vs 50",)


def _run(ranked: tuple[str, ...], *, abstain: bool = False) -> QueryRun:
    return QueryRun(ranked=ranked, top=None, ms=0.0, hits=len(ranked), abstain=abstain)


def test_conformal_summary_by_hand() -> None:
    runs = [
        _run(("d1", "d2", "d3")),  # answerable, covers d2
        _run(("d9",)),  # answerable, misses
        _run((), abstain=True),  # answerable, abstained: misses, set size 0
        _run((), abstain=True),  # unanswerable, abstained
        _run(("d4",)),  # unjudged
    ]
    gold = [{"d2": 1, "d7": 0}, {"d5": 2}, {"d6": 1}, None, {"d4": 0}]
    truth = [False, False, False, True, None]
    got = conformal_summary(runs, gold, truth)
    assert set(got) == {"coverage", "mean_set_size", "abstain_rate", "answerable", "abstention"}
    assert got["coverage"] == pytest.approx(1 / 3, abs=1e-6)
    assert got["mean_set_size"] == pytest.approx(4 / 3, abs=1e-3)
    assert got["abstain_rate"] == pytest.approx(2 / 5)
    assert got["answerable"] == 3
    # 2 abstentions, 1 of them on the unanswerable query
    assert got["abstention"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}


def test_conformal_summary_without_unanswerable_queries_has_no_abstention() -> None:
    got = conformal_summary([_run(("a",))], [{"a": 1}], [None])
    assert got == {"coverage": 1.0, "mean_set_size": 1.0, "abstain_rate": 0.0, "answerable": 1}


def test_check_alphas() -> None:
    assert check_alphas([0.05, 0.1, 0.1, 0.2]) == (0.05, 0.1, 0.2)
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(InvalidInputError, match="alpha must be in"):
            check_alphas([bad])


QUERIES = [
    Query(id="q1", text="a", qrels={"d1": 1, "d2": 1}),
    Query(id="q2", text="b", qrels={"d2": 1}),
    Query(id="q3", text="c", qrels={"d3": 1}),
    Query(id="q4", text="d", qrels={"d4": 2, "d9": 0}),
    Query(id="q5", text="e", qrels={"d5": 0}),
]


def test_holdout_is_seeded_and_drops_queries_sharing_a_removed_document() -> None:
    first = holdout(QUERIES, 2, seed=0, namespace="eval.x")
    assert first == holdout(QUERIES, 2, seed=0, namespace="eval.x")
    assert len(first.gone) == 2 and first.gone <= {"q1", "q2", "q3", "q4"}
    judged = {q.id: {d for d, g in q.qrels.items() if g > 0} for q in QUERIES[:4]}
    assert first.removed == set().union(*(judged[q] for q in first.gone))
    for qid, docs in judged.items():
        assert (qid in first.dropped) == (qid not in first.gone and bool(docs & first.removed))
    assert "d9" not in first.removed  # only relevant documents go
    assert first.namespace.startswith("eval.x.holdout-") and len(first.namespace) == 27
    seeds = {holdout(QUERIES, 1, seed=s, namespace="eval.x").gone for s in range(20)}
    assert len(seeds) > 1


def test_holdout_must_leave_an_answerable_query() -> None:
    with pytest.raises(InvalidInputError, match="between 1 and 3"):
        holdout(QUERIES, 4, seed=0, namespace="eval.x")
    pair = [QUERIES[0], QUERIES[1]]  # share d2: removing either's drops the other
    with pytest.raises(InvalidInputError, match="every judged query"):
        holdout(pair, 1, seed=0, namespace="eval.x")


def test_rerank_channels_and_their_names() -> None:
    assert rerank_channels(("lexical", "hybrid"), ("lambdarank", "mmr")) == (
        "lexical",
        "hybrid",
        "lexical+rerank",
        "hybrid+rerank",
        "lexical+mmr",
        "hybrid+mmr",
    )
    assert split_channel("hybrid+rerank") == ("hybrid", "lambdarank")
    assert split_channel("dense+mmr") == ("dense", "mmr")
    assert split_channel("lexical") == ("lexical", None)
    assert check_channels("hybrid,hybrid+mmr") == ("hybrid", "hybrid+mmr")
    with pytest.raises(InvalidInputError, match="unknown reranker"):
        rerank_channels(("hybrid",), ("colbert",))
    with pytest.raises(InvalidInputError, match=r"unknown channel\(s\) hybrid\+bogus"):
        check_channels("hybrid+bogus")


def test_eval_options_expand_rerankers_and_check_alphas() -> None:
    options = EvalOptions(channels=("hybrid",), rerank=("mmr",), alphas=(0.1, 0.05))
    assert options.channels == ("hybrid", "hybrid+mmr")
    assert options.alphas == (0.1, 0.05)
    with pytest.raises(InvalidInputError, match="alpha"):
        EvalOptions(alphas=(1.0,))
    with pytest.raises(InvalidInputError, match="unanswerable"):
        EvalOptions(unanswerable=-1)


def test_lambdarank_channel_without_lightgbm_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    with pytest.raises(MissingDependencyError, match="rerank"):
        EvalOptions(channels=("hybrid",), rerank=("lambdarank",))
    with pytest.raises(MissingDependencyError):
        EvalOptions(channels=("hybrid+rerank",))
    assert EvalOptions(channels=("hybrid",), rerank=("mmr",)).channels[-1] == "hybrid+mmr"
