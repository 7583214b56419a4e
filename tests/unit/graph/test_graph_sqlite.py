"""The graph tables: incremental add/forget equals a fresh build; no orphans; synonyms; rebuild."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from engramdb.embed.hashing import HashEmbedder
from engramdb.errors import InvalidInputError
from engramdb.graph.extract import Extraction, from_phrases
from engramdb.graph.recall import GraphIndex, _cap_synonyms
from engramdb.graph.sqlite import SQLiteGraph, synonym_pairs

pytest.importorskip("scipy")

EMBEDDER = HashEmbedder(dim=64)
WORDS = [
    "marie curie",
    "marie curies",
    "pierre curie",
    "warsaw",
    "warsaw city",
    "paris",
    "france",
    "poland",
    "nobel prize",
    "nobel prizes",
    "radium",
    "sorbonne",
    "physics",
    "chemistry",
    "ab",
    "x",
    "university of paris",
    "paris university",
]


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    return conn


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    c = _connect()
    yield c
    c.close()


def _graph(conn: sqlite3.Connection, threshold: float = 0.5) -> SQLiteGraph:
    g = SQLiteGraph(conn, synonym_threshold=threshold)
    assert g.ensure({"extractor": "test"})
    return g


def _extraction(rng: random.Random) -> Extraction:
    sentences = [rng.sample(WORDS, rng.randint(0, 4)) for _ in range(rng.randint(1, 3))]
    named = [w for s in sentences for w in s if w[0] in "mpw"]
    return from_phrases(sentences, named)


def _add(g: SQLiteGraph, items: Sequence[tuple[int, Extraction]]) -> None:
    conn = g.conn
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO memories (id, text) VALUES (?, ?)", [(i, f"memory {i}") for i, _ in items]
    )
    new = g.missing_phrases(p for _, ex in items for p in ex.phrases)
    vectors = dict(zip(new, EMBEDDER.embed_documents(new), strict=True)) if new else {}
    g.add([i for i, _ in items], [ex for _, ex in items], vectors)
    conn.execute("COMMIT")


def _canonical(g: SQLiteGraph) -> dict[str, object]:
    """The graph by phrase text, independent of node ids and insertion order."""
    conn = g.conn
    phrase = dict(conn.execute("SELECT id, phrase FROM graph_nodes").fetchall())
    return {
        "nodes": sorted(phrase.values()),
        "passages": sorted(r[0] for r in conn.execute("SELECT memory_id FROM graph_passages")),
        "mentions": sorted(
            (m, phrase[n], c, named)
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


@pytest.mark.parametrize("seed", range(6))
def test_incremental_add_and_forget_equal_a_fresh_build(seed: int) -> None:
    rng = random.Random(seed)
    live: dict[int, Extraction] = {}
    inc_conn = _connect()
    inc = _graph(inc_conn)
    next_id = 1
    for _ in range(8):
        batch = [(next_id + j, _extraction(rng)) for j in range(rng.randint(1, 4))]
        next_id += len(batch)
        _add(inc, batch)
        live.update(batch)
        if live and rng.random() < 0.6:
            gone = rng.sample(sorted(live), rng.randint(1, min(3, len(live))))
            marks = ",".join("?" * len(gone))
            inc_conn.execute(f"DELETE FROM memories WHERE id IN ({marks})", gone)
            for i in gone:
                del live[i]
    fresh_conn = _connect()
    fresh = _graph(fresh_conn)
    _add(fresh, sorted(live.items()))
    assert _canonical(inc) == _canonical(fresh)
    assert inc.prune() == 0  # the trigger already removed every orphan
    inc_conn.close()
    fresh_conn.close()


def test_forget_leaves_no_orphan_rows(conn: sqlite3.Connection) -> None:
    g = _graph(conn)
    _add(
        g,
        [(1, from_phrases([["marie curie", "warsaw"]])), (2, from_phrases([["warsaw", "poland"]]))],
    )
    conn.execute("DELETE FROM memories WHERE id = 1")
    assert _canonical(g)["nodes"] == ["poland", "warsaw"]
    conn.execute("DELETE FROM memories")
    for table in (
        "graph_nodes",
        "graph_passages",
        "graph_mentions",
        "graph_pairs",
        "graph_synonyms",
    ):
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table


def test_a_rolled_back_add_leaves_nothing(conn: sqlite3.Connection) -> None:
    g = _graph(conn)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO memories VALUES (1, 'x')")
    ex = from_phrases([["paris", "france"]])
    g.add(
        [1],
        [ex],
        dict(zip(["paris", "france"], EMBEDDER.embed_documents(["paris", "france"]), strict=True)),
    )
    conn.execute("ROLLBACK")
    assert g.counts() == dict.fromkeys(
        ("phrases", "passages", "mentions", "pair_edges", "synonym_edges"), 0
    )


def test_add_needs_a_vector_for_each_new_phrase(conn: sqlite3.Connection) -> None:
    g = _graph(conn)
    conn.execute("INSERT INTO memories VALUES (1, 'x')")
    with pytest.raises(InvalidInputError, match="no vector"):
        g.add([1], [from_phrases([["paris"]])], {})
    with pytest.raises(InvalidInputError, match="same length"):
        g.add([1, 2], [Extraction()], {})


def test_synonyms_skip_short_phrases_and_respect_the_threshold(conn: sqlite3.Connection) -> None:
    g = _graph(conn, threshold=0.8)
    vectors = {
        "ab": np.array([1, 0, 0], dtype=np.float32),
        "abc": np.array([1, 0, 0], dtype=np.float32),
        "abd": np.array([0.9, np.sqrt(1 - 0.81), 0], dtype=np.float32),
        "xyz": np.array([0, 0, 1], dtype=np.float32),
        "abe": np.array([0.7, np.sqrt(1 - 0.49), 0], dtype=np.float32),
    }
    conn.execute("INSERT INTO memories VALUES (1, 'x')")
    g.add([1], [from_phrases([list(vectors)])], vectors)
    synonyms = {pair for pair, _ in _canonical(g)["synonyms"]}  # type: ignore[union-attr]
    # "ab" has 2 characters: no synonym edge; abc-abe is 0.7 < 0.8; abd-abe is ~0.95
    assert synonyms == {("abc", "abd"), ("abd", "abe")}


def test_synonym_pairs_between_new_and_old_rows() -> None:
    old = np.eye(4, dtype=np.float32)
    old[3] = old[0]
    pairs = synonym_pairs(old[2:], old, threshold=0.5, offset=2)
    assert pairs == [(0, 3, 1.0)]


def test_synonym_cap_keeps_an_edge_in_either_top_list() -> None:
    # node 0 has three neighbours; a cap of 1 keeps 0-1 (0's best) and 0-2 (2's only edge)
    pairs = np.array([[0, 1], [0, 2], [0, 3], [3, 4]], dtype=np.int64)
    scores = np.array([0.99, 0.9, 0.85, 0.95], dtype=np.float32)
    kept, _ = _cap_synonyms(pairs, scores, 1)
    assert sorted(map(tuple, kept.tolist())) == [(0, 1), (0, 2), (3, 4)]


def test_ensure_rebuilds_when_the_fingerprint_changes(conn: sqlite3.Connection) -> None:
    g = _graph(conn)
    _add(g, [(1, from_phrases([["paris", "france"]]))])
    assert not g.ensure({"extractor": "test"})
    assert g.counts()["phrases"] == 2
    assert g.ensure({"extractor": "other"})
    assert g.counts()["phrases"] == 0
    assert g.unindexed() == [(1, "memory 1")]


def test_snapshot_neighbors_and_paths(conn: sqlite3.Connection) -> None:
    g = _graph(conn, threshold=0.99)
    _add(
        g,
        [
            (1, from_phrases([["marie curie", "warsaw"]], ["marie curie", "warsaw"])),
            (2, from_phrases([["warsaw", "poland"], ["warsaw", "poland"]])),
            (3, from_phrases([["radium"]])),
        ],
    )
    assert g.neighbors("warsaw") == [("poland", "cooccur", 2.0), ("marie curie", "cooccur", 1.0)]
    assert g.neighbors("nowhere") == []
    assert g.passages_of("warsaw") == [1, 2]
    index = GraphIndex(g.snapshot())
    assert index.path("marie curie", "poland") == ["marie curie", "warsaw", "poland"]
    assert index.path("marie curie", "radium") == []
    assert index.phrases_of(3) == ["radium"]
    assert bool(index.named[index.phrase_index("warsaw")])  # type: ignore[index]
    assert not index.named[index.phrase_index("poland")]  # type: ignore[index]


@pytest.mark.parametrize("seed", range(4))
def test_related_passages_match_a_brute_force_count(seed: int) -> None:
    rng = random.Random(seed)
    conn = _connect()
    conn.execute("ALTER TABLE memories ADD COLUMN namespace TEXT NOT NULL DEFAULT 'a'")
    g = _graph(conn)
    items = [(i, _extraction(rng)) for i in range(1, 25)]
    _add(g, items)
    conn.execute("UPDATE memories SET namespace = 'b' WHERE id % 3 = 0")
    phrases = {i: set(ex.phrases) for i, ex in items if ex.phrases}
    df = {p: sum(p in s for s in phrases.values()) for s in phrases.values() for p in s}
    idf = {p: math.log(1 + len(phrases) / n) for p, n in df.items()}
    for start, mine in phrases.items():
        expected = {
            other: round(sum(idf[p] for p in mine & theirs), 9)
            for other, theirs in phrases.items()
            if other != start and mine & theirs
        }
        best = sorted(expected, key=lambda i: (-expected[i], i))[:5]
        found = g.related(start, limit=5)
        assert [i for i, _ in found] == best
        for other, shared in found:
            assert set(shared) == mine & phrases[other]
        in_b = [i for i, _ in g.related(start, limit=30, namespaces=["b"])]
        assert in_b == [i for i in sorted(expected, key=lambda i: (-expected[i], i)) if i % 3 == 0]
        assert g.related(start, namespaces=[]) == []
    assert g.related(999) == []
    conn.close()
