"""Several processes on one store file: a commit in one is seen by the next read in another
(on every channel), forgets leave no stale hits, and the SPANN folder stays sound."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _concurrency_support import (
    absent_problems,
    agent_main,
    bulk_main,
    churn_main,
    create_main,
    file_problems,
    index_problems,
    late_main,
    marker,
    notes,
    open_memory,
    present_problems,
    reader_main,
    reaped,
    receive,
    spawn,
    texts_of,
    writer_main,
)

from engramdb import Memory

NOTES = 24  # per writer
FOLDING = 8  # changes before a fold, in the "folding" cases (the engine's own: 2048)


def forgotten_notes(count: int) -> set[int]:
    """The notes ``writer_main`` forgets (note ``i - 4`` after adding note ``i``)."""
    return {i - 4 for i in range(count) if i % 3 == 2 and i >= 4}


def seeded(tmp_path: Path, kind: str) -> str:
    """A store with seed notes (past the SPANN threshold for ``"spann"``); its path."""
    path = str(tmp_path / "store.db")
    with open_memory(path, kind) as mem:
        mem.add_many(notes(60 if kind == "spann" else 10, "seed"))
        assert mem.dense_index.kind == kind
    return path


@pytest.mark.parametrize(
    ("kind", "fold_min"),
    [("flat", None), ("spann", None), ("spann", FOLDING)],
    ids=["flat", "spann", "spann-folding"],
)
def test_a_commit_in_one_process_is_seen_by_the_next_recall_in_another(
    tmp_path: Path, kind: str, fold_min: int | None
) -> None:
    """Two writer processes add notes (each with a unique marker word) and now and then
    forget one; after each add or forget returns, the writer tells a long-lived reader
    process, whose next recalls must find the note on the lexical channel (by marker), the
    dense channel and hybrid (by text), or, after a forget, on none of them. With
    "spann-folding" every process folds its changes into the SPANN folder often."""
    path = seeded(tmp_path, kind)
    ctx = spawn()
    inbox, outbox = ctx.Queue(), ctx.Queue()
    acked = ctx.Array("i", [-1, -1])
    reader = ctx.Process(target=reader_main, args=(path, kind, inbox, outbox, acked, fold_min))
    writers = [
        ctx.Process(target=writer_main, args=(path, kind, w, NOTES, inbox, outbox, acked, fold_min))
        for w in range(2)
    ]
    deadline = time.monotonic() + 20
    with reaped([reader]):
        assert receive(outbox, deadline, "the reader to open the store") == ("ready",)
        with reaped(writers):
            done = [receive(outbox, deadline, "the writers to finish") for _ in writers]
        inbox.put(("stop",))
        report = receive(outbox, deadline, "the reader's report")
    errors = [error for _, _, error in done if error]
    assert not errors, "\n".join(errors)
    assert report[0] == "problems" and not report[1], "\n".join(report[1][:20])

    assert not file_problems(path)
    with open_memory(path, kind) as mem:
        assert not index_problems(mem)
        gone = forgotten_notes(NOTES)
        kept = [t for w in range(2) for i, t in enumerate(notes(NOTES, f"w{w}")) if i not in gone]
        assert texts_of(mem) == set(notes(60 if kind == "spann" else 10, "seed") + kept)


class Agent:
    """A long-lived Memory in another process, run by commands (see ``agent_main``)."""

    def __init__(self, ctx: Any, path: str, kind: str):
        self.inbox, self.outbox = ctx.Queue(), ctx.Queue()
        self.process = ctx.Process(target=agent_main, args=(path, kind, self.inbox, self.outbox))
        self.deadline = time.monotonic() + 20

    def started(self) -> None:
        assert receive(self.outbox, self.deadline, "the agent to open the store") == (
            "ok",
            "ready",
        )

    def __call__(self, *command: Any) -> Any:
        self.inbox.put(command)
        status, result = receive(self.outbox, self.deadline, f"the agent to run {command[0]}")
        assert status == "ok", result
        return result

    def stop(self) -> None:
        self.inbox.put(("stop",))


@pytest.mark.parametrize("kind", ["flat", "spann"])
def test_forgets_and_new_ids_reach_a_long_lived_process(tmp_path: Path, kind: str) -> None:
    """Forgets (by id, by source) in one long-lived process reach the next reads of another,
    also when the newest memory is forgotten and the next one added; and the other way round."""
    path = seeded(tmp_path, kind)
    seed = notes(60 if kind == "spann" else 10, "seed")
    agent = Agent(spawn(), path, kind)
    with open_memory(path, kind) as mem, reaped([agent.process]):
        agent.started()
        ids = {text: mem.recognize(text).match.id for text in seed}
        assert not present_problems(mem, ids[seed[0]], seed[0], marker("seed", 0))  # warm up

        def absent(memory_id: int, text: str, mark: str) -> list[str]:
            return absent_problems(mem, memory_id, text, mark)

        # the agent forgets by id, then by source: this process sees it at once
        assert agent("forget_ids", [ids[seed[1]], ids[seed[2]]]) == 2
        assert absent(ids[seed[1]], seed[1], marker("seed", 1)) == []
        assert absent(ids[seed[2]], seed[2], marker("seed", 2)) == []
        sourced = notes(1, "sourced")[0]
        (sourced_id,) = agent("add", [sourced], "s1")
        assert present_problems(mem, sourced_id, sourced, marker("sourced", 0)) == []
        assert agent("forget_source", "s1") == 1
        assert absent(sourced_id, sourced, marker("sourced", 0)) == []

        # the newest memory goes, and the next one takes a new id (ids are never reused)
        newest = max(mem.store.select_ids().tolist())
        old_text = mem.get(newest).text
        assert agent("forget_ids", [newest]) == 1
        fresh = notes(1, "fresh")[0]
        (fresh_id,) = agent("add", [fresh], "fresh")
        assert fresh_id > newest
        assert absent(newest, old_text, old_text.split()[0]) == []
        assert present_problems(mem, fresh_id, fresh, marker("fresh", 0)) == []

        # and the other way round: this process writes, the agent reads
        assert mem.forget([ids[seed[4]]]) == 1
        assert agent("absent", ids[seed[4]], seed[4], marker("seed", 4)) == []
        mine = notes(1, "mine")[0]
        (mine_id,) = mem.add(mine).ids
        assert agent("present", mine_id, mine, marker("mine", 0)) == []
        assert mem.forget([mine_id]) == 1
        assert agent("absent", mine_id, mine, marker("mine", 0)) == []
        agent.stop()
    assert not file_problems(path)


@pytest.mark.parametrize("fold_min", [None, FOLDING], ids=["default", "folding"])
def test_processes_sharing_a_spann_store_leave_it_sound(
    tmp_path: Path, fold_min: int | None
) -> None:
    """Two processes open, add, forget, rebuild and close, five times each, on one store
    that crosses the SPANN threshold meanwhile: the folder they leave opens without a
    rebuild and holds exactly the memories."""
    path = str(tmp_path / "store.db")
    Memory.open(path, embed={"model": "hash", "dim": 32}).close()  # exists, empty
    ctx = spawn()
    outbox = ctx.Queue()
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=churn_main, args=(path, "spann", w, 5, barrier, outbox, fold_min))
        for w in range(2)
    ]
    deadline = time.monotonic() + 20
    with reaped(workers):
        done = [receive(outbox, deadline, "the workers to finish") for _ in workers]
    errors = [error for *_, error in done if error]
    assert not errors, "\n".join(errors)
    assert not file_problems(path)
    with open_memory(path, "spann") as mem:
        assert mem.dense_index.kind == "spann"
        assert mem.dense_index.last_build is None  # the folder was sound: not rebuilt
        assert not index_problems(mem)
        assert texts_of(mem) == {text for _, _, kept, _ in done for text in kept}


def test_processes_creating_one_new_store_together_all_succeed(tmp_path: Path) -> None:
    """Three processes open the same not-yet-existing store at once (three times) and add a
    note each: every open succeeds and the store holds the three notes."""
    paths = [str(tmp_path / f"new{i}" / "store.db") for i in range(3)]
    ctx = spawn()
    outbox = ctx.Queue()
    barrier = ctx.Barrier(3)
    workers = [ctx.Process(target=create_main, args=(paths, w, barrier, outbox)) for w in range(3)]
    deadline = time.monotonic() + 20
    with reaped(workers):
        done = [receive(outbox, deadline, "the workers to finish") for _ in workers]
    errors = [error for *_, errors in done for error in errors]
    assert not errors, f"{len(errors)} of 9 opens failed:\n" + "\n".join(errors)
    for path in paths:
        with open_memory(path, "flat") as mem:
            assert texts_of(mem) == {notes(1, f"new{w}")[0] for w in range(3)}


def test_a_write_after_another_process_folded_the_spann_index_does_not_hang(
    tmp_path: Path,
) -> None:
    """Process A opens a SPANN store; process B adds more than the engine's fold size (2048)
    and so folds them into the folder; then A adds one note, and its write folds too."""
    path = seeded(tmp_path, "spann")
    ctx = spawn()
    outbox, go = ctx.Queue(), ctx.Event()
    late = ctx.Process(target=late_main, args=(path, go, outbox))
    bulk = ctx.Process(target=bulk_main, args=(path, 2100, outbox))
    deadline = time.monotonic() + 20
    with reaped([late]):
        assert receive(outbox, deadline, "A to open the store") == ("opened",)
        with reaped([bulk]):
            assert receive(outbox, deadline, "B's bulk add") == ("done", "bulk", None)
        go.set()
        assert receive(outbox, time.monotonic() + 10, "A's add after B's fold (hung?)") == (
            "done",
            "late",
            None,
        )
    with open_memory(path, "spann") as mem:
        assert not index_problems(mem)
        assert mem.stats().memories == 60 + 2100 + 1


@pytest.mark.parametrize("kind", ["flat", "spann"])
def test_stats_of_a_long_lived_process_count_what_another_process_added(
    tmp_path: Path, kind: str
) -> None:
    """``Memory.stats()`` describes the store as of its call: after another process added
    memories, its dense entry counts them (it is fresh), as ``dense_index.stats()`` does."""
    path = seeded(tmp_path, kind)
    agent = Agent(spawn(), path, kind)
    with open_memory(path, kind) as mem, reaped([agent.process]):
        agent.started()
        before = mem.stats()
        assert not before.dense.stale
        agent("add", notes(3, "other"), "other")
        agent.stop()
        stats = mem.stats()
        assert stats.memories == before.memories + 3
        assert stats.dense.count == stats.memories, stats.dense
        assert not stats.dense.stale, stats.dense
