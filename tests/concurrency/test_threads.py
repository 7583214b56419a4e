"""One Memory shared by threads: a writer and readers at once, and two writers of the same
texts. Every read must be explainable by the writes around it (a ledger of logical ticks)."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _concurrency_support import file_problems, index_problems, notes, open_memory

import engramdb.engine._dense as dense_module
from engramdb import Memory, NotFoundError
from engramdb.engine._views import StaleViewError

HERE = Path(__file__).parent
RUN_S = 3.0
READERS = 4
MAX_WRITES = 600
SOURCES = [f"src{i}" for i in range(12)]
CHANNELS = ("lexical", "dense", "hybrid")


@pytest.fixture(params=["flat", "spann"])
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The index kind; with SPANN, fold the change log after 16 changes (the engine waits
    for 2048) so that folds and the flat → SPANN switch happen during the run."""
    if request.param == "spann":
        monkeypatch.setattr(dense_module, "_FOLD_MIN", 16)
    return str(request.param)


@pytest.fixture
def mem(tmp_path: Path, kind: str) -> Iterator[Memory]:
    with open_memory(tmp_path / "store.db", kind) as opened:
        yield opened


@dataclass(eq=False)
class Life:
    """One memory's life: stored by an add between ticks ``added_from`` and ``added_at``,
    removed by a forget between ``forgot_from`` and ``forgot_at`` (``None``: never)."""

    id: int
    text: str
    sources: set[str]
    added_from: int
    added_at: int
    forgot_from: int | None = None
    forgot_at: int | None = None


@dataclass(eq=False)
class Read:
    """One read: what it was, its ticks, its target, and every ``(id, text)`` it returned."""

    op: str
    start: int
    end: int
    target: Life | None
    pairs: list[tuple[int, str]] = field(default_factory=list)
    found: bool | None = None  # whether the target was among the results
    kind: str | None = None  # recognize: exact / near / new
    channels: frozenset[str] = frozenset()  # hybrid recall of its text: channels that found it


class Ledger:
    """The writer's exact model of the store (one writer), and a logical clock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._ticks = itertools.count(1)
        self.lives: list[Life] = []
        self.live: dict[int, Life] = {}
        self.reads: list[Read] = []
        self.errors: list[str] = []

    def tick(self) -> int:
        with self.lock:
            return next(self._ticks)

    def tick_locked(self) -> int:
        """:meth:`tick` for a caller holding ``lock``."""
        return next(self._ticks)

    def pick(self, rng: random.Random) -> Life | None:
        """A memory whose add returned already and whose forget did not start yet."""
        with self.lock:
            return rng.choice(list(self.live.values())) if self.live else None


def guarded(ledger: Ledger, body: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            body()
        except BaseException:
            with ledger.lock:
                ledger.errors.append(traceback.format_exc())

    return run


# -- the writer -----------------------------------------------------------------------------


class Writer:
    """Random adds, batches, re-adds and forgets (by id and by source), in the ledger."""

    def __init__(self, mem: Memory, ledger: Ledger, rng: random.Random):
        self.mem, self.ledger, self.rng = mem, ledger, rng
        self.fresh = iter(notes(MAX_WRITES * 7, "t"))

    def run(self, deadline: float) -> None:
        for _ in range(MAX_WRITES):
            if time.monotonic() > deadline:
                return
            roll = self.rng.random()
            if roll < 0.35:
                self.add([(next(self.fresh), self.rng.choice(SOURCES))])
            elif roll < 0.65:
                batch = [(next(self.fresh), self.rng.choice(SOURCES)) for _ in range(5)]
                again = self.ledger.pick(self.rng)
                if again is not None:
                    batch.insert(self.rng.randrange(6), (again.text, self.rng.choice(SOURCES)))
                self.add(batch[: self.rng.randint(2, 6)])
            elif roll < 0.85:
                self.forget_ids()
            elif roll < 0.92:
                self.forget_source(self.rng.choice(SOURCES))
            else:
                again = self.ledger.pick(self.rng)
                if again is not None:
                    self.add([(again.text, self.rng.choice(SOURCES))])

    def add(self, records: list[tuple[str, str]]) -> None:
        ledger = self.ledger
        start = ledger.tick()
        if len(records) == 1:
            result = self.mem.add(records[0][0], source=records[0][1])
        else:
            result = self.mem.add_many([{"text": t, "source": s} for t, s in records])
        end = ledger.tick()
        assert len(result.ids) == len(records), result
        with ledger.lock:
            by_text = {life.text: life for life in ledger.live.values()}
            for (text, source), memory_id in zip(records, result.ids, strict=True):
                life = by_text.get(text)
                if life is not None:
                    assert memory_id == life.id, f"{text[:12]} re-added as {memory_id}, not {life}"
                    life.sources.add(source)
                    continue
                assert memory_id not in ledger.live, f"id {memory_id} given to two memories"
                life = Life(memory_id, text, {source}, start, end)
                ledger.lives.append(life)
                ledger.live[memory_id] = life
                by_text[text] = life

    def forget_ids(self) -> None:
        ledger = self.ledger
        with ledger.lock:
            live = list(ledger.live.values())
        gone = self.rng.sample(live, min(len(live), self.rng.randint(1, 3)))
        if gone:
            self._forget(gone, lambda: self.mem.forget([life.id for life in gone]))

    def forget_source(self, source: str) -> None:
        with self.ledger.lock:
            gone = [life for life in self.ledger.live.values() if life.sources == {source}]
            kept = [life for life in self.ledger.live.values() if source in life.sources]
        self._forget(gone, lambda: self.mem.forget(source=source))
        with self.ledger.lock:
            for life in kept:
                life.sources.discard(source)

    def _forget(self, gone: list[Life], call: Callable[[], int]) -> None:
        ledger = self.ledger
        with ledger.lock:  # from now on, readers do not pick them
            start = ledger.tick_locked()
            for life in gone:
                del ledger.live[life.id]
                life.forgot_from = start
        removed = call()
        end = ledger.tick()
        for life in gone:
            life.forgot_at = end
        assert removed == len(gone), f"forget removed {removed}, the model says {len(gone)}"


# -- the readers ----------------------------------------------------------------------------


def read_once(mem: Memory, ledger: Ledger, rng: random.Random) -> None:
    target = ledger.pick(rng)
    op = rng.choice(["recall", "recall", "recall", "recall_many", "recognize", "get", "stats"])
    channel = rng.choice(CHANNELS)
    if target is None and op in ("recognize", "get"):
        op = "stats"
    read = Read(f"{op}:{channel}" if op == "recall" else op, ledger.tick(), 0, target)
    if op == "recall":
        if target is None:
            query = notes(1, f"absent{rng.randrange(10**6)}")[0]
        else:  # its unique marker word for the lexical channel, its whole text otherwise
            query = target.text.split()[0] if channel == "lexical" else target.text
        hits = mem.recall(query, channels=channel, k=5)
        read.pairs = [(h.id, h.text) for h in hits]
    elif op == "recall_many":
        other = ledger.pick(rng)
        queries = [target.text.split()[0] if target else "nothing", other.text if other else "x"]
        found = mem.recall_many(queries, k=5)
        read.pairs = [(h.id, h.text) for hits in found for h in hits]
        hits = found[0]
    elif op == "recognize":
        assert target is not None
        seen = mem.recognize(target.text)
        read.kind = seen.kind
        read.pairs = [(seen.match.id, seen.match.text)] if seen.match is not None else []
        hits = ()
    elif op == "get":
        assert target is not None
        try:
            record = mem.get(target.id)
            read.pairs = [(record.id, record.text)]
        except NotFoundError:
            read.kind = "missing"
        hits = ()
    else:
        stats = mem.stats()
        assert stats.memories >= 0 and stats.dense.count >= 0
        hits = ()
    read.end = ledger.tick()
    if target is not None and op.startswith("recall"):
        read.found = target.id in [h.id for h in hits]
        if op == "recall" and channel == "hybrid":
            read.channels = frozenset(c for h in hits if h.id == target.id for c in h.why)
    with ledger.lock:
        ledger.reads.append(read)


def check_reads(ledger: Ledger) -> list[str]:
    """Every returned memory was added before the read ended and not forgotten before it
    began; a target surely live throughout was found; one surely gone was not."""
    lives = {(life.id, life.text): life for life in ledger.lives}
    problems: list[str] = []
    for read in ledger.reads:
        problems += [p for pair in read.pairs if (p := _pair_problem(read, pair, lives))]
        if read.target is not None:
            problems += _target_problems(read, read.target)
    return problems


def _pair_problem(read: Read, pair: tuple[int, str], lives: dict[tuple[int, str], Life]) -> str:
    memory_id, text = pair
    life = lives.get(pair)
    if life is None:
        return f"{read.op} returned {memory_id} {text[:12]!r}: never stored"
    if life.added_from > read.end:
        return f"{read.op} returned {memory_id} before it was added"
    if life.forgot_at is not None and life.forgot_at < read.start:
        return (
            f"{read.op} [{read.start}, {read.end}] returned {memory_id} {text[:12]!r} "
            f"forgotten at {life.forgot_at}"
        )
    return ""


def _target_problems(read: Read, target: Life) -> list[str]:
    alive = target.forgot_from is None or target.forgot_from > read.end
    gone = target.forgot_at is not None and target.forgot_at < read.start
    name = f"{read.op} [{read.start}, {read.end}] of {target.id} {target.text[:12]!r}"
    problems = []
    if alive and read.found is False:
        problems.append(f"{name}: missed, though stored at {target.added_at}")
    if read.found and read.op == "recall:hybrid" and read.channels != {"lexical", "dense"}:
        problems.append(f"{name}: found by {sorted(read.channels)} only (one snapshot?)")
    if alive and read.op == "recognize" and read.pairs != [(target.id, target.text)]:
        problems.append(f"{name}: recognized as {read.kind} {read.pairs}")
    if alive and read.op == "get" and read.kind == "missing":
        problems.append(f"{name}: get raised NotFoundError")
    if gone and read.op == "recognize" and read.kind == "exact":
        problems.append(f"{name}: still recognized after its forget at {target.forgot_at}")
    return problems


def start_threads(bodies: list[Callable[[], None]]) -> list[threading.Thread]:
    threads = [threading.Thread(target=body, daemon=True) for body in bodies]
    for thread in threads:
        thread.start()
    return threads


def join_all(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.01))
    hung = [t.name for t in threads if t.is_alive()]
    assert not hung, f"threads still running after {timeout} s: {hung}"


def test_one_writer_and_four_readers_see_consistent_states(
    mem: Memory, kind: str, tmp_path: Path
) -> None:
    ledger = Ledger()
    writer = Writer(mem, ledger, random.Random(f"writer-{kind}"))
    writer.add([(text, "seed") for text in notes(30, "seed")])
    deadline = time.monotonic() + RUN_S

    def read_loop(seed: int) -> Callable[[], None]:
        rng = random.Random(seed)

        def loop() -> None:
            while time.monotonic() < deadline:
                read_once(mem, ledger, rng)

        return loop

    bodies = [lambda: writer.run(deadline)] + [read_loop(i) for i in range(READERS)]
    join_all(start_threads([guarded(ledger, body) for body in bodies]), RUN_S + 30)

    assert not ledger.errors, "\n".join(ledger.errors)
    assert not check_reads(ledger), "\n".join(check_reads(ledger)[:20])
    assert len(ledger.reads) > 50 and len(ledger.lives) > 60
    stored = {(r[0], r[1]) for r in mem.store.conn.execute("SELECT id, text FROM memories")}
    assert stored == {(life.id, life.text) for life in ledger.live.values()}
    assert not index_problems(mem)
    if kind == "spann":
        assert mem.dense_index.kind == "spann"
    mem.close()
    assert not file_problems(tmp_path / "store.db")
    with open_memory(tmp_path / "store.db", kind) as again:
        assert not index_problems(again)
        assert len(again.dense_index) == len(ledger.live)


def same_texts_writer(
    mem: Memory, name: str, texts: list[str], barrier: threading.Barrier, ids: dict[str, int]
) -> Callable[[], None]:
    """Add ``texts`` in a random order and random batches from source ``name``."""
    rng = random.Random(f"{name}-{texts[0]}")
    order = rng.sample(texts, len(texts))

    def run() -> None:
        barrier.wait()
        while order:
            size = rng.randint(1, 5)
            batch = order[:size]
            del order[:size]
            result = mem.add_many([{"text": t, "source": name} for t in batch])
            ids.update(zip(batch, result.ids, strict=True))

    return run


def test_two_writers_of_the_same_texts_store_each_once(mem: Memory, tmp_path: Path) -> None:
    ledger = Ledger()
    ids: dict[str, dict[str, int]] = {"a": {}, "b": {}}
    corpus: list[str] = []
    for round_ in range(3):
        texts = notes(40, f"same{round_}")
        corpus += texts
        barrier = threading.Barrier(2, timeout=30)
        bodies = [same_texts_writer(mem, name, texts, barrier, ids[name]) for name in ids]
        join_all(start_threads([guarded(ledger, body) for body in bodies]), 30)
        assert not ledger.errors, "\n".join(ledger.errors)
    assert ids["a"] == ids["b"] and set(ids["a"]) == set(corpus)
    assert mem.stats().memories == len(corpus)
    for text, memory_id in ids["a"].items():
        record = mem.get(memory_id)
        assert record.text == text
        assert record.count == 2 and {s.source for s in record.sightings} == {"a", "b"}
    assert not index_problems(mem)
    mem.close()
    assert not file_problems(tmp_path / "store.db")


def run_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (beside the support module): a failing scenario
    may hang or crash the process, which must not take the test session with it."""
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", code],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_recall_inside_a_read_snapshot_answers_while_another_thread_writes(
    tmp_path: Path,
) -> None:
    """``store.reading()`` fixes one snapshot for every query of the thread inside it, nested
    calls included; a recall there must answer from that snapshot (or fail), also after
    another thread's writes moved the dense index's views past it (8 are kept)."""
    path = tmp_path / "store.db"
    done = run_child(f"import _concurrency_support as s; s.nested_read_main({str(path)!r})")
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = done.stdout.split()
    assert verdict[:1] == ["ok"], "the recall inside store.reading() never returned (spins)"
    assert verdict[1] == verdict[2], done.stdout


@pytest.mark.parametrize("kind", ["flat", "spann"])
def test_closing_a_memory_under_reading_threads_fails_them_cleanly(
    tmp_path: Path, kind: str
) -> None:
    """``Memory.close()`` while other threads recall: they get engramdb errors (``later
    calls raise StoreClosedError``); the process must not crash (SIGSEGV)."""
    path = tmp_path / "store.db"
    code = f"import _concurrency_support as s; s.close_race_main({str(path)!r}, {kind!r}, 5)"
    done = run_child(code)
    stacks = done.stderr.split("Extension modules")[0]
    assert done.returncode == 0, f"exit {done.returncode}:\n{stacks[-3000:]}"
    raised = done.stdout.split()[1:]
    assert all(name.startswith("engramdb.errors.") for name in raised), raised


def test_a_dense_view_never_answers_wrong_after_another_thread_folds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view answers for one change-log position (``_views.py``). A SPANN fold by another
    thread changes the shared base in place, so a view made before it must not answer from
    the changed base (neither losing a memory of its snapshot nor finding a later one): it
    raises StaleViewError, and recall reads again from a fresh snapshot."""
    monkeypatch.setattr(dense_module, "_FOLD_MIN", 4)
    with open_memory(tmp_path / "store.db", "spann") as mem:
        texts, later = notes(60, "seed"), notes(10, "later")
        ids = list(mem.add_many(texts).ids)
        queries = mem.embedder.embed_queries([texts[7], later[0]])
        ledger = Ledger()

        def write() -> None:
            mem.forget(ids[:8])  # texts[7] among them
            mem.add_many(later)  # and the fold that follows

        with mem.store.reading() as seq:
            view = mem.dense_index.view(seq)
            assert view is not None and view.base.kind == "spann"
            view.search(queries, 3)
            join_all(start_threads([guarded(ledger, write)]), 30)
            with pytest.raises(StaleViewError):
                view.search(queries, 3)
        assert not ledger.errors, "\n".join(ledger.errors)
        assert mem.dense_index.stats().pending == 0  # the writes were folded
        hits = mem.recall(later[0], k=3, channels="dense")
        assert hits[0].text == later[0]
        assert not {h.id for h in mem.recall(texts[7], k=10, channels="dense")} & set(ids[:8])
