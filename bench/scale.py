"""A million memories end to end: real Gutenberg text with cached MiniLM vectors, so the run
measures the engine, not the model.

    python bench/_vectors.py --mix 1001000                 # embed the scale set once (resumable)
    python bench/scale.py --n 1000000 --db /tmp/scale/1m.db --out bench/results/scale.json

The collection is ``_vectors.gutenberg_mix``: every paragraph and sentence of the 100 books,
topped up with adjacent sentence pairs, shuffled; its first 1,000 texts are the queries (held
out: never stored) and the next ``--n`` the memories. Vectors are the real model's, embedded
once by ``bench/_vectors.py``: :class:`CachedEmbedder` hands them out under the real model's id,
so the store is exactly the one that ``Memory.add_many`` with MiniLM would write; a text that is
not cached is embedded by MiniLM (counted in the report).

Phases:

* **build** (skipped when ``--db`` already holds the ``--n`` memories): ``Memory.add_many`` in
  batches of ``--batch``, with exact search while loading (``ann.kind = "flat"``); memories/s
  of the engine alone (the vectors are cached). ``--wait`` lets it follow an embedding run.
* **index**: the store opened with the default settings, which build the SPANN index (as
  ``engram index build`` does) and whatever else the store lacks.
* **measure**, in a fresh child process pinned to one thread (numpy/BLAS/onnxruntime threads
  set before numpy loads): open time; RssAnon (resident anonymous memory, the page cache
  excluded) before and after opening and after the queries; recall latency p50/p99/mean per
  channel (``lexical``, ``dense``, ``hybrid``), one query per call, with the query's vector
  cached (MiniLM's own single-query time is measured apart and reported as ``embed_query``);
  then ``--writes`` notes added one ``add`` each (p50/p99, SPANN active) and forgotten again
  (``forget`` p50/p99), so the store keeps its content for the next run.
* **disk**: the store file (less its free pages), its WAL and the index folders beside it,
  in bytes per memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "src"), str(HERE)]

TOTAL = 1_001_000
QUERIES = 1_000
CHANNELS = ("lexical", "dense", "hybrid")
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def rss_anon() -> int:
    """RssAnon of this process in bytes (resident anonymous memory; not the page cache)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(ms: Sequence[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    return {
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": len(ms),
    }


class CachedEmbedder:
    """The real MiniLM's vectors for texts embedded beforehand; MiniLM itself for any other.

    ``model_id`` and ``dim`` are MiniLM's, so the store is the one MiniLM would build. Texts
    are also found by their stored form (``normalize_text``: NFC, whitespace collapsed,
    control characters dropped), which MiniLM's uncased word-piece tokenizer reads as the same
    word pieces as the raw text.
    """

    def __init__(self, texts: Sequence[str], vectors: Any, *, threads: int = 1) -> None:
        from engramdb.embed.onnx import _MODEL_NAME, MODEL_SHA256

        self.model_id = f"{_MODEL_NAME}@{MODEL_SHA256.lower()[:12]}"
        self.dim = int(vectors.shape[1])
        self._threads = threads
        self._model: Any = None
        self.misses = 0
        self.use(texts, vectors)

    def use(self, texts: Sequence[str], vectors: Any) -> None:
        """Hand out ``vectors`` for ``texts`` from now on (and nothing else cached)."""
        from engramdb.ingest.normalize import normalize_text

        self._row = {t: i for i, t in enumerate(texts)}
        for i, t in enumerate(texts):
            self._row.setdefault(normalize_text(t), i)
        self._vectors = vectors

    def embed_documents(self, texts: Sequence[str]) -> Any:
        import numpy as np

        rows = [self._row.get(t, -1) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        known = [i for i, r in enumerate(rows) if r >= 0]
        if known:
            out[known] = self._vectors[[rows[i] for i in known]]
        missing = [i for i, r in enumerate(rows) if r < 0]
        if missing:
            self.misses += len(missing)
            out[missing] = self.model().embed_documents([texts[i] for i in missing])
        return out

    def embed_queries(self, texts: Sequence[str]) -> Any:
        return self.embed_documents(texts)

    def model(self) -> Any:
        if self._model is None:
            from engramdb.embed.onnx import MiniLMEmbedder

            self._model = MiniLMEmbedder(threads=self._threads)
        return self._model


class Shards:
    """Rows of the scale set's cached vectors, read shard by shard; with ``wait``, a shard
    not cached yet is waited for (``bench/_vectors.py --mix`` may still be embedding)."""

    def __init__(self, texts: Sequence[str], *, wait: float = 0.0) -> None:
        import _vectors

        self.folder = _vectors.cache_folder("mix", texts)
        self.size = _vectors.SHARD
        self.wait = wait

    def rows(self, start: int, end: int) -> Any:
        import numpy as np

        parts = []
        for s in range(start // self.size, (end - 1) // self.size + 1):
            path = self.folder / f"shard_{s:03d}.npy"
            deadline = time.monotonic() + self.wait
            while not path.exists():
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"{path} is not cached: run python bench/_vectors.py --mix {TOTAL}"
                    )
                time.sleep(5)
            parts.append(np.load(path))
        block = np.concatenate(parts)
        first = (start // self.size) * self.size
        return block[start - first : end - first]


def load(n: int) -> tuple[list[str], Any]:
    """The first ``QUERIES + n`` texts of the scale set and their cached vectors."""
    import _vectors

    texts = _vectors.gutenberg_mix(TOTAL)
    return texts[: QUERIES + n], Shards(texts).rows(0, QUERIES + n)


def store_bytes(db: Path) -> dict[str, int]:
    """Bytes allocated on disk (a file grown ahead of its rows counts only what it fills):
    the store file (its free pages, which a migration or a forget leaves until ``VACUUM``, are
    reported apart), its WAL and the index folders beside it."""
    import sqlite3

    parts = {
        "db": db,
        "wal": Path(f"{db}-wal"),
        "spann": Path(f"{db}.spann"),
        "lexical": Path(f"{db}.lexical"),
    }
    out = {}
    for name, path in parts.items():
        if path.is_dir():
            out[name] = sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())
        else:
            out[name] = path.stat().st_blocks * 512 if path.exists() else 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    out["db_free"] = int(free) * int(page)
    return out


# --------------------------------------------------------------------------- build
def build(args: argparse.Namespace) -> dict[str, Any]:
    import _vectors
    from engramdb import Memory, Record

    texts = _vectors.gutenberg_mix(TOTAL)
    shards = Shards(texts, wait=args.wait)
    mark = Path(f"{args.db}.scale.json")  # how many texts the store was built from
    embedder = CachedEmbedder(texts[:QUERIES], shards.rows(0, QUERIES))
    args.db.parent.mkdir(parents=True, exist_ok=True)
    # Exact search while loading (no SPANN folds on the way); the index phase builds SPANN.
    with Memory.open(args.db, embedder=embedder, ann={"kind": "flat"}) as mem:
        have = mem.stats().memories
        done = json.loads(mark.read_text()) if mark.exists() else {}
        if have and done.get("texts") == args.n:
            print(f"{args.db} holds {have} memories of {args.n} texts: reusing it", flush=True)
            return {"reused": True}
        if have:
            raise SystemExit(f"{args.db} was not built from {args.n} texts: remove it first")
        t0 = time.perf_counter()
        rates = []
        waited = 0.0
        for start in range(QUERIES, QUERIES + args.n, args.batch):
            batch = texts[start : start + args.batch]
            t = time.perf_counter()
            embedder.use(batch, shards.rows(start, start + len(batch)))
            waited += time.perf_counter() - t
            t = time.perf_counter()
            result = mem.add_many(Record(text=x, source="gutenberg", chunk=False) for x in batch)
            took = time.perf_counter() - t
            rates.append(len(batch) / took)
            if result.added != len(batch):
                print(f"note: {len(batch) - result.added} merged as duplicates", file=sys.stderr)
            done = start - QUERIES + len(batch)
            print(
                f"{done:>9} memories  {len(batch) / took:7.0f}/s  "
                f"{time.perf_counter() - t0:7.0f}s  dense={mem.stats().dense.kind}",
                flush=True,
            )
        total = time.perf_counter() - t0 - waited
    mark.write_text(json.dumps({"texts": args.n}))
    return {
        "reused": False,
        "build_s": round(total, 1),
        "waited_for_vectors_s": round(waited, 1),
        "memories_per_s": round(args.n / total, 1),
        "batch_rates_first_last": [round(rates[0], 1), round(rates[-1], 1)],
        "embedder_misses": embedder.misses,
    }


# --------------------------------------------------------------------------- index
def index(args: argparse.Namespace) -> dict[str, Any]:
    """Open the store with the default settings, which build what it lacks (SPANN above
    ``spann_threshold`` memories), as ``engram index build`` would."""
    import _vectors
    from engramdb import Memory

    texts = _vectors.gutenberg_mix(TOTAL)
    embedder = CachedEmbedder(texts[:QUERIES], Shards(texts).rows(0, QUERIES))
    t0 = time.perf_counter()
    with Memory.open(args.db, embedder=embedder) as mem:
        opened = time.perf_counter() - t0
        dense = mem.stats().dense
        if dense.kind != "spann":
            mem.dense_index.build()
    return {
        "first_open_s": round(opened, 1),
        "index_s": round(time.perf_counter() - t0, 1),
        "dense_before": dense.kind,
    }


# --------------------------------------------------------------------------- measure (child)
def measure(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from engramdb import Memory

    out: dict[str, Any] = {"rss_start": rss_anon()}
    # The queries and notes come from the parent: the scale set itself never loads here.
    with np.load(args.inputs) as data:
        keep = json.loads(str(data["texts"]))
        embedder = CachedEmbedder(keep, data["vectors"])
    queries, notes = keep[: args.queries], keep[args.queries :]
    out["rss_before_open"] = rss_anon()
    t0 = time.perf_counter()
    mem = Memory.open(args.db, embedder=embedder)
    out["open_s"] = round(time.perf_counter() - t0, 3)
    out["rss_after_open"] = rss_anon()
    stats = mem.stats()
    out["memories"] = stats.memories
    out["dense_index"] = stats.dense.kind
    for q in queries[:20]:  # warm up every channel's first-call costs
        mem.recall(q, k=10, channels="hybrid")
    latency: dict[str, Any] = {}
    for channels in CHANNELS:
        ms = []
        for q in queries:
            t = time.perf_counter()
            mem.recall(q, k=10, channels=channels)
            ms.append((time.perf_counter() - t) * 1000)
        latency[channels] = summary(ms)
        print(f"{channels:8} {latency[channels]}", file=sys.stderr, flush=True)
    out["recall"] = latency
    out["rss_after_queries"] = rss_anon()
    if args.writes:
        added, forgot, ids = [], [], []
        for note in notes:
            t = time.perf_counter()
            res = mem.add(note, source="scale-bench")
            added.append((time.perf_counter() - t) * 1000)
            ids.extend(res.ids)
        for mid in ids:
            t = time.perf_counter()
            mem.forget([mid])
            forgot.append((time.perf_counter() - t) * 1000)
        out["add"] = summary(added)
        out["forget"] = summary(forgot)
    out["rss_end"] = rss_anon()
    out["embedder_misses"] = embedder.misses
    mem.close()
    if args.embed_query:
        model = embedder.model()
        model.embed_queries(queries[:5])
        ms = []
        for q in queries[: min(200, len(queries))]:
            t = time.perf_counter()
            model.embed_queries([q])
            ms.append((time.perf_counter() - t) * 1000)
        out["embed_query"] = summary(ms)
    return out


def child_inputs(args: argparse.Namespace) -> Path:
    """The queries, then the notes to add (the next texts of the scale set after the stored
    ones that are short enough to be one chunk each), with their vectors, in a file for the
    child."""
    import numpy as np

    import _vectors

    texts = _vectors.gutenberg_mix(TOTAL)
    shards = Shards(texts)
    after = QUERIES + args.n
    notes = [i for i in range(after, min(len(texts), after + 20 * args.writes + 100))]
    notes = [i for i in notes if len(texts[i]) < 400][: args.writes]
    vectors = [shards.rows(0, args.queries)]
    if notes:
        vectors.append(shards.rows(notes[0], notes[-1] + 1)[[i - notes[0] for i in notes]])
    path = Path(f"{args.db}.bench-inputs.npz")
    rows = list(range(args.queries)) + notes
    np.savez(
        path,
        texts=np.array(json.dumps([texts[i] for i in rows])),
        vectors=np.concatenate(vectors),
    )
    return path


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(dict.fromkeys(_THREAD_VARS, "1"))
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--n",
        str(args.n),
        "--db",
        str(args.db),
        "--queries",
        str(args.queries),
        "--writes",
        str(args.writes),
        "--inputs",
        str(child_inputs(args)),
    ]
    if args.embed_query:
        cmd.append("--embed-query")
    done = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, default=1_000_000, help="texts stored (near-duplicates merge)"
    )
    parser.add_argument("--db", type=Path, default=Path("/tmp/engramdb-scale/scale.db"))
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for each shard not cached yet"
    )
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--writes", type=int, default=50, help="notes added then forgotten")
    parser.add_argument("--embed-query", action="store_true", help="also time MiniLM per query")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    report: dict[str, Any] = {"n": args.n, "db": str(args.db)}
    report["build"] = build(args)
    report["index"] = index(args)
    report["measure"] = run_child(args)
    sizes = store_bytes(args.db)
    report["disk_bytes"] = sizes
    used = sum(sizes.values()) - 2 * sizes["db_free"]  # db_free is inside db, counted twice
    report["disk_bytes_per_memory"] = round(used / report["measure"]["memories"], 1)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
