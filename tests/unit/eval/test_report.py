"""Reports round-trip through JSON, render as Markdown, and compare with deltas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engramdb.eval.datasets import EvalDataError
from engramdb.eval.report import (
    Report,
    compare_reports,
    comparison_markdown,
    load_report,
    to_markdown,
)


def _report(**changes: Any) -> Report:
    fields: dict[str, Any] = {
        "kind": "beir",
        "dataset": {
            "name": "tiny",
            "path": "data/tiny",
            "sha256": "ab" * 32,
            "counts": {"queries": 4},
        },
        "config": {
            "embedder": "hash",
            "channels": ["lexical", "dense"],
            "seed": 0,
            "limit": None,
            "sizes": [],
        },
        "versions": {"engramdb": "0.1.0"},
        "metrics": {
            "lexical": {"ndcg@10": 0.5, "recall@100": 0.9},
            "dense": {"ndcg@10": 0.25, "recall@100": None},
        },
        "latency_ms": {"lexical": {"p50": 1.0, "p99": 2.0}, "dense": {"p50": 3.0, "p99": 4.0}},
        "ingest": {"records": 12, "memories": 12, "seconds": 0.5, "records_per_s": 24.0},
        "per_query": {"lexical": [{"id": "q1", "ndcg@10": 0.5, "ms": 1.0}]},
        "created": "2024-01-01T00:00:00+00:00",
    }
    fields.update(changes)
    return Report(**fields)


def test_json_round_trip(tmp_path: Path) -> None:
    report = _report()
    path = report.save(tmp_path / "sub" / "r.json")
    data = json.loads(path.read_text())
    assert data["metrics"]["lexical"]["ndcg@10"] == 0.5
    assert data["latency_ms"]["dense"]["p99"] == 4.0
    assert data["format"] == 1
    assert load_report(path) == Report.from_dict(data)
    assert load_report(path).as_dict() == report.as_dict()


def test_loading_something_else_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"metrics": {}}')
    with pytest.raises(
        EvalDataError, match=r"r\.json: not an eval report: missing kind, latency_ms, config"
    ):
        load_report(path)
    path.write_text("[1, 2]")
    with pytest.raises(EvalDataError, match="expected a JSON object"):
        load_report(path)
    path.write_text("{\n  oops")
    with pytest.raises(EvalDataError, match=r"r\.json:2: invalid JSON"):
        load_report(path)


def test_markdown_puts_channels_side_by_side() -> None:
    text = to_markdown(_report())
    assert "## engram eval: beir on tiny" in text
    assert "| metric | lexical | dense |" in text
    assert "| ndcg@10 | 0.5000 | 0.2500 |" in text
    assert "| recall@100 | 0.9000 | – |" in text
    assert "| latency p99 (ms) | 2.00 | 4.00 |" in text
    assert "12 records → 12 memories" in text


def test_markdown_shows_the_needle_grid() -> None:
    series = {
        "needle": {"sizes": [10, 100], "depths": [0.0, 0.5], "lexical": [[1.0, 0.5], [0.0, None]]}
    }
    text = to_markdown(
        _report(kind="needle", series=series, metrics={"lexical": {"recall@1": 0.5}})
    )
    assert "| size | d=0.0 | d=0.5 |" in text
    assert "| N=10 | 1.00 | 0.50 |" in text
    assert "| N=100 | 0.00 | – |" in text


def test_compare_gives_deltas_and_latency() -> None:
    a = _report()
    b = _report(
        metrics={
            "lexical": {"ndcg@10": 0.75, "recall@100": 0.9, "mrr@10": 0.5},
            "hybrid": {"ndcg@10": 0.8},
        },
        latency_ms={"lexical": {"p50": 1.5, "p99": 2.0}},
    )
    result = compare_reports(a, b, a_name="base", b_name="new")
    rows = {(r.channel, r.metric): r for r in result.rows}
    assert rows[("lexical", "ndcg@10")].delta == pytest.approx(0.25)
    assert rows[("lexical", "recall@100")].delta == pytest.approx(0.0)
    assert rows[("lexical", "mrr@10")].a is None and rows[("lexical", "mrr@10")].delta is None
    assert rows[("lexical", "latency_ms.p50")].delta == pytest.approx(0.5)
    assert rows[("dense", "ndcg@10")].b is None
    assert rows[("hybrid", "ndcg@10")].b == 0.8
    assert result.warnings == ()
    text = comparison_markdown(result)
    assert "| channel | metric | base | new | Δ |" in text
    assert "| lexical | ndcg@10 | 0.5000 | 0.7500 | +0.2500 |" in text


def test_compare_warns_when_runs_are_not_comparable() -> None:
    b = _report(
        dataset={"name": "tiny", "sha256": "cd" * 32},
        config={"embedder": "minilm-int8", "seed": 1, "limit": 10, "sizes": []},
    )
    warnings = compare_reports(_report(), b).warnings
    assert any("checksums" in w for w in warnings)
    assert any("different embedder" in w for w in warnings)
    assert any("different seed: 0 vs 1" in w for w in warnings)
    assert any("different limit" in w for w in warnings)
    assert comparison_markdown(compare_reports(_report(), b)).startswith("> warning:")


def test_compare_names_changed_engine_settings() -> None:
    engine_a = {"recall": {"fusion": "rrf", "rrf_k": 60}, "embed": {"model": "hash"}}
    engine_b = {"recall": {"fusion": "weighted", "rrf_k": 60}, "embed": {"model": "hash"}}
    a = _report(config={**_report().config, "engine": engine_a})
    b = _report(config={**_report().config, "engine": engine_b})
    assert compare_reports(a, b).warnings == (
        "different engine setting recall.fusion: 'rrf' vs 'weighted'",
    )


def test_locomo_summary_has_a_table_per_category() -> None:
    metrics = {
        "hybrid": {
            "recall@1": 0.5,
            "cat1/recall@1": 0.25,
            "cat1/recall@5": 0.5,
            "cat1/recall@10": 0.75,
            "cat1/mrr@10": 0.375,
            "cat5/recall@1": 0.125,
        }
    }
    dataset = {"name": "locomo", "counts": {"questions": 3, "by_category": {"1": 2, "5": 1}}}
    text = to_markdown(_report(kind="locomo", metrics=metrics, dataset=dataset, latency_ms={}))
    assert (
        "| category | n | hybrid recall@1 | hybrid recall@5 | hybrid recall@10 | hybrid mrr@10 |"
        in text
    )
    assert "| 1 | 2 | 0.2500 | 0.5000 | 0.7500 | 0.3750 |" in text
    assert "| 5 | 1 | 0.1250 | – | – | – |" in text


def test_longmemeval_summary_has_a_table_per_question_type() -> None:
    metrics = {
        "lexical": {"knowledge-update/recall_any@5": 1.0, "knowledge-update/ndcg@10": 0.5},
        "dense": {"knowledge-update/recall_any@5": 0.0},
    }
    dataset = {"name": "lme", "counts": {"by_type": {"knowledge-update": 3}}}
    text = to_markdown(_report(kind="longmemeval", metrics=metrics, dataset=dataset))
    header = text.split("Per question type", 1)[1]
    assert "| question type | n | lexical recall_any@5 | lexical recall_all@5 |" in header
    assert "| knowledge-update | 3 | 1.0000 | – | 0.5000 | – | 0.0000 | – | – | – |" in header
    assert "Per " not in to_markdown(_report())  # other kinds: no such table
