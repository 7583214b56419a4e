"""The engine's lexical index (postings caught up from the change log) against FTS5 itself.

Hypothesis draws a store and a history of write transactions: memories added (with
repeated texts, so scores tie), deleted, re-added under a deleted id, their text changed
in place, and their namespace, source or validity changed (rows a filter then keeps or
drops). After every transaction, on the same read snapshot, :class:`LexicalIndex` must
answer exactly as its :class:`FTS5Index`:

* ``search``: the same ids in the same order (ties by smaller id) and the same float32
  scores, with and without ``where`` filters (broad ones, selective ones, one that keeps
  nothing), for several ``k``;
* ``term_stats``: the same statistics;
* ``search_stats``: the same ``(id, score)`` lists, to the last bit of the doubles, with
  its own statistics and with other (collection-wide) ones.

Each transaction reaches the postings through the change log: a new small segment, dead
slots, merges of segments as they pile up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb.config import LexicalConfig
from engramdb.engine._lexical import LexicalIndex
from engramdb.lexical.bm25 import TermStats
from engramdb.store.sqlite import SQLiteStore

settings.register_profile(
    "postings-oracle",
    derandomize=True,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ORACLE = settings.get_profile("postings-oracle")

VOCAB = [
    "memory", "memory", "Memory", "note", "note", "café", "CAFE", "run", "runs", "running",
    "graph", "vector", "search", "index", "shard", "the", "of", "and", "alpha", "beta",
    "gamma", "Ωmega", "x1", "2024",
]  # fmt: skip
NAMESPACES = ["work", "work", "home", "rare"]
SOURCES = ["a.md", "b.md", "c.md"]
FILTERS: list[tuple[str | None, tuple[object, ...]]] = [
    (None, ()),
    ("m.namespace = ?", ("work",)),
    ("m.namespace = ?", ("rare",)),
    ("m.id % 3 <> ? AND m.source <> ?", (1, "c.md")),
    ("m.valid_to IS NULL", ()),
    ("m.namespace = ?", ("nowhere",)),
]
TOKENIZERS = ["porter unicode61 remove_diacritics 2", "unicode61"]


@dataclass
class Op:
    kind: str  # add, delete, text, namespace, source, expire
    id: int
    text: str = ""
    value: str = ""


@st.composite
def texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(st.sampled_from(VOCAB), max_size=8))
    if draw(st.integers(0, 11)) == 0:
        words = words * 25  # long rows: large tf, multi-byte lengths
    return " ".join(words)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[list[Op]], list[str], str]:
    pool = draw(st.lists(texts(), min_size=1, max_size=6))  # few texts: many exact ties
    ids = list(range(1, 400))
    steps: list[list[Op]] = []
    live: set[int] = set()
    for _ in range(draw(st.integers(1, 6))):
        step: list[Op] = []
        for _ in range(draw(st.integers(1, 12))):
            kind = draw(
                st.sampled_from(
                    ["add", "add", "add", "delete", "text", "namespace", "source", "expire"]
                )
            )
            if kind == "add" or not live:
                new = draw(st.sampled_from(ids))
                if new in live:
                    continue
                text = draw(st.one_of(st.sampled_from(pool), texts()))
                step.append(Op("add", new, text, draw(st.sampled_from(NAMESPACES))))
                live.add(new)
                continue
            target = draw(st.sampled_from(sorted(live)))
            if kind == "delete":
                live.discard(target)
            value = draw(st.sampled_from(NAMESPACES if kind == "namespace" else SOURCES))
            step.append(Op(kind, target, draw(st.sampled_from(pool)), value))
        steps.append(step)
    queries = [
        " ".join(draw(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4)))
        for _ in range(draw(st.integers(1, 4)))
    ]
    return steps, [*queries, "the of and", "memory"], draw(st.sampled_from(TOKENIZERS))


@contextmanager
def _index(tokenizer: str) -> Iterator[tuple[SQLiteStore, LexicalIndex]]:
    store = SQLiteStore(":memory:")
    index = LexicalIndex(store, LexicalConfig(tokenizer=tokenizer))
    with store.atomic(bump=False):
        index.ensure()
    index.load()
    try:
        yield store, index
    finally:
        index.close()
        store.close()


def _write(store: SQLiteStore, step: list[Op], version: int) -> None:
    with store.atomic() as conn:
        for op in step:
            if op.kind == "add":
                conn.execute(
                    "INSERT INTO memories (id, namespace, text, hash, source, ingest_time) "
                    "VALUES (?, ?, ?, ?, ?, 0)",
                    (op.id, op.value, op.text, f"h{op.id}-{version}", SOURCES[op.id % 3]),
                )
            elif op.kind == "delete":
                conn.execute("DELETE FROM memories WHERE id = ?", (op.id,))
            elif op.kind == "text":
                conn.execute("UPDATE memories SET text = ? WHERE id = ?", (op.text, op.id))
            elif op.kind == "namespace":
                conn.execute(
                    "UPDATE memories SET namespace = ?, hash = ? WHERE id = ?",
                    (op.value, f"h{op.id}-{version}-ns", op.id),
                )
            elif op.kind == "source":
                conn.execute("UPDATE memories SET source = ? WHERE id = ?", (op.value, op.id))
            else:
                conn.execute("UPDATE memories SET valid_to = 1.0 WHERE id = ?", (op.id,))


def _assert_same_answers(store: SQLiteStore, index: LexicalIndex, queries: list[str]) -> None:
    with store.reading():  # one snapshot for both answers
        own = index.term_stats(queries)
        assert own == index.fts.term_stats(queries)
        wide = TermStats(
            own.rows * 3 + 1,
            own.tokens * 2 + 5,
            tuple({term: hits * 2 + 1 for term, hits in df.items()} for df in own.df),
        )
        for where, params in FILTERS:
            for k in (1, 3, 100):
                got = index.search(queries, k, where=where, params=params)
                want = index.fts.search(queries, k, where=where, params=params)
                assert got[0].tolist() == want[0].tolist(), (where, k)
                assert got[1].tolist() == want[1].tolist(), (where, k)
                for stats in (own, wide):
                    got_stats = index.search_stats(queries, k, stats, where=where, params=params)
                    want_stats = index.fts.search_stats(
                        queries, k, stats, where=where, params=params
                    )
                    assert got_stats == want_stats, (where, k)


@ORACLE
@given(history=histories())
def test_postings_answer_as_fts5_after_every_write(
    history: tuple[list[list[Op]], list[str], str],
) -> None:
    steps, queries, tokenizer = history
    with _index(tokenizer) as (store, index):
        _assert_same_answers(store, index, queries)
        for version, step in enumerate(steps):
            _write(store, step, version)
            _assert_same_answers(store, index, queries)
        assert index.builds == 1  # caught up from the log every time, never rebuilt


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_many_small_writes_merge_segments_and_stay_exact(tokenizer: str) -> None:
    rng = np.random.default_rng(7)
    queries = ["memory note", "graph vector search", "run café", "alpha beta gamma Ωmega"]
    with _index(tokenizer) as (store, index):
        segments_seen = set()
        live: list[int] = []
        for version in range(60):
            step = [
                Op("add", 1000 * version + j, " ".join(rng.choice(VOCAB, size=6)), "work")
                for j in range(int(rng.integers(1, 30)))
            ]
            if live and version % 3 == 0:
                step.append(Op("delete", live.pop(int(rng.integers(len(live))))))
            live += [op.id for op in step if op.kind == "add"]
            _write(store, step, version)
            _assert_same_answers(store, index, queries)
            with store.reading() as seq:
                view = index.view(seq)
            assert view is not None and view.seq == seq
            segments_seen.add(len(view.segments))
        assert max(segments_seen) >= 3  # small segments pile up ...
        assert len(view.segments) <= 8  # ... and merge
        assert index.builds == 1


@pytest.mark.parametrize("grow", [True, False])
def test_exact_after_the_mean_length_drifts_far_from_a_segments(grow: bool) -> None:
    # Impacts are computed at a segment's mean length; once the store's has moved far from
    # it, rows of that segment rank otherwise than their impacts say (tf and length trade
    # places), and only the bounds keep every row that can be in the top k a candidate.
    rng = np.random.default_rng(11)
    queries = ["alpha", "alpha beta", "beta gamma"]
    with _index("unicode61") as (store, index):
        base = []
        for i in range(1, 1001):
            words = ["alpha"] * int(rng.integers(1, 6)) + ["beta"] * int(rng.integers(0, 3))
            words += ["filler"] * int(rng.integers(0, 40 if i % 5 else 2000))
            base.append(Op("add", i, " ".join(rng.permutation(words)), "work"))
        _write(store, base, 0)
        _assert_same_answers(store, index, queries)
        if grow:  # fewer rows than a quarter of the base: a segment of their own
            _write(
                store,
                [Op("add", 5000 + i, "zeta " * 5000 + "gamma", "home") for i in range(200)],
                1,
            )
        else:  # the long rows go: under a quarter of the base's rows, so they stay dead slots
            _write(store, [Op("delete", i) for i in range(5, 1001, 5)], 1)
        with store.reading() as seq:
            view = index.view(seq)
        assert view is not None
        drift = (view.tokens / view.rows) / view.segments[0].avgdl
        assert drift > 3 if grow else drift < 0.3
        _assert_same_answers(store, index, queries)
        for k in (1, 5, 20, 100):
            for query in queries:
                got, want = index.search([query], k), index.fts.search([query], k)
                assert got[0].tolist() == want[0].tolist()
