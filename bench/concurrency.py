"""Many clients on one store: recall under a concurrent ingest, ingest under concurrent recall,
another process's writes seen by a long-lived reader, and its catch-up at scale, in one run.

    python bench/concurrency.py --quick                     # smoke run, small sizes
    python bench/concurrency.py --model hash                # 10k docs, 200k-memory SPANN store
    python bench/concurrency.py --model minilm --base 20000 --out bench/results/conc-minilm.json

Texts are Gutenberg paragraphs (clipped to ~1,000 characters) and sentences from
../shared/data/gutenberg, distinct, shuffled with a fixed seed: stores are built from the
front of that order, the ingested documents and probes come from its end (never in a store).
Queries are windows of 3-8 words of stored texts. Stores are built once and cached under
``bench/cache/concurrency/`` (keyed by model, size, settings and a hash of the texts); every
experiment works on a fresh copy.

1. Recall latency (hybrid, k=10): p50/p99 idle (half of ``--recalls`` before and half after
   each ingest, on the same store) against during an ingest of ``--docs`` documents
   (``add_many`` in batches of ``--batch``) run (a) by another thread on the same Memory and
   (b) by another process. Target: p99 during <= 2x idle p99.
2. Ingest throughput (docs/s) alone against with ``--readers`` threads recalling
   continuously on the same Memory. Target: >= 0.9x.
3. Visibility: a long-lived reader here, a writer process adding one probe at a time; once
   the writer's ``add`` has returned, is the probe in the reader's next recall (of its text),
   and how long does that recall take (it catches up from the change log).
4. Catch-up at scale: a reader holds a store of ``--base`` memories on SPANN; another process
   adds ``--docs``; the reader's first recall (which catches up) against its steady recall,
   a fresh open and a full rebuild (``dense_index.rebuild()``). Target: first recall <= 2 s.

The machine is shared and noisy: compare the ratios, which are measured side by side.
Near-duplicate recognition is on, as in the default engine (``--no-recognize`` turns it off).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import gzip
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engramdb import Memory, Record

HERE = Path(__file__).resolve().parent
CACHE = HERE / "cache" / "concurrency"
RESULTS = HERE / "results"
DATA = HERE.parents[1] / "shared" / "data" / "gutenberg"
TEXTS_VERSION = "v1"  # bump when the text pool or its order changes (cache keys)
CLIP = 1000
K = 10
MODELS = {"hash": {"model": "hash", "dim": 384}, "minilm": {}}
QUICK = {"docs": 1000, "base": 5000, "recalls": 60, "probes": 10, "batch": 100}
_CHILDREN: list[subprocess.Popen[Any]] = []


# --------------------------------------------------------------------------------- texts
def _clip(text: str, limit: int = CLIP) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit]


def _read(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)["text"]


def text_pool(seed: int = 0) -> list[str]:
    """Every distinct Gutenberg paragraph (clipped) and sentence of 3+ words and 20+
    characters, shuffled with ``seed``."""
    pool: dict[str, None] = {}
    for name in ("paragraphs.jsonl.gz", "sentences.jsonl.gz"):
        for raw in _read(DATA / name):
            text = _clip(raw)
            if len(text) >= 20 and len(text.split()) >= 3:
                pool[text] = None
    texts = list(pool)
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order]


@dataclass
class Texts:
    """The stores' texts (a prefix of the pool) and the texts written during the runs (from
    the pool's end, so they never depend on the store sizes)."""

    pool: list[str]
    docs: int
    probes: int

    def store(self, n: int) -> list[str]:
        if n + self.docs + self.probes > len(self.pool):
            raise SystemExit(f"the pool holds {len(self.pool)} texts; asked for too many")
        return self.pool[:n]

    def ingest(self) -> list[str]:
        return self.pool[len(self.pool) - self.docs :]

    def probe(self) -> list[str]:
        end = len(self.pool) - self.docs
        return self.pool[end - self.probes : end]


def cues(texts: Sequence[str], n: int, seed: int = 1) -> list[str]:
    """``n`` queries: windows of 3-8 words of texts drawn at random."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        words = texts[int(rng.integers(len(texts)))].split()
        size = int(rng.integers(3, 9))
        start = int(rng.integers(max(len(words) - size, 0) + 1))
        cue = " ".join(words[start : start + size])
        if any(c.isalnum() for c in cue):
            out.append(cue)
    return out


# --------------------------------------------------------------------------------- engine
def engine_options(model: str, recognize: bool, ann: str = "auto") -> dict[str, Any]:
    return {"embed": MODELS[model], "recognize": {"enabled": recognize}, "ann": {"kind": ann}}


def open_memory(path: Path, options: dict[str, Any]) -> Memory:
    return Memory.open(path, **options)


def records(texts: Sequence[str]) -> list[Record]:
    return [Record(text=t, source="bench", chunk=False) for t in texts]


def ingest(
    mem: Memory, texts: Sequence[str], batch: int, report: Callable[[int], None] | None = None
) -> tuple[float, int]:
    """Add ``texts`` in batches; ``(seconds, memories added)``."""
    start, added = time.perf_counter(), 0
    for lo in range(0, len(texts), batch):
        added += mem.add_many(records(texts[lo : lo + batch])).added
        if report is not None:
            report(lo + batch)
    return time.perf_counter() - start, added


def store_files(db: Path) -> list[Path]:
    return [p for p in (db, Path(f"{db}-wal"), Path(f"{db}.spann")) if p.exists()]


def copy_store(src: Path, dst: Path) -> Path:
    for path in store_files(src):
        target = dst / path.name
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)
    return dst / src.name


def cached_store(
    texts: Sequence[str], model: str, recognize: bool, *, spann: bool, batch: int = 2000
) -> Path:
    """A store of ``texts`` (SPANN built when ``spann``), built once under bench/cache."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    name = f"{model}-{len(texts)}-{'spann' if spann else 'flat'}-rec{int(recognize)}-{digest}"
    folder = CACHE / f"{TEXTS_VERSION}-{name}"
    db = folder / "store.db"
    if (folder / "done").exists():
        return db
    shutil.rmtree(folder, ignore_errors=True)
    building = folder.with_name(folder.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    t0 = time.perf_counter()
    print(f"building {folder.name} ({len(texts)} memories) ...", file=sys.stderr, flush=True)
    every = max(len(texts) // 10, batch)

    def report(done: int) -> None:
        if done % every < batch:
            rate = done / (time.perf_counter() - t0)
            print(f"  {min(done, len(texts))} added ({rate:.0f}/s)", file=sys.stderr, flush=True)

    with open_memory(building / "store.db", engine_options(model, recognize, "flat")) as mem:
        ingest(mem, texts, batch, report)
    if spann:
        t1 = time.perf_counter()
        with open_memory(building / "store.db", engine_options(model, recognize, "spann")) as mem:
            assert mem.dense_index.kind == "spann"
        print(f"  SPANN built in {time.perf_counter() - t1:.0f}s", file=sys.stderr)
    (building / "done").write_text(json.dumps({"n": len(texts), "s": time.perf_counter() - t0}))
    building.rename(folder)
    print(f"  built in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return db


# --------------------------------------------------------------------------------- children
def die_with_parent(parent: int) -> None:
    """In a child: be killed when the parent exits (Linux), or exit now if it already has."""
    if not parent:
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(1)


def _reap() -> None:
    for proc in _CHILDREN:
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


atexit.register(_reap)


class Child:
    """A writer process (this file with ``--child``) driven by lines on its stdin:
    ``ingest`` (every text, in batches), ``add <i>`` (text ``i``), ``quit``. It answers with
    one JSON line each and is killed after ``limit`` seconds whatever happens."""

    def __init__(self, db: Path, texts_file: Path, args: argparse.Namespace, ann: str = "auto"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(db), str(texts_file)]
        cmd += ["--model", args.model, "--batch", str(args.batch), "--ann", ann]
        cmd += ["--limit", str(args.limit), "--parent", str(os.getpid())]
        cmd += [] if args.recognize else ["--no-recognize"]
        self.limit = args.limit
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        _CHILDREN.append(self.proc)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.ready = self.answer()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float | None = None) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout or self.limit)
        except queue.Empty:
            raise RuntimeError(f"the writer process did not answer in {timeout}s") from None
        if line is None:
            raise RuntimeError(f"the writer process exited (code {self.proc.wait()})")
        got: dict[str, Any] = json.loads(line)
        return got

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.send("quit")
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def child_main(args: argparse.Namespace) -> None:
    """The writer process."""
    die_with_parent(args.parent)
    signal.alarm(max(int(args.limit), 1))  # bounded whatever the parent does
    texts = [json.loads(line) for line in Path(args.child[1]).read_text().splitlines()]
    options = engine_options(args.model, args.recognize, args.ann)
    t0 = time.perf_counter()
    with open_memory(Path(args.child[0]), options) as mem:

        def say(obj: dict[str, Any]) -> None:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

        say({"ready": True, "open_s": time.perf_counter() - t0, "kind": mem.dense_index.kind})
        for line in sys.stdin:
            cmd = line.split()
            if not cmd or cmd[0] == "quit":
                break
            if cmd[0] == "ingest":
                took, added = ingest(mem, texts, args.batch)
                say({"seconds": took, "added": added, "docs": len(texts)})
            elif cmd[0] == "add":
                result = mem.add(texts[int(cmd[1])], source="probe")
                say({"id": result.ids[0], "added": result.added})


# --------------------------------------------------------------------------------- measuring
def pct(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q)) if samples else float("nan")


def summary(samples: Sequence[float]) -> dict[str, float]:
    return {"n": len(samples), "p50_ms": pct(samples, 50), "p99_ms": pct(samples, 99)}


def timed_recall(mem: Memory, query: str) -> tuple[float, list[int]]:
    start = time.perf_counter()
    hits = mem.recall(query, k=K)
    return time.perf_counter() - start, hits.ids


def recall_n(mem: Memory, queries: Sequence[str], n: int, offset: int = 0) -> list[float]:
    return [timed_recall(mem, queries[(offset + i) % len(queries)])[0] for i in range(n)]


def recall_until(
    mem: Memory, queries: Sequence[str], stop: threading.Event, offset: int = 0, pause: float = 0
) -> list[float]:
    out: list[float] = []
    while not stop.is_set():
        out.append(timed_recall(mem, queries[(offset + len(out)) % len(queries)])[0])
        if pause:
            stop.wait(pause)
    return out


@contextlib.contextmanager
def cpu_hog(limit: float) -> Iterator[None]:
    """A process that only spins one core (a control for plain CPU contention)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--hog", str(limit)]
    proc = subprocess.Popen([*cmd, "--parent", str(os.getpid())], stdout=subprocess.PIPE)
    _CHILDREN.append(proc)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # spinning from now on
        yield
    finally:
        proc.kill()
        proc.wait()


class Background(threading.Thread):
    """Run ``fn`` in a thread, keeping its result or exception."""

    def __init__(self, fn: Callable[[], Any]):
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # reported by join_result
            self.error = exc

    def join_result(self, timeout: float) -> Any:
        self.join(timeout)
        if self.is_alive():
            raise RuntimeError(f"a background task ran over {timeout}s")
        if self.error is not None:
            raise self.error
        return self.result


def join_then_set(thread: threading.Thread, event: threading.Event, timeout: float) -> None:
    thread.join(timeout)
    event.set()


@dataclass
class Env:
    args: argparse.Namespace
    texts: Texts
    work: Path  # a temporary folder
    small: Path  # the cached working store (--prefill memories)
    queries: list[str]

    def fresh(self, name: str) -> Path:
        folder = self.work / name
        folder.mkdir()
        return copy_store(self.small, folder)

    def texts_file(self, name: str, texts: Sequence[str]) -> Path:
        path = self.work / name
        if not path.exists():
            path.write_text("".join(json.dumps(t) + "\n" for t in texts))
        return path

    def options(self, ann: str = "auto") -> dict[str, Any]:
        return engine_options(self.args.model, self.args.recognize, ann)


def warm(mem: Memory, queries: Sequence[str]) -> None:
    recall_n(mem, queries, min(20, len(queries)), offset=len(queries) // 2)


def test_recall_under_ingest(env: Env) -> dict[str, Any]:
    """1: idle vs ingest by a thread, vs ingest by a process (each on a fresh copy)."""
    args, docs = env.args, env.texts.ingest()
    half = max(args.recalls // 2, 1)
    out: dict[str, Any] = {}
    idle: list[float] = []
    for mode in ("thread", "process"):
        db = env.fresh(f"t1-{mode}")
        with open_memory(db, env.options()) as mem:
            warm(mem, env.queries)
            before = recall_n(mem, env.queries, half)
            stop = threading.Event()
            child = None
            if mode == "thread":
                writer = Background(functools.partial(ingest, mem, docs, args.batch))
            else:
                child = Child(db, env.texts_file("docs.jsonl", docs), args)

                def run_child(c: Child = child) -> tuple[float, int]:
                    c.send("ingest")
                    got = c.answer()
                    return got["seconds"], got["added"]

                writer = Background(run_child)
            try:
                t0 = time.perf_counter()
                writer.start()
                waiter = Background(functools.partial(join_then_set, writer, stop, args.limit))
                waiter.start()
                during = recall_until(mem, env.queries, stop, offset=half)
                wall = time.perf_counter() - t0
                took, added = writer.join_result(args.limit)
            finally:
                if child is not None:
                    child.close()
            after = recall_n(mem, env.queries, half, offset=half + len(during))
            count = len(mem.dense_index)
            if mode == "process":  # control: the same recalls beside a process that only spins
                with cpu_hog(args.limit):
                    hog = recall_n(mem, env.queries, half, offset=2 * half + len(during))
        idle += before + after
        out[mode] = {
            "idle_before": summary(before),
            "during": summary(during),
            "idle_after": summary(after),
            "ingest_s": took,
            "ingest_wall_s": wall,
            "ingest_docs_per_s": len(docs) / took,
            "added": added,
            "memories_after": count,
        }
        print(f"  1/{mode}: {summary(during)}", file=sys.stderr, flush=True)
    out["idle"] = summary(idle)
    out["cpu_hog_control"] = summary(hog)
    out["cpu_hog_control"]["p99_ratio"] = out["cpu_hog_control"]["p99_ms"] / out["idle"]["p99_ms"]
    for mode in ("thread", "process"):
        out[mode]["p99_ratio"] = out[mode]["during"]["p99_ms"] / out["idle"]["p99_ms"]
        out[mode]["p50_ratio"] = out[mode]["during"]["p50_ms"] / out["idle"]["p50_ms"]
    return out


def test_ingest_under_recall(env: Env) -> dict[str, Any]:
    """2: ingest alone vs with --readers threads recalling continuously (rounds alternate)."""
    args, docs = env.args, env.texts.ingest()
    alone: list[float] = []
    loaded: list[float] = []
    reader_lat: list[float] = []
    for r in range(args.rounds):
        order = ("alone", "readers") if r % 2 == 0 else ("readers", "alone")
        for mode in order:
            db = env.fresh(f"t2-{r}-{mode}")
            with open_memory(db, env.options()) as mem:
                warm(mem, env.queries)
                if mode == "alone":
                    took, _ = ingest(mem, docs, args.batch)
                    alone.append(len(docs) / took)
                    continue
                stop = threading.Event()
                readers = [
                    Background(
                        functools.partial(
                            recall_until, mem, env.queries, stop, 97 * i, args.reader_pause
                        )
                    )
                    for i in range(args.readers)
                ]
                for t in readers:
                    t.start()
                try:
                    took, _ = ingest(mem, docs, args.batch)
                finally:
                    stop.set()
                for t in readers:
                    reader_lat += t.join_result(args.limit)
                loaded.append(len(docs) / took)
            print(f"  2/{mode}: {len(docs) / took:.0f} docs/s", file=sys.stderr, flush=True)
    a, b = float(np.median(alone)), float(np.median(loaded))
    return {
        "alone_docs_per_s": a,
        "with_readers_docs_per_s": b,
        "ratio": b / a,
        "readers": args.readers,
        "reader_pause_s": args.reader_pause,
        "reader_recalls": summary(reader_lat),
        "reader_recalls_per_s": len(reader_lat) / sum(len(docs) / x for x in loaded),
        "rounds": {"alone": alone, "with_readers": loaded},
    }


def test_visibility(env: Env) -> dict[str, Any]:
    """3: another process adds a probe; is it in this reader's next recall?"""
    args, probes = env.args, env.texts.probe()
    db = env.fresh("t3")
    seen, dense_seen, nxt, again = 0, 0, [], []
    with open_memory(db, env.options()) as mem:
        warm(mem, env.queries)
        child = Child(db, env.texts_file("probes.jsonl", probes), args)
        try:
            for i, text in enumerate(probes):
                child.send(f"add {i}")
                memory_id = child.answer(60)["id"]
                start = time.perf_counter()
                hits = mem.recall(text, k=K)
                nxt.append(time.perf_counter() - start)
                seen += memory_id in hits.ids
                dense_seen += any(h.id == memory_id and "dense" in h.why for h in hits)
                again.append(timed_recall(mem, text)[0])
                time.sleep(0.02)
        finally:
            child.close()
    return {
        "probes": len(probes),
        "seen_next_recall": seen / len(probes),
        "seen_by_dense": dense_seen / len(probes),
        "next_recall": summary(nxt),
        "second_recall": summary(again),
    }


def test_catch_up(env: Env, big: Path) -> dict[str, Any]:
    """4: a reader holding a SPANN store of --base memories, another process adds --docs."""
    args, docs = env.args, env.texts.ingest()
    folder = env.work / "t4"
    folder.mkdir()
    t0 = time.perf_counter()
    db = copy_store(big, folder)
    copy_s = time.perf_counter() - t0
    queries = cues(env.texts.store(args.base), max(args.recalls, 50), seed=2)
    out: dict[str, Any] = {"base": args.base, "docs": len(docs), "copy_s": copy_s}
    with contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        mem = stack.enter_context(open_memory(db, env.options("spann")))
        out["open_s"] = time.perf_counter() - t0
        out["kind"] = mem.dense_index.kind
        warm(mem, queries)
        out["steady_before"] = summary(recall_n(mem, queries, 50))
        child = Child(db, env.texts_file("docs.jsonl", docs), args, ann="spann")
        try:
            out["writer_open_s"] = child.ready["open_s"]
            child.send("ingest")
            got = child.answer()
        finally:
            child.close()
        out["writer_ingest_s"] = got["seconds"]
        out["writer_docs_per_s"] = got["docs"] / got["seconds"]
        probe = docs[-1]  # the last text written: found only once caught up
        first, ids = timed_recall(mem, probe)
        out["first_recall_s"] = first
        second, ids2 = timed_recall(mem, probe)
        out["second_recall_s"] = second
        out["catch_up_est_s"] = first - second  # the same query, caught up
        out["probe_found"] = bool(ids) and mem.get(ids[0]).text == probe
        out["count_after"] = len(mem.dense_index)
        out["steady_after"] = summary(recall_n(mem, queries, 50, offset=50))
        t0 = time.perf_counter()
        with open_memory(db, env.options("spann")) as fresh:
            out["fresh_open_s"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            fresh.recall(probe, k=K)
            out["fresh_first_recall_s"] = time.perf_counter() - t1
        if not args.no_rebuild:
            t0 = time.perf_counter()
            mem.dense_index.rebuild()
            out["rebuild_s"] = time.perf_counter() - t0
            out["rebuild_ratio"] = first / out["rebuild_s"]
    print(f"  4: first recall {first:.3f}s", file=sys.stderr, flush=True)
    return out


# --------------------------------------------------------------------------------- report
def table(report: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str]] = []

    def ms(v: float) -> str:
        return f"{v:.1f} ms"

    def verdict(ok: bool) -> str:
        return "yes" if ok else "NO"

    t1 = report.get("recall_under_ingest")
    if t1:
        idle = t1["idle"]
        rows.append(
            ("1 recall idle p50 / p99", f"{ms(idle['p50_ms'])} / {ms(idle['p99_ms'])}", "", "")
        )
        for mode, label in (("thread", "ingest thread"), ("process", "ingest process")):
            d = t1[mode]
            rows.append(
                (
                    f"1 recall during {label} p50 / p99",
                    f"{ms(d['during']['p50_ms'])} / {ms(d['during']['p99_ms'])}",
                    f"p50 {d['p50_ratio']:.2f}x, p99 {d['p99_ratio']:.2f}x",
                    f"p99 <= 2x: {verdict(d['p99_ratio'] <= 2)}",
                )
            )
            rows.append(
                (
                    f"  ({d['during']['n']} recalls; ingest {d['ingest_docs_per_s']:.0f} docs/s)",
                    "",
                    "",
                    "",
                )
            )
        hog = t1["cpu_hog_control"]
        rows.append(
            (
                "1 control: recall beside a spinning process",
                f"{ms(hog['p50_ms'])} / {ms(hog['p99_ms'])}",
                f"p99 {hog['p99_ratio']:.2f}x",
                "(CPU alone)",
            )
        )
    t2 = report.get("ingest_under_recall")
    if t2:
        rows.append(("2 ingest alone", f"{t2['alone_docs_per_s']:.0f} docs/s", "", ""))
        rows.append(
            (
                f"2 ingest with {t2['readers']} reader threads",
                f"{t2['with_readers_docs_per_s']:.0f} docs/s",
                f"{t2['ratio']:.2f}x",
                f">= 0.9x: {verdict(t2['ratio'] >= 0.9)}",
            )
        )
        r = t2["reader_recalls"]
        rows.append(
            (
                f"  (readers: {t2['reader_recalls_per_s']:.0f} recalls/s, "
                f"p50 {ms(r['p50_ms'])}, p99 {ms(r['p99_ms'])})",
                "",
                "",
                "",
            )
        )
    t3 = report.get("visibility")
    if t3:
        rows.append(
            (
                "3 other process's add in next recall",
                f"{t3['seen_next_recall']:.0%} of {t3['probes']}",
                f"dense {t3['seen_by_dense']:.0%}",
                f"100%: {verdict(t3['seen_next_recall'] == 1)}",
            )
        )
        n, s = t3["next_recall"], t3["second_recall"]
        rows.append(
            (
                "3 next recall p50 / p99",
                f"{ms(n['p50_ms'])} / {ms(n['p99_ms'])}",
                f"vs second {ms(s['p50_ms'])} / {ms(s['p99_ms'])}",
                "",
            )
        )
    t4 = report.get("catch_up")
    if t4:
        rows.append(
            (
                f"4 first recall after {t4['docs']} writes at {t4['base']} ({t4['kind']})",
                f"{t4['first_recall_s']:.3f} s",
                f"same query again {t4['second_recall_s']:.3f} s",
                f"<= 2 s: {verdict(t4['first_recall_s'] <= 2)}",
            )
        )
        rows.append(
            (
                "4 probe found / steady recall p50 before, after",
                verdict(t4["probe_found"]),
                f"{ms(t4['steady_before']['p50_ms'])}, {ms(t4['steady_after']['p50_ms'])}",
                "",
            )
        )
        rows.append(
            (
                "4 fresh open / its first recall",
                f"{t4['fresh_open_s']:.2f} s / {t4['fresh_first_recall_s']:.3f} s",
                "",
                "",
            )
        )
        if "rebuild_s" in t4:
            rows.append(
                (
                    "4 full rebuild (dense_index.rebuild)",
                    f"{t4['rebuild_s']:.1f} s",
                    f"catch-up {t4['rebuild_ratio']:.3f}x",
                    "",
                )
            )
        rows.append(
            (
                "4 writer: open / ingest",
                f"{t4['writer_open_s']:.1f} s",
                f"{t4['writer_docs_per_s']:.0f} docs/s",
                "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("test", "value", "ratio", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="hash")
    parser.add_argument("--docs", type=int, help="documents ingested (default 10000)")
    parser.add_argument("--prefill", type=int, help="memories in the store of tests 1-3 (--docs)")
    parser.add_argument("--base", type=int, help="memories in the SPANN store of test 4 (200000)")
    parser.add_argument("--recalls", type=int, help="idle recalls per store (300)")
    parser.add_argument("--probes", type=int, help="probes of test 3 (50)")
    parser.add_argument("--batch", type=int, help="documents per add_many (500)")
    parser.add_argument("--readers", type=int, default=4, help="reader threads of test 2")
    parser.add_argument(
        "--reader-pause", type=float, default=0.0, help="seconds each reader of test 2 waits"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of test 2 (alternating)")
    parser.add_argument("--tests", default="1234", help="which tests to run, e.g. 13")
    parser.add_argument(
        "--no-recognize",
        dest="recognize",
        action="store_false",
        help="near-duplicate recognition off (on by default, as in the engine)",
    )
    parser.add_argument("--no-rebuild", action="store_true", help="test 4 without the rebuild")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--limit", type=float, default=3600, help="seconds any child may run")
    parser.add_argument("--out", type=Path, help="JSON report (default bench/results/...)")
    parser.add_argument("--child", nargs=2, metavar=("DB", "TEXTS"), help=argparse.SUPPRESS)
    parser.add_argument("--ann", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--parent", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--hog", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hog is not None:
        die_with_parent(args.parent)
        print("spinning", flush=True)
        end = time.monotonic() + args.hog
        while time.monotonic() < end:
            pass
        return
    if args.child:
        child_main(args)
        return
    defaults = QUICK if args.quick else {}
    full = {"docs": 10_000, "base": 200_000, "recalls": 300, "probes": 50, "batch": 500}
    for name, value in full.items():
        if getattr(args, name) is None:
            setattr(args, name, defaults.get(name, value))
    if args.prefill is None:
        args.prefill = args.docs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t0 = time.perf_counter()
    texts = Texts(text_pool(), args.docs, args.probes)
    print(f"{len(texts.pool)} texts loaded in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    small = cached_store(texts.store(args.prefill), args.model, args.recognize, spann=False)
    big = None
    if "4" in args.tests:
        big = cached_store(texts.store(args.base), args.model, args.recognize, spann=True)
    report: dict[str, Any] = {
        "settings": {
            k: getattr(args, k)
            for k in ("model", "docs", "prefill", "base", "recalls", "probes", "batch")
            + ("readers", "reader_pause", "rounds", "recognize", "quick", "tests")
        },
        "cpus": os.cpu_count(),
        "load_avg_start": os.getloadavg(),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="engram-conc-", dir=CACHE) as tmp:
        env = Env(args, texts, Path(tmp), small, cues(texts.store(args.prefill), args.recalls))
        if "1" in args.tests:
            report["recall_under_ingest"] = test_recall_under_ingest(env)
        if "2" in args.tests:
            report["ingest_under_recall"] = test_ingest_under_recall(env)
        if "3" in args.tests:
            report["visibility"] = test_visibility(env)
        if big is not None:
            report["catch_up"] = test_catch_up(env, big)
    report["load_avg_end"] = os.getloadavg()
    report["seconds"] = time.perf_counter() - t0
    print(
        f"\nconcurrency: model={args.model} docs={args.docs} prefill={args.prefill} "
        f"base={args.base} batch={args.batch} recognize={args.recognize}"
    )
    print(table(report))
    out = args.out or RESULTS / f"concurrency-{args.model}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
