"""Facts that change: supersession by hand and at write time, undo, history, forgetting,
and as-of reads checked against a brute-force replay of the history."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engramdb import Memory
from engramdb.errors import InvalidInputError, NotFoundError
from engramdb.recognize.facts import fact_keys

HASH = {"model": "hash", "dim": 32}
WORDS = ("amber", "basil", "cedar", "dune", "ember", "fjord", "grove", "heath", "inlet", "kelp")


def _all(mem: Memory, **kwargs: object) -> list[int]:
    """Every memory recall can see (each text holds "fact"), in rank order."""
    return mem.recall("fact", k=1000, channels="lexical", **kwargs).ids  # type: ignore[arg-type]


@dataclass
class _Model:
    """The reference: memories with their valid-from times, and the links."""

    valid_from: dict[int, float] = field(default_factory=dict)
    links: list[dict[str, object]] = field(default_factory=list)  # old, new, at, active

    def valid_to(self, memory: int) -> float | None:
        active = [lk for lk in self.links if lk["old"] == memory and lk["active"]]
        return float(active[-1]["at"]) if active else None  # type: ignore[arg-type]

    def valid_at(self, t: float) -> set[int]:
        return {
            m
            for m, since in self.valid_from.items()
            if since <= t and ((end := self.valid_to(m)) is None or end > t)
        }


def _check(mem: Memory, model: _Model) -> None:
    assert set(_all(mem, include_superseded=True)) == set(model.valid_from)
    records = {r.id: r for r in mem.get_many(list(model.valid_from))}
    assert set(records) == set(model.valid_from), "supersession never loses a memory"
    for memory_id, record in records.items():
        assert record.valid_to == model.valid_to(memory_id)
    order = _all(mem)
    current = [m for m in order if model.valid_to(m) is None]
    assert order[: len(current)] == current, "valid memories come first"
    for t in sorted({*model.valid_from.values(), *(float(lk["at"]) for lk in model.links)}):  # type: ignore[arg-type]
        for probe in (t - 0.5, t, t + 0.5):
            assert set(_all(mem, as_of=probe)) == model.valid_at(probe), probe


def _add(mem: Memory, model: _Model, rng: random.Random, step: int) -> None:
    t = float(rng.randint(1, 50) * 10)
    text = f"fact {step} {rng.choice(WORDS)} {rng.choice(WORDS)} item{step}"
    (new,) = mem.add(text, event_time=t).ids
    model.valid_from[new] = t


def _chain(model: _Model, start: int) -> set[int]:
    """``start`` and the memories that supersede it, one after the other."""
    chain: set[int] = set()
    cur: int | None = start
    while cur is not None and cur not in chain:
        chain.add(cur)
        nxt = [lk["new"] for lk in model.links if lk["old"] == cur and lk["active"]]
        cur = nxt[-1] if nxt else None  # type: ignore[assignment]
    return chain


def _supersede(mem: Memory, model: _Model, rng: random.Random) -> None:
    old, new = rng.sample(sorted(model.valid_from), 2)
    at = rng.choice([None, float(rng.randint(1, 50) * 10)])
    heads = {lk["old"] for lk in model.links if lk["active"]}
    try:
        link = mem.supersede(old, new, at=at)
    except InvalidInputError:
        assert old in heads or old in _chain(model, new)
        return
    assert old not in heads and old not in _chain(model, new)
    when = model.valid_from[new] if at is None else at
    assert (link.old, link.new, link.at) == (old, new, when)
    model.links.append({"old": old, "new": new, "at": when, "active": True})


def _undo(mem: Memory, model: _Model, rng: random.Random) -> None:
    heads = sorted({int(lk["old"]) for lk in model.links if lk["active"]})  # type: ignore[call-overload]
    if not heads:
        with pytest.raises(NotFoundError):
            mem.unsupersede(min(model.valid_from))
        return
    old = rng.choice(heads)
    mem.unsupersede(old)
    for lk in model.links:
        if lk["old"] == old:
            lk["active"] = False


def _forget(mem: Memory, model: _Model, rng: random.Random) -> None:
    gone = rng.choice(sorted(model.valid_from))
    assert mem.forget(ids=[gone]) == 1
    del model.valid_from[gone]
    model.links = [lk for lk in model.links if lk["old"] != gone]
    for lk in model.links:
        if lk["new"] == gone:
            lk["new"] = None


@pytest.mark.parametrize("seed", range(12))
def test_random_add_supersede_forget_undo_against_a_replay(seed: int) -> None:
    rng = random.Random(seed)
    model = _Model()
    with Memory.open(":memory:", embed=HASH, recognize={"supersede": False}) as mem:
        for step in range(40):
            op = rng.random()
            if op < 0.35 or len(model.valid_from) < 2:
                _add(mem, model, rng, step)
            elif op < 0.65:
                _supersede(mem, model, rng)
            elif op < 0.8:
                _undo(mem, model, rng)
            else:
                _forget(mem, model, rng)
            _check(mem, model)
        for memory_id in model.valid_from:
            history = mem.history(memory_id)
            assert memory_id in {v.id for v in history.versions}
            for link in history.links:
                assert link.old in model.valid_from  # no orphan links
                assert link.new is None or link.new in model.valid_from


def test_a_new_value_supersedes_at_write_time_and_as_of_reads_the_old() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        porto, tea, lisbon = mem.add_many(
            [
                {"text": "Alice lives in Porto.", "event_time": 1000.0},
                {"text": "Bob likes green tea.", "event_time": 1500.0},
                {"text": "Alice lives in Lisbon.", "event_time": 2000.0},
            ]
        ).ids
        hits = mem.recall("where does Alice live?", k=3)
        assert hits.ids[0] == lisbon and hits.ids[-1] == porto
        assert hits[-1].valid_to == 2000.0 and hits[-1].superseded
        (link,) = hits[-1].relations
        assert (link.old, link.new, link.kind, link.origin) == (porto, lisbon, "supersede", "auto")
        assert link.detail == {"old_value": "porto", "new_value": "lisbon"}
        assert mem.recall("where does Alice live?", k=3, as_of=1800).ids[0] == porto
        assert lisbon not in mem.recall("Alice lives", k=3, as_of="1970-01-01T00:30:00Z").ids
        both = mem.recall("Alice lives in Porto", k=3, include_superseded=True)
        assert both.ids[0] == porto and hits[0].relations[0].new == lisbon
        history = mem.history(lisbon)
        assert [v.id for v in history.versions] == [porto, lisbon]
        assert tea not in {v.id for v in history.versions}


def test_history_out_of_order_supersedes_the_new_memory() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        (late,) = mem.add("The team has 15 people.", event_time=2000.0).ids
        (early,) = mem.add("The team has 12 people.", event_time=1000.0).ids
        assert mem.get(early).valid_to == 2000.0 and mem.get(late).valid_to is None


def test_chains_link_to_the_newest_value() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        a, b, c = mem.add_many(
            [
                {"text": "The deploy freeze is on Friday.", "event_time": 1.0},
                {"text": "The deploy freeze is on Thursday.", "event_time": 2.0},
                {"text": "The deploy freeze is on Monday.", "event_time": 3.0},
            ]
        ).ids
        history = mem.history(a)
        assert [(lk.old, lk.new) for lk in history.links] == [(a, b), (b, c)]
        assert [v.id for v in history.versions] == [a, b, c]


def test_unsure_changes_are_conflicts_that_change_no_validity() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        old, new = mem.add_many(
            [
                {"text": "Carol: I went to the park yesterday", "event_time": 1.0},
                {"text": "Carol: I went to the beach yesterday", "event_time": 2.0},
            ]
        ).ids
        assert mem.get(old).valid_to is None
        (link,) = mem.history(old).links
        assert (link.kind, link.old, link.new) == ("conflict", old, new)
        mem.supersede(old, new)
        kinds = [(lk.kind, lk.undone is None) for lk in mem.history(old).links]
        assert kinds == [("conflict", False), ("supersede", True)]


def test_value_changes_stay_apart_under_near_duplicate_merging() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        result = mem.add_many(
            [
                "Alice Moreau was born in London in the spring of 1990, in a small house.",
                "Alice Moreau was born in Paris in the spring of 1990, in a small house.",
            ]
        )
        assert result.added == 2 and result.near == 0


def test_supersede_refuses_bad_links() -> None:
    with Memory.open(":memory:", embed=HASH, recognize={"supersede": False}) as mem:
        a, b, c = mem.add_many(["fact one alpha", "fact two beta", "fact three gamma"]).ids
        (other,) = mem.add("fact four delta", namespace="elsewhere").ids
        with pytest.raises(InvalidInputError, match="itself"):
            mem.supersede(a, a)
        with pytest.raises(InvalidInputError, match="different namespaces"):
            mem.supersede(a, other)
        with pytest.raises(NotFoundError):
            mem.supersede(a, 999)
        with pytest.raises(InvalidInputError, match="at must"):
            mem.supersede(a, b, at="yesterday-ish")
        mem.supersede(a, b)
        with pytest.raises(InvalidInputError, match="already superseded"):
            mem.supersede(a, c)
        mem.supersede(b, c)
        with pytest.raises(InvalidInputError, match="cycle"):
            mem.supersede(c, a)
        with pytest.raises(NotFoundError, match="not superseded"):
            mem.unsupersede(c)
        with pytest.raises(InvalidInputError, match="as_of"):
            mem.recall("fact", as_of="not a time")


def test_forgetting_the_new_value_resurrects_nothing() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        old, new = mem.add_many(
            [
                {"text": "Alice lives in Porto.", "event_time": 1.0},
                {"text": "Alice lives in Lisbon.", "event_time": 2.0},
            ]
        ).ids
        mem.forget(ids=[new])
        assert mem.get(old).valid_to == 2.0
        (link,) = mem.history(old).links
        assert link.new is None and link.kind == "supersede"
        mem.unsupersede(old)
        assert mem.get(old).valid_to is None
        mem.forget(ids=[old])
        assert mem.stats().memories == 0


def test_export_and_import_keep_the_chain(tmp_path: Path) -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        porto, lisbon, madrid = mem.add_many(
            [
                {"text": "Alice lives in Porto.", "event_time": 1.0},
                {"text": "Alice lives in Lisbon.", "event_time": 2.0},
                {"text": "Alice lives in Madrid.", "event_time": 3.0},
            ]
        ).ids
        mem.unsupersede(lisbon)
        mem.forget(ids=[madrid])
        records = list(mem.export())
    path = tmp_path / "out.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    with Memory.open(":memory:", embed=HASH) as other:
        other.import_file(path)
        other.import_file(path)  # twice: nothing doubles
        by_text = {r.text: r for r in other.get_many(list(range(1, 10)))}
        assert set(by_text) == {"Alice lives in Porto.", "Alice lives in Lisbon."}
        assert by_text["Alice lives in Porto."].valid_to == 2.0
        assert by_text["Alice lives in Lisbon."].valid_to is None
        links = other.history(by_text["Alice lives in Porto."].id).links
        assert [(lk.kind, lk.new is None, lk.undone is None) for lk in links] == [
            ("supersede", False, True),
            ("supersede", True, False),
        ]
        # the imported memories take part in write-time detection
        (paris,) = other.add("Alice lives in Paris.", event_time=4.0).ids
        assert other.get(by_text["Alice lives in Lisbon."].id).valid_to == 4.0
        assert other.get(paris).valid_to is None
    assert porto and lisbon


def test_a_turn_speaks_for_its_speaker() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        alice, bob, alice_again = mem.add_many(
            [
                {"text": "I live in Porto.", "event_time": 1.0, "meta": {"speaker": "Alice"}},
                {"text": "I live in Lisbon.", "event_time": 2.0, "meta": {"speaker": "Bob"}},
                {"text": "I live in Madrid.", "event_time": 3.0, "meta": {"speaker": "alice"}},
            ]
        ).ids
        assert mem.get(bob).valid_to is None
        assert mem.get(alice).valid_to == 3.0
        assert [(lk.old, lk.new) for lk in mem.history(bob).links] == []
        assert alice_again


def test_current_first_keeps_scores_non_increasing() -> None:
    from engramdb.engine._validity import current_first

    order = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]
    got = current_first(order, {1: 5.0, 3: 7.0})
    assert got == [(2, 0.9), (4, 0.8), (1, 0.7), (3, 0.6)]
    assert current_first(order, {}) == order


def test_a_store_from_before_fact_keys_gets_them_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Memory.open(path, embed=HASH) as mem:
        (porto,) = mem.add("Alice lives in Porto.", event_time=1.0).ids
    raw = sqlite3.connect(path)  # as a store made before migration 0005 would be
    raw.execute("DELETE FROM fact_keys")
    raw.execute("DELETE FROM store_info WHERE key = 'fact_keys_filled'")
    raw.commit()
    raw.close()
    with Memory.open(path, embed=HASH) as mem:
        (lisbon,) = mem.add("Alice lives in Lisbon.", event_time=2.0).ids
        assert mem.get(porto).valid_to == 2.0
        assert [(lk.old, lk.new) for lk in mem.history(lisbon).links] == [(porto, lisbon)]
    with Memory.open(path, embed=HASH) as mem:  # filled once: nothing to do again
        count = mem.store.conn.execute("SELECT COUNT(*) FROM fact_keys").fetchone()[0]
        texts = ("Alice lives in Porto.", "Alice lives in Lisbon.")
        assert count == sum(len(fact_keys(t)) for t in texts)  # one row per memory and key


def test_a_new_store_is_marked_filled() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        row = mem.store.conn.execute(
            "SELECT value FROM store_info WHERE key = 'fact_keys_filled'"
        ).fetchone()
        assert row == ("1",)
