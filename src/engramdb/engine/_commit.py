"""Group commit: the writes of many threads share one short transaction.

Every write of a Memory (the commit step of ``add_many``, ``forget``) is a *job*: a function
run inside the write transaction. :meth:`CommitQueue.run` queues the job; the first caller to
find no commit in progress becomes the leader and runs every queued job in one
``BEGIN IMMEDIATE`` transaction, each inside its own savepoint (a job that fails is rolled
back alone and its caller gets its error), stages the dense index's next view once, and
commits; the other callers wait for that commit and return their job's result. This is the
single-writer queue of datasette's write thread, without a thread of its own: under load the
waiting writers' jobs go in the next batch, so many small writes cost one commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from engramdb.engine._dense import DenseIndex
from engramdb.store.sqlite import SQLiteStore

__all__ = ["CommitQueue"]

T = TypeVar("T")
_MAX_BATCH = 64  # jobs in one transaction at most


class _Timings(Protocol):
    def add(self, step: str, seconds: float) -> None: ...


class _NothingDone(Exception):
    """Every job of a batch failed: roll the transaction back."""


@dataclass(eq=False)
class _Job(Generic[T]):
    fn: Callable[[], T]
    known: dict[int, Any] = field(default_factory=dict)  # vectors the job added, by id
    result: T | None = None
    error: BaseException | None = None
    done: bool = False


class CommitQueue:
    """Runs write jobs in shared transactions (see the module docstring)."""

    def __init__(self, store: SQLiteStore, dense: DenseIndex, *, timings: _Timings | None = None):
        self._store = store
        self._dense = dense
        self._timings = timings  # "begin", "dense_stage" and "commit" seconds go there
        self._cond = threading.Condition()
        self._queue: list[_Job[Any]] = []
        self._leading = False
        self.batches = 0  # transactions committed (for tests and benchmarks)
        self.jobs = 0

    def run(self, fn: Callable[[dict[int, Any]], T]) -> T:
        """Run ``fn(known)`` inside a write transaction shared with other writers; ``fn``
        records the vectors of the memories it adds in ``known`` (``{id: vector}``).

        Raises:
            Exception: whatever ``fn`` raised (its changes rolled back), or the commit's
                :class:`~engramdb.errors.StoreError` (nothing written).
        """
        job: _Job[T] = _Job(lambda: None)  # type: ignore[arg-type, return-value]
        job.fn = lambda: fn(job.known)
        with self._cond:
            self._queue.append(job)
            while not job.done and self._leading:
                self._cond.wait()
            if not job.done:
                self._leading = True
                batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
        if not job.done:
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Job[Any]]) -> None:
        store = self._store
        clock = [time.perf_counter()]
        try:
            with store.atomic(around_commit=self._dense.publishing):
                self._time("begin", clock)
                known: dict[int, Any] = {}
                for job in batch:
                    try:
                        with store.atomic():  # a savepoint: a failing job rolls back alone
                            job.result = job.fn()
                        known.update(job.known)
                    except Exception as exc:
                        job.error = exc
                if all(job.error is not None for job in batch):
                    raise _NothingDone
                clock[0] = time.perf_counter()
                self._dense.stage(known)
                self._time("dense_stage", clock)
            self._time("commit", clock)
            self.batches += 1
            self.jobs += len(batch)
        except _NothingDone:
            pass  # every job failed: the transaction was rolled back, nothing committed
        except BaseException as exc:
            for job in batch:
                if job.error is None:
                    job.error = exc
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._cond:
                for job in batch:
                    job.done = True

    def _time(self, step: str, clock: list[float]) -> None:
        """Add the seconds since ``clock[0]`` to ``step`` and restart the clock."""
        now = time.perf_counter()
        if self._timings is not None:
            self._timings.add(step, now - clock[0])
        clock[0] = now
