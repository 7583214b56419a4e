"""Graph-query latency: forward push against power iteration, on MuSiQue and synthetic graphs.

Two paths are timed, query by query, push and power iteration alternating on the same
query (so machine load hits both alike):

* ``GraphIndex``: linking the query's phrases (exact and fuzzy), PPR, ranking and the
  ``via`` explanations — what the graph channel costs once the query's phrases and dense
  run are known;
* ``Memory.recall(channels=["graph"])`` (MuSiQue only): the whole read path, spaCy on the
  query and the dense run included.

Graphs:

* MuSiQue's (``--musique DB``: a store with its graph built, such as the
  ``bench/cache/musique-graph.db`` that ``bench/graph_musique.py`` leaves), queried with
  its 100 questions;
* synthetic phrase graphs of growing size (``--sizes``), built from a
  :class:`GraphSnapshot` directly: Zipfian phrase frequencies, 20–40 phrases per passage,
  co-occurrence pairs within sentence-sized groups of them, a few synonym edges, a fifth of
  mentions repeated. Each query takes three phrases of a random passage and one frequent
  phrase as seeds and a simulated dense run (the ``dense_seeds`` best of noisy scores, with
  the passages holding the seeds scored higher), as the engine passes it.

Each size also reports how far push is from power iteration (tol 1e-12): the largest
passage-mass error against its bound, and the overlap of the top 10 and top 100.
``--rebuild-sizes`` times what any write costs the next recall: the in-memory index is
rebuilt from a full ``SQLiteGraph.snapshot()`` (a synthetic graph written straight into the
graph tables, 384-d float16 phrase vectors).

Timings are wall clock and CPU time of this process (``cpu_*``): on a shared machine the
CPU time is the cost of the query itself.

Usage::

    PYTHONPATH=src python bench/graph_query.py --musique bench/cache/musique-graph.db \\
        --out bench/results/graph_query.json
    PYTHONPATH=src python bench/graph_query.py --sizes 1000 10000 --queries 50
    PYTHONPATH=src python bench/graph_query.py --sizes --rebuild-sizes 3000 10000 30000
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engramdb.config import GraphConfig
from engramdb.graph.recall import GraphIndex
from engramdb.graph.sqlite import GraphSnapshot

CONFIG = GraphConfig()
DEPTH = 100
_OPTIONS = {"damping": CONFIG.damping, "passage_weight": CONFIG.passage_weight}


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# -- synthetic graphs -----------------------------------------------------------------------


def synthetic(n_passages: int, seed: int = 0, zipf: float = 1.0) -> GraphSnapshot:
    """A phrase graph shaped like a spaCy one: see the module docstring."""
    rng = np.random.default_rng(seed)
    vocab = 12 * n_passages
    weights = 1.0 / np.arange(1, vocab + 1, dtype=np.float64) ** zipf
    cdf = np.cumsum(weights / weights.sum())
    sizes = rng.integers(20, 41, size=n_passages)
    drawn = np.minimum(np.searchsorted(cdf, rng.random(int(sizes.sum()))), vocab - 1)
    owner = np.repeat(np.arange(n_passages), sizes)
    # one mention row per (passage, phrase); repeats within a passage become its count
    key = np.unique(owner.astype(np.int64) * vocab + drawn)
    m_passage, m_phrase = key // vocab, key % vocab
    used, phrase_index = np.unique(m_phrase, return_inverse=True)
    n_phrases = used.size
    counts = np.where(rng.random(key.size) < 0.2, rng.integers(2, 4, size=key.size), 1)
    named = (rng.random(n_phrases) < 0.4)[phrase_index]
    mentions = np.stack([phrase_index, m_passage, counts, named.astype(np.int64)], axis=1)
    # sentences: consecutive groups of 4-8 mentions of a passage; pairs within a group
    starts = np.flatnonzero(np.r_[True, m_passage[1:] != m_passage[:-1]])
    rank = np.arange(key.size) - np.repeat(starts, np.diff(np.r_[starts, key.size]))
    group_size = rng.integers(4, 9, size=n_passages)
    group = m_passage * 64 + rank // group_size[m_passage]
    pairs_a, pairs_b = _pairs_within(group, phrase_index)
    pair_key, pair_weight = np.unique(pairs_a * n_phrases + pairs_b, return_counts=True)
    n_syn = n_phrases // 3
    sa, sb = rng.integers(0, n_phrases, size=(2, n_syn))
    ok = sa != sb
    syn = np.unique(np.stack([np.minimum(sa, sb), np.maximum(sa, sb)], axis=1)[ok], axis=0)
    return GraphSnapshot(
        phrases=tuple(f"p{i}" for i in range(n_phrases)),
        vectors=np.zeros((n_phrases, 0), dtype=np.float32),
        memory_ids=np.arange(1, n_passages + 1, dtype=np.int64),
        mentions=mentions.astype(np.int64),
        pairs=np.stack([pair_key // n_phrases, pair_key % n_phrases], axis=1),
        pair_weights=pair_weight.astype(np.float32),
        synonyms=syn.astype(np.int64),
        synonym_scores=rng.uniform(0.8, 1.0, size=len(syn)).astype(np.float32),
    )


def _pairs_within(group: np.ndarray, phrase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (smaller, larger phrase) of mentions sharing a group (groups ≤ 8 rows)."""
    order = np.argsort(group, kind="stable")
    g, p = group[order], phrase[order]
    a_parts, b_parts = [], []
    for shift in range(1, 8):
        same = g[shift:] == g[:-shift]
        a, b = p[:-shift][same], p[shift:][same]
        a_parts.append(np.minimum(a, b))
        b_parts.append(np.maximum(a, b))
    a_all, b_all = np.concatenate(a_parts), np.concatenate(b_parts)
    keep = a_all != b_all
    return a_all[keep], b_all[keep]


def synthetic_queries(
    index: GraphIndex, n: int, seed: int = 1
) -> list[tuple[list[str], list[tuple[int, float]]]]:
    """(query phrases, dense run) per query: see the module docstring."""
    rng = np.random.default_rng(seed)
    mentions = index.snapshot.mentions
    by_passage = np.argsort(mentions[:, 1], kind="stable")
    bounds = np.searchsorted(mentions[by_passage, 1], np.arange(index.n_passages + 1))
    frequent = np.argsort(-index.passages_per_phrase)[:50]
    seeds_n = min(CONFIG.dense_seeds, index.n_passages)
    out = []
    for _ in range(n):
        target = int(rng.integers(index.n_passages))
        rows = by_passage[bounds[target] : bounds[target + 1]]
        own = rng.choice(mentions[rows, 0], size=min(3, len(rows)), replace=False)
        phrases = [index.phrases[int(j)] for j in own]
        phrases.append(index.phrases[int(rng.choice(frequent))])
        scores = rng.normal(0.25, 0.07, size=index.n_passages)
        near = mentions[np.isin(mentions[:, 0], own), 1]
        scores[near] += rng.uniform(0.1, 0.3, size=near.size)
        scores[target] = 0.8
        top = np.argsort(-scores)[:seeds_n]
        dense = [(int(index.memory_ids[i]), float(scores[i])) for i in top]
        out.append((phrases, dense))
    return out


# -- timing ---------------------------------------------------------------------------------


def _percentiles(seconds: Sequence[float], cpu: Sequence[float]) -> dict[str, float]:
    """Wall-clock p50/p99/mean, and the same of this process's CPU time (``cpu_*``: what
    the query costs without the other processes of a shared machine)."""
    ms, cpu_ms = np.asarray(seconds) * 1000, np.asarray(cpu) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 2),
        "cpu_p99_ms": round(float(np.percentile(cpu_ms, 99)), 2),
    }


def index_query(
    index: GraphIndex, phrases: list[str], dense: list[tuple[int, float]], epsilon: float
) -> list[tuple[int, float]]:
    """The graph channel's work for one query, from its phrases and dense run."""
    seeds = index.link(
        phrases,
        {},
        top_k=CONFIG.link_top_k,
        threshold=CONFIG.link_threshold,
        common_weight=CONFIG.common_phrase_weight,
    )
    found = index.recall(
        seeds,
        dense,
        depth=DEPTH,
        damping=CONFIG.damping,
        passage_weight=CONFIG.passage_weight,
        epsilon=epsilon,
    )
    return list(found.run)


def side_by_side(runs: dict[str, Callable[[int], object]], n: int) -> dict[str, dict[str, float]]:
    """Time each variant on queries 0..n-1, alternating which goes first."""
    names = list(runs)
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for q in range(n):
        order = names if q % 2 == 0 else names[::-1]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[name](q)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {k: _percentiles(times[k], cpu[k]) for k in names}


def _accuracy_on(
    index: GraphIndex, rows: Sequence[tuple[dict[int, float], Any, dict[str, Any]]], eps: float
) -> dict[str, float]:
    """Push against power iteration run to tol 1e-12, on passage masses and top lists;
    ``rows``: (seeds, dense run, recall options) per query."""
    worst_ratio, worst_error, top10, top100 = 0.0, 0.0, [], []
    for seeds, dense, options in rows:
        if not seeds:
            continue
        damping, weight = options["damping"], options["passage_weight"]
        found = index.ppr(seeds, dense, damping=damping, passage_weight=weight, epsilon=eps)
        nodes, weights = index._reset(seeds, dense, weight)
        reset = np.zeros(len(index))
        reset[nodes] = weights
        exact = index.walk.ppr(reset, damping=damping, tol=1e-12, max_iter=5000)
        p = slice(index.n_phrases, None)
        error = exact[p] - found.estimate[p]
        bound = found.bound(index.push.degree)[p]
        worst_ratio = max(worst_ratio, float((error / np.maximum(bound, 1e-300)).max()))
        worst_error = max(worst_error, float(np.abs(error).max()))
        a, b = np.argsort(-exact[p], kind="stable"), np.argsort(-found.estimate[p], kind="stable")
        top10.append(len(set(a[:10].tolist()) & set(b[:10].tolist())) / 10)
        top100.append(len(set(a[:100].tolist()) & set(b[:100].tolist())) / 100)
    return {
        "max_passage_error": worst_error,
        "max_error_over_bound": round(worst_ratio, 4),
        "top10_overlap": round(float(np.mean(top10)), 4),
        "top100_overlap": round(float(np.mean(top100)), 4),
    }


def synthetic_size(n_passages: int, n_queries: int, eps: float) -> dict[str, Any]:
    start = time.perf_counter()
    snap = synthetic(n_passages)
    made = time.perf_counter() - start
    start = time.perf_counter()
    index = GraphIndex(snap, max_synonyms=CONFIG.max_synonyms)
    built = time.perf_counter() - start
    start = time.perf_counter()
    index.walk  # noqa: B018 - build the power-iteration operator outside the timings
    walk_built = time.perf_counter() - start
    queries = synthetic_queries(index, n_queries)
    index_query(index, *queries[0], eps)  # warm
    index_query(index, *queries[0], 0.0)
    timing = side_by_side(
        {
            "push": lambda q: index_query(index, *queries[q], eps),
            "power": lambda q: index_query(index, *queries[q], 0.0),
        },
        n_queries,
    )
    work = [
        index.ppr(
            index.link(ph, {}, common_weight=CONFIG.common_phrase_weight),
            dn,
            damping=CONFIG.damping,
            passage_weight=CONFIG.passage_weight,
            epsilon=eps,
        )
        for ph, dn in queries[:20]
    ]
    return {
        "passages": n_passages,
        "phrases": index.n_phrases,
        "edges": int(index.adjacency.nnz // 2),
        "snapshot_seconds": round(made, 2),
        "index_build_seconds": round(built, 2),
        "power_operator_build_seconds": round(walk_built, 2),
        "graph_index_query": timing,
        "push_edge_visits_mean": int(np.mean([w.edges for w in work])),
        "push_touched_nodes_mean": int(np.mean([w.touched.size for w in work])),
        "accuracy": _accuracy_on(
            index,
            [
                (index.link(ph, {}, common_weight=CONFIG.common_phrase_weight), dn, _OPTIONS)
                for ph, dn in queries[:10]
            ],
            eps,
        ),
    }


# -- MuSiQue ----------------------------------------------------------------------------------


def musique_queries(mem: Any, questions: Sequence[str]) -> list[dict[str, Any]]:
    """Per question, what the graph channel gets: its phrases (and the vectors of those the
    graph lacks), the dense run, and the seeds and options the engine passed."""
    captured: list[dict[str, Any]] = []
    real = GraphIndex.recall_many

    def spy(self: GraphIndex, seeds: Any, dense: Any, **options: Any) -> Any:
        captured.append({"seeds": seeds[0], "dense": list(dense[0]), "options": options})
        return real(self, seeds, dense, **options)

    GraphIndex.recall_many = spy  # type: ignore[method-assign]
    try:
        for q in questions:
            mem.recall(q, k=10, channels=["graph"])
    finally:
        GraphIndex.recall_many = real  # type: ignore[method-assign]
    index = mem.graph.index()
    out = []
    for q, call in zip(questions, captured, strict=True):
        phrases = list(mem.graph.extractor.extract([q])[0].phrases)
        unknown = [p for p in phrases if index.phrase_index(p) is None]
        vectors = dict(zip(unknown, mem.embedder.embed_documents(unknown), strict=True))
        out.append({"phrases": phrases, "vectors": vectors, **call})
    return out


def musique(db: Path, n_queries: int, eps: float, epsilons: Sequence[float]) -> dict[str, Any]:
    from engramdb import Memory

    sys.path.insert(0, str(Path(__file__).parent))
    import graph_musique as gm

    data = gm.musique(gm.DATA / "musique")
    qids = list(data.qrels)
    questions = [data.queries[q] for q in qids]
    with Memory.open(db, **gm.BUILD, graph={"enabled": True}) as mem:
        start = time.perf_counter()
        snapshot = mem.graph.store.snapshot()
        read = time.perf_counter() - start
        start = time.perf_counter()
        GraphIndex(snapshot, max_synonyms=mem.config.graph.max_synonyms)
        build = time.perf_counter() - start
        index = mem.graph.index()
        calls = musique_queries(mem, questions)
        docs = gm.documents_of(mem)
        cfg = mem.config.graph

        def graph_path(c: dict[str, Any], eps: float) -> list[tuple[int, float]]:
            seeds = index.link(
                c["phrases"],
                c["vectors"],
                top_k=cfg.link_top_k,
                threshold=cfg.link_threshold,
                common_weight=cfg.common_phrase_weight,
            )
            return list(index.recall(seeds, c["dense"], **{**c["options"], "epsilon": eps}).run)

        quality: dict[str, Any] = {}
        gold = [data.qrels[q] for q in qids]
        for e in dict.fromkeys([0.0, eps, *epsilons]):
            runs = [[m for m, _ in graph_path(c, e)] for c in calls]
            quality[f"epsilon={e:g}"] = {
                "all": gm.scores(runs, gold, docs, gm.MULTIHOP),
                "first 50": gm.scores(runs[:50], gold[:50], docs, gm.MULTIHOP),
                "last 50": gm.scores(runs[50:], gold[50:], docs, gm.MULTIHOP),
            }
            log("musique", f"epsilon={e:g}", quality[f"epsilon={e:g}"]["all"])
        n = min(n_queries, len(calls))
        timing = side_by_side(
            {
                "push": lambda q: graph_path(calls[q], eps),
                "power": lambda q: graph_path(calls[q], 0.0),
            },
            n,
        )
        whole = _memory_path(mem, questions[:n], eps)
        accuracy_rows = [(c["seeds"], c["dense"], c["options"]) for c in calls[:10]]
        return {
            "passages": index.n_passages,
            "phrases": index.n_phrases,
            "edges": int(index.adjacency.nnz // 2),
            "snapshot_read_seconds": round(read, 2),
            "index_build_seconds": round(build, 2),
            "epsilon": eps,
            "quality": quality,
            "graph_index_query": timing,
            "memory_recall_graph": whole,
            "accuracy": _accuracy_on(index, accuracy_rows, eps),
        }


def _memory_path(mem: Any, questions: Sequence[str], eps: float) -> dict[str, Any]:
    """Memory.recall(channels=["graph"]), push and power iteration alternating."""
    from dataclasses import replace

    configs = {"push": eps, "power": 0.0}
    base = mem.graph.config
    mem.recall(questions[0], k=10, channels=["graph"])  # warm

    def run(name: str, q: int) -> None:
        mem.graph.config = replace(base, ppr_epsilon=configs[name])
        try:
            mem.recall(questions[q], k=10, channels=["graph"])
        finally:
            mem.graph.config = base

    return side_by_side(
        {"push": lambda q: run("push", q), "power": lambda q: run("power", q)}, len(questions)
    )


def rebuild_cost(n_passages: int, dim: int = 384) -> dict[str, Any]:
    """What a write costs the next recall: ``SQLiteGraph.snapshot()`` of a synthetic graph
    written straight into the graph tables (float16 phrase vectors of ``dim``), then the
    ``GraphIndex`` built from it."""
    import sqlite3

    from engramdb.graph.sqlite import SQLiteGraph

    snap = synthetic(n_passages)
    ids = snap.memory_ids.tolist()
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT)")
        conn.executemany("INSERT INTO memories VALUES (?, '')", ((m,) for m in ids))
        graph = SQLiteGraph(conn)
        graph.ensure({"bench": "graph_query"})
        vector = np.random.default_rng(0).standard_normal(dim).astype(np.float16).tobytes()
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO graph_nodes (id, phrase, vector) VALUES (?, ?, ?)",
            ((i + 1, p, vector) for i, p in enumerate(snap.phrases)),
        )
        conn.executemany("INSERT INTO graph_passages VALUES (?)", ((m,) for m in ids))
        conn.executemany(
            "INSERT INTO graph_mentions VALUES (?, ?, ?, ?)",
            ((ids[b], a + 1, c, d) for a, b, c, d in snap.mentions.tolist()),
        )
        conn.executemany(  # one row per edge (the read sums rows by phrase pair)
            "INSERT INTO graph_pairs VALUES (?, ?, ?, ?)",
            (
                (ids[0], a + 1, b + 1, int(w))
                for (a, b), w in zip(snap.pairs.tolist(), snap.pair_weights.tolist(), strict=True)
            ),
        )
        conn.executemany(
            "INSERT INTO graph_synonyms VALUES (?, ?, ?)",
            (
                (a + 1, b + 1, s)
                for (a, b), s in zip(
                    snap.synonyms.tolist(), snap.synonym_scores.tolist(), strict=True
                )
            ),
        )
        conn.execute("COMMIT")
        start = time.perf_counter()
        read = graph.snapshot()
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        GraphIndex(read, max_synonyms=CONFIG.max_synonyms)
        build_s = time.perf_counter() - start
    finally:
        conn.close()
    return {
        "passages": n_passages,
        "phrases": len(read.phrases),
        "mentions": len(read.mentions),
        "pair_edges": len(read.pairs),
        "snapshot_read_seconds": round(read_s, 2),
        "index_build_seconds": round(build_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--musique", type=Path, default=None, help="a MuSiQue store with its graph")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 30_000, 100_000])
    ap.add_argument("--queries", type=int, default=50, help="timed queries per graph")
    ap.add_argument("--epsilon", type=float, default=CONFIG.ppr_epsilon, help="push threshold")
    ap.add_argument(
        "--sweep", type=float, nargs="*", default=[1e-6, 3e-7, 3e-8], help="MuSiQue R@5 also at"
    )
    ap.add_argument(
        "--rebuild-sizes",
        type=int,
        nargs="*",
        default=[],
        help="also time the snapshot read + index build a write triggers, at these sizes",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "epsilon": args.epsilon,
        "config": repr(CONFIG),
    }
    if args.musique is not None:
        report["musique"] = musique(args.musique, args.queries, args.epsilon, args.sweep)
        log("musique", json.dumps(report["musique"]["graph_index_query"]))
    report["synthetic"] = []
    for size in args.sizes:
        row = synthetic_size(size, args.queries, args.epsilon)
        report["synthetic"].append(row)
        log(size, json.dumps(row))
        if args.out:  # keep what is done if a larger size runs out of time or memory
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    report["rebuild"] = []
    for size in args.rebuild_sizes:
        report["rebuild"].append(rebuild_cost(size))
        log("rebuild", json.dumps(report["rebuild"][-1]))
    print_summary(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        log("wrote", args.out)


def print_summary(report: dict[str, Any]) -> None:
    rows = [("musique", report["musique"])] if "musique" in report else []
    rows += [(f"synthetic {r['passages']}", r) for r in report["synthetic"]]
    print(
        f"{'graph':<18}{'nodes':>9}{'edges':>10}  push p50/p99 ms (cpu p50)"
        "   power p50/p99 ms (cpu p50)"
    )
    for name, r in rows:
        t = r["graph_index_query"]
        print(
            f"{name:<18}{r['passages'] + r['phrases']:>9}{r['edges']:>10}"
            f"  {t['push']['p50_ms']:>7.1f} {t['push']['p99_ms']:>7.1f}"
            f" ({t['push']['cpu_p50_ms']:>6.1f})"
            f"   {t['power']['p50_ms']:>7.1f} {t['power']['p99_ms']:>7.1f}"
            f" ({t['power']['cpu_p50_ms']:>6.1f})"
        )
    if "musique" in report:
        print("Memory.recall graph:", report["musique"]["memory_recall_graph"])


if __name__ == "__main__":
    main()
