"""Associative recall on MuSiQue (HippoRAG protocol): lexical, dense, graph and fusions.

Data: ``shared/data/musique`` (HippoRAG v1's 100-question MuSiQue train sample, 1,890
passages; a passage reads ``"<title>\\n<text>"``; supporting paragraphs are the qrels).
Metrics: R@2, R@5 and all-recall@5 (every supporting passage in the top 5), as HippoRAG
reports them, computed with ``engramdb.eval.metrics``.

Steps, all through the public engine:

1. a base store with every passage (default embedder, near-duplicate merging off, so
   passages stay distinct; exact duplicates merge and count for every corpus id they
   stand for), cached as ``bench/cache/musique-base.db``;
2. the graph: a copy of the base store gets its graph built by
   ``GraphChannel.backfill`` (the path ``Memory.open`` takes when the graph is enabled on a
   store that has memories), timed by part: spaCy extraction, phrase embedding, writes;
3. recall of the 100 questions on each channel (k = 100), then fusion variants computed
   from the per-channel runs with ``engramdb.retrieve.fusion``; the default
   ``hybrid+graph`` is also run through ``Memory.recall``;
4. single-query latency per channel (every question, one call each).

``--scifact`` also checks single-hop recall on BEIR SciFact (nDCG@10, R@10, R@100), with
the graph built on a copy of ``bench/cache/scifact.db`` (the store ``bench/precision.py``
caches; built here when missing).

Usage::

    PYTHONPATH=src python bench/graph_musique.py --out bench/results/graph_musique.json
    PYTHONPATH=src python bench/graph_musique.py --reuse          # keep the built graph
    PYTHONPATH=src python bench/graph_musique.py --reuse --scifact
    PYTHONPATH=src python bench/graph_musique.py --scifact --no-musique --out scifact.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engramdb import Memory, Record
from engramdb.eval.metrics import all_recall_at_k, mean_over_queries, ndcg_at_k, recall_at_k
from engramdb.graph.channel import GraphChannel
from engramdb.graph.extract import Extraction
from engramdb.retrieve.fusion import fuse

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "bench" / "cache"
BUILD: dict[str, Any] = {"recognize": {"enabled": False}}
DEPTH = 100
CHANNELS = ("lexical", "dense", "graph")
FUSIONS: dict[str, tuple[str, dict[str, float]]] = {
    "hybrid (rrf)": ("rrf", {"lexical": 1.0, "dense": 1.0}),
    "hybrid+graph rrf 1:1:1": ("rrf", {"lexical": 1.0, "dense": 1.0, "graph": 1.0}),
    "hybrid+graph rrf 1:1:3": ("rrf", {"lexical": 1.0, "dense": 1.0, "graph": 3.0}),
    "hybrid+graph rrf .5:1:40": ("rrf", {"lexical": 0.5, "dense": 1.0, "graph": 40.0}),
    "hybrid+graph weighted .3:1:2": ("weighted", {"lexical": 0.3, "dense": 1.0, "graph": 2.0}),
    "hybrid+graph weighted .1:.1:1": ("weighted", {"lexical": 0.1, "dense": 0.1, "graph": 1.0}),
    "hybrid+graph weighted .02:.02:1": (
        "weighted",
        {"lexical": 0.02, "dense": 0.02, "graph": 1.0},
    ),
}


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


@dataclass
class Dataset:
    records: list[Record]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def musique(folder: Path) -> Dataset:
    corpus = json.loads((folder / "musique_train_corpus.json").read_text(encoding="utf-8"))
    questions = json.loads((folder / "musique_train.json").read_text(encoding="utf-8"))
    index: dict[tuple[str, str], str] = {}
    records = []
    for number, row in enumerate(corpus):
        index.setdefault((row["title"], row["text"]), str(number))
        text = f"{row['title']}\n{row['text']}"
        records.append(Record(text=text, document=str(number), source="musique", chunk=False))
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for q in questions:
        queries[q["id"]] = q["question"]
        qrels[q["id"]] = {
            index[(p["title"], p["paragraph_text"])]: 1
            for p in q["paragraphs"]
            if p["is_supporting"]
        }
    return Dataset(records, queries, qrels)


def scifact(folder: Path) -> Dataset:
    queries = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, doc, score = line.split("\t")
        qrels.setdefault(qid, {})[doc] = int(score)
    records = []
    with gzip.open(folder / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = f"{row.get('title') or ''} {row['text']}".strip()
            records.append(Record(text=text, document=row["_id"], source="scifact", chunk=False))
    return Dataset(records, {q: queries[q] for q in qrels}, qrels)


# -- building ---------------------------------------------------------------------------------


def base_store(path: Path, data: Dataset, namespace: str) -> None:
    with Memory.open(path, **BUILD) as mem:
        if mem.stats().memories:
            return
        log("building", path, f"({len(data.records)} passages)")
        start = time.perf_counter()
        mem.add_many(data.records, namespace=namespace)
        log(f"base store built in {time.perf_counter() - start:.0f}s")


class _TimedExtractor:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    def extract(self, texts: Sequence[str]) -> list[Extraction]:
        start = time.perf_counter()
        out: list[Extraction] = self.inner.extract(texts)
        self.seconds += time.perf_counter() - start
        return out


class _TimedEncoder:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.seconds = 0.0
        self.texts = 0

    def embed_documents(self, texts: Sequence[str]) -> Any:
        start = time.perf_counter()
        out = self.inner.embed_documents(texts)
        self.seconds += time.perf_counter() - start
        self.texts += len(texts)
        return out


def build_graph(base: Path, path: Path, reuse: bool) -> dict[str, Any]:
    """Copy the base store and build its graph; returns timings and sizes."""
    if reuse and path.exists():
        log("reusing", path)
        return json.loads(path.with_suffix(".build.json").read_text(encoding="utf-8"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(base, path)
    with Memory.open(path, **BUILD) as mem:
        before = mem.stats().db_bytes
        store = mem.store  # this bench times the graph's build steps one by one
        channel = GraphChannel(lambda: store.conn, mem.config.graph, mem.embedder)
        extractor = _TimedExtractor(channel.extractor)
        encoder = _TimedEncoder(mem.embedder)
        channel.extractor, channel.encoder = extractor, encoder
        with store.atomic(bump=False):
            channel.ensure()
        log("building the graph")
        start = time.perf_counter()
        added = channel.backfill(
            store.atomic,
            progress=lambda _s, d, t: log(f"graph {d}/{t}") if d % 1024 == 0 else None,
        )
        total = time.perf_counter() - start
        after = mem.stats().db_bytes
        stats = {
            "passages": added,
            "seconds": round(total, 1),
            "extract_seconds": round(extractor.seconds, 1),
            "extract_passages_per_s": round(added / max(extractor.seconds, 1e-9), 1),
            "phrase_embed_seconds": round(encoder.seconds, 1),
            "phrases_embedded": encoder.texts,
            "write_seconds": round(total - extractor.seconds - encoder.seconds, 1),
            "db_bytes_added": after - before,
            **channel.store.counts(),
        }
        start = time.perf_counter()
        channel.index()
        stats["matrix_load_seconds"] = round(time.perf_counter() - start, 2)
    path.with_suffix(".build.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return stats


# -- evaluation -------------------------------------------------------------------------------


def documents_of(mem: Memory) -> dict[int, list[str]]:
    """memory id → every corpus id it stands for (exact duplicates merge)."""
    ids = mem.ids()
    out: dict[int, list[str]] = {}
    for start in range(0, len(ids), 500):
        for r in mem.get_many(ids[start : start + 500], sightings=True):
            docs = [str(s.position.document) for s in r.sightings] or [str(r.position.document)]
            out[r.id] = list(dict.fromkeys(docs))
    return out


Runs = dict[str, list[list[tuple[int, float]]]]


def channel_runs(mem: Memory, queries: Sequence[str]) -> Runs:
    runs: Runs = {}
    for channel in CHANNELS:
        start = time.perf_counter()
        hits = mem.recall_many(list(queries), k=DEPTH, channels=channel)
        log(f"{channel}: {len(queries)} queries in {time.perf_counter() - start:.1f}s")
        runs[channel] = [[(h.id, h.score) for h in hs] for hs in hits]
    return runs


def scores(
    ranked: Sequence[Sequence[int]],
    gold: Sequence[Mapping[str, int]],
    docs: Mapping[int, list[str]],
    metrics: Mapping[str, Callable[[Sequence[str], Mapping[str, int]], float | None]],
) -> dict[str, float | None]:
    expanded = [[d for m in run for d in docs.get(m, [])] for run in ranked]
    out: dict[str, float | None] = {}
    for name, fn in metrics.items():
        value = mean_over_queries(fn(r, g) for r, g in zip(expanded, gold, strict=True))
        out[name] = None if value is None else round(value, 4)
    return out


MULTIHOP = {
    "R@2": lambda r, g: recall_at_k(r, g, 2),
    "R@5": lambda r, g: recall_at_k(r, g, 5),
    "AR@5": lambda r, g: all_recall_at_k(r, g, 5),
}
BEIR = {
    "nDCG@10": lambda r, g: ndcg_at_k(r, g, 10),
    "R@10": lambda r, g: recall_at_k(r, g, 10),
    "R@100": lambda r, g: recall_at_k(r, g, 100),
}


def evaluate(mem: Memory, data: Dataset, metrics: Mapping[str, Any]) -> dict[str, Any]:
    qids = list(data.qrels)
    queries = [data.queries[q] for q in qids]
    gold = [data.qrels[q] for q in qids]
    docs = documents_of(mem)
    runs = channel_runs(mem, queries)
    table: dict[str, Any] = {}
    for channel, per_query in runs.items():
        table[channel] = scores([[m for m, _ in r] for r in per_query], gold, docs, metrics)
    for name, (method, weights) in FUSIONS.items():
        chans = [c for c in weights if c in runs]
        fused = [
            [m for m, _ in fuse({c: runs[c][i] for c in chans}, method=method, weights=weights)]
            for i in range(len(qids))
        ]
        table[name] = scores(fused, gold, docs, metrics)
    hits = mem.recall_many(queries, k=DEPTH, channels="hybrid+graph")
    table["hybrid+graph (Memory default)"] = scores([h.ids for h in hits], gold, docs, metrics)
    per_hop: dict[str, Any] = {}
    for hops in sorted({q.split("hop")[0] for q in qids if "hop" in q}):
        pick = [i for i, q in enumerate(qids) if q.startswith(hops + "hop")]
        per_hop[f"{hops}-hop (n={len(pick)})"] = {
            c: scores(
                [[m for m, _ in runs[c][i]] for i in pick], [gold[i] for i in pick], docs, metrics
            )
            for c in CHANNELS
        }
    halves = {}
    for label, part in (("first 50", slice(0, 50)), ("last 50", slice(50, None))):
        halves[label] = {
            c: scores([[m for m, _ in r] for r in runs[c][part]], gold[part], docs, metrics)
            for c in CHANNELS
        }
    return {"metrics": table, "by_hops": per_hop, "halves": halves}


def latency(mem: Memory, queries: Sequence[str], channels: Sequence[str]) -> dict[str, Any]:
    out = {}
    for channel in channels:
        mem.recall(queries[0], k=10, channels=channel)  # warm
        times = []
        for q in queries:
            start = time.perf_counter()
            mem.recall(q, k=10, channels=channel)
            times.append(time.perf_counter() - start)
        ms = np.asarray(times) * 1000
        out[channel] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
        }
    return out


def ppr_vs_networkx(mem: Memory, queries: Sequence[str], n: int = 3) -> dict[str, Any]:
    """Our scipy power iteration against networkx.pagerank on the real graph: time and
    largest score difference, for the first ``n`` queries' reset vectors."""
    try:
        import networkx as nx
    except ImportError:
        return {"skipped": "networkx not installed"}
    index = mem.graph.index()
    graph = nx.from_scipy_sparse_array(index.adjacency)
    damping = mem.config.graph.damping
    out: dict[str, list[float]] = {"ours_ms": [], "networkx_ms": [], "max_abs_diff": []}
    for query in queries[:n]:
        phrases = list(mem.graph.extractor.extract([query])[0].phrases)
        seeds = index.link(phrases) or {0: 1.0}
        reset = np.zeros(len(index))
        for node, weight in seeds.items():
            reset[node] = weight
        start = time.perf_counter()
        ours = index.walk.ppr(reset, damping=damping, tol=1e-12)
        out["ours_ms"].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        ranks = nx.pagerank(
            graph,
            alpha=damping,
            personalization={i: float(w) for i, w in enumerate(reset) if w > 0},
            weight="weight",
            tol=1e-12,
            max_iter=1000,
        )
        out["networkx_ms"].append((time.perf_counter() - start) * 1000)
        ref = np.asarray([ranks[i] for i in range(len(index))])
        out["max_abs_diff"].append(float(np.abs(ours - ref).max()))
    return {k: [round(v, 9 if k == "max_abs_diff" else 1) for v in vs] for k, vs in out.items()}


def print_table(title: str, table: Mapping[str, Mapping[str, float | None]]) -> None:
    names = list(next(iter(table.values())))
    print(f"\n{title}")
    print(f"{'system':<36}" + "".join(f"{n:>9}" for n in names))
    for system, row in table.items():
        print(f"{system:<36}" + "".join(f"{(row[n] or 0):>9.3f}" for n in names))


def run_set(
    name: str, data: Dataset, base: Path, reuse: bool, metrics: Mapping[str, Any]
) -> dict[str, Any]:
    base_store(base, data, name)
    graph_db = CACHE / f"{name}-graph.db"
    build = build_graph(base, graph_db, reuse)
    log("graph build", build)
    with Memory.open(graph_db, **BUILD, graph={"enabled": True}) as mem:
        result = evaluate(mem, data, metrics)
        queries = [data.queries[q] for q in data.qrels]
        result["latency"] = latency(
            mem, queries[:100], ("lexical", "dense", "graph", "hybrid+graph")
        )
        result["ppr_vs_networkx"] = ppr_vs_networkx(mem, queries)
        result["config"] = {"graph": repr(mem.config.graph), "recall": repr(mem.config.recall)}
    result["build"] = build
    print_table(f"{name}: {len(data.qrels)} queries", result["metrics"])
    print("latency", result["latency"])
    print("ppr vs networkx", result["ppr_vs_networkx"])
    print("build", build)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--musique", type=Path, default=DATA / "musique")
    ap.add_argument("--scifact", action="store_true", help="also run BEIR SciFact")
    ap.add_argument("--no-musique", action="store_true", help="skip MuSiQue (with --scifact)")
    ap.add_argument("--reuse", action="store_true", help="reuse a graph built earlier")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if not args.no_musique:
        data = musique(args.musique)
        report["musique"] = run_set(
            "musique", data, CACHE / "musique-base.db", args.reuse, MULTIHOP
        )
    if args.scifact:
        sci = scifact(DATA / "scifact")
        base = CACHE / "scifact-base.db"
        shared = CACHE / "scifact.db"  # bench/precision.py's store: copied, never written
        if not base.exists() and shared.exists():
            with sqlite3.connect(f"file:{shared}?mode=ro", uri=True) as src:
                dst = sqlite3.connect(base)
                src.backup(dst)
                dst.close()
        report["scifact"] = run_set("scifact", sci, base, args.reuse, BEIR)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        log("wrote", args.out)


if __name__ == "__main__":
    main()
