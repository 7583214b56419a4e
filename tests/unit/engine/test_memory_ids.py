"""Memory ids are never handed out twice, even after the latest memory is forgotten."""

from __future__ import annotations

from pathlib import Path

from engramdb import Memory

HASH = {"model": "hash", "dim": 64}


def test_a_forgotten_id_is_not_given_again(tmp_path: Path) -> None:
    path = tmp_path / "ids.db"
    with Memory.open(path, embed=HASH) as mem:
        first = mem.add("the first memory of the store").ids[0]
        last = mem.add("the latest memory of the store").ids[0]
        mem.forget([last])
        again = mem.add("a memory added after the latest was forgotten").ids[0]
        assert first < last < again
        mem.forget([first, again])  # the store is empty now
    with Memory.open(path, embed=HASH) as mem:  # and the high-water mark survives a reopen
        fresh = mem.add_many(["one more memory", "and another one"]).ids
        assert min(fresh) > again
        assert mem.get(fresh[0]).text == "one more memory"


def test_forgetting_by_source_then_adding_keeps_ids_unique(memory: Memory) -> None:
    seen: set[int] = set()
    for round_ in range(5):
        ids = memory.add_many(
            [{"text": f"round {round_} note {i}", "source": "s"} for i in range(3)]
        ).ids
        assert not seen & set(ids)
        seen |= set(ids)
        memory.forget(source="s")
