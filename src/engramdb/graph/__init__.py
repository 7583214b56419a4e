"""The memory graph: phrase extraction, graph tables in the store's DB, PPR recall."""

from __future__ import annotations

from engramdb.graph.channel import GraphChannel, PhraseEncoder, Prepared, create_extractor
from engramdb.graph.extract import Extraction, Extractor, SpacyExtractor, normalize_phrase
from engramdb.graph.recall import GraphIndex, GraphRecall, RandomWalk, personalized_pagerank
from engramdb.graph.sqlite import GraphSnapshot, SQLiteGraph

__all__ = [
    "Extraction",
    "Extractor",
    "GraphChannel",
    "GraphIndex",
    "GraphRecall",
    "GraphSnapshot",
    "PhraseEncoder",
    "Prepared",
    "RandomWalk",
    "SQLiteGraph",
    "SpacyExtractor",
    "create_extractor",
    "normalize_phrase",
    "personalized_pagerank",
]
