"""Recall in steps on MuSiQue (HippoRAG protocol): R@2, R@5, all-recall@5, per hop count.

Data and stores as ``bench/graph_musique.py`` (its loaders and build steps are reused):
1,890 passages, 100 questions; supporting paragraphs are the qrels. Every figure goes
through ``Memory.recall_many(..., steps=N, clues=...)``.

1. ``--tune``: the step plan's free settings (hits leading each step, bridge phrases per
   step, the confidence a step needs) on a grid, scored on the *first* 50 questions only
   (graph channel, 2 steps); the best by R@5 + all-recall@5 there is reported on the last
   50, which it was not chosen on. The engine's defaults are what this picked.
2. channels ``graph``, ``hybrid+graph`` and ``hybrid`` at 1, 2 and 3 steps (default clues);
   all 100 questions, each half, and per hop count (2/3/4-hop).
3. clues compared on ``graph@2`` and ``hybrid@2``: phrases, terms, centroid and pairs.
4. latency of one query per call at 1, 2 and 3 steps (k = 10; the first 40 questions),
   steps interleaved per question so that load on the machine hits them alike: wall
   p50/mean and the process's CPU time, and the ratio to one step.

``--quick``: the grid's two best leads on one bridge count, hybrid at 1-2 steps only.

Usage::

    PYTHONPATH=src python bench/steps.py --cache /tmp/steps --tune \
        --out bench/results/steps_musique.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import graph_musique as gm  # noqa: E402
from engramdb import Memory  # noqa: E402
from engramdb.engine._read import ReadOptions, check_channels  # noqa: E402
from engramdb.engine._steps import StepPlan, recall_in_steps  # noqa: E402

HALF = 50
GRID: dict[str, tuple[Any, ...]] = {
    "lead": (1, 2, 3),
    "bridges": (3, 5),
    "confident": (0.0, 0.02),
}
QUICK: dict[str, tuple[Any, ...]] = {"lead": (2, 3), "bridges": (3,), "confident": (0.0, 0.02)}
CLUES = ("phrases", "terms", "centroid", "phrases,terms")
LATENCY_QUERIES = 40


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, mem: Memory, data: gm.Dataset) -> None:
        self.mem = mem
        self.qids = list(data.qrels)
        self.queries = [data.queries[q] for q in self.qids]
        self.gold = [data.qrels[q] for q in self.qids]
        self.docs = gm.documents_of(mem)

    def score(self, ranked: Sequence[Sequence[int]], pick: Sequence[int]) -> dict[str, Any]:
        return gm.scores(
            [ranked[i] for i in pick], [self.gold[i] for i in pick], self.docs, gm.MULTIHOP
        )

    def table(self, ranked: Sequence[Sequence[int]]) -> dict[str, Any]:
        n = len(self.qids)
        out = {
            "all": self.score(ranked, range(n)),
            "first 50": self.score(ranked, range(HALF)),
            "last 50": self.score(ranked, range(HALF, n)),
        }
        for hops in ("2", "3", "4"):
            pick = [i for i, q in enumerate(self.qids) if q.startswith(hops + "hop")]
            out[f"{hops}-hop (n={len(pick)})"] = self.score(ranked, pick)
        return out

    def recall(self, channels: str, steps: int, clues: str | None = None) -> list[list[int]]:
        hits = self.mem.recall_many(
            self.queries, k=gm.DEPTH, channels=channels, steps=steps, clues=clues
        )
        return [h.ids for h in hits]

    def plan_run(self, plan: StepPlan, pick: Sequence[int]) -> list[list[int]]:
        pools = recall_in_steps(
            self.mem._reader,
            [self.queries[i] for i in pick],
            k=gm.DEPTH,
            namespace=None,
            where=None,
            channels=check_channels("graph"),
            options=ReadOptions(),
            plan=plan,
            model=self.mem.relevance_model,
        )
        ranked: list[list[int]] = [[] for _ in self.qids]
        for i, hits in zip(pick, pools, strict=True):
            ranked[i] = [h.id for h in hits]
        return ranked


def tune(bench: Bench, grid: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    first, last = list(range(HALF)), list(range(HALF, len(bench.qids)))
    trials = []
    for lead in grid["lead"]:
        for bridges in grid["bridges"]:
            for confident in grid["confident"]:
                plan = StepPlan(steps=2, lead=lead, bridges=bridges, confident=confident)
                fit = bench.score(bench.plan_run(plan, first), first)
                trials.append({"lead": lead, "bridges": bridges, "confident": confident, **fit})
                log("tune", trials[-1])
    best = max(trials, key=lambda t: (t["R@5"] + t["AR@5"], -t["lead"], -t["bridges"]))
    chosen = {k: best[k] for k in ("lead", "bridges", "confident")}
    plan = StepPlan(steps=2, **chosen)
    held = bench.score(bench.plan_run(plan, last), last)
    return {"grid_on_first_50": trials, "chosen": chosen, "chosen_on_last_50": held}


def latency(bench: Bench, channels: str, steps: Sequence[int]) -> dict[str, Any]:
    mem = bench.mem
    for s in steps:
        mem.recall(bench.queries[0], k=10, channels=channels, steps=s)  # warm
    wall: dict[int, list[float]] = {s: [] for s in steps}
    cpu: dict[int, list[float]] = {s: [] for s in steps}
    for qi, query in enumerate(bench.queries[:LATENCY_QUERIES]):
        order = list(steps) if qi % 2 == 0 else list(reversed(steps))
        for s in order:
            w, c = time.perf_counter(), time.process_time()
            mem.recall(query, k=10, channels=channels, steps=s)
            cpu[s].append((time.process_time() - c) * 1000)
            wall[s].append((time.perf_counter() - w) * 1000)
    out: dict[str, Any] = {}
    for s in steps:
        out[f"{s} steps"] = {
            "wall_p50_ms": round(float(np.percentile(wall[s], 50)), 1),
            "wall_mean_ms": round(float(np.mean(wall[s])), 1),
            "cpu_mean_ms": round(float(np.mean(cpu[s])), 1),
            "wall_ratio_to_1": round(float(np.mean(wall[s]) / np.mean(wall[steps[0]])), 2),
            "cpu_ratio_to_1": round(float(np.mean(cpu[s]) / np.mean(cpu[steps[0]])), 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--musique", type=Path, default=gm.DATA / "musique")
    ap.add_argument("--cache", type=Path, default=gm.CACHE, help="folder of the stores")
    ap.add_argument("--tune", action="store_true", help="run the grid on the first 50")
    ap.add_argument("--quick", action="store_true", help="a smaller grid, fewer variants")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    data = gm.musique(args.musique)
    base = args.cache / "musique-base.db"
    gm.base_store(base, data, "musique")
    gm.build_graph(base, args.cache / "musique-graph.db", reuse=True)
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "defaults": repr(StepPlan()),
    }
    with Memory.open(args.cache / "musique-graph.db", **gm.BUILD, graph={"enabled": True}) as mem:
        bench = Bench(mem, data)
        if args.tune:
            report["tune"] = tune(bench, QUICK if args.quick else GRID)
            log("tune", report["tune"]["chosen"], report["tune"]["chosen_on_last_50"])
        report["channels"] = {}
        for channels in ("graph", "hybrid+graph", "hybrid"):
            for steps in (1, 2) if args.quick and channels == "hybrid" else (1, 2, 3):
                name = f"{channels}@{steps}"
                report["channels"][name] = bench.table(bench.recall(channels, steps))
                log(name, report["channels"][name]["all"])
        report["clues"] = {}
        for channels in ("graph", "hybrid"):
            for clues in CLUES:
                if "phrases" in clues and channels == "hybrid":
                    continue
                if args.quick and clues == "phrases,terms":
                    continue  # graph@2's default: in the channel table
                name = f"{channels}@2 {clues}"
                report["clues"][name] = bench.table(bench.recall(channels, 2, clues))
                log(name, report["clues"][name]["all"])
        if not args.no_latency:
            report["latency"] = {
                c: latency(bench, c, (1, 2, 3)) for c in ("graph", "hybrid+graph", "hybrid")
            }
            log("latency", report["latency"])
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        log("wrote", args.out)


if __name__ == "__main__":
    main()
