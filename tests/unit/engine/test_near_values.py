"""Near-duplicate merging keeps facts with different values apart, and recognize agrees
with what add would do."""

from __future__ import annotations

from engramdb import Memory

HASH = {"model": "hash", "dim": 32}


def test_numbered_tickets_stay_apart_and_typos_merge() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        tickets = [f"ticket number {i} is closed" for i in range(1, 1001)]
        result = mem.add_many(tickets)
        assert result.added == 1000 and result.near == 0
        assert mem.recognize("ticket number 111 is closed").kind == "exact"
        assert mem.recognize("ticket number 1111 is closed").kind == "new"
        long = "The deploy freeze for the payments service starts on Friday at noon sharp."
        mem.add(long)
        typo = long.replace("payments", "paymnets")
        assert mem.recognize(typo).kind == "near"
        assert mem.add(typo).near == 1


def test_a_changed_place_is_a_new_memory() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        first = mem.add("Alice Moreau was born in London in the spring of 1990.")
        second = mem.add("Alice Moreau was born in Paris in the spring of 1990.")
        assert second.added == 1 and second.ids != first.ids
        assert mem.stats().memories == 2
