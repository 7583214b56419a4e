"""The precision stage through the harness: abstention, conformal coverage, reranked channels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engramdb import InvalidInputError, Memory, Record
from engramdb.cli import cli
from engramdb.eval import EvalOptions, Report, evaluate
from engramdb.eval.datasets import load_beir
from engramdb.eval.precision import ABSTAIN_BELOW, holdout

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
HASH = {"model": "hash", "dim": 64}
CONFORMAL_KEYS = {"coverage", "mean_set_size", "abstain_rate", "answerable"}


def _run(name: str, **options: Any) -> Report:
    return evaluate(DATA / name, EvalOptions(embed=HASH, **options))


def _by_hand(namespace: str, docs: list[Any], queries: list[Any], coverage: float) -> list[float]:
    """Coverage and mean set size of direct ``recall(coverage=...)`` calls on the same store."""
    with Memory.open(":memory:", embed=HASH) as mem:
        added = mem.add_many(
            [
                Record(text=d.text, document=d.id, source="eval:tiny_beir", chunk=False)
                for d in docs
            ],
            namespace=namespace,
        )
        to_doc = dict(zip(added.ids, (d.id for d in docs), strict=True))
        mem.calibrate(namespace=namespace)
        covered, sizes = [], []
        for q in queries:
            hits = mem.recall(q.text, k=100, namespace=namespace, coverage=coverage)
            relevant = {d for d, g in q.qrels.items() if g > 0}
            covered.append(any(to_doc[h.id] in relevant for h in hits))
            sizes.append(len(hits))
    return [sum(covered) / len(covered), sum(sizes) / len(sizes)]


def test_conformal_coverage_matches_direct_recall() -> None:
    """Oracle: the same store built by hand, recalled with coverage=1-α directly."""
    report = _run("tiny_beir", channels=("lexical", "hybrid"), alphas=(0.05, 0.1))
    data = load_beir(DATA / "tiny_beir")
    judged = [q for q in data.queries if any(g > 0 for g in q.qrels.values())]
    for channel in ("lexical", "hybrid"):
        conformal = report.metrics[channel]["conformal"]
        assert list(conformal) == ["0.05", "0.1"]
        for got in conformal.values():
            assert set(got) == CONFORMAL_KEYS  # no unanswerable queries: no abstention
            assert 0.0 <= got["coverage"] <= 1.0 and got["answerable"] == len(judged) == 4
            assert 0.0 <= got["abstain_rate"] <= 1.0
        # a smaller error rate keeps at least as much
        assert conformal["0.05"]["coverage"] >= conformal["0.1"]["coverage"]
        assert conformal["0.05"]["mean_set_size"] >= conformal["0.1"]["mean_set_size"]
    for key, alpha in (("0.05", 0.05), ("0.1", 0.1)):
        coverage, size = _by_hand("eval.tiny_beir", list(data.documents), judged, 1 - alpha)
        got = report.metrics["hybrid"]["conformal"][key]
        assert got["coverage"] == pytest.approx(coverage)
        assert got["mean_set_size"] == pytest.approx(size, abs=1e-3)
    assert report.config["alphas"] == [0.05, 0.1]
    assert report.config["params"]["conformal_k"] == 100
    assert "abstention" not in report.metrics["hybrid"]  # no unanswerable queries in beir


def test_holdout_scores_abstention_in_its_own_namespace(tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    full = _run("tiny_beir", channels=("lexical",), db=db)
    report = _run("tiny_beir", channels=("lexical",), db=db, unanswerable=1, alphas=(0.2,))
    data = load_beir(DATA / "tiny_beir")
    held = holdout(list(data.queries), 1, seed=0, namespace="eval.tiny_beir")
    metrics = report.metrics["lexical"]
    assert set(metrics["abstention"]) == {"precision", "recall", "f1"}
    assert set(metrics["conformal"]["0.2"]) == CONFORMAL_KEYS | {"abstention"}
    rows = report.per_query["lexical"]
    truth = {r["id"]: r["unanswerable"] for r in rows}
    assert {q for q, t in truth.items() if t} == held.gone
    # Hand-computed abstention: flag = best relevance below ABSTAIN_BELOW.
    scored = [(r["relevance"] is None or r["relevance"] < ABSTAIN_BELOW, r) for r in rows]
    judged = [(f, r) for f, r in scored if r["unanswerable"] or r["ndcg@10"] is not None]
    tp = sum(f and r["unanswerable"] for f, r in judged)
    flagged = sum(f for f, _ in judged)
    assert metrics["abstention"]["recall"] == pytest.approx(tp / len(held.gone))
    assert metrics["abstention"]["precision"] == (pytest.approx(tp / flagged) if flagged else None)
    assert all(r["ndcg@10"] is None for r in rows if r["unanswerable"])  # out of the means
    counts = report.dataset["counts"]
    assert counts["unanswerable"] == 1 and counts["removed_documents"] == len(held.removed)
    assert counts["documents"] == 12 - len(held.removed)
    assert report.config["unanswerable"] == 1
    with Memory.open(db, embed=HASH) as mem:
        spaces = mem.stats().namespaces
    assert spaces["eval.tiny_beir"] == 12  # the reused store's full corpus is untouched
    assert spaces[held.namespace] == 12 - len(held.removed)
    again = _run("tiny_beir", channels=("lexical",), db=db)
    assert again.ingest["added"] == 0 and again.metrics == full.metrics


def test_locomo_reports_abstention_and_conformal_per_channel() -> None:
    report = _run("tiny_locomo", channels=("lexical", "dense"), alphas=(0.2,))
    for channel in ("lexical", "dense"):
        metrics = report.metrics[channel]
        assert set(metrics["abstention"]) == {"precision", "recall", "f1"}
        assert "abstention/precision" not in metrics  # the old flat keys are gone
        got = metrics["conformal"]["0.2"]
        assert set(got) == CONFORMAL_KEYS | {"abstention"}
        # answerable: categories 1-4 with evidence (7 of the 9 questions)
        assert got["answerable"] == 7 and 0.0 <= got["coverage"] <= 1.0
    rows = report.per_query["lexical"]
    flags = [r["relevance"] is None or r["relevance"] < ABSTAIN_BELOW for r in rows]
    truth = [r["category"] == 5 for r in rows]
    tp = sum(f and t for f, t in zip(flags, truth, strict=True))
    assert report.metrics["lexical"]["abstention"]["recall"] == pytest.approx(tp / sum(truth))


def test_rerankers_appear_as_channels() -> None:
    pytest.importorskip("lightgbm")
    report = _run("tiny_beir", channels=("hybrid",), rerank=("lambdarank", "mmr"))
    assert list(report.metrics) == ["hybrid", "hybrid+rerank", "hybrid+mmr"]
    assert report.config["channels"] == ["hybrid", "hybrid+rerank", "hybrid+mmr"]
    for channel in report.metrics:
        assert report.metrics[channel]["ndcg@10"] is not None
        assert len(report.per_query[channel]) == 5
    tops = {c: [r["top"] for r in report.per_query[c]] for c in report.metrics}
    assert tops["hybrid+rerank"] != tops["hybrid"] or tops["hybrid+mmr"] != tops["hybrid"]


def test_precision_options_are_checked_against_the_kind() -> None:
    with pytest.raises(InvalidInputError, match="alphas"):
        _run("tiny_books", kind="needle", sizes=(20,), alphas=(0.1,))
    with pytest.raises(InvalidInputError, match="category 5"):
        _run("tiny_locomo", unanswerable=1)
    with pytest.raises(InvalidInputError, match="between 1 and 3"):
        _run("tiny_beir", unanswerable=4)


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["eval", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_eval_precision_options(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, stdout, stderr = _invoke(
        str(DATA / "tiny_beir"),
        *("--embedder", "hash", "--channels", "lexical", "--rerank", "mmr"),
        *("--alpha", "0.05,0.1,0.2", "--unanswerable-holdout", "1", "--no-progress"),
        *("--out", str(out)),
    )
    assert code == 0, stderr
    assert "| abstention/f1 |" in stdout and "| conformal/0.05/coverage |" in stdout
    report = json.loads(out.read_text())
    assert list(report["metrics"]) == ["lexical", "lexical+mmr"]
    for metrics in report["metrics"].values():
        assert set(metrics["abstention"]) == {"precision", "recall", "f1"}
        assert list(metrics["conformal"]) == ["0.05", "0.1", "0.2"]
        for got in metrics["conformal"].values():
            assert {"coverage", "mean_set_size"} <= set(got)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--alpha", "0.1,x"), 2, "comma-separated numbers"),
        (("--alpha", "1.5"), 1, "alpha must be in (0, 1)"),
        (("--rerank", "colbert"), 2, "unknown reranker(s) colbert"),
        (("--unanswerable-holdout", "0"), 2, "0"),
    ],
)
def test_cli_eval_bad_precision_options(args: tuple[str, ...], code: int, message: str) -> None:
    got, _, stderr = _invoke(str(DATA / "tiny_beir"), "--embedder", "hash", "--no-progress", *args)
    assert got == code and message in stderr
