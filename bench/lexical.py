"""Lexical retrieval on BEIR SciFact: SQLite FTS5 (porter, unicode61) against bm25s.

Quality: nDCG@10 and recall@100 on the test queries (BEIR protocol, ``engramdb.eval.metrics``).
Speed: index build time and single-thread query latency (p50/p99, query tokenization
included, one query per call). Documents are indexed as ``title + " " + text``.

Systems:

* ``fts5-porter``: FTS5Index with the default tokenizer, ``porter unicode61 remove_diacritics 2``,
  English stop words dropped from queries; built through the insert triggers (the ingest path);
* ``fts5-unicode61``: the same without stemming;
* ``fts5-porter-nostop``: ``fts5-porter`` keeping stop words in queries;
* ``bm25s``: bm25s with its defaults (Lucene idf, k1 = 1.5, b = 0.75), English stop words and
  PyStemmer's English stemmer when installed (``pip install PyStemmer``).

Usage::

    PYTHONPATH=src python bench/lexical.py --out lexical.json
    PYTHONPATH=src python bench/lexical.py --systems fts5-porter,bm25s --queries 50
    # latency at scale: add N Gutenberg paragraphs as distractors (never relevant)
    PYTHONPATH=src python bench/lexical.py --systems fts5-porter,bm25s --distractors 100000
"""

from __future__ import annotations

import argparse
import csv
import gzip
import importlib
import json
import platform
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engramdb.config import LexicalConfig
from engramdb.eval.metrics import mean_over_queries, ndcg_at_k, recall_at_k
from engramdb.lexical import FTS5Index

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = SHARED_DATA / "scifact"
GUTENBERG = SHARED_DATA / "gutenberg" / "paragraphs.jsonl.gz"
K = 100


@dataclass
class SciFact:
    doc_ids: list[str]
    texts: list[str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass
class Result:
    system: str
    settings: dict[str, Any]
    build_s: float
    rankings: dict[str, list[str]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


def load_scifact(data: Path, split: str, limit: int | None) -> SciFact:
    doc_ids: list[str] = []
    texts: list[str] = []
    with gzip.open(data / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            doc_ids.append(str(doc["_id"]))
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}")
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels" / f"{split}.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries: dict[str, str] = {}
    with (data / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            if str(q["_id"]) in qrels:
                queries[str(q["_id"])] = q["text"]
    if limit is not None:
        queries = dict(list(queries.items())[:limit])
    return SciFact(doc_ids, texts, queries, qrels)


def add_distractors(data: SciFact, n: int, path: Path = GUTENBERG) -> None:
    """Append the first ``n`` Gutenberg paragraphs to the corpus (ids ``gutenberg-<i>``)."""
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= n:
                break
            data.doc_ids.append(f"gutenberg-{i}")
            data.texts.append(json.loads(line)["text"])


REPEAT = 1
"""Timed passes per query; the latency kept is the fastest (``--repeat``, for busy machines)."""


def _timed_queries(data: SciFact, run_one: Callable[[str], list[str]], result: Result) -> None:
    for qid, text in data.queries.items():  # warm-up pass, which also gives the rankings
        result.rankings[qid] = run_one(text)
    for text in data.queries.values():
        best = float("inf")
        for _ in range(REPEAT):
            start = time.perf_counter()
            run_one(text)
            best = min(best, time.perf_counter() - start)
        result.latencies_ms.append(best * 1e3)


def run_fts5(data: SciFact, name: str, config: LexicalConfig) -> Result:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE memories (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, "
        "text TEXT NOT NULL)"
    )
    index = FTS5Index(conn, config)
    index.ensure()
    rows = [(i + 1, "default", text) for i, text in enumerate(data.texts)]
    start = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO memories (id, namespace, text) VALUES (?, ?, ?)", rows)
    build_s = time.perf_counter() - start
    result = Result(name, {"tokenizer": config.tokenizer, "stopwords": config.stopwords}, build_s)
    start = time.perf_counter()
    index.rebuild()
    result.extra["rebuild_s"] = time.perf_counter() - start

    def run_one(text: str) -> list[str]:
        ids, _ = index.search([text], K)
        return [data.doc_ids[i - 1] for i in ids[0].tolist() if i >= 0]

    _timed_queries(data, run_one, result)
    # The engine filters by namespace in the same statement: measure that path too.
    filtered: list[float] = []
    for text in data.queries.values():
        best = float("inf")
        for _ in range(REPEAT):
            start = time.perf_counter()
            index.search([text], K, where="m.namespace = ?", params=("default",))
            best = min(best, time.perf_counter() - start)
        filtered.append(best * 1e3)
    result.extra["where_p50_ms"] = float(np.percentile(filtered, 50))
    result.extra["where_p99_ms"] = float(np.percentile(filtered, 99))
    conn.close()
    return result


def run_bm25s(data: SciFact) -> Result:
    import bm25s

    try:
        stemmer: Any = importlib.import_module("Stemmer").Stemmer("english")
        stem_name = "PyStemmer english"
    except ImportError:
        stemmer, stem_name = None, "none (PyStemmer not installed)"
    start = time.perf_counter()
    tokens = bm25s.tokenize(data.texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    build_s = time.perf_counter() - start
    settings = {"method": "lucene", "k1": 1.5, "b": 0.75, "stopwords": "en", "stemmer": stem_name}
    result = Result("bm25s", settings, build_s)

    def run_one(text: str) -> list[str]:
        q = bm25s.tokenize([text], stopwords="en", stemmer=stemmer, show_progress=False)
        if not q.vocab:
            return []
        docs, _ = retriever.retrieve(q, k=K, n_threads=1, show_progress=False)
        return [data.doc_ids[i] for i in docs[0].tolist()]

    _timed_queries(data, run_one, result)
    return result


def summarize(result: Result, data: SciFact) -> dict[str, Any]:
    ndcg = [ndcg_at_k(result.rankings[q], data.qrels[q], 10) for q in data.queries]
    recall = [recall_at_k(result.rankings[q], data.qrels[q], K) for q in data.queries]
    return {
        "settings": result.settings,
        "ndcg@10": mean_over_queries(ndcg),
        "recall@100": mean_over_queries(recall),
        "build_s": result.build_s,
        "query_p50_ms": float(np.percentile(result.latencies_ms, 50)),
        "query_p99_ms": float(np.percentile(result.latencies_ms, 99)),
        **result.extra,
    }


SYSTEMS: dict[str, Callable[[SciFact], Result]] = {
    "fts5-porter": lambda d: run_fts5(d, "fts5-porter", LexicalConfig()),
    "fts5-unicode61": lambda d: run_fts5(
        d, "fts5-unicode61", LexicalConfig(tokenizer="unicode61 remove_diacritics 2")
    ),
    "fts5-porter-nostop": lambda d: run_fts5(
        d, "fts5-porter-nostop", LexicalConfig(stopwords=False)
    ),
    "bm25s": run_bm25s,
}


def print_table(rows: dict[str, dict[str, Any]]) -> None:
    head = f"{'system':<20}{'nDCG@10':>9}{'R@100':>8}{'build s':>9}{'p50 ms':>8}{'p99 ms':>8}"
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        print(
            f"{name:<20}{r['ndcg@10']:>9.4f}{r['recall@100']:>8.4f}{r['build_s']:>9.2f}"
            f"{r['query_p50_ms']:>8.2f}{r['query_p99_ms']:>8.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--systems", default="fts5-porter,fts5-unicode61,fts5-porter-nostop,bm25s")
    parser.add_argument("--queries", type=int, default=None, help="use only the first N queries")
    parser.add_argument(
        "--distractors", type=int, default=0, help="add N Gutenberg paragraphs to the corpus"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="time each query N times and keep the fastest"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {unknown}; choose from {sorted(SYSTEMS)}")
    global REPEAT
    REPEAT = max(1, args.repeat)
    data = load_scifact(args.data, args.split, args.queries)
    if args.distractors:
        add_distractors(data, args.distractors)
    print(f"SciFact {args.split}: {len(data.texts)} docs, {len(data.queries)} queries")
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        rows[name] = summarize(SYSTEMS[name](data), data)
        print(f"  {name}: done", flush=True)
    print_table(rows)
    if args.out is not None:
        report = {
            "dataset": "beir/scifact",
            "split": args.split,
            "docs": len(data.texts),
            "distractors": args.distractors,
            "repeat": REPEAT,
            "queries": len(data.queries),
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "machine": platform.platform(),
            "results": rows,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
