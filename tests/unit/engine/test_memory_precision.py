"""Recall with calibrated relevance, abstention, conformal coverage, reranking; context."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from engramdb import Memory
from engramdb.calibrate import load_calibration
from engramdb.cli import cli
from engramdb.errors import InvalidInputError

HASH = {"model": "hash", "dim": 64}
FRUITS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "peach", "pear", "plum", "kiwi"]
PLACES = ["garden", "kitchen", "market", "orchard", "office", "station", "harbour", "school"]


def notes() -> list[str]:
    return [
        f"note {i}: the {f} from the {p} was {['ripe', 'sour', 'sweet'][i % 3]} on day {i}"
        for i, (f, p) in enumerate((f, p) for f in FRUITS for p in PLACES)
    ]


@pytest.fixture
def mem() -> Memory:
    m = Memory.open(":memory:", embed=HASH)
    m.add_many(notes())
    yield m
    m.close()


def test_every_hit_carries_a_non_increasing_relevance(mem: Memory) -> None:
    hits = mem.recall("ripe mango from the orchard", k=10)
    assert len(hits) == 10 and not hits.abstain and hits.reason is None
    p = [h.relevance for h in hits]
    assert all(v is not None and 0.0 <= v <= 1.0 for v in p)
    assert p == sorted(p, reverse=True)  # type: ignore[type-var]


def test_min_relevance_filters_and_abstains_with_a_reason(mem: Memory) -> None:
    everything = mem.recall("ripe mango", k=5, min_relevance=0.0)
    assert len(everything) == 5 and not everything.abstain
    best = everything[0].relevance
    assert best is not None
    some = mem.recall("ripe mango", k=5, min_relevance=best)
    assert 1 <= len(some) <= 5 and all((h.relevance or 0) >= best for h in some)
    if best < 1.0:
        none = mem.recall("ripe mango", k=5, min_relevance=min(1.0, best + 1e-6))
        assert none.abstain and len(none) == 0
        assert none.reason is not None and "threshold" in none.reason


def test_abstains_on_an_empty_store() -> None:
    with Memory.open(":memory:", embed=HASH) as empty:
        hits = empty.recall("anything", min_relevance=0.5)
        assert hits.abstain and "no memory" in (hits.reason or "")
        assert not empty.recall("anything").abstain


@pytest.mark.parametrize("bad", [{"min_relevance": 1.5}, {"coverage": 1.0}, {"rerank": "nope"}])
def test_bad_precision_arguments_raise(mem: Memory, bad: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        mem.recall("apple", **bad)  # type: ignore[arg-type]


def test_coverage_uses_the_stored_calibration_and_never_calibrates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Memory.open(tmp_path / "s.db", embed=HASH) as m:
        m.add_many(notes())
        with pytest.raises(InvalidInputError, match="engram calibrate"):
            m.recall("plum", coverage=0.8)  # a read never calibrates (nor writes)
        assert load_calibration(m.store.conn, "*") is None
        version = m.store.data_version
        cal = m.calibrate()
        assert cal is not None and len(cal.scores) == 80 and cal.memories == 80
        assert m.store.data_version == version  # derived data: no version bump
        hits = m.recall("sweet peach from the market", k=10, coverage=0.9)
        assert len(hits) <= 10
        t = cal.threshold(0.1)
        assert all((h.relevance or 0) >= t for h in hits)
        assert hits.abstain == (len(hits) == 0)
        m.add_many([f"extra note {i} about walnuts and hazelnuts number {i}" for i in range(20)])
        with caplog.at_level(logging.WARNING):
            m.recall("plum", coverage=0.8)  # stale: used as is, with a warning
        assert "stale" in caplog.text
        same = load_calibration(m.store.conn, "*")
        assert same is not None and same.created == cal.created
        grown = m.calibrate()
        assert grown.memories == m.stats().memories > 88


def test_calibration_of_a_namespace_is_its_own_scope(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "s.db", embed=HASH) as m:
        m.add_many(notes()[:30], namespace="a")
        m.add_many(notes()[30:], namespace="b")
        cal = m.calibrate(namespace="a", cues=20)
        assert cal.scope == "a" and cal.memories == 30 and len(cal.scores) == 20
        assert load_calibration(m.store.conn, "a") == cal
        assert load_calibration(m.store.conn, "*") is None


def test_mmr_rerank_returns_k_distinct_hits(mem: Memory) -> None:
    hits = mem.recall("apple garden", k=8, rerank="mmr")
    assert len(hits) == 8 and len(set(hits.ids)) == 8
    plain = mem.recall("apple garden", k=8)
    assert hits[0].id == plain[0].id  # the best hit stays first


def test_context_packs_recall_within_budget_with_citations(mem: Memory) -> None:
    ctx = mem.context("ripe apple", budget_tokens=120, k=10, order="edges")
    assert 0 < ctx.tokens <= 120 and ctx.blocks
    assert ctx.query == "ripe apple"
    assert ctx.text.startswith("[1] ")
    hits = mem.recall("ripe apple", k=3)
    again = mem.context(hits, budget_tokens=1000)
    assert [b.ids[0] for b in again.blocks] == hits.ids


def test_cli_context_prints_text_and_json(tmp_path: Path, hash_config: Path) -> None:
    db = tmp_path / "c.db"
    with Memory.open(db, embed=HASH) as m:
        m.add_many(notes())
    config = hash_config
    runner = CliRunner()
    args = ["context", "ripe apple", "--db", str(db), "--config", str(config)]
    out = runner.invoke(cli, [*args, "--budget", "80"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("[1] ")
    out = runner.invoke(cli, [*args, "--json", "--order", "chronological", "-k", "4"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["order"] == "chronological" and data["abstain"] is False
    assert 1 <= len(data["blocks"]) <= 4 and data["tokens"] <= 1000
    out = runner.invoke(cli, [*args, "--min-relevance", "1.0"])
    assert out.exit_code == 0 and "abstained" in out.output
