"""Postings segments: read from FTS5 exactly, searched, merged, saved and loaded."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.config import LexicalConfig
from engramdb.errors import ConfigError, IndexFormatError
from engramdb.lexical.fts5 import FTS5Index
from engramdb.lexical.postings import (
    FTS5Tokenizer,
    Postings,
    Segment,
    build_segment,
    load_segment,
    merge_segments,
    read_fts5,
)

TEXTS = {
    3: "The deploy pipeline deploys twice a day.",
    5: "Buy flour for the sourdough starter; deploy the starter.",
    8: "Café CAFE cafe, naïve façade — Ωmega 2024",
    9: "",
    12: "run runs running runner ran " * 40,
}


def _fts(texts: dict[int, str], tokenizer: str) -> FTS5Index:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    index = FTS5Index(conn, LexicalConfig(tokenizer=tokenizer))
    index.ensure()
    conn.executemany("INSERT INTO memories (id, text) VALUES (?, ?)", texts.items())
    conn.commit()
    return index


def _instances(index: FTS5Index) -> dict[tuple[str, int], int]:
    conn = index.conn
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.i USING fts5vocab(main, memories_fts, instance)"
    )
    return dict(Counter((term, doc) for term, doc in conn.execute("SELECT term, doc FROM temp.i")))


def _pairs(segment: Segment) -> dict[tuple[str, int], int]:
    out = {}
    for t, term in enumerate(segment.terms):
        a, b = int(segment.offsets[t]), int(segment.offsets[t + 1])
        tf = segment.frequencies(np.arange(a, b))
        for row, count in zip(segment.rows[a:b].tolist(), tf.tolist(), strict=True):
            out[(term, int(segment.ids[row]))] = count
    return out


@pytest.mark.parametrize("tokenizer", ["porter unicode61 remove_diacritics 2", "unicode61"])
def test_read_fts5_holds_every_instance_and_length(tokenizer: str) -> None:
    index = _fts(TEXTS, tokenizer)
    segment = read_fts5(index.conn, "memories_fts")
    assert segment.ids.tolist() == sorted(TEXTS)
    assert _pairs(segment) == _instances(index)
    lengths = dict(zip(segment.ids.tolist(), segment.lengths.tolist(), strict=True))
    assert lengths[9] == 0 and lengths[12] == 200
    for t in range(len(segment.terms)):
        rows = segment.rows[segment.offsets[t] : segment.offsets[t + 1]]
        assert np.all(np.diff(rows) > 0)


def test_tokenizer_segment_equals_fts5s_own() -> None:
    spec = LexicalConfig().tokenizer
    index = _fts(TEXTS, spec)
    made = FTS5Tokenizer(spec).segment(list(TEXTS), list(TEXTS.values()), avgdl=10.0)
    assert _pairs(made) == _instances(index)
    assert made.lengths.tolist() == read_fts5(index.conn, "memories_fts").lengths.tolist()


def test_tokenizer_phrases_are_fts5_tokens() -> None:
    tokenizer = FTS5Tokenizer(LexicalConfig().tokenizer)
    assert tokenizer.phrases(["running", "café", "naïve", "Ωmega"]) == [
        ("run",),
        ("cafe",),
        ("naiv",),
        ("ωmega",),
    ]
    with pytest.raises(ConfigError):
        FTS5Tokenizer("no-such-tokenizer")


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.integers(0, 5000), unique=True, max_size=400),
    slots=st.lists(st.integers(-3, 5003), max_size=60),
)
def test_find_agrees_with_a_scan(rows: list[int], slots: list[int]) -> None:
    rows = sorted(rows)
    n = 5004
    postings = Postings(
        ["t"], np.array([len(rows)]), np.asarray(rows, np.int64), np.ones(len(rows), np.int64)
    )
    segment = build_segment(np.arange(n, dtype=np.int64), np.full(n, 3), postings, 3.0)
    needles = np.asarray(sorted(s for s in slots if 0 <= s < n), dtype=np.int64)
    found, pos = segment.find("t", needles)
    assert found.tolist() == [s in set(rows) for s in needles.tolist()]
    assert [rows[p] for p in pos[found].tolist()] == needles[found].tolist()
    assert not segment.find("absent", needles)[0].any()


def test_merge_equals_a_segment_of_the_live_rows() -> None:
    spec = "unicode61"
    first = {1: "alpha beta beta", 2: "beta gamma", 4: "alpha alpha alpha delta"}
    second = {7: "gamma delta", 9: "alpha", 10: "zeta zeta"}
    tokenizer = FTS5Tokenizer(spec)
    a = tokenizer.segment(list(first), list(first.values()), 2.0)
    b = tokenizer.segment(list(second), list(second.values()), 5.0)
    dead_a = np.flatnonzero(a.ids == 2)
    dead_b = np.flatnonzero(b.ids == 10)
    merged = merge_segments([a, b], [dead_a, dead_b], avgdl=2.5)
    live = {i: t for i, t in {**first, **second}.items() if i not in (2, 10)}
    fresh = tokenizer.segment(list(live), list(live.values()), 2.5)
    assert merged.ids.tolist() == fresh.ids.tolist()
    assert merged.terms == fresh.terms and "zeta" not in merged.terms
    assert _pairs(merged) == _pairs(fresh)
    assert np.array_equal(merged.impact, fresh.impact)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index = _fts(TEXTS, LexicalConfig().tokenizer)
    segment = read_fts5(index.conn, "memories_fts")
    segment.save(tmp_path / "seg")
    loaded = load_segment(tmp_path / "seg")
    assert loaded.terms == segment.terms and loaded.avgdl == segment.avgdl
    for name in ("ids", "lengths", "offsets", "rows", "impact"):
        assert np.array_equal(getattr(loaded, name), getattr(segment, name)), name
    assert _pairs(loaded) == _pairs(segment)
    with pytest.raises(FileExistsError):
        segment.save(tmp_path / "seg")  # a saved segment is never written over


def test_load_refuses_other_formats_and_torn_arrays(tmp_path: Path) -> None:
    index = _fts(TEXTS, "unicode61")
    read_fts5(index.conn, "memories_fts").save(tmp_path / "seg")
    meta = tmp_path / "seg" / "segment.json"
    original = meta.read_text()
    meta.write_text(original.replace('"format": 1', '"format": 99'))
    with pytest.raises(IndexFormatError):
        load_segment(tmp_path / "seg")
    meta.write_text(original.replace('"postings": ', '"postings": 1'))
    with pytest.raises(IndexFormatError):
        load_segment(tmp_path / "seg")
    with pytest.raises(IndexFormatError):
        load_segment(tmp_path / "missing")
