"""Shared parts of the concurrency tests: configs, corpora, store checks, and the functions
that child processes run.

This module imports no pytest, so ``multiprocessing`` "spawn" children (which receive the
parent's ``sys.path``) import it quickly by name; every function a child runs lives here.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import queue
import random
import signal
import sqlite3
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

HASH = {"model": "hash", "dim": 32}
# A tiny SPANN (as in tests/unit/engine/test_dense_choice.py, with the default prune_eps so
# that the same settings can be written in a TOML file for the CLI).
SPANN = {
    "posting_size": 8,
    "posting_limit": 24,
    "merge_threshold": 2,
    "max_probes": 24,
    "head_index": "exact",
    "calibration_queries": 0,
}
SPANN_THRESHOLD = 50
ANN: dict[str, dict[str, Any]] = {
    "flat": {"kind": "flat"},
    "spann": {"spann_threshold": SPANN_THRESHOLD, "spann": SPANN},
}
CONFIG_TOML = (
    '[embed]\nmodel = "hash"\ndim = 32\n\n'
    f"[ann]\nspann_threshold = {SPANN_THRESHOLD}\n\n[ann.spann]\n"
    + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in SPANN.items())
)
HANG_S = 45.0  # a child still running after this dumps its stacks to stderr and exits

_SYLLABLES = [a + b for a in "bdfgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]


def marker(tag: str, i: int) -> str:
    """A word found in exactly one note: ``notes(n, tag)[i]``."""
    return f"mk{tag}x{i}"


def notes(n: int, tag: str) -> list[str]:
    """``n`` distinct notes of made-up words (never near-duplicates of each other), the
    ``i``-th starting with ``marker(tag, i)``; the same ``tag`` gives the same notes."""
    rng = random.Random(f"notes-{tag}")
    words = ["".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(300)]
    return [f"{marker(tag, i)} {' '.join(rng.choices(words, k=9))}." for i in range(n)]


def open_memory(path: str | Path, kind: str, **overrides: Any) -> Any:
    """A Memory on ``path`` with the hash embedder and the ``kind`` ("flat"/"spann") index."""
    from engramdb import Memory

    return Memory.open(path, embed=HASH, ann=ANN[kind], **overrides)


def set_fold_min(fold_min: int | None) -> None:
    """Fold the dense index's change log after this many changes (the engine waits for
    2048, which these small tests never reach); ``None`` keeps the engine's value."""
    if fold_min is not None:
        import engramdb.engine._dense as dense

        dense._FOLD_MIN = fold_min


# -- checks ---------------------------------------------------------------------------------


def file_problems(path: str | Path) -> list[str]:
    """What is wrong with the store file itself (open it while nobody writes): SQLite and
    FTS5 integrity, and FTS rows against memories."""
    problems: list[str] = []
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        if rows != ["ok"]:
            problems.append(f"integrity_check: {rows[:5]}")
        try:
            conn.execute("INSERT INTO memories_fts(memories_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            problems.append(f"FTS5 integrity-check: {exc}")
        memories = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        fts = conn.execute("SELECT count(*) FROM memories_fts_docsize").fetchone()[0]
        if memories != fts:
            problems.append(f"{memories} memories but {fts} FTS rows")
    finally:
        conn.close()
    return problems


def index_problems(mem: Any) -> list[str]:
    """What is wrong with ``mem``'s dense index against its store, read in one snapshot."""
    problems: list[str] = []
    store = mem.store
    with store.reading():
        ids = {int(r[0]) for r in store.conn.execute("SELECT id FROM memories")}
        fts = int(store.conn.execute("SELECT count(*) FROM memories_fts_docsize").fetchone()[0])
        dense_ids, _ = mem.dense_index.vectors()
        info = mem.dense_index.stats()
    dense = [int(i) for i in dense_ids.tolist()]
    if len(dense) != len(set(dense)):
        problems.append(f"the dense index holds {len(dense) - len(set(dense))} ids twice")
    if set(dense) != ids:
        problems.append(
            f"dense ids differ from memory ids: {len(set(dense) - ids)} extra "
            f"{sorted(set(dense) - ids)[:8]}, {len(ids - set(dense))} missing "
            f"{sorted(ids - set(dense))[:8]}"
        )
    if fts != len(ids):
        problems.append(f"{len(ids)} memories but {fts} FTS rows")
    if len(mem.dense_index) != len(ids):
        problems.append(f"len(dense_index) = {len(mem.dense_index)}, memories = {len(ids)}")
    if info.stale or info.count != info.memories:
        problems.append(f"dense_index.stats() is stale: {info}")
    return problems


def texts_of(mem: Any) -> set[str]:
    """Every memory's text."""
    with mem.store.reading():
        return {str(r[0]) for r in mem.store.conn.execute("SELECT text FROM memories")}


def present_problems(mem: Any, memory_id: int, text: str, mark: str) -> list[str]:
    """``text`` (stored as ``memory_id``, with the unique word ``mark``) must be found now by
    get, by the lexical channel (its marker), by the dense channel and by hybrid (its text)."""
    problems = []
    for channel, query in (("lexical", mark), ("dense", text), ("hybrid", text)):
        hits = mem.recall(query, channels=channel, k=5)
        if memory_id not in [h.id for h in hits]:
            got = [(h.id, h.text[:16]) for h in hits]
            problems.append(f"{channel} recall of {mark} misses id {memory_id}: {got}")
        elif channel == "hybrid":  # both channels answer from one snapshot
            why = next(sorted(h.why) for h in hits if h.id == memory_id)
            if why != ["dense", "lexical"]:
                problems.append(f"hybrid recall of {mark} found id {memory_id} by {why} only")
    record = mem.get(memory_id)
    if record.text != text:
        problems.append(f"get({memory_id}) is {record.text[:30]!r}, not {text[:30]!r}")
    return problems


def absent_problems(mem: Any, memory_id: int, text: str, mark: str) -> list[str]:
    """``text`` (once ``memory_id``, with the unique word ``mark``) was forgotten: no channel
    may return it; the dense index may hold no vector equal to its text's."""
    from engramdb import NotFoundError

    problems = []
    for channel, query in (("lexical", mark), ("dense", text), ("hybrid", text)):
        hits = mem.recall(query, channels=channel, k=5)
        if any(h.text == text or mark in h.text.split() for h in hits):
            problems.append(f"{channel} recall still returns forgotten {mark} (id {memory_id})")
    vectors = mem.embedder.embed_queries([text])
    ids, scores = mem.dense_index.search(vectors, 5)
    stale = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if s > 0.999]
    if stale:
        problems.append(f"the dense index still holds forgotten {mark} (id {memory_id}): {stale}")
    try:
        record = mem.get(memory_id)
    except NotFoundError:
        pass
    else:  # ids are never given twice: a forgotten id stays unknown
        problems.append(f"get({memory_id}) still returns a memory ({record.text[:40]!r})")
    return problems


# -- processes ------------------------------------------------------------------------------


def spawn() -> Any:
    """The ``spawn`` multiprocessing context (no fork of a process that runs threads)."""
    return multiprocessing.get_context("spawn")


@contextmanager
def reaped(procs: Sequence[BaseProcess], grace: float = 10.0) -> Iterator[None]:
    """Start ``procs``; on the way out, wait for them (``grace`` seconds in all, half a
    second after a failure), then have any still running print its stacks and kill it."""
    for proc in procs:
        proc.start()
    failed = True
    try:
        yield
        failed = False
    finally:
        deadline = time.monotonic() + (0.5 if failed else grace)
        for proc in procs:
            proc.join(timeout=max(deadline - time.monotonic(), 0.01))
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGUSR1)  # faulthandler: stacks to stderr
                time.sleep(0.3)
                proc.kill()
                proc.join(timeout=5)


def receive(box: Any, deadline: float, what: str) -> Any:
    """The next message of ``box``, or AssertionError once ``deadline`` (monotonic) passes."""
    try:
        return box.get(timeout=max(deadline - time.monotonic(), 0.01))
    except queue.Empty:
        raise AssertionError(f"timed out waiting for {what}") from None


def _child_setup(fold_min: int | None) -> None:
    """Dump stacks when hung (or on SIGUSR1), import the engine now (so that a barrier
    after this lines up the work, not the imports), set the fold size."""
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    import engramdb  # noqa: F401

    set_fold_min(fold_min)


def reader_main(
    path: str, kind: str, inbox: Any, outbox: Any, acked: Any, fold_min: int | None
) -> None:
    """A long-lived reader: for each ``("added"|"forgot", writer, note, id, text, mark)``,
    check the next recalls see it (or no longer see it); acknowledge per writer in
    ``acked``; send ``("problems", [...])`` at ``("stop",)``."""
    _child_setup(fold_min)
    problems: list[str] = []
    mem = open_memory(path, kind)
    outbox.put(("ready",))
    try:
        while True:
            msg = inbox.get(timeout=HANG_S)
            if msg[0] == "stop":
                break
            verb, writer, note, memory_id, text, mark = msg
            try:
                if verb == "added":
                    found = present_problems(mem, memory_id, text, mark)
                else:
                    found = absent_problems(mem, memory_id, text, mark)
            except Exception:
                found = [f"{verb} {mark}: {traceback.format_exc()}"]
            problems += [f"after writer {writer} {verb} note {note}: {p}" for p in found]
            if verb == "added":
                acked[writer] = note
    except Exception:
        problems.append(f"reader failed: {traceback.format_exc()}")
    finally:
        mem.close()
    outbox.put(("problems", problems))


def writer_main(
    path: str,
    kind: str,
    writer: int,
    count: int,
    inbox: Any,
    outbox: Any,
    acked: Any,
    fold_min: int | None,
) -> None:
    """Add ``count`` notes (some two at a time), telling the reader after each add returned;
    now and then forget an older note the reader has seen (by id or by its own source),
    telling the reader after the forget returned. Sends ``("done", writer, error)``."""
    _child_setup(fold_min)
    tag = f"w{writer}"
    texts = notes(count, tag)
    error = None
    mem = open_memory(path, kind)
    stored: dict[int, int] = {}
    try:
        note = 0
        while note < count:
            pair = note % 4 == 3 and note + 1 < count
            batch = [note, note + 1] if pair else [note]
            records = [{"text": texts[i], "source": f"{tag}-{i}"} for i in batch]
            result = mem.add_many(records)
            for i, memory_id in zip(batch, result.ids, strict=True):
                inbox.put(("added", writer, i, memory_id, texts[i], marker(tag, i)))
            stored.update(zip(batch, result.ids, strict=True))
            for i in batch:
                old = i - 4
                if i % 3 == 2 and old >= 0:
                    _forget(mem, (writer, old, stored[old]), acked, inbox, texts[old], tag)
            note += len(batch)
    except Exception:
        error = traceback.format_exc()
    finally:
        mem.close()
    outbox.put(("done", writer, error))


def _forget(
    mem: Any, what: tuple[int, int, int], acked: Any, inbox: Any, text: str, tag: str
) -> None:
    """Forget note ``(writer, note, id)`` once the reader saw it (by id or by source,
    alternately), then tell the reader."""
    writer, note, memory_id = what
    deadline = time.monotonic() + HANG_S / 2
    while acked[writer] < note:
        if time.monotonic() > deadline:
            raise AssertionError(f"the reader never acknowledged note {note} of writer {writer}")
        time.sleep(0.005)
    gone = mem.forget([memory_id]) if note % 2 else mem.forget(source=f"{tag}-{note}")
    if gone != 1:
        raise AssertionError(f"forgetting note {note} of writer {writer} removed {gone}")
    inbox.put(("forgot", writer, note, memory_id, text, marker(tag, note)))


def agent_main(path: str, kind: str, inbox: Any, outbox: Any) -> None:
    """A long-lived process run by commands: ``("forget_ids", ids)``,
    ``("forget_source", source)``, ``("add", texts, source)``, ``("present"|"absent", id,
    text, mark)``, ``("stop",)``; answers each with ``("ok", result)`` or ``("error", tb)``."""
    _child_setup(None)
    mem = open_memory(path, kind)
    outbox.put(("ok", "ready"))
    try:
        while True:
            cmd = inbox.get(timeout=HANG_S)
            if cmd[0] == "stop":
                break
            try:
                if cmd[0] == "forget_ids":
                    result: Any = mem.forget(cmd[1])
                elif cmd[0] == "forget_source":
                    result = mem.forget(source=cmd[1])
                elif cmd[0] == "add":
                    result = list(mem.add_many([{"text": t, "source": cmd[2]} for t in cmd[1]]).ids)
                elif cmd[0] == "present":
                    result = present_problems(mem, *cmd[1:])
                else:
                    result = absent_problems(mem, *cmd[1:])
                outbox.put(("ok", result))
            except Exception:
                outbox.put(("error", traceback.format_exc()))
    finally:
        mem.close()


def churn_main(
    path: str,
    kind: str,
    worker: int,
    rounds: int,
    barrier: Any,
    outbox: Any,
    fold_min: int | None,
) -> None:
    """Open, add a batch, sometimes forget or rebuild, close — ``rounds`` times, started
    together with the other workers. Sends ``("done", worker, kept texts, error)``."""
    _child_setup(fold_min)
    kept: list[str] = []
    error = None
    try:
        barrier.wait(timeout=HANG_S)
        for r in range(rounds):
            texts = notes(12, f"c{worker}r{r}")
            mem = open_memory(path, kind)
            try:
                ids = mem.add_many(texts, namespace="default").ids
                kept += texts
                if r % 3 == 1:
                    mem.forget([ids[0], ids[5]])
                    kept = [t for t in kept if t not in (texts[0], texts[5])]
                if r == 2:
                    mem.dense_index.rebuild()
                _ = mem.recall(texts[3], k=3)
            finally:
                mem.close()
    except Exception:
        error = traceback.format_exc()
    outbox.put(("done", worker, kept, error))


def create_main(paths: list[str], worker: int, barrier: Any, outbox: Any) -> None:
    """For each path: open a store that does not exist yet, at the same moment as the other
    workers, and add one note. Sends ``("done", worker, errors)``."""
    _child_setup(None)
    errors = []
    for path in paths:
        try:
            barrier.wait(timeout=HANG_S)
            with open_memory(path, "flat") as mem:
                mem.add(notes(1, f"new{worker}")[0])
        except Exception:
            errors.append(traceback.format_exc())
    outbox.put(("done", worker, errors))


def bulk_main(path: str, count: int, outbox: Any) -> None:
    """Add ``count`` notes in one batch (near-duplicate recognition off, for speed): more
    than the 2048 changes after which the engine folds them into the SPANN folder."""
    _child_setup(None)
    error = None
    try:
        with open_memory(path, "spann", recognize={"enabled": False}) as mem:
            mem.add_many(notes(count, "bulk"))
            error = None if mem.dense_index.kind == "spann" else "not using SPANN"
    except Exception:
        error = traceback.format_exc()
    outbox.put(("done", "bulk", error))


def late_main(path: str, go: Any, outbox: Any) -> None:
    """Open the SPANN store, wait for ``go``, then add one note (its write folds the
    changes another process made meanwhile). Sends ``("opened",)``, then ``("done", ...)``."""
    _child_setup(None)
    error = None
    try:
        with open_memory(path, "spann", recognize={"enabled": False}) as mem:
            outbox.put(("opened",))
            if not go.wait(timeout=HANG_S):
                raise AssertionError("never told to go")
            mem.add(notes(1, "late")[0])
            error = "; ".join(index_problems(mem)) or None
    except Exception:
        error = traceback.format_exc()
    outbox.put(("done", "late", error))


# -- crash tests ----------------------------------------------------------------------------

BATCHES = 8
BATCH_SIZE = 25


def crash_batch(b: int) -> list[dict[str, str]]:
    """Batch ``b`` of the crash tests' corpus (``BATCHES`` batches, one source each)."""
    texts = notes(BATCHES * BATCH_SIZE, "crash")[b * BATCH_SIZE : (b + 1) * BATCH_SIZE]
    return [{"text": text, "source": f"batch{b}"} for text in texts]


def ingest(mem: Any, batches: Sequence[int], log: Any = None) -> None:
    """Add the crash corpus' ``batches`` in order; after each one returned, log a line."""
    for b in batches:
        mem.add_many(crash_batch(b))
        if log is not None:
            logged(log, f"batch {b}")


def logged(log: Any, line: str) -> None:
    """Write a line and make it durable before going on."""
    log.write(line + "\n")
    log.flush()
    os.fsync(log.fileno())


# -- scenarios run in a child process (a failure there may hang or crash the interpreter) ---


def nested_read_main(path: str) -> None:
    """A thread holds ``store.reading()`` while another thread adds 12 notes (more than the
    views kept for older snapshots), then recalls inside it. Prints ``ok <top id> <first
    id>`` or ``hung``; exits without closing (a spinning thread would crash ``close``)."""
    import threading

    mem = open_memory(path, "flat")
    texts = notes(10, "outer")
    first = mem.add_many(texts).ids[0]
    inside, written = threading.Event(), threading.Event()
    found: list[Any] = []

    def read() -> None:
        try:
            with mem.store.reading():
                inside.set()
                written.wait(timeout=30)
                found.append(mem.recall(texts[0], channels="dense", k=3)[0].id)
        except Exception:
            found.append(traceback.format_exc())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    inside.wait(timeout=30)
    for text in notes(12, "later"):
        mem.add(text)
    written.set()
    thread.join(timeout=10)
    print("hung" if thread.is_alive() else f"ok {found[0]} {first}", flush=True)
    os._exit(0)


def close_race_main(path: str, kind: str, rounds: int) -> None:
    """Open a Memory, recall from 4 threads, close it under them; ``rounds`` times. Prints
    what the threads raised after the close (engramdb errors are expected there)."""
    import threading

    raised: set[str] = set()
    texts = notes(60, "close")
    for r in range(rounds):
        mem = open_memory(f"{path}{r}", kind)
        mem.add_many(texts)
        stop = threading.Event()

        def loop(i: int, mem: Any = mem, stop: threading.Event = stop) -> None:
            n = 0
            while not stop.is_set():
                try:
                    mem.recall(texts[(i + n) % len(texts)], k=5)
                except Exception as exc:
                    raised.add(f"{type(exc).__module__}.{type(exc).__name__}")
                    return
                n += 1

        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        mem.close()
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    print("raised", " ".join(sorted(raised)), flush=True)
