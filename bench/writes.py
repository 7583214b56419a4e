"""Write cost at scale: one write with SPANN active, and another process catching up.

    python bench/writes.py index                  # SpannIndex over 1M synthetic vectors
    python bench/writes.py memory                 # a Memory of 1M memories on SPANN
    python bench/writes.py index --n 200000 --writes 200      # smaller, quicker

``index``: a :class:`SpannIndex` built once over ``--n`` synthetic unit vectors
(``bench/_vectors.synthetic``, 384-d) and cached under ``bench/cache/writes/``. One write is
``add`` of one vector then ``save`` (a commit); ``--writes`` of them are timed one by one,
then half as many single deletes. Reported: p50/p99/max per write, the log bytes a write
adds, the time to open the index before and after (the log is replayed on open), and one
forced checkpoint (what every commit cost before the write-ahead log), from which the
amortised checkpoint cost per write follows. A second index, opened on the folder first,
then catches up with those writes, and again after ``--catch-up`` vectors added in commits
of 2048 (the engine's folds, each timed): by following the log, or, in code without one,
by opening the folder again.

``memory``: a store of ``--n`` memories (synthetic sentences, the *hash* embedder at 384-d:
this measures the write path of the store and its indexes, not an embedding model; with a
real model add its embedding time) with ``[ann] kind = "spann"``, built once (flat, then the
SPANN index from the cached vectors) and copied fresh for every run. Then, in this process:
``--prefill`` memories are added with ``add_many`` (so that the changes gathered beside the
index are what they are mid-way between folds), then ``--writes`` single ``add`` calls are
timed (p50/p99/max; the folds into SPANN they trigger are counted), and within each the time
spent in the dense index (``stage`` and ``maintain``: catching its view up, folding).
Last, a second process opens the store and searches; this process adds ``--catch-up``
memories (``add_many`` in batches of 100); the second process's next dense search catches
up (timed, and compared with the search after it).

Run it against older code from a worktree of that commit, with the same cache folders::

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old/src python bench/writes.py index --index bench/cache/writes/old.spann

Results go to ``bench/results/writes-<mode>.json`` (or ``--out``). The machine is shared and
noisy (fsync latency above all): compare runs made side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _vectors  # noqa: E402
import engramdb  # noqa: E402
from engramdb import Memory  # noqa: E402
from engramdb.ann.spann import SpannConfig, SpannIndex  # noqa: E402
from engramdb.ann.spann._manifest import FORMAT_VERSION  # noqa: E402

CACHE = HERE / "cache" / "writes"
RESULTS = HERE / "results"
EMBED = {"model": "hash", "dim": 384}
WORDS = 20_000


def code_version() -> dict[str, Any]:
    """Which engramdb this run measures (its source folder and commit)."""
    src = Path(engramdb.__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"src": str(src), "commit": commit, "spann_format": FORMAT_VERSION}


def summary(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "n": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ index
def cached_index(path: Path, n: int) -> None:
    if path.is_dir():
        return
    say(f"building SPANN over {n} synthetic vectors at {path} (once) ...")
    vectors = _vectors.synthetic(n)
    t0 = time.perf_counter()
    SpannIndex.build(np.arange(n, dtype=np.int64), vectors, SpannConfig(), path=path).close()
    say(f"  built in {time.perf_counter() - t0:.0f} s")


def force_checkpoint(index: SpannIndex, vector: np.ndarray, vid: int) -> float | None:
    """Seconds of one commit that re-saves every array (the WAL code's checkpoint); ``None``
    for code without a log (there every commit does)."""
    import engramdb.ann.spann.index as module

    if not hasattr(module, "_LOG_RATIO"):
        return None
    saved = module._LOG_MIN, module._LOG_RATIO
    module._LOG_MIN, module._LOG_RATIO = 0, 0.0  # the next commit is due for a checkpoint
    try:
        t0 = time.perf_counter()
        index.add(np.array([vid]), vector[None, :])
        index.save(store_version=vid)
        return time.perf_counter() - t0
    finally:
        module._LOG_MIN, module._LOG_RATIO = saved


def catch_up(
    index: SpannIndex, reader: SpannIndex, path: Path, first: int, count: int
) -> dict[str, Any]:
    """A second index opened on the folder before the single writes catches up with them,
    then with ``count`` vectors added in commits of 2048 (as the engine folds): by following
    the log (``refresh``) where the code has one, else by opening the folder again."""
    out: dict[str, Any] = {}

    def follow(name: str) -> None:
        nonlocal reader
        t0 = time.perf_counter()
        followed = hasattr(reader, "refresh") and reader.refresh()
        if not followed:  # no log to follow, or one that cannot be followed (a compaction)
            reader.close()
            reader = SpannIndex.open(path)
        out[f"{name}_s"] = time.perf_counter() - t0
        out[f"{name}_by"] = "log" if followed else "reopen"
        assert len(reader) == len(index), (len(reader), len(index))

    follow("catch_up_singles")
    vectors = _vectors.synthetic(count, seed=int(time.time()) % 1000 + 7)
    folds = []
    for lo in range(0, count, 2048):
        t0 = time.perf_counter()
        index.add(np.arange(first + lo, first + min(lo + 2048, count)), vectors[lo : lo + 2048])
        index.save(store_version=first + lo)
        folds.append(time.perf_counter() - t0)
    out["fold_2048_s"] = folds
    follow(f"catch_up_{count}")
    reader.close()
    return out


def run_index(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.index) if args.index else CACHE / f"spann-{args.n}-v{FORMAT_VERSION}"
    cached_index(path, args.n)
    t0 = time.perf_counter()
    index = SpannIndex.open(path)
    open_s = time.perf_counter() - t0
    stats = index.stats()
    first = int(max(args.n, 1) * 10 + int(time.time()) % 100_000 * 1000)  # fresh ids each run
    vectors = _vectors.synthetic(args.writes + 1, seed=int(time.time()) % 1000 + 1)
    log0 = stats.get("log_bytes", 0)
    reader = SpannIndex.open(path)  # another process's view of the folder, to catch up later
    adds: list[float] = []
    for i in range(args.writes):
        t0 = time.perf_counter()
        index.add(np.array([first + i]), vectors[i : i + 1])
        index.save(store_version=i + 1)
        adds.append(time.perf_counter() - t0)
    log1 = index.stats().get("log_bytes", 0)
    deletes: list[float] = []
    for i in range(0, args.writes, 2):
        t0 = time.perf_counter()
        index.delete(np.array([first + i]))
        index.save(store_version=args.writes + i + 1)
        deletes.append(time.perf_counter() - t0)
    caught = catch_up(index, reader, path, 2 * first, args.catch_up)
    checkpoint_s = force_checkpoint(index, vectors[-1], first + args.writes)
    after = index.stats()
    index.close()
    t0 = time.perf_counter()
    SpannIndex.open(path).close()
    reopen_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "mode": "index",
        "code": code_version(),
        "index": str(path),
        "count": stats["count"],
        "heads": stats["heads"],
        "open_s": open_s,
        "add_and_commit": summary(adds),
        "delete_and_commit": summary(deletes),
        "reopen_s": reopen_s,
        "log_bytes_before": log0,
        "log_bytes_after": after.get("log_bytes"),
        **caught,
    }
    if checkpoint_s is not None and log1 > log0:
        per_write = (log1 - log0) / args.writes
        # the log is checkpointed once it outgrows half the last checkpoint (at least 1 MiB)
        bound = max(1 << 20, 0.5 * after.get("checkpoint_bytes", 0))
        out["checkpoint_s"] = checkpoint_s
        out["log_bytes_per_add"] = per_write
        out["adds_per_checkpoint"] = bound / per_write
        out["checkpoint_ms_per_add"] = 1e3 * checkpoint_s * per_write / bound
    return out


# ----------------------------------------------------------------------------------- memory
def sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct sentences of made-up words (a fixed vocabulary, Zipf-ish choices)."""
    vocab_rng = random.Random(12345)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(vocab_rng.choices(letters, k=vocab_rng.randint(3, 9))) for _ in range(WORDS)]
    weights = [1.0 / (i + 1) ** 0.7 for i in range(WORDS)]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(vocab, weights=weights, k=rng.randint(8, 30))
        out.append(f"{' '.join(words)} (note {seed}-{i})")
    return out


def options(kind: str, recognize: bool = False) -> dict[str, Any]:
    return {"embed": EMBED, "ann": {"kind": kind}, "recognize": {"enabled": recognize}}


def cached_store(n: int, base: Path | None = None) -> Path:
    """A folder with ``store.db`` (n memories) and its SPANN index for this SPANN format,
    copied from the store at ``base`` (built there first; default ``cache/writes/mem-<n>``).
    Build ``base`` with the oldest code compared: newer code migrates its copy on open."""
    base = base or CACHE / f"mem-{n}"
    if not (base / "done").exists():
        base.mkdir(parents=True, exist_ok=True)
        say(f"building a store of {n} memories at {base} (once; resumes) ...")
        t0 = time.perf_counter()
        with Memory.open(base / "store.db", **options("flat")) as mem:
            have = mem.stats().memories  # batches are transactions: a multiple of 5000
            for lo in range(have - have % 5000, n, 5000):
                mem.add_many(sentences(min(5000, n - lo), seed=lo // 5000))
                if lo % 50_000 == 0:
                    say(f"  {lo} ({time.perf_counter() - t0:.0f} s)")
        (base / "done").write_text("ok")
    with_index = base.with_name(f"{base.name}-v{FORMAT_VERSION}")
    if not (with_index / "done").exists():
        shutil.rmtree(with_index, ignore_errors=True)
        with_index.mkdir(parents=True)
        for p in base.glob("store.db*"):
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, with_index / p.name)
        say(f"building its SPANN index (format {FORMAT_VERSION}) ...")
        t0 = time.perf_counter()
        with Memory.open(with_index / "store.db", **options("spann")) as mem:
            assert mem.dense_index.kind == "spann"
        say(f"  built in {time.perf_counter() - t0:.0f} s")
        (with_index / "done").write_text("ok")
    return with_index


def fresh_copy(src: Path) -> Path:
    work = CACHE / f"work-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for p in src.iterdir():
        if p.name.startswith("store.db"):
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, work / p.name)
    return work / "store.db"


CHILD = r"""
import json, sys, time
import numpy as np
from engramdb import Memory
path, opts = sys.argv[1], json.loads(sys.argv[2])
with Memory.open(path, **opts) as mem:
    q = np.asarray(mem.embedder.embed_queries(["warm the index up"]), dtype=np.float32)
    mem.dense_index.search(q, 10)
    mem.dense_index.search(q, 10)
    print(json.dumps({"ready": len(mem.dense_index)}), flush=True)
    sys.stdin.readline()  # the other process has written
    probe = sys.stdin.readline().strip()
    q = np.asarray(mem.embedder.embed_queries([probe]), dtype=np.float32)
    t0 = time.perf_counter()
    ids, _ = mem.dense_index.search(q, 10)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    mem.dense_index.search(q, 10)
    second = time.perf_counter() - t0
    info = mem.dense_index.stats()
    top = mem.get(int(ids[0, 0])).text if ids[0, 0] >= 0 else ""
    print(json.dumps({
        "first_search_s": first, "second_search_s": second, "count": info.count,
        "memories": info.memories, "pending": info.pending, "probe_found": top == probe,
        "last_build": mem.dense_index.last_build,
    }), flush=True)
"""


def timed_dense(mem: Memory) -> list[float]:
    """Time spent in the dense index on the write path (``stage`` inside the transaction,
    ``maintain`` after it: catching the view up, folding into SPANN), summed into the
    returned cell."""
    spent = [0.0]
    dense = mem.dense_index
    for name in ("stage", "maintain"):
        real = getattr(dense, name)

        def timed(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _real(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0

        setattr(dense, name, timed)
    return spent


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    db = fresh_copy(cached_store(args.n, Path(args.store) if args.store else None))
    out: dict[str, Any] = {"mode": "memory", "code": code_version(), "n": args.n}
    out["embedder"] = "hash (384-d): the write path without an embedding model"
    try:
        t0 = time.perf_counter()
        mem = Memory.open(db, **options("spann", args.recognize))
        out["recognize"] = args.recognize
        out["open_s"] = time.perf_counter() - t0
        assert mem.dense_index.kind == "spann"
        texts = sentences(args.prefill + args.writes + args.catch_up + 1, seed=999_999)
        t0 = time.perf_counter()
        for lo in range(0, args.prefill, 1000):
            mem.add_many(texts[lo : min(lo + 1000, args.prefill)])
        out["prefill"] = args.prefill
        out["prefill_s"] = time.perf_counter() - t0
        out["pending_before"] = mem.dense_index.stats().pending
        spent = timed_dense(mem)
        adds, dense, folds = [], [], 0
        pending = out["pending_before"]
        for text in texts[args.prefill : args.prefill + args.writes]:
            spent[0] = 0.0
            t0 = time.perf_counter()
            mem.add(text)
            adds.append(time.perf_counter() - t0)
            dense.append(spent[0])
            now = mem.dense_index.stats().pending
            folds += now < pending
            pending = now
        out["add"] = summary(adds)
        out["add_dense_part"] = summary(dense)
        out["folds_during_adds"] = folds
        out["pending_after"] = pending
        out["last_build"] = mem.dense_index.last_build
        # catch-up: a second process holds the store open while this one writes
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(db), json.dumps(options("spann"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            out["reader_ready"] = json.loads(child.stdout.readline())
            rest = texts[args.prefill + args.writes :]
            t0 = time.perf_counter()
            for lo in range(0, args.catch_up, 100):
                mem.add_many(rest[lo : min(lo + 100, args.catch_up)])
            out["catch_up_writes"] = args.catch_up
            out["catch_up_writes_s"] = time.perf_counter() - t0
            child.stdin.write("go\n" + rest[args.catch_up - 1] + "\n")
            child.stdin.flush()
            got = json.loads(child.stdout.readline())
            got["catch_up_s"] = got["first_search_s"] - got["second_search_s"]
            out["reader"] = got
        finally:
            child.stdin.close()
            child.wait(timeout=120)
        mem.close()
    finally:
        shutil.rmtree(db.parent, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("index", "memory"))
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors / memories")
    parser.add_argument("--writes", type=int, default=500, help="single writes timed")
    parser.add_argument("--index", help="index folder (index mode; built if missing)")
    parser.add_argument("--store", help="memory mode: the store folder to copy (built if missing)")
    parser.add_argument("--prefill", type=int, default=60_000, help="memory mode")
    parser.add_argument(
        "--catch-up", type=int, default=10_000, help="writes another process catches up with"
    )
    parser.add_argument(
        "--recognize", action="store_true", help="memory mode: near-duplicate recognition on"
    )
    parser.add_argument("--out", help="results file (default bench/results/writes-<mode>.json)")
    parser.add_argument("--prepare", action="store_true", help="build the cached data and stop")
    args = parser.parse_args()
    if args.prepare:
        if args.mode == "index":
            cached_index(Path(args.index or CACHE / f"spann-{args.n}-v{FORMAT_VERSION}"), args.n)
        else:
            cached_store(args.n, Path(args.store) if args.store else None)
        return
    result = run_index(args) if args.mode == "index" else run_memory(args)
    text = json.dumps(result, indent=1)
    print(text)
    out = Path(args.out) if args.out else RESULTS / f"writes-{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()
