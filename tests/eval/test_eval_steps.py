"""``<channel>@N`` channels (recall in steps) through the evaluation harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.errors import InvalidInputError
from engramdb.eval import EvalOptions, evaluate
from engramdb.eval.runner import (
    channel_steps,
    check_channels,
    rerank_channels,
    split_channel,
    step_channels,
    uses_graph,
)

pytest.importorskip("spacy")

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
HASH = {"model": "hash", "dim": 64}


def test_step_channel_grammar() -> None:
    assert split_channel("hybrid+graph@2") == ("hybrid+graph", None)
    assert split_channel("hybrid+graph+rerank@3") == ("hybrid+graph", "lambdarank")
    assert channel_steps("hybrid+graph@2") == 2
    assert channel_steps("hybrid+mmr") is None
    assert uses_graph(("graph@2",))
    assert step_channels(("lexical", "hybrid@3"), 2) == ("lexical", "hybrid@3", "lexical@2")
    assert step_channels(("lexical",), None) == ("lexical",)
    assert rerank_channels(("hybrid", "hybrid@2"), ("mmr",)) == ("hybrid", "hybrid@2", "hybrid+mmr")
    for bad in ("hybrid@0", "hybrid@6", "hybrid@x", "hybrid@2+mmr", "graf@2"):
        with pytest.raises(InvalidInputError, match="unknown channel"):
            check_channels(bad)
    with pytest.raises(InvalidInputError, match="steps must be"):
        step_channels(("lexical",), 9)


def test_steps_through_the_harness(tmp_path: Path) -> None:
    db = tmp_path / "eval.db"
    options = EvalOptions(
        kind="multihop", channels=("lexical",), steps=2, clues=("phrases",), embed=HASH, db=db
    )
    assert options.channels == ("lexical", "lexical@2")
    report = evaluate(DATA / "tiny_multihop", options)
    data = json.loads(json.dumps(report.as_dict()))
    assert list(data["metrics"]) == ["lexical", "lexical@2"]
    assert data["config"]["steps"] == 2 and data["config"]["clues"] == ["phrases"]
    assert data["config"]["engine"]["graph"]["enabled"] is True  # phrases need the graph
    # Oracle: the harness's lexical@2 ranking is recall(..., steps=2) on the kept store.
    corpus = json.loads((DATA / "tiny_multihop" / "tiny_corpus.json").read_text())
    questions = json.loads((DATA / "tiny_multihop" / "tiny.json").read_text())
    with Memory.open(db, embed=HASH, graph={"enabled": True}) as mem:
        by_text = {r.text: r.id for r in mem.get_many(mem.ids())}
        label = {by_text[f"{c['title']}\n{c['text']}"]: str(i) for i, c in enumerate(corpus)}
        for question, row in zip(questions, data["per_query"]["lexical@2"], strict=True):
            hits = mem.recall(
                question["question"], k=10, channels="lexical", steps=2, clues="phrases"
            )
            assert row["top"] == [label[h.id] for h in hits][: len(row["top"])]
