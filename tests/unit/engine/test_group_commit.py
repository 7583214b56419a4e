"""Group commit: writers queued behind a commit share the next transaction; a failing job
rolls back alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engramdb import Memory

HASH = {"model": "hash", "dim": 32}


def _job(mem: Memory, n: int) -> Any:
    def fn(known: dict[int, Any]) -> int:
        if n == 3:
            mem.store.conn.execute("UPDATE store_info SET value = 'x' WHERE key = 'created'")
            raise ValueError("job 3 fails")
        return n

    return fn


def test_queued_writes_share_one_transaction_and_fail_alone(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m.db", embed=HASH) as mem:
        queue = mem._writer.queue
        gate = threading.Event()
        results: dict[int, Any] = {}

        def first(known: dict[int, Any]) -> str:
            gate.wait(10)
            return "first"

        def submit(n: int, fn: Any) -> None:
            try:
                results[n] = queue.run(fn)
            except ValueError as exc:
                results[n] = exc

        leader = threading.Thread(target=submit, args=(0, first))
        leader.start()
        while not queue._leading:
            time.sleep(0.001)
        others = [threading.Thread(target=submit, args=(n, _job(mem, n))) for n in range(1, 6)]
        for t in others:
            t.start()
        while len(queue._queue) < 5:
            time.sleep(0.001)
        gate.set()
        for t in [leader, *others]:
            t.join(10)
        assert results[0] == "first"
        assert [results[n] for n in (1, 2, 4, 5)] == [1, 2, 4, 5]
        assert isinstance(results[3], ValueError)
        assert queue.batches == 2 and queue.jobs == 6
        created = mem.store.conn.execute(
            "SELECT value FROM store_info WHERE key = 'created'"
        ).fetchone()[0]
        assert created != "x"  # the failed job's change was rolled back alone


def test_concurrent_adds_of_the_same_text_store_it_once(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m.db", embed=HASH) as mem:
        texts = [f"shared note number {i} about the harbour cranes" for i in range(40)]
        errors: list[BaseException] = []

        def add(offset: int) -> None:
            try:
                for i in range(0, 40, 5):
                    mem.add_many(texts[(i + offset) % 40 : (i + offset) % 40 + 5], namespace="n")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=add, args=(k * 5,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert mem.stats().memories == 40
        assert len(mem.dense_index) == 40
        assert {h.text for h in mem.recall("harbour cranes", k=50)} == set(texts)


def test_a_batch_where_every_job_fails_commits_nothing(tmp_path: Path) -> None:
    with Memory.open(tmp_path / "m.db", embed=HASH) as mem:
        version = mem.store.data_version

        def fail(known: dict[int, Any]) -> None:
            mem.store.conn.execute("UPDATE store_info SET value = 'y' WHERE key = 'created'")
            raise ValueError("no")

        with pytest.raises(ValueError):
            mem._writer.queue.run(fail)
        assert mem.store.data_version == version
        assert mem._writer.queue.batches == 0
