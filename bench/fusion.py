"""Fusing lexical, dense and graph runs: every channel through the harness, fusions offline.

Collections (``../shared/data``): MuSiQue (multihop, R@5), SciFact (BEIR, nDCG@10), the
classic MEDLINE, CACM, LISA and TIME (BEIR layout, nDCG@10) and LoCoMo (turn recall@10;
harness figures only: its turns are re-ranked after fusion).

Stages:

1. ``runs``: ``engram eval``'s harness on each collection with every channel (lexical,
   dense, graph, hybrid, hybrid+graph) on a kept store (``--cache DIR/<name>.db``, so
   the store and its graph are built once); its report goes to
   ``<out folder>/fusion/<name>.json``. Then each channel's run (k = 100, scores kept) is
   recalled once per query from that store through ``Memory.recall_many`` and cached as
   ``DIR/<name>.runs.json.gz``.
2. ``fuse``: fusion methods computed offline from the cached runs with
   ``engramdb.retrieve.fusion``; each method's parameters are chosen leave one collection
   out (chosen on the others, reported on the one left out), and the engine's default
   ``hybrid+graph`` is checked to give the same figure as the same fusion offline.

Usage::

    PYTHONPATH=src python bench/fusion.py runs --sets musique,scifact --cache /tmp/harness
    PYTHONPATH=src python bench/fusion.py fuse --cache /tmp/harness --out bench/results/fusion.json
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engramdb import Memory
from engramdb.eval import EvalOptions, evaluate
from engramdb.eval.datasets import RetrievalSet, load_beir, load_multihop
from engramdb.eval.metrics import mean_over_queries, ndcg_at_k, recall_at_k
from engramdb.retrieve.fusion import Run, fuse

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS: dict[str, tuple[str, str]] = {
    "musique": ("musique", "multihop"),
    "scifact": ("scifact", "beir"),
    "medline": ("medline", "beir"),
    "cacm": ("cacm", "beir"),
    "lisa": ("lisa", "beir"),
    "time": ("time", "beir"),
    "locomo": ("locomo", "locomo"),
}
EVERY = ("lexical", "dense", "graph", "hybrid", "hybrid+graph")
SINGLE = ("lexical", "dense", "graph")
DEPTH = 100
Metric = Callable[[Sequence[str], Mapping[str, int]], float | None]
METRIC: dict[str, tuple[str, Metric]] = {
    "multihop": ("recall@5", lambda r, g: recall_at_k(r, g, 5)),
    "beir": ("ndcg@10", lambda r, g: ndcg_at_k(r, g, 10)),
}


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# -- stage 1: the harness, then each channel's run -------------------------------------------


def _data(name: str) -> RetrievalSet:
    folder, kind = SETS[name]
    return load_multihop(DATA / folder) if kind == "multihop" else load_beir(DATA / folder)


def harness(name: str, db: Path, out: Path) -> dict[str, Any]:
    folder, kind = SETS[name]
    log(name, "harness", db)
    started = time.perf_counter()
    report = evaluate(DATA / folder, EvalOptions(kind=kind, channels=EVERY, db=db))
    log(name, f"harness done in {time.perf_counter() - started:.0f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.as_dict(), indent=1), encoding="utf-8")
    return report.metrics


def documents_of(mem: Memory) -> dict[int, list[str]]:
    """memory id → every document id it stands for (exact duplicates merge)."""
    ids = mem.ids()
    out: dict[int, list[str]] = {}
    for start in range(0, len(ids), 500):
        for r in mem.get_many(ids[start : start + 500], sightings=True):
            docs = [str(s.position.document) for s in r.sightings] or [str(r.position.document)]
            out[r.id] = list(dict.fromkeys(docs))
    return out


def channel_runs(name: str, db: Path) -> dict[str, Any]:
    """Each query's run on every single channel and on the engine's ``hybrid+graph``
    (``(memory id, score)`` pairs) and each memory's documents."""
    data = _data(name)
    with Memory.open(db, graph={"enabled": True}) as mem:
        labels = documents_of(mem)
        queries = [q.text for q in data.queries]
        runs: dict[str, list[list[tuple[int, float]]]] = {}
        for channel in (*SINGLE, "hybrid+graph"):
            started = time.perf_counter()
            hits = mem.recall_many(queries, k=DEPTH, channels=channel)
            log(name, channel, f"{len(queries)} queries in {time.perf_counter() - started:.1f}s")
            runs[channel] = [[(h.id, h.score) for h in hs] for hs in hits]
    return {
        "queries": [q.id for q in data.queries],
        "qrels": [dict(q.qrels) for q in data.queries],
        "labels": {str(k): v for k, v in labels.items()},
        "runs": runs,
    }


def stage_runs(args: argparse.Namespace) -> None:
    for name in args.sets.split(","):
        db = args.cache / f"{name}.db"
        cached = args.cache / f"{name}.runs.json.gz"
        if not args.no_harness:
            harness(name, db, args.reports / f"{name}.json")
        if SETS[name][1] == "locomo" or (cached.exists() and not args.again):
            continue
        runs = channel_runs(name, db)
        with gzip.open(cached, "wt", encoding="utf-8") as fh:
            json.dump(runs, fh)
        log(name, "runs cached in", cached)


# -- stage 2: fusion offline ------------------------------------------------------------------


class Collection:
    """One collection's cached runs, scored with its headline metric."""

    def __init__(self, name: str, cached: Mapping[str, Any]) -> None:
        self.name = name
        self.metric_name, self.metric = METRIC[SETS[name][1]]
        self.labels = {int(k): v for k, v in cached["labels"].items()}
        keep = [i for i, g in enumerate(cached["qrels"]) if any(v > 0 for v in g.values())]
        self.qrels: list[dict[str, int]] = [cached["qrels"][i] for i in keep]
        self.runs: dict[str, list[Run]] = {
            c: [[(int(d), float(s)) for d, s in cached["runs"][c][i]] for i in keep]
            for c in cached["runs"]
        }

    def score(self, ranked: Sequence[Sequence[tuple[int, float]]]) -> float:
        expanded = [[lab for d, _ in run for lab in self.labels.get(d, ())] for run in ranked]
        value = mean_over_queries(
            self.metric(r, g) for r, g in zip(expanded, self.qrels, strict=True)
        )
        return round(value or 0.0, 4)

    def fused(self, method: Fuser) -> float:
        out = [method({c: self.runs[c][i] for c in SINGLE})[:DEPTH] for i in range(len(self.qrels))]
        return self.score(out)


Params = dict[str, float]
Fuser = Callable[[Mapping[str, Run]], list[tuple[int, float]]]
Family = tuple[Callable[[Params], Fuser], list[Params]]


def _grid(**axes: Sequence[float]) -> list[Params]:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def _weights(p: Params) -> dict[str, float]:
    return {"lexical": p["lexical"], "dense": 1.0, "graph": p["graph"]}


def steepness(run: Run, rank: int = 5) -> float:
    """The ``rank``-th score over the top one (1.0: flat; near 0: one clear winner)."""
    if len(run) < rank or run[0][1] <= 0:
        return 1.0
    return max(run[rank - 1][1], 0.0) / run[0][1]


def families() -> dict[str, Family]:
    def plain(method: str) -> Callable[[Params], Fuser]:
        def make(p: Params) -> Fuser:
            weights = _weights(p)
            return lambda runs: fuse(runs, method=method, weights=weights)

        return make

    def gated(p: Params) -> Fuser:
        steep = _weights(p)
        flat = {"lexical": 1.0, "dense": 1.0, "graph": 1.0}

        def run(runs: Mapping[str, Run]) -> list[tuple[int, float]]:
            if steepness(runs["graph"]) <= p["below"]:
                return fuse(runs, method="max", weights=steep)
            return fuse(runs, method="rrf", weights=flat)

        return run

    return {
        "rrf": (plain("rrf"), _grid(lexical=[0.5, 1], graph=[1, 2, 3, 5, 10, 20, 40])),
        "weighted": (plain("weighted"), _grid(lexical=[0.1, 0.3, 1], graph=[1, 2, 5, 10, 20])),
        "max": (plain("max"), _grid(lexical=[0.1, 0.3, 0.5, 1], graph=[1, 2, 3, 5, 10, 20])),
        "gated max": (
            gated,
            _grid(lexical=[0.3, 1], graph=[3, 10, 20], below=[0.2, 0.3, 0.4, 0.5, 0.7, 1.0]),
        ),
    }


def _objective(margins: Sequence[float]) -> float:
    """How a parameter setting ranks on the collections it is chosen on: its worst margin
    over the best single channel first, then the mean margin."""
    return min(margins) + 1e-3 * sum(margins) / len(margins)


def stage_fuse(args: argparse.Namespace) -> None:
    names = [n for n in args.sets.split(",") if (args.cache / f"{n}.runs.json.gz").exists()]
    sets = {}
    for name in names:
        with gzip.open(args.cache / f"{name}.runs.json.gz", "rt", encoding="utf-8") as fh:
            sets[name] = Collection(name, json.load(fh))
    table: dict[str, dict[str, Any]] = {}
    for name, col in sets.items():
        row: dict[str, Any] = {"metric": col.metric_name}
        for channel in (*SINGLE, "hybrid+graph"):
            row[channel] = col.score(col.runs[channel])
        row["hybrid"] = col.fused(lambda runs: fuse({c: runs[c] for c in ("lexical", "dense")}))
        row["best single"] = max(row[c] for c in SINGLE)
        table[name] = row
    result: dict[str, Any] = {"channels": table, "families": {}}
    for fam, (make, grid) in families().items():
        scores = {name: [col.fused(make(p)) for p in grid] for name, col in sets.items()}
        margins = {n: [s - table[n]["best single"] for s in scores[n]] for n in sets}
        loco = {}
        for held in sets:
            others = [n for n in sets if n != held] or [held]
            best = max(range(len(grid)), key=lambda i: _objective([margins[n][i] for n in others]))
            loco[held] = {"params": grid[best], "score": scores[held][best]}
        chosen = max(range(len(grid)), key=lambda i: _objective([margins[n][i] for n in sets]))
        result["families"][fam] = {
            "chosen on all": {"params": grid[chosen], **{n: scores[n][chosen] for n in sets}},
            "leave one collection out": loco,
        }
        log(fam, json.dumps(result["families"][fam]))
    print(json.dumps(table, indent=1))
    result["python"] = platform.python_version()
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        log("wrote", args.out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stage", choices=("runs", "fuse"))
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--cache", type=Path, default=ROOT / "bench" / "cache" / "fusion")
    ap.add_argument("--reports", type=Path, default=ROOT / "bench" / "results" / "fusion")
    ap.add_argument("--again", action="store_true", help="recall the cached runs again")
    ap.add_argument("--no-harness", action="store_true", help="only recall a built store")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    (stage_runs if args.stage == "runs" else stage_fuse)(args)


if __name__ == "__main__":
    main()
