"""Tool recall on BFCL (``../shared/data/tools``): eval figures, the BM25 baseline, latency.

1. ``engram eval PATH --kind tools`` (the k-fold usage protocol and the unseen-tools
   protocol; channels lexical, dense, text, pooled, matched, hybrid): its figures as they are.
2. The data set's own BM25 baseline in the same run (its MANIFEST: BM25Okapi k1 1.5, b 0.75,
   title + text, lowercase ``[a-z0-9]+`` tokens less the 33 Lucene stop words, no stemming,
   negative IDF floored at 0.25 x the mean IDF as rank_bm25 does), over every query.
3. Latency of ``Memory.recall_tools(request, k=10)`` with 2,000 tools (the 1,512 BFCL tools
   and 488 of them again under a second server) and every demonstration stored (fusion
   fitted): wall p50/p99 and the process's CPU time per call, queries in order, warm.

Usage::

    PYTHONPATH=src python bench/tools.py --data ../shared/data/tools --cache /tmp/tools-bench \
        --out bench/results/tools_bfcl.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from engramdb import Memory
from engramdb.eval import EvalOptions, evaluate
from engramdb.eval.metrics import ndcg_at_k, recall_at_k
from engramdb.eval.tools import ToolSet, load_tools

_STOP_WORDS = "a an and are as at be but by for if in into is it no not of on or such that the"
LUCENE_STOP = frozenset(f"{_STOP_WORDS} their then there these they this to was will with".split())
TOOLS = 2000


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in LUCENE_STOP]


def bm25_baseline(path: Path, data: ToolSet) -> dict[str, float]:
    """The MANIFEST's BM25 over the whole corpus, every query (no demonstrations used)."""
    rows = [json.loads(line) for line in (path / "corpus.jsonl").open(encoding="utf-8")]
    ids = [r["_id"] for r in rows]
    docs = [_tokens(r["title"] + " " + r["text"]) for r in rows]
    n = len(docs)
    avgdl = sum(map(len, docs)) / n
    df: Counter[str] = Counter(t for d in docs for t in set(d))
    idf = {t: math.log(n - c + 0.5) - math.log(c + 0.5) for t, c in df.items()}
    floor = 0.25 * sum(idf.values()) / len(idf)
    idf = {t: (v if v >= 0 else floor) for t, v in idf.items()}
    tfs = [Counter(d) for d in docs]
    lengths = np.array([len(d) for d in docs], dtype=float)
    k1, b = 1.5, 0.75
    sums: dict[str, list[float]] = {
        m: [] for m in ("recall@1", "recall@5", "ndcg@10", "name-recall@1", "name-recall@5")
    }
    for q in data.queries:
        scores = np.zeros(n)
        for term in _tokens(q.text):
            if term not in idf:
                continue
            tf = np.array([c[term] for c in tfs], dtype=float)
            scores += idf[term] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths / avgdl))
        order = [ids[i] for i in np.argsort(-scores, kind="stable")[:100]]
        rel = {c: 1 for c in q.relevant}
        names = {data.names[c] for c in q.relevant}
        sums["recall@1"].append(recall_at_k(order, rel, 1) or 0.0)
        sums["recall@5"].append(recall_at_k(order, rel, 5) or 0.0)
        sums["ndcg@10"].append(ndcg_at_k(order, rel, 10) or 0.0)
        merged = list(dict.fromkeys(data.names[c] for c in order))  # variants merged
        for k in (1, 5):
            sums[f"name-recall@{k}"].append(len(set(merged[:k]) & names) / len(names))
    return {m: round(float(np.mean(v)), 4) for m, v in sums.items()}


def latency(data: ToolSet, db: Path) -> dict[str, Any]:
    """recall_tools over 2,000 tools with every demonstration stored."""
    specs = [{**spec, "server": doc} for doc, spec in data.specs.items()]
    extra = [{**spec, "server": f"copy:{doc}"} for doc, spec in list(data.specs.items())]
    specs += extra[: TOOLS - len(specs)]
    with Memory.open(db) as mem:
        mem.add_tools(specs, namespace="bench")
        if not mem.recall_demos("x", 1, namespace="bench"):
            for request, calls in data.demos.values():
                mem.add_demo(request, list(calls), namespace="bench")
        mem.recall_tools("warm up", 10, namespace="bench")  # builds the index, fits the fusion
        walls, cpus = [], []
        for q in data.queries:
            w0, c0 = time.perf_counter(), time.process_time()
            mem.recall_tools(q.text, 10, namespace="bench")
            cpus.append((time.process_time() - c0) * 1000)
            walls.append((time.perf_counter() - w0) * 1000)
        tools = len(mem.tools(namespace="bench"))
    return {
        "tools": tools,
        "demos": len(data.demos),
        "queries": len(walls),
        "wall_ms": {
            "p50": round(float(np.percentile(walls, 50)), 3),
            "p99": round(float(np.percentile(walls, 99)), 3),
        },
        "cpu_ms": {
            "p50": round(float(np.percentile(cpus, 50)), 3),
            "p99": round(float(np.percentile(cpus, 99)), 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tools"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tools-bench"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip-eval", action="store_true", help="Latency and baseline only.")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    data = load_tools(args.data)
    out: dict[str, Any] = {
        "data": str(args.data),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "bm25_baseline": bm25_baseline(args.data, data),
    }
    print("BM25 baseline:", out["bm25_baseline"], flush=True)
    out["latency"] = latency(data, args.cache / "latency.db")
    print("latency:", out["latency"], flush=True)
    if not args.skip_eval:
        report = evaluate(args.data, EvalOptions(kind="tools", db=args.cache / "eval.db"))
        out["eval"] = {"metrics": report.metrics, "latency_ms": report.latency_ms}
        for channel, figures in report.metrics.items():
            shown = {k: v for k, v in figures.items() if isinstance(v, float)}
            print(
                channel,
                shown,
                "unseen:",
                {k: v for k, v in figures.get("unseen", {}).items() if isinstance(v, float)},
                flush=True,
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
