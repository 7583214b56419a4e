"""Durable bulk-ingest jobs: files spooled to disk and recorded before they are acknowledged.

A job is acknowledged only once its files are on disk (fsynced) and its row is committed, so
a crash after the acknowledgement loses nothing. One runner thread per service works through
the queue; after each committed batch of records it writes the job's progress. A runner that
dies (a killed server) leaves its job ``running`` with a stale owner: the next runner on this
host takes it over at once (the old process is gone), one on another host after
:data:`STALE_AFTER_S`. Re-adding what a killed runner already committed is a no-op (the same
text at the same place is recognised as already recorded), so a resumed job adds no duplicate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from engramdb.engine import Memory
from engramdb.errors import EngramError, IngestError, NotFoundError, TooLargeError
from engramdb.ingest import MAX_FILE_BYTES, load_path
from engramdb.types import Record

if TYPE_CHECKING:
    from engramdb.service._cluster import ClusterMemory

__all__ = ["BATCH", "NICE", "STALE_AFTER_S", "Job", "JobFile", "JobQueue", "JobState", "Upload"]

logger = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]
BATCH = 256
"""Records committed per transaction (progress is recorded after each)."""
STALE_AFTER_S = 60.0
"""A running job whose owner has not reported for this long is taken over."""
NICE = 5
"""How much lower the runner thread's CPU priority is than the requests' (Linux): a bulk
ingest then leaves the cores to recalls when both want them (bench/serve.py: recall p99
during a job 2.7x idle at 0, 1.7x at 5, 1.2x at 10, while ingest under a client recalling
without pause fell from 25 to 14 and 5 docs/s) and runs at full speed otherwise."""
_COPY_CHUNK = 1 << 20

Upload = tuple[str, BinaryIO]
"""A file as received: the name the client gave and a binary stream of its content."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFile:
    """One uploaded file of a job and how far it got.

    Attributes:
        name: the file name the client sent (the memories' source).
        bytes: its size.
        records: records loaded from it (``None``: not loaded yet).
        done: records committed so far.
        added, merged, skipped: what recognition decided for the chunks committed.
        error: why it could not be ingested (its records were then not written).
    """

    name: str
    bytes: int
    records: int | None
    done: int
    added: int
    merged: int
    skipped: int
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A bulk ingest and its progress.

    Attributes:
        id: the job id.
        namespace: where its memories go.
        state: ``queued``, ``running``, ``done`` (every file handled; see each file's
            ``error``) or ``failed`` (the job itself could not go on: see ``error``).
        created, started, finished: UTC epoch seconds (``None`` until they happen).
        attempts: how many times a runner started it (more than one: it was resumed).
        error: why the job failed.
        files: its files, in upload order.
    """

    id: str
    namespace: str
    state: JobState
    created: float
    started: float | None
    finished: float | None
    attempts: int
    error: str | None
    files: tuple[JobFile, ...]

    @property
    def records(self) -> int:
        """Records loaded so far (files not yet loaded count as none)."""
        return sum(f.records or 0 for f in self.files)

    @property
    def done(self) -> int:
        """Records committed so far."""
        return sum(f.done for f in self.files)

    @property
    def failures(self) -> list[JobFile]:
        """The files that could not be ingested."""
        return [f for f in self.files if f.error is not None]


_JOB_COLUMNS = "id, namespace, state, created, started, finished, attempts, error"
_FILE_COLUMNS = "name, bytes, records, done, added, merged, skipped, error"


def _safe_suffix(name: str) -> str:
    """The file's extension, kept so the loaders know its type (nothing else of the name
    reaches the file system)."""
    suffix = Path(name.replace("\\", "/")).suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 12 else ".txt"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system syncs folders
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobQueue:
    """The jobs of one store, and (once :meth:`start` ed) the thread that runs them.

    Args:
        memory: the open store (or a cluster: jobs are kept in its service store, their
            records written to the cluster).
        spool: the folder uploaded files are kept in until their job is finished.
        batch: records per transaction.
        nice: how much to lower the runner thread's CPU priority (Linux; 0 leaves it).
    """

    def __init__(
        self,
        memory: Memory | ClusterMemory,
        spool: Path,
        *,
        batch: int = BATCH,
        nice: int = NICE,
    ):
        self._memory = memory
        self._spool = spool
        self._batch = batch
        self._nice = nice
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._wake = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # -- submitting and reading -------------------------------------------------------------

    def submit(
        self,
        uploads: Sequence[Upload],
        *,
        namespace: str,
        key: str | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> Job:
        """Spool ``uploads`` to disk, record the job and queue it; returns it ``queued``.

        Raises:
            InvalidInputError: no files.
            TooLargeError: a file is over ``max_file_bytes``.
            StoreError: the store is read-only or the spool cannot be written.
        """
        if not uploads:
            raise IngestError("an ingest job needs at least one file")
        job_id = uuid.uuid4().hex
        folder = self._spool / job_id
        try:
            folder.mkdir(parents=True)
            files = [
                self._save(folder, position, name, stream, max_file_bytes)
                for position, (name, stream) in enumerate(uploads)
            ]
            _fsync_dir(folder)
            _fsync_dir(self._spool)
            now = time.time()
            with self._memory.store.atomic(bump=False) as conn:
                conn.execute(
                    "INSERT INTO jobs (id, namespace, key_name, state, created, spool)"
                    " VALUES (?, ?, ?, 'queued', ?, ?)",
                    (job_id, namespace, key, now, str(folder)),
                )
                conn.executemany(
                    "INSERT INTO job_files (job_id, position, name, stored, bytes)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (job_id, i, name, stored, size)
                        for i, (name, stored, size) in enumerate(files)
                    ],
                )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        with self._wake:
            self._wake.notify_all()
        return self.get(job_id)

    @staticmethod
    def _save(
        folder: Path, position: int, name: str, stream: BinaryIO, limit: int
    ) -> tuple[str, str, int]:
        stored = f"{position:05d}{_safe_suffix(name)}"
        size = 0
        with open(folder / stored, "xb") as out:
            while chunk := stream.read(_COPY_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(f"{name}: over the {limit:,}-byte limit for one file")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return name or stored, stored, size

    def get(self, job_id: str, *, namespaces: tuple[str, ...] | None = None) -> Job:
        """A job by id; with ``namespaces``, only if it writes to one of them.

        Raises:
            NotFoundError: no such job (or not one of these namespaces).
        """
        store = self._memory.store
        with store.reading():
            conn = store.conn
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None or (namespaces is not None and row[1] not in namespaces):
                raise NotFoundError(f"job {job_id!r} not found")
            files = conn.execute(
                f"SELECT {_FILE_COLUMNS} FROM job_files WHERE job_id = ? ORDER BY position",
                (job_id,),
            ).fetchall()
        return Job(
            id=row[0],
            namespace=row[1],
            state=row[2],
            created=row[3],
            started=row[4],
            finished=row[5],
            attempts=row[6],
            error=row[7],
            files=tuple(
                JobFile(
                    name=f[0],
                    bytes=f[1],
                    records=f[2],
                    done=f[3],
                    added=f[4],
                    merged=f[5],
                    skipped=f[6],
                    error=f[7],
                )
                for f in files
            ),
        )

    def list(self, *, namespaces: tuple[str, ...] | None = None, limit: int = 50) -> list[Job]:
        """The latest jobs, newest first (only those writing to ``namespaces``, when given)."""
        sql, params = "SELECT id FROM jobs", []
        if namespaces is not None:
            sql += f" WHERE namespace IN ({','.join('?' * len(namespaces))})"
            params = list(namespaces)
        store = self._memory.store
        with store.reading():
            rows = store.conn.execute(f"{sql} ORDER BY created DESC, id LIMIT ?", [*params, limit])
            return [self.get(str(r[0])) for r in rows.fetchall()]

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the runner thread (it first takes over jobs left by a dead runner)."""
        if self._thread is not None:
            return
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="engramdb-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the runner to stop after its current batch, and wait for it."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        _lower_priority(self._nice)
        while not self._stop:
            try:
                ran = self.run_next()
            except Exception:  # the runner outlives any one failure; the log has it
                logger.exception("the job runner failed")
                ran = False
            if not ran:
                with self._wake:
                    if not self._stop:
                        self._wake.wait(timeout=5.0)

    def run_next(self) -> bool:
        """Claim and run one job (queued, or abandoned by a dead runner). Returns whether
        there was one."""
        job_id = self._claim()
        if job_id is None:
            return False
        self._run(job_id)
        return True

    def _abandoned(self, owner: str | None, heartbeat: float | None, now: float) -> bool:
        if owner is None:
            return True
        host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if host == socket.gethostname() and pid.isdigit() and owner != self._owner:
            return not _pid_alive(int(pid)) or int(pid) == os.getpid()
        return heartbeat is None or now - heartbeat > STALE_AFTER_S

    def _claim(self) -> str | None:
        now = time.time()
        with self._memory.store.atomic(bump=False) as conn:
            rows = conn.execute(
                "SELECT id, state, owner, heartbeat FROM jobs"
                " WHERE state IN ('queued', 'running') ORDER BY created, id"
            ).fetchall()
            for job_id, state, owner, heartbeat in rows:
                if state == "running" and not self._abandoned(owner, heartbeat, now):
                    continue
                conn.execute(
                    "UPDATE jobs SET state = 'running', owner = ?, heartbeat = ?,"
                    " attempts = attempts + 1, started = COALESCE(started, ?) WHERE id = ?",
                    (self._owner, now, now, job_id),
                )
                return str(job_id)
        return None

    def _run(self, job_id: str) -> None:
        store = self._memory.store
        with store.reading():
            namespace, spool = store.conn.execute(
                "SELECT namespace, spool FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            files = store.conn.execute(
                "SELECT position, name, stored, done FROM job_files"
                " WHERE job_id = ? AND error IS NULL AND (records IS NULL OR done < records)"
                " ORDER BY position",
                (job_id,),
            ).fetchall()
        try:
            for position, name, stored, done in files:
                if self._stop:
                    return  # stays running under this owner; the next start takes it over
                self._run_file(job_id, namespace, position, name, Path(spool) / stored, done)
        except EngramError as exc:
            logger.warning("job %s failed: %s", job_id, exc)
            self._finish(job_id, "failed", str(exc))
            return
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            self._finish(job_id, "failed", f"internal error ({type(exc).__name__})")
            return
        self._finish(job_id, "done", None)
        shutil.rmtree(spool, ignore_errors=True)

    def _run_file(
        self, job_id: str, namespace: str, position: int, name: str, path: Path, done: int
    ) -> None:
        try:
            records = [_renamed(r, str(path), name) for r in load_path(path)]
        except (IngestError, OSError) as exc:
            message = str(exc).replace(str(path), name)
            self._progress(job_id, position, error=message)
            return
        self._progress(job_id, position, records=len(records))
        for start in range(done, len(records), self._batch):
            if self._stop:
                return
            batch = records[start : start + self._batch]
            try:
                result = self._memory.add_many(batch, namespace=namespace)
            except IngestError as exc:  # a bad record: the file's remaining records are kept out
                self._progress(job_id, position, error=str(exc).replace(str(path), name))
                return
            self._progress(
                job_id,
                position,
                done=len(batch),
                added=result.added,
                merged=result.exact + result.near,
                skipped=result.skipped,
            )

    def _progress(
        self,
        job_id: str,
        position: int,
        *,
        records: int | None = None,
        error: str | None = None,
        **counts: int,
    ) -> None:
        with self._memory.store.atomic(bump=False) as conn:
            conn.execute(
                "UPDATE job_files SET records = COALESCE(?, records), error = COALESCE(?, error),"
                " done = done + ?, added = added + ?, merged = merged + ?, skipped = skipped + ?"
                " WHERE job_id = ? AND position = ?",
                (
                    records,
                    error,
                    counts.get("done", 0),
                    counts.get("added", 0),
                    counts.get("merged", 0),
                    counts.get("skipped", 0),
                    job_id,
                    position,
                ),
            )
            conn.execute("UPDATE jobs SET heartbeat = ? WHERE id = ?", (time.time(), job_id))

    def _finish(self, job_id: str, state: JobState, error: str | None) -> None:
        with self._memory.store.atomic(bump=False) as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, error = ?, finished = ?, owner = NULL WHERE id = ?",
                (state, error, time.time(), job_id),
            )


def _lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority by ``nice`` (Linux schedules threads one by one;
    elsewhere, or when refused, the thread keeps its priority)."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))


def _renamed(record: Record, spooled: str, name: str) -> Record:
    """A record loaded from a spooled copy, with the client's file name as its source."""
    source = name if record.source in (spooled, None) else record.source
    document = name if record.document in (spooled, None) else record.document
    return dataclasses.replace(record, source=source, document=document)
