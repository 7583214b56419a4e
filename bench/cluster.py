"""A cluster next to one store, in one run: ingest throughput with 1, 2 and 4 embedder
actors, recall latency on 1 and 4 shards, and the memory a shard actor holds.

    python bench/cluster.py                                    # defaults: ~10 min on 2 cores
    python bench/cluster.py --n 300 --ingest-n 200 --queries 40 --embedders 1,2  # smoke run
    python bench/cluster.py --json bench/results/cluster.json

Data: SciFact passages (title + text, one memory each, unchunked) from
../shared/data/scifact and its test queries (``qrels/test.tsv``, 300). The model is the
default one (all-MiniLM-L6-v2 int8 ONNX), as a plain ``Memory`` uses it. The bench starts
a local Ray instance of its own (the ``ray`` extra) and ends it.

1. Ingest: ``add_many`` of the first ``--ingest-n`` (1,000) passages in batches of
   ``--batch`` (100) into a fresh ``Memory`` store ("one store": this process embeds) and
   into fresh ``--shards``-shard clusters with 1, 2 and 4 embedder actors (``--embedders``).
   All are started first (their models loaded and warmed: "start s", apart); then each
   batch goes to every variant in turn, who goes first rotating batch by batch, so that
   what else the machine does falls on all of them. Memories/s and the ratio to one store.
   Where the time goes: embedding (the model in this process / ``Cluster._vectors``), the
   recognition lookup scatter, the write scatter and the rest (chunking, MinHash,
   recognition, journal); the CPU seconds each kind of process used (/proc/<pid>/stat), the
   cores that adds up to, and how busy the whole machine was (every job on it). Ray's
   scheduler wants a CPU per embedder actor (it never places one more than it has): the
   bench declares ``max(os.cpu_count(), sum(embedders))`` CPUs, so the actors share the
   real cores. Ray starts its workers at nice 15 (``--niceness`` sets another value): on a
   busy machine its actors get the CPU last.
2. Recall: one query at a time (k=10) on the one store (topped up to ``--n`` passages,
   2,000) and on 1- and ``--shards``-shard clusters holding the same memories (written with
   the vectors the one store computed, so all rank the same vectors), plus the sharded one
   with its shards as objects in this process (``backend="local"``: the same work, no Ray;
   ``--no-local`` skips it). Per channel (``--channels``: hybrid, lexical, dense) the stores
   take turns query by query after ``--warmup`` untimed queries. p50/p99 and ratios; target:
   the sharded p50 <= 1.5x one store's at equal size. A cluster's time is split by timing
   its scatter calls (``Cluster._scatter`` per method) and its query embedding with
   wrappers installed here; "Ray round trip" is a no-op call to every shard. Sanity: the
   top-10 (documents, in order) of the first 20 queries of each channel are the same on
   every store.
3. Memory: each shard actor's resident memory (VmRSS, RssAnon, Pss from /proc: the actors
   run on this machine) empty, after the ingest, after ``gc.collect()`` (then also
   ``malloc_trim``) and after the recalls; an embedder actor's after the ingest; a bare Ray
   actor's; this process's.

The machine is small and shared (its core count is in the output): read the ratios, which
are measured side by side in one run, rather than the absolute numbers.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engramdb import Memory, Record
from engramdb.cluster import Cluster
from engramdb.config import load_config
from engramdb.embed.registry import create_embedder
from ingest import DATA, load_texts  # type: ignore[import-not-found]

K = 10
SAME = 20  # queries whose top-10 must be identical on every variant


# -- timing the cluster's phases ---------------------------------------------------------------


class Phases:
    """Seconds per named phase, summed while a collection is open."""

    def __init__(self) -> None:
        self.current: dict[str, float] | None = None

    def add(self, name: str, seconds: float) -> None:
        if self.current is not None:
            self.current[name] = self.current.get(name, 0.0) + seconds

    @contextmanager
    def collect(self) -> Iterator[dict[str, float]]:
        self.current = out = {}
        try:
            yield out
        finally:
            self.current = None


PHASES = Phases()


def timed(
    fn: Callable[..., Any], name_of: Callable[[tuple[Any, ...]], str], count: str = ""
) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            PHASES.add(name_of(args), time.perf_counter() - start)
            if count:
                PHASES.add(count, 1.0)

    return wrapper


def instrument() -> None:
    """Time the coordinator's scatter calls (per method), its runs and its embedding."""
    Cluster._scatter = timed(Cluster._scatter, lambda a: f"scatter:{a[1]}", "round trips")  # type: ignore[method-assign]
    Cluster._runs = timed(Cluster._runs, lambda a: "_runs")  # type: ignore[method-assign]
    Cluster._vectors = timed(Cluster._vectors, lambda a: "vectors")  # type: ignore[method-assign]


class BenchEmbedder:
    """The real embedder, timed; it records the document vectors it makes, or, given
    recorded vectors, hands those back instead of embedding again."""

    def __init__(self, inner: Any, recorded: dict[str, np.ndarray[Any, Any]] | None = None):
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.replay = recorded is not None
        self.vectors: dict[str, np.ndarray[Any, Any]] = {} if recorded is None else recorded

    def embed_documents(self, texts: Sequence[str]) -> Any:
        if self.replay:
            return np.stack([self.vectors[t] for t in texts])
        start = time.perf_counter()
        out = self.inner.embed_documents(texts)
        PHASES.add("embed", time.perf_counter() - start)
        self.vectors.update(zip(texts, out, strict=True))
        return out

    def embed_queries(self, texts: Sequence[str]) -> Any:
        start = time.perf_counter()
        out = self.inner.embed_queries(texts)
        PHASES.add("embed query", time.perf_counter() - start)
        return out


# -- processes ---------------------------------------------------------------------------------


def proc_mem(pid: int) -> dict[str, float]:
    """Resident memory of a process in MB: VmRSS, RssAnon (its private heap) and Pss."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            out[key] = int(value.split()[0]) / 1024
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1]) / 1024
    except OSError:
        out["Pss"] = float("nan")
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine (every job on it)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def collect_garbage(_actor: Any, trim: bool) -> int:
    """Run inside an actor (``__ray_call__``): a full gc, optionally ``malloc_trim``."""
    gc.collect()
    if trim:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return os.getpid()


class Bare:
    """An actor that holds nothing: what a Ray worker costs by itself."""

    def pid(self) -> int:
        return os.getpid()


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[16])


def start_ray(cpus: int, nice: int | None) -> Any:
    import ray

    ray.init(
        address="local",  # always a fresh instance of our own, never another job's
        num_cpus=cpus,
        namespace="engramdb",
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        object_store_memory=512 * 1024 * 1024,
        _system_config=None if nice is None else {"worker_niceness": nice},
    )
    return ray


def shard_pids(ray: Any, cluster: Cluster) -> dict[str, int]:
    pids = ray.get([h.ping.remote() for h in cluster.handles.values()])
    return dict(zip(cluster.handles, pids, strict=True))


def shard_mem(ray: Any, cluster: Cluster, gc_first: bool = False, trim: bool = False) -> dict:
    if gc_first:
        ray.get([h.__ray_call__.remote(collect_garbage, trim) for h in cluster.handles.values()])
    return {name: proc_mem(pid) for name, pid in shard_pids(ray, cluster).items()}


# -- data --------------------------------------------------------------------------------------


def load_queries(n: int, data: Path) -> list[str]:
    folder = data.parent
    texts = {}
    with (folder / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            texts[q["_id"]] = q["text"]
    ids: list[str] = []
    with (folder / "qrels" / "test.tsv").open(encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid = line.split("\t")[0]
            if qid not in ids:
                ids.append(qid)
    return [texts[q] for q in ids[:n]]


def batches(records: list[Record], size: int) -> Iterator[list[Record]]:
    size = size or len(records)
    for start in range(0, len(records), size):
        yield records[start : start + size]


# -- 1. ingest ---------------------------------------------------------------------------------


class Variant:
    """One way of ingesting: its store, its processes, and what its batches cost."""

    def __init__(self, name: str, store: Any, pids: dict[str, list[int]], start_s: float):
        self.name = name
        self.store = store
        self.pids = {**pids, "coordinator": [os.getpid()]}
        self.start_s = start_s
        self.seconds = 0.0
        self.added = 0
        self.phases: dict[str, float] = {}
        self.cpu: dict[str, float] = dict.fromkeys(self.pids, 0.0)
        self.busy = np.zeros(2)
        self.embedder: BenchEmbedder | None = None

    def cpu_now(self) -> dict[str, float]:
        return {kind: sum(cpu_seconds(p) for p in pids) for kind, pids in self.pids.items()}

    def add(self, part: list[Record]) -> None:
        cpu0, machine0 = self.cpu_now(), machine_cpu()
        with PHASES.collect() as phases:
            start = time.perf_counter()
            self.added += self.store.add_many(part).added
            self.seconds += time.perf_counter() - start
        self.busy += np.subtract(machine_cpu(), machine0)
        for kind, value in self.cpu_now().items():
            self.cpu[kind] += value - cpu0[kind]
        for key, value in phases.items():
            self.phases[key] = self.phases.get(key, 0.0) + value


def one_store_variant(records: list[Record], cfg: Any, folder: Path) -> Variant:
    start = time.perf_counter()
    embedder = BenchEmbedder(create_embedder(cfg.embed))
    embedder.inner.embed_documents([r.text for r in records[:16]])  # warm up the session
    mem = Memory.open(folder / "one.db", cfg, embedder=embedder)
    variant = Variant("one store", mem, {}, time.perf_counter() - start)
    variant.embedder = embedder
    return variant


def cluster_variant(
    ray: Any, records: list[Record], embedders: int, args: argparse.Namespace, folder: Path
) -> Variant:
    start = time.perf_counter()
    cluster = Cluster.open(
        root=folder / f"e{embedders}", shards=args.shards, embedders=embedders, config=args.cfg
    )
    assert cluster._embedders is not None
    handles = cluster._embedders.handles
    ray.get([h.describe.remote() for h in handles])  # every model loaded
    cluster._embedders.embed_documents([r.text for r in records[: 8 * embedders]])  # warm up
    pids = {
        "embedders": ray.get([h.pid.remote() for h in handles]),
        "shards": list(shard_pids(ray, cluster).values()),
    }
    name = f"{embedders} embedder{'s' if embedders > 1 else ''}"
    return Variant(name, cluster, pids, time.perf_counter() - start)


def run_ingest(
    ray: Any, records: list[Record], args: argparse.Namespace, folder: Path
) -> tuple[list[dict[str, Any]], Memory, BenchEmbedder]:
    """Every variant started first, then fed the same batches in turn (who goes first
    rotates batch by batch), so that whatever else the machine does falls on all."""
    variants = [one_store_variant(records, args.cfg, folder)]
    variants += [cluster_variant(ray, records, e, args, folder) for e in args.embedders]
    parts = list(batches(records, args.batch))
    for bi, part in enumerate(parts):
        turn = bi % len(variants)
        for variant in variants[turn:] + variants[:turn]:
            variant.add(part)
        print(
            f"  batch {bi + 1}/{len(parts)}: "
            + ", ".join(f"{v.name} {v.added / v.seconds:.1f}/s" for v in variants),
            flush=True,
        )
    out = []
    for v in variants:
        row: dict[str, Any] = {
            "variant": v.name,
            "seconds": v.seconds,
            "per_s": len(records) / v.seconds,
            "ratio": variants[0].seconds / v.seconds,
            "added": v.added,
            "start_s": v.start_s,
            "phases": {
                "embed": v.phases.get("embed", v.phases.get("vectors", 0.0)),
                "lookup": v.phases.get("scatter:lookup", 0.0),
                "apply": v.phases.get("scatter:apply", 0.0),
            },
            "cpu_s": v.cpu,
            "machine_busy": float(v.busy[0] / v.busy[1]),
        }
        if "embedders" in v.pids:
            row["embedder_mem"] = [proc_mem(p) for p in v.pids["embedders"]]
            v.store.close()
        out.append(row)
    added = {row["added"] for row in out}
    assert len(added) == 1, f"variants added different counts: {added}"
    one = variants[0]
    assert one.embedder is not None
    return out, one.store, one.embedder


# -- 2. recall ---------------------------------------------------------------------------------


def build_cluster(
    records: list[Record],
    shards: int,
    args: argparse.Namespace,
    folder: Path,
    vectors: dict[str, np.ndarray[Any, Any]],
    backend: str = "ray",
) -> Cluster:
    """A cluster holding ``records``, written with the vectors the one store made."""
    cluster = Cluster.open(
        root=folder / f"recall-{shards}-{backend}", shards=shards, config=args.cfg, backend=backend
    )
    cluster._embedder = BenchEmbedder(cluster._embedder, vectors)  # type: ignore[assignment]
    for part in batches(records, args.batch):
        cluster.add_many(part)
    return cluster


def pct(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def documents(hits: Any) -> list[str | None]:
    return [h.position.document for h in hits]


def ray_round_trip(cluster: Cluster, n: int) -> float:
    """p50 ms of a no-op call to every shard."""
    took = []
    for _ in range(n):
        start = time.perf_counter()
        cluster._scatter("ping", ())
        took.append(time.perf_counter() - start)
    return pct(took, 50)


def run_recall(
    stores: dict[str, Any], queries: list[str], channels: list[str], warmup: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = list(stores)
    for channel in channels:
        for q in queries[:warmup]:
            for store in stores.values():
                store.recall(q, k=K, channels=channel)
        times: dict[str, list[float]] = {n: [] for n in names}
        phases: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        tops: dict[str, list[list[str | None]]] = {n: [] for n in names}
        ids: dict[str, list[list[int]]] = {n: [] for n in names}
        for qi, query in enumerate(queries):
            for name in names[qi % len(names) :] + names[: qi % len(names)]:
                with PHASES.collect() as spent:
                    start = time.perf_counter()
                    hits = stores[name].recall(query, k=K, channels=channel)
                    took = time.perf_counter() - start
                times[name].append(took)
                phases[name].append({**spent, "total": took})
                tops[name].append(documents(hits))
                ids[name].append(hits.ids)
        first = names[0]
        same = {
            n: sum(tops[n][i] == tops[first][i] for i in range(min(SAME, len(queries))))
            for n in names[1:]
        }
        same_all = {
            n: sum(a == b for a, b in zip(tops[n], tops[first], strict=True)) for n in names[1:]
        }
        same_ids = {
            n: sum(a == b for a, b in zip(ids[n], ids[first], strict=True)) for n in names[1:]
        }
        out[channel] = {
            name: {
                "p50_ms": pct(times[name], 50),
                "p99_ms": pct(times[name], 99),
                "mean_ms": statistics.fmean(times[name]) * 1e3,
                "phases_ms": split(phases[name]),
            }
            for name in names
        }
        out[channel]["same_top10_first"] = {"of": min(SAME, len(queries)), **same}
        out[channel]["same_top10_all"] = {"of": len(queries), **same_all}
        out[channel]["same_ids_all"] = {"of": len(queries), **same_ids}
        print(
            f"  {channel:<8} "
            + "  ".join(f"{n} p50 {out[channel][n]['p50_ms']:.1f} ms" for n in names)
            + f"  same top-10 (first {SAME}): {same}",
            flush=True,
        )
    return out


def split(per_query: list[dict[str, float]]) -> dict[str, float]:
    """Mean ms per query of each part of a recall: the query embedding, each scatter (Ray
    calls to every shard, their work and the results' transfer), and the rest (merging the
    runs, fusion and building the hits here); "round trips": scatter calls per query."""

    def mean(key: Callable[[dict[str, float]], float]) -> float:
        return statistics.fmean(key(p) for p in per_query) * 1e3

    out = {
        "total": mean(lambda p: p["total"]),
        "embed query": mean(lambda p: p.get("embed query", 0.0)),
    }
    if not any("_runs" in p for p in per_query):  # one store: not itemised beyond embedding
        out["rest"] = out["total"] - out["embed query"]
        return out
    scatters = {k for p in per_query for k in p if k.startswith("scatter:")}
    for key in sorted(scatters):
        out[key.removeprefix("scatter:")] = mean(lambda p, key=key: p.get(key, 0.0))
    out["rest"] = out["total"] - out["embed query"] - sum(out[k.split(":")[1]] for k in scatters)
    out["round trips"] = mean(lambda p: p.get("round trips", 0.0)) / 1e3
    return out


# -- report ------------------------------------------------------------------------------------


def mb(values: Sequence[dict[str, float]], key: str) -> str:
    return f"{statistics.fmean(v[key] for v in values):.0f}"


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu_count']} CPUs (os.cpu_count), Ray declared {m['ray_cpus']}; "
        f"ingest: the first {m['ingest_n']} SciFact passages, recall: {m['n']} passages and "
        f"{m['queries']} test queries; batches of {m['batch']}, {args.shards}-shard clusters, "
        f"model {m['model']}. Ray actors run at nice {m['actor_niceness']} (this process: "
        f"{m['own_niceness']}).",
        "",
        "**Ingest** (memories/s; ratio to one store; seconds spent in the batch; CPU seconds "
        "by process kind; machine busy = all jobs on this machine)",
        "",
        "| variant | memories/s | ratio | embed s | lookup s | apply s | rest s | "
        "CPU s coord / embedders / shards | cores used | machine busy | start s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["ingest"]:
        ph, cpu = row["phases"], row["cpu_s"]
        rest = row["seconds"] - sum(ph.values())
        cpus = " / ".join(
            f"{cpu[k]:.1f}" if k in cpu else "-" for k in ("coordinator", "embedders", "shards")
        )
        cores = sum(cpu.values()) / row["seconds"]
        lines.append(
            f"| {row['variant']} | {row['per_s']:.1f} | {row['ratio']:.2f}x | "
            f"{ph['embed']:.1f} | {ph.get('lookup', 0):.1f} | {ph.get('apply', 0):.1f} | "
            f"{rest:.1f} | {cpus} | {cores:.2f} | {row['machine_busy']:.0%} | "
            f"{row['start_s']:.1f} |"
        )
    names = list(result["recall_stores"])
    one, single, sharded = "one store", "1-shard", f"{args.shards}-shard"
    lines += [
        "",
        f"**Recall** (k={K}, one query at a time; ms; ratios of p50; target: {sharded} <= "
        f"1.5x one store; same top-10 = documents and order of the first {SAME} queries as "
        "the one store)",
        "",
        "| channel | "
        + " | ".join(f"{n} p50 / p99" for n in names)
        + f" | {sharded} / {single} | {sharded} / {one} | same top-10 |",
        "|---|" + "---|" * (len(names) + 3),
    ]
    for channel, per in result["recall"].items():
        ratio_1 = per[sharded]["p50_ms"] / per[single]["p50_ms"]
        ratio_one = per[sharded]["p50_ms"] / per[one]["p50_ms"]
        same = per["same_top10_first"]
        lines.append(
            f"| {channel} | "
            + " | ".join(f"{per[n]['p50_ms']:.1f} / {per[n]['p99_ms']:.1f}" for n in names)
            + f" | {ratio_1:.2f}x | {ratio_one:.2f}x | "
            + ", ".join(f"{n} {same[n]}/{same['of']}" for n in names[1:])
            + " |"
        )
    seen = {k for per in result["recall"].values() for n in names for k in per[n]["phases_ms"]}
    scatters = sorted(
        seen - {"total", "embed query", "rest", "round trips"},
        key=lambda k: (k not in ("term_stats", "runs"), k != "term_stats", k),
    )
    parts = ["total", "embed query", *scatters, "rest"]
    lines += [
        "",
        "**Where a cluster recall's time goes** (mean ms per query; each scatter, named by "
        "its shard method = calls to every shard, their work and the transfers; rest = "
        "merging, fusion and building the hits here; local = the same shards as objects in "
        "this process, no Ray). "
        "Ray round trip (no-op call to every shard, p50): "
        + ", ".join(f"{n} {v:.2f} ms" for n, v in result["round_trip_ms"].items()),
        "",
        "| channel | store | " + " | ".join(parts) + " | round trips |",
        "|---|---|" + "---|" * (len(parts) + 1),
    ]
    for channel, per in result["recall"].items():
        for n in names:
            ph = per[n]["phases_ms"]
            lines.append(
                f"| {channel} | {n} | "
                + " | ".join(f"{ph[p]:.1f}" if p in ph else "-" for p in parts)
                + (f" | {ph['round trips']:.0f} |" if "round trips" in ph else " | - |")
            )
    mem = result["memory"]
    lines += [
        "",
        "**Memory at rest** (MB, mean per process: VmRSS / RssAnon / Pss)",
        "",
        "| process | empty | after ingest | after gc | after gc + malloc_trim | after recalls |",
        "|---|---|---|---|---|---|",
    ]
    for name, stages in mem["shards"].items():
        cells = []
        for stage in ("empty", "ingested", "gc", "trim", "recalled"):
            values = list(stages[stage].values())
            cells.append(" / ".join(mb(values, k) for k in ("VmRSS", "RssAnon", "Pss")))
        lines.append(f"| shard of the {name} cluster | " + " | ".join(cells) + " |")
    for row in result["ingest"]:
        if "embedder_mem" in row:
            values = row["embedder_mem"]
            cell = " / ".join(mb(values, k) for k in ("VmRSS", "RssAnon", "Pss"))
            lines.append(f"| embedder actor ({row['variant']}) | - | {cell} | - | - | - |")
    bare = " / ".join(f"{mem['bare_actor'][k]:.0f}" for k in ("VmRSS", "RssAnon", "Pss"))
    lines.append(f"| bare Ray actor | {bare} | - | - | - | - |")
    coord = " / ".join(f"{mem['coordinator'][k]:.0f}" for k in ("VmRSS", "RssAnon", "Pss"))
    lines.append(f"| this process (one store + coordinators) | - | - | - | - | {coord} |")
    lines += ["", "Ranking sanity (top-10 documents and ids equal to the one store's):"]
    for channel, per in result["recall"].items():
        first, every, ids = per["same_top10_first"], per["same_top10_all"], per["same_ids_all"]
        ok = all(first[n] == first["of"] for n in names[1:])
        lines.append(
            f"- {channel}: first {first['of']} queries {'identical' if ok else 'DIFFERENT'} on "
            + ", ".join(names[1:])
            + "; all queries: "
            + ", ".join(f"{n} {every[n]}/{every['of']} (ids {ids[n]})" for n in names[1:])
        )
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="SciFact passages recalled from")
    parser.add_argument(
        "--ingest-n", type=int, default=1000, help="passages each ingest variant adds (0: --n)"
    )
    parser.add_argument("--queries", type=int, default=300, help="SciFact test queries")
    parser.add_argument("--embedders", default="1,2,4", help="embedder actors to compare")
    parser.add_argument("--shards", type=int, default=4, help="shards of the sharded cluster")
    parser.add_argument("--batch", type=int, default=100, help="records per add_many (0: all)")
    parser.add_argument("--channels", default="hybrid,lexical,dense")
    parser.add_argument("--warmup", type=int, default=10, help="untimed queries per channel")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its own)")
    parser.add_argument("--data", type=Path, default=DATA, help="SciFact corpus.jsonl.gz")
    parser.add_argument(
        "--niceness", type=int, help="Ray workers' niceness (default: Ray's own, 15)"
    )
    parser.add_argument("--no-local", action="store_true", help="skip the in-process shards")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    args.embedders = [int(e) for e in args.embedders.split(",") if e.strip()]
    if not args.embedders or min(args.embedders) < 1:
        parser.error("--embedders takes counts >= 1, e.g. 1,2,4")
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    args.cfg = load_config(None, embed={"threads": args.threads})
    args.ingest_n = min(args.ingest_n or args.n, args.n)

    docs = load_texts(args.n, args.data)
    records = [Record(text=t, document=i, source="scifact", chunk=False) for i, t in docs]
    queries = load_queries(args.queries, args.data)
    cpus = os.cpu_count() or 1
    ray_cpus = max(cpus, sum(args.embedders))
    start = time.perf_counter()
    ray = start_ray(ray_cpus, args.niceness)
    instrument()
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "machine": {
            "cpu_count": cpus,
            "ray_cpus": ray_cpus,
            "n": len(records),
            "ingest_n": args.ingest_n,
            "queries": len(queries),
            "batch": args.batch or len(records),
            "shards": args.shards,
            "threads": args.threads,
            "model": args.cfg.embed.model,
        },
    }
    with tempfile.TemporaryDirectory(prefix="engram-cluster-") as tmp:
        folder = Path(tmp)
        print(f"ingest: {args.ingest_n} passages, {cpus} CPUs", flush=True)
        result["ingest"], one, embedder = run_ingest(ray, records[: args.ingest_n], args, folder)

        print(f"recall: {len(records)} passages in every store", flush=True)
        for part in batches(records[args.ingest_n :], args.batch):
            one.add_many(part)  # the one store gets the rest (embedded here, untimed)
        clusters: dict[str, Cluster] = {}
        mem: dict[str, Any] = {"shards": {}}
        for shards in sorted({1, args.shards}):
            name = f"{shards}-shard"
            cluster = build_cluster([], shards, args, folder, embedder.vectors)
            empty = shard_mem(ray, cluster)
            for part in batches(records, args.batch):
                cluster.add_many(part)
            clusters[name] = cluster
            mem["shards"][name] = {
                "empty": empty,
                "ingested": shard_mem(ray, cluster),
                "gc": shard_mem(ray, cluster, gc_first=True),
                "trim": shard_mem(ray, cluster, gc_first=True, trim=True),
            }
        ray_clusters = dict(clusters)
        if not args.no_local:
            clusters[f"{args.shards}-shard local"] = build_cluster(
                records, args.shards, args, folder, embedder.vectors, backend="local"
            )
        stores: dict[str, Any] = {"one store": one, **clusters}
        result["recall_stores"] = list(stores)
        result["recall"] = run_recall(stores, queries, channels, args.warmup)
        result["round_trip_ms"] = {n: ray_round_trip(c, 100) for n, c in clusters.items()}
        for name, cluster in ray_clusters.items():
            mem["shards"][name]["recalled"] = shard_mem(ray, cluster)
        bare = ray.remote(num_cpus=0)(Bare).remote()
        bare_pid = ray.get(bare.pid.remote())
        mem["bare_actor"] = proc_mem(bare_pid)
        result["machine"]["actor_niceness"] = niceness(bare_pid)
        result["machine"]["own_niceness"] = niceness(os.getpid())
        mem["coordinator"] = proc_mem(os.getpid())
        result["memory"] = mem
        for cluster in clusters.values():
            cluster.close()
        one.close()
    ray.shutdown()
    result["seconds"] = time.perf_counter() - start
    table = report(result, args)
    result["table"] = table
    print()
    print(table)
    print(f"\n({result['seconds']:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
