"""The graph channels through the evaluation harness (spaCy extraction, hash embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engramdb import Memory, Record
from engramdb.eval import EvalOptions, evaluate
from engramdb.eval.report import to_markdown
from engramdb.eval.runner import (
    CHANNELS,
    check_channels,
    rerank_channels,
    split_channel,
    uses_graph,
)

pytest.importorskip("spacy")

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
HASH = {"model": "hash", "dim": 64}
EVERY = ("lexical", "dense", "graph", "hybrid", "hybrid+graph")


def test_channel_grammar() -> None:
    assert CHANNELS == EVERY
    assert split_channel("hybrid+graph") == ("hybrid+graph", None)
    assert split_channel("hybrid+graph+rerank") == ("hybrid+graph", "lambdarank")
    assert split_channel("graph+mmr") == ("graph", "mmr")
    assert split_channel("hybrid+mmr") == ("hybrid", "mmr")
    assert check_channels("graph, hybrid+graph+mmr") == ("graph", "hybrid+graph+mmr")
    assert rerank_channels(("graph", "hybrid+graph", "hybrid+mmr"), ("mmr",)) == (
        "graph",
        "hybrid+graph",
        "hybrid+mmr",
        "graph+mmr",
        "hybrid+graph+mmr",
    )
    assert uses_graph(("lexical", "hybrid+graph+mmr"))
    assert uses_graph(("graph",))
    assert not uses_graph(("lexical", "dense", "hybrid", "hybrid+rerank"))


def test_graph_channels_on_a_multihop_fixture(tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    options = EvalOptions(channels=(*EVERY, "hybrid+graph+mmr"), embed=HASH, db=db)
    report = evaluate(DATA / "tiny_multihop", options)
    data = json.loads(json.dumps(report.as_dict()))
    assert list(data["metrics"]) == [*EVERY, "hybrid+graph+mmr"]
    assert data["config"]["engine"]["graph"]["enabled"] is True
    for channel in data["metrics"]:
        assert data["metrics"][channel]["recall@10"] == 1.0  # 8 passages: all gold in the top 10
        assert len(data["per_query"][channel]) == 3
    assert data["config"]["graph"]["passages"] == 8
    table = to_markdown(report)
    assert "- graph `spacy:" in table
    assert f"| metric | {' | '.join(data['metrics'])} |" in table
    # Oracle: the graph channel recalled directly on the kept store ranks the same passages.
    corpus = json.loads((DATA / "tiny_multihop" / "tiny_corpus.json").read_text())
    questions = json.loads((DATA / "tiny_multihop" / "tiny.json").read_text())
    with Memory.open(db, embed=HASH, graph={"enabled": True}) as mem:
        assert mem.graph is not None and mem.graph.stats()["passages"] == len(corpus)
        by_text = {r.text: r.id for r in mem.get_many(mem.ids())}
        label = {by_text[f"{c['title']}\n{c['text']}"]: str(i) for i, c in enumerate(corpus)}
        for question, row in zip(questions, data["per_query"]["graph"], strict=True):
            hits = mem.recall(question["question"], k=10, channels="graph")
            assert row["top"] == [label[h.id] for h in hits][: len(row["top"])]


def test_the_graph_stays_off_without_a_graph_channel(tmp_path: Path) -> None:
    report = evaluate(DATA / "tiny_beir", EvalOptions(channels=("hybrid",), embed=HASH))
    assert report.config["engine"]["graph"]["enabled"] is False
    assert report.config["graph"] is None and "- graph" not in to_markdown(report)


def test_graph_channel_on_a_beir_fixture() -> None:
    options = EvalOptions(channels=("graph", "hybrid+graph"), embed=HASH)
    report = evaluate(DATA / "tiny_beir", options)
    assert set(report.metrics) == {"graph", "hybrid+graph"}
    assert report.metrics["hybrid+graph"]["ndcg@10"] is not None


def test_records_are_unchanged_by_the_graph() -> None:
    """The eval store holds one memory per passage whether or not the graph is on."""
    with Memory.open(":memory:", embed=HASH, graph={"enabled": True}) as mem:
        added = mem.add_many([Record(text="Odile Varn built the harbour.", chunk=False)])
        assert len(added.ids) == 1


@pytest.mark.parametrize(
    ("name", "kind", "sizes"),
    [
        ("tiny_locomo", "locomo", ()),
        ("tiny_updates", "updates", ()),
        ("tiny_books", "needle", (20,)),
        ("tiny_books", "sort", ()),
        ("tiny_books", "retention", (10,)),
    ],
)
def test_graph_channels_on_other_kinds(name: str, kind: str, sizes: tuple[int, ...]) -> None:
    options = EvalOptions(
        kind=kind, channels=("graph", "hybrid+graph"), embed=HASH, sizes=sizes, limit=4
    )
    report = evaluate(DATA / name, options)
    assert {"graph", "hybrid+graph"} <= set(report.metrics)  # retention adds "recognize"
    assert report.config["graph"]["passages"] > 0
