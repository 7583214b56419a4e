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
    # the engine's two lexical paths at a million memories, side by side (the store is built
    # once at --db, a few minutes, and reused; see run_scale)
    PYTHONPATH=src python bench/lexical.py --scale 1000000 --db /tmp/lexical-1m.db \
        --out bench/results/lexical_1m.json
"""

from __future__ import annotations

import argparse
import csv
import gc
import gzip
import importlib
import json
import platform
import shutil
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


# -- the engine's lexical channel at scale: FTS5's bm25() against the postings arrays ---------

SCALE_K = 100  # what recall asks each channel for (recall.candidates)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def build_scale_store(db: Path, n: int, data: SciFact) -> dict[str, Any]:
    """A store of the SciFact corpus (namespace ``scifact``) and ``n`` texts of the scale set
    (``gutenberg``: ``bench/_vectors.gutenberg_mix(n + 1000)`` less its first 1,000, which
    are the held-out queries), FTS5 filled by its triggers, then optimized. Texts only."""
    from engramdb.lexical.fts5 import FTS5Index as Index
    from engramdb.store.sqlite import SQLiteStore

    texts = _scale_texts(n)[1000:]
    store = SQLiteStore(db)
    index = Index(lambda: store.conn, LexicalConfig())
    with store.atomic(bump=False):
        index.ensure()
    rows = [("scifact", t, f"s{i}") for i, t in enumerate(data.texts)]
    rows += [("gutenberg", t, f"g{i}") for i, t in enumerate(texts)]
    start = time.perf_counter()
    for at in range(0, len(rows), 50_000):
        with store.atomic():
            store.conn.executemany(
                "INSERT INTO memories (namespace, text, hash, ingest_time) VALUES (?, ?, ?, 0)",
                rows[at : at + 50_000],
            )
        print(f"  inserted {min(at + 50_000, len(rows))} of {len(rows)}", flush=True)
    insert_s = time.perf_counter() - start
    start = time.perf_counter()
    with store.atomic(bump=False):
        index.optimize()
    optimize_s = time.perf_counter() - start
    store.close()
    return {"rows": len(rows), "insert_s": insert_s, "optimize_s": optimize_s}


def _scale_texts(n: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _vectors

    texts: list[str] = _vectors.gutenberg_mix(n + 1000)
    return texts


def _paired(
    queries: Sequence[str],
    old: Callable[[str], tuple[Any, Any]],
    new: Callable[[str], tuple[Any, Any]],
) -> dict[str, Any]:
    """Both paths on each query, in alternating order; latencies and any difference."""
    old_ms: list[float] = []
    new_ms: list[float] = []
    differ = 0
    for i, text in enumerate(queries):
        runs = [("old", old), ("new", new)] if i % 2 else [("new", new), ("old", old)]
        answers = {}
        for name, run in runs:
            best = float("inf")
            for _ in range(REPEAT):
                start = time.perf_counter()
                answers[name] = run(text)
                best = min(best, time.perf_counter() - start)
            (old_ms if name == "old" else new_ms).append(best * 1e3)
        (a_ids, a_scores), (b_ids, b_scores) = answers["old"], answers["new"]
        if a_ids.tolist() != b_ids.tolist() or a_scores.tolist() != b_scores.tolist():
            differ += 1
    return {
        "queries": len(queries),
        "fts5_p50_ms": float(np.percentile(old_ms, 50)),
        "fts5_p99_ms": float(np.percentile(old_ms, 99)),
        "postings_p50_ms": float(np.percentile(new_ms, 50)),
        "postings_p99_ms": float(np.percentile(new_ms, 99)),
        "p50_speedup": float(np.percentile(old_ms, 50) / np.percentile(new_ms, 50)),
        "answers_differ": differ,
    }


def _alone(queries: Sequence[str], new: Callable[[str], tuple[Any, Any]]) -> dict[str, Any]:
    ms: list[float] = []
    for text in queries:
        best = float("inf")
        for _ in range(REPEAT):
            start = time.perf_counter()
            new(text)
            best = min(best, time.perf_counter() - start)
        ms.append(best * 1e3)
    return {
        "queries": len(queries),
        "postings_p50_ms": float(np.percentile(ms, 50)),
        "postings_p99_ms": float(np.percentile(ms, 99)),
    }


def _term_counts(queries: Sequence[str]) -> dict[str, float]:
    from engramdb.lexical.tokenize import query_terms

    counts = [len(query_terms(q)) for q in queries]
    return {
        "p50": float(np.percentile(counts, 50)),
        "p90": float(np.percentile(counts, 90)),
        "max": float(max(counts)),
    }


def run_scale(args: argparse.Namespace, data: SciFact) -> dict[str, Any]:
    """The engine's lexical index (postings arrays) against FTS5's bm25() on one store.

    Both answer ``search([query], 100)`` (recall's depth) one query per call, single thread,
    on the same read snapshot; every answer is compared (ids and float32 scores). Query
    sets: the scale set's 1,000 held-out texts (paragraphs, sentences, sentence pairs) and
    the SciFact test queries, each unfiltered and with a namespace filter (``gutenberg``:
    nearly every row passes; ``scifact``: 0.5% pass). The FTS5 path reads every matching
    row, so it runs on the first ``--old-queries`` of each set; the postings path on all.
    """
    from engramdb.engine._lexical import LexicalIndex
    from engramdb.store.sqlite import SQLiteStore

    db: Path = args.db
    report: dict[str, Any] = {"db": str(db), "n": args.scale}
    if not db.exists():
        print(f"building {db} ({args.scale} texts + SciFact) ...", flush=True)
        report["store_build"] = build_scale_store(db, args.scale, data)
    folder = Path(f"{db}.lexical")
    if args.rebuild and folder.exists():
        shutil.rmtree(folder)
    held_out = _scale_texts(args.scale)[:1000]
    store = SQLiteStore(db)
    builder = LexicalIndex(store, LexicalConfig())
    start = time.perf_counter()
    builder.load()  # built from FTS5 and saved when the folder is missing (--rebuild)
    report["postings_load_s"] = time.perf_counter() - start
    report["postings_built"] = builder.builds == 1
    builder.close()
    del builder
    gc.collect()
    rss0 = _rss_mb()
    start = time.perf_counter()
    index = LexicalIndex(store, LexicalConfig())
    index.load()  # from the folder (memory-mapped): what every later open does
    report["postings_reload_s"] = time.perf_counter() - start
    report["rss_after_reload_mb"] = _rss_mb() - rss0
    info = index.postings_stats()
    report["postings"] = {**info, "folder_mb": _folder_mb(folder)}
    with store.reading():
        (fts_bytes,) = store.conn.execute(
            "SELECT sum(length(block)) FROM memories_fts_data"
        ).fetchone()
    report["fts5_index_mb"] = fts_bytes / 1e6
    print(f"postings: {report['postings']} (load {report['postings_load_s']:.1f} s)", flush=True)

    sets = {
        "gutenberg": (held_out, "gutenberg"),
        "scifact": (list(data.queries.values()), "scifact"),
    }
    results: dict[str, Any] = {}
    for name, (queries, own) in sets.items():
        part: dict[str, Any] = {"terms": _term_counts(queries)}
        for label, where, params in (
            ("all", None, ()),
            (f"ns={own}", "m.namespace = ?", (own,)),
            (
                f"ns={'scifact' if own == 'gutenberg' else 'gutenberg'}",
                "m.namespace = ?",
                ("scifact" if own == "gutenberg" else "gutenberg",),
            ),
        ):

            def old(text: str, where: str | None = where, params: tuple[Any, ...] = params) -> Any:
                with store.reading():
                    return index.fts.search([text], SCALE_K, where=where, params=params)

            def new(text: str, where: str | None = where, params: tuple[Any, ...] = params) -> Any:
                with store.reading():
                    return index.search([text], SCALE_K, where=where, params=params)

            for text in queries[:20]:  # warm the page cache and the tokenizer
                new(text)
            row = _paired(queries[: args.old_queries], old, new)
            row["all_queries"] = _alone(queries, new)
            part[label] = row
            print(f"  {name} {label}: {row}", flush=True)
        results[name] = part
    report["queries"] = results
    report["rss_after_queries_mb"] = _rss_mb() - rss0  # pages of the maps the queries read

    # SciFact quality at scale: the same rankings, so the same figures
    scifact_ids = {f"s{i}": doc for i, doc in enumerate(data.doc_ids)}
    with store.reading():
        hashes = dict(store.conn.execute("SELECT id, hash FROM memories").fetchall())
    rankings = {}
    for qid, text in data.queries.items():
        with store.reading():
            ids, _ = index.search([text], SCALE_K)
        rankings[qid] = [scifact_ids.get(hashes[i], hashes[i]) for i in ids[0].tolist() if i > 0]
    report["scifact_ndcg@10"] = mean_over_queries(
        [ndcg_at_k(rankings[q], data.qrels[q], 10) for q in data.queries]
    )
    report["scifact_recall@100"] = mean_over_queries(
        [recall_at_k(rankings[q], data.qrels[q], K) for q in data.queries]
    )

    report["catch_up"] = _catch_up(store, index, held_out, args.catch_up)
    index.close()
    store.close()
    return report


def _catch_up(store: Any, index: Any, texts: list[str], n: int) -> dict[str, float]:
    """Time for the first read after ``n`` memories are written (their postings made from
    the change log), and after they are deleted again (the store is left as it was)."""
    rows = [("bench-catch-up", f"{texts[i % len(texts)]} #{i}", f"c{i}") for i in range(n)]
    query = texts[0]
    with store.reading():
        index.search([query], SCALE_K)
    with store.atomic():
        store.conn.executemany(
            "INSERT INTO memories (namespace, text, hash, ingest_time) VALUES (?, ?, ?, 0)", rows
        )
    start = time.perf_counter()
    with store.reading():
        index.search([query], SCALE_K)
    added_s = time.perf_counter() - start
    with store.atomic():
        store.conn.execute("DELETE FROM memories WHERE namespace = 'bench-catch-up'")
    start = time.perf_counter()
    with store.reading():
        index.search([query], SCALE_K)
    deleted_s = time.perf_counter() - start
    return {
        "memories": n,
        "first_read_after_adding_s": added_s,
        "first_read_after_deleting_s": deleted_s,
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
    parser.add_argument(
        "--scale",
        type=int,
        default=0,
        help="run the engine's two lexical paths on this many "
        "scale-set texts + SciFact (instead of the systems)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=Path("/tmp/lexical-scale.db"),
        help="the --scale store (built there when missing)",
    )
    parser.add_argument(
        "--old-queries",
        type=int,
        default=200,
        help="--scale: queries per set that FTS5's path answers too",
    )
    parser.add_argument(
        "--catch-up",
        type=int,
        default=10_000,
        help="--scale: memories written to time the postings' catch-up",
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="--scale: remove the saved postings first (time their build)",
    )
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {unknown}; choose from {sorted(SYSTEMS)}")
    global REPEAT
    REPEAT = max(1, args.repeat)
    data = load_scifact(args.data, args.split, args.queries)
    if args.scale:
        report = run_scale(args, data)
        report.update(
            python=sys.version.split()[0],
            sqlite=sqlite3.sqlite_version,
            machine=platform.platform(),
            repeat=REPEAT,
        )
        print(json.dumps(report, indent=2))
        if args.out is not None:
            args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            print(f"wrote {args.out}")
        return 0
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
