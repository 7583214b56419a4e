"""How recall fuses the graph channel with lexical and dense (``graph.fusion``)."""

from __future__ import annotations

import pytest

from engramdb import Memory
from engramdb.config import load_config
from engramdb.engine._read import fusion_of
from engramdb.errors import ConfigError
from engramdb.retrieve.fusion import fuse, fuse_with_graph

HASH = {"model": "hash", "dim": 64}
CORPUS = [
    "Marie Curie was born in Warsaw. She studied physics at the Sorbonne.",
    "Warsaw is the capital and largest city of Poland.",
    "Paris is the capital of France.",
    "Pierre Curie married Marie Curie in 1895.",
    "The Eiffel Tower was finished in 1889.",
]
QUESTION = "Which country is the birthplace of the wife of Pierre Curie?"


def test_fusion_of_picks_the_graph_settings_only_with_the_graph() -> None:
    config = load_config()
    runs = {"lexical": [(1, 2.0)], "dense": [(2, 0.5)]}
    assert fusion_of(runs, config) == ("rrf", {"lexical": 1.0, "dense": 1.0})
    method, weights = fusion_of({**runs, "graph": [(3, 0.1)]}, config)
    assert method == config.graph.fusion
    assert weights == {
        "lexical": config.graph.fusion_lexical_weight,
        "dense": 1.0,
        "graph": config.graph.fusion_weight,
    }
    custom = load_config(
        graph={"fusion": "rrf", "fusion_weight": 2.0, "fusion_lexical_weight": 0.5},
        recall={"weights": {"lexical": 1.0, "dense": 1.0, "graph": 7.0}},
    )
    assert fusion_of({**runs, "graph": []}, custom) == (
        "rrf",
        {"lexical": 0.5, "dense": 1.0, "graph": 7.0},
    )


def test_graph_fusion_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"graph\.fusion must be"):
        load_config(graph={"fusion": "borda"})
    with pytest.raises(ConfigError, match="fusion_lexical_weight"):
        load_config(graph={"fusion_lexical_weight": -1.0})
    with pytest.raises(ConfigError, match="fusion_alone_below"):
        load_config(graph={"fusion_alone_below": 1.5})
    with pytest.raises(ConfigError, match="fusion_agree_within"):
        load_config(graph={"fusion_agree_within": -1})


@pytest.mark.parametrize(
    ("method", "alone"), [("max", 0.0), ("rrf", 0.0), ("weighted", 0.0), ("max", 1.0)]
)
def test_hybrid_graph_recall_is_the_fusion_of_its_channels(method: str, alone: float) -> None:
    """Oracle: each channel recalled alone, fused by ``fuse_with_graph``, gives hybrid+graph's
    order (``alone`` 1.0: the graph's run whenever it has 5 hits; 0.0: always fused)."""
    pytest.importorskip("spacy")
    graph = {"enabled": True, "fusion": method, "fusion_alone_below": alone}
    graph["fusion_agree_within"] = 0  # the graph's run stands alone whenever it is steep
    with Memory.open(":memory:", embed=HASH, graph=graph) as mem:
        mem.add_many(CORPUS)
        depth = mem.config.recall.candidates
        runs = {
            c: [(h.id, h.score) for h in mem.recall(QUESTION, k=depth, channels=c)]
            for c in ("lexical", "dense", "graph")
        }
        _, weights = fusion_of(runs, mem.config)
        expected = fuse_with_graph(
            runs,
            alone_below=alone,
            agree_within=mem.config.graph.fusion_agree_within,
            method=method,
            k=mem.config.recall.rrf_k,
            weights=weights,
        )
        if alone == 1.0:
            assert expected == runs["graph"]
        else:
            assert expected == fuse(runs, method=method, k=mem.config.recall.rrf_k, weights=weights)
        hits = mem.recall(QUESTION, k=len(CORPUS), channels="hybrid+graph")
        assert [h.id for h in hits] == [d for d, _ in expected][: len(CORPUS)]
        assert [h.score for h in hits] == pytest.approx([s for _, s in expected][: len(CORPUS)])
