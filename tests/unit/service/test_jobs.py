"""Durable ingest jobs: spooled before acknowledged, progress per batch, resumed without
duplicates after a runner dies at any point."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb.errors import IngestError, NotFoundError, TooLargeError
from engramdb.service import JobQueue, MemoryService, Scope
from engramdb.service import jobs as jobs_module

HASH = {"model": "hash", "dim": 64}
ALICE = Scope("alice", ("alice",), True)
BOB = Scope("bob", ("bob",), True)


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[MemoryService]:
    with MemoryService.open(tmp_path / "s.db", embed=HASH) as svc:
        yield svc


def _lines(n: int, prefix: str = "record") -> bytes:
    rows = [{"text": f"{prefix} {i} says something distinct about topic {i}."} for i in range(n)]
    return "\n".join(json.dumps(r) for r in rows).encode()


def _files(*items: tuple[str, bytes]) -> list[tuple[str, io.BytesIO]]:
    return [(name, io.BytesIO(data)) for name, data in items]


def test_a_job_runs_to_done_and_keeps_client_file_names(service: MemoryService) -> None:
    job = service.submit_ingest(
        ALICE,
        _files(("notes.md", b"# Notes\n\nThe cat sat on the mat."), ("log.jsonl", _lines(3))),
    )
    assert job.state == "queued" and job.namespace == "alice" and job.attempts == 0
    assert [f.name for f in job.files] == ["notes.md", "log.jsonl"]
    spool = Path(service.jobs._spool) / job.id
    assert spool.is_dir()
    assert service.jobs.run_next()
    done = service.job(ALICE, job.id)
    assert done.state == "done" and done.finished is not None and done.attempts == 1
    assert (done.records, done.done) == (4, 4)
    assert sum(f.added for f in done.files) == 4
    assert not spool.exists()  # the spooled copies go once the job is finished
    sources = {service.get(ALICE, i).source for i in service.ids(ALICE)}
    assert sources == {"notes.md", "log.jsonl"}
    assert not service.jobs.run_next()


def test_a_bad_file_is_reported_and_the_rest_goes_in(service: MemoryService) -> None:
    job = service.submit_ingest(
        ALICE,
        _files(
            ("bad.json", b'{"text": '), ("bin.txt", b"\x00\x01\x02" * 100), ("ok.txt", b"Fine.")
        ),
    )
    service.jobs.run_next()
    done = service.job(ALICE, job.id)
    assert done.state == "done"
    errors = {f.name: f.error for f in done.files}
    assert errors["ok.txt"] is None
    assert errors["bad.json"] and "bad.json" in errors["bad.json"]
    assert errors["bin.txt"] and "bin.txt" in errors["bin.txt"]
    assert str(service.jobs._spool) not in (errors["bad.json"] or "")
    assert [f.name for f in done.failures] == ["bad.json", "bin.txt"]
    assert len(service.ids(ALICE)) == 1


def test_refused_uploads_leave_nothing_behind(service: MemoryService) -> None:
    with pytest.raises(TooLargeError, match="big.txt"):
        service.jobs.submit(
            _files(("ok.txt", b"fine"), ("big.txt", b"x" * 2000)),
            namespace="alice",
            max_file_bytes=1000,
        )
    with pytest.raises(IngestError):
        service.submit_ingest(ALICE, [])
    assert service.list_jobs(Scope.local()) == []
    assert not any(Path(service.jobs._spool).iterdir())


def test_jobs_are_scoped(service: MemoryService) -> None:
    job = service.submit_ingest(ALICE, _files(("a.txt", b"Alice's file.")))
    with pytest.raises(NotFoundError):
        service.job(BOB, job.id)
    with pytest.raises(NotFoundError):
        service.job(ALICE, "no-such-job")
    assert [j.id for j in service.list_jobs(ALICE)] == [job.id]
    assert service.list_jobs(BOB) == []


def _crash_on(monkeypatch: pytest.MonkeyPatch, name: str, call: int) -> None:
    """Make ``JobQueue.<name>`` raise :class:`Crash` on its ``call``-th use."""
    real = getattr(JobQueue, name)
    calls = {"n": 0}

    def patched(self: JobQueue, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == call:
            raise Crash
        return real(self, *args, **kwargs)

    monkeypatch.setattr(JobQueue, name, patched)


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("_progress", 3),  # a batch committed, its progress not recorded: it is redone
        ("_progress", 2),  # crash before the first batch's progress
        ("_finish", 1),  # everything in, not yet marked done
    ],
)
def test_a_dead_runner_is_resumed_without_duplicates(
    service: MemoryService, monkeypatch: pytest.MonkeyPatch, name: str, call: int
) -> None:
    runner = JobQueue(service.memory, service.jobs._spool, batch=2)
    job = runner.submit(_files(("log.jsonl", _lines(5))), namespace="alice")
    _crash_on(monkeypatch, name, call)
    with pytest.raises(Crash):
        runner.run_next()
    monkeypatch.undo()
    stopped = service.job(ALICE, job.id)
    assert stopped.state == "running" and stopped.attempts == 1
    committed = len(service.ids(ALICE))
    assert committed >= stopped.done  # what it shows as done is really there
    # a new runner (a restarted server) takes the job over and finishes it
    assert JobQueue(service.memory, service.jobs._spool, batch=2).run_next()
    finished = service.job(ALICE, job.id)
    assert finished.state == "done" and finished.attempts == 2
    assert finished.done == finished.records == 5
    assert len(service.ids(ALICE)) == 5  # no duplicates


def test_a_live_runner_elsewhere_keeps_its_job(service: MemoryService) -> None:
    job = service.submit_ingest(ALICE, _files(("a.txt", b"Some text.")))
    store = service.memory.store
    with store.atomic(bump=False) as conn:
        conn.execute(
            "UPDATE jobs SET state = 'running', owner = 'elsewhere:1:ab', heartbeat = ?"
            " WHERE id = ?",
            (time.time(), job.id),
        )
    assert not service.jobs.run_next()  # another host's runner reported just now
    with store.atomic(bump=False) as conn:
        conn.execute(
            "UPDATE jobs SET heartbeat = ? WHERE id = ?",
            (time.time() - jobs_module.STALE_AFTER_S - 1, job.id),
        )
    assert service.jobs.run_next()  # silent for too long: taken over
    assert service.job(ALICE, job.id).state == "done"


def test_the_runner_thread_picks_up_new_jobs(service: MemoryService) -> None:
    service.jobs.start()
    job = service.submit_ingest(ALICE, _files(("a.txt", b"A text for the thread.")))
    deadline = time.monotonic() + 20
    while service.job(ALICE, job.id).state != "done":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    service.jobs.stop()
    assert len(service.ids(ALICE)) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_the_runner_yields_the_cpu_to_requests(service: MemoryService) -> None:
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    service.jobs.start()
    thread = service.jobs._thread
    assert thread is not None and thread.native_id is not None
    deadline = time.monotonic() + 10
    while os.getpriority(os.PRIO_PROCESS, thread.native_id) == mine:
        assert time.monotonic() < deadline, "the runner kept the requests' priority"
        time.sleep(0.01)
    assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, mine + jobs_module.NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    service.jobs.stop()


def test_a_keys_jobs_are_listed_however_many_others_came_after(service: MemoryService) -> None:
    mine = service.submit_ingest(ALICE, _files(("a.txt", b"Alice's file.")))
    for i in range(25):
        service.submit_ingest(BOB, _files((f"b{i}.txt", b"Bob's file.")))
    assert [j.id for j in service.list_jobs(ALICE, limit=1)] == [mine.id]
    assert len(service.list_jobs(BOB, limit=10)) == 10
    assert service.list_jobs(Scope("x", (), True)) == []
