"""Fusing lexical, dense and graph runs: every channel through the harness, fusions offline.

Collections (``../shared/data``): MuSiQue (multihop, R@5), SciFact (BEIR, nDCG@10), the
classic MEDLINE, CACM, LISA and TIME (BEIR layout, nDCG@10) and LoCoMo (turn recall@10 over
categories 1-4; its turns are re-ranked after fusion from the runs the fusion counts, so
its fusions are replayed through the engine's conversation step on the kept store).

Stages:

1. ``runs``: ``engram eval``'s harness on each collection with every channel (lexical,
   dense, graph, hybrid, hybrid+graph) on a kept store (``--cache DIR/<name>.db``, so
   the store and its graph are built once); its report goes to
   ``<out folder>/fusion/<name>.json``. Then each channel's run (k = 100, scores kept) is
   recalled once per query from that store through ``Memory.recall_many`` and cached as
   ``DIR/<name>.runs.json.gz`` (LoCoMo: the lexical, dense and graph runs of each
   question's ``hybrid+graph`` recall, as the engine fuses them).
2. ``fuse``: fusion methods computed offline from the cached runs with
   ``engramdb.retrieve.fusion``; each method's parameters are chosen leave one collection
   out over every collection (chosen on the others, reported on the one left out; MuSiQue
   as two halves of its queries, SciFact and its subset never choosing for each other),
   and the engine's default ``hybrid+graph`` is checked to give the same figure as the
   same fusion offline. The objective: the worst margin over what each collection must
   reach (hybrid; on MuSiQue and SciFact also every single channel).

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
from engramdb.config import load_config
from engramdb.engine import _read
from engramdb.engine._read import StoreLookups, fusion_of
from engramdb.engine._validity import current_first
from engramdb.eval import EvalOptions, evaluate
from engramdb.eval.conversations import load_locomo
from engramdb.eval.datasets import RetrievalSet, load_beir, load_multihop
from engramdb.eval.metrics import mean_over_queries, ndcg_at_k, recall_at_k
from engramdb.eval.retrieval import last_session_time
from engramdb.retrieve.fusion import Run, fuse, fuse_max, fuse_with_graph, minmax, steepness
from engramdb.store.sqlite import SQLiteStore

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
    # 400 SciFact passages and 60 of its queries: a quick look, never used to choose
    "scifact-subset": (str(ROOT / "tests" / "data" / "eval" / "scifact_subset"), "beir"),
}
EVERY = ("lexical", "dense", "graph", "hybrid", "hybrid+graph")
CHOOSE_ON = ("musique", "scifact", "medline", "cacm", "lisa", "time", "locomo")
"""Fusion settings are chosen leave one out over these: each collection is reported with
the setting chosen on the others (MuSiQue as two halves of its queries; SciFact and its
400-passage subset never choose for each other)."""
SINGLES_TOO = ("musique", "scifact")
"""Where hybrid+graph must also reach every single channel (the graph exists for
MuSiQue's gain), not only hybrid."""
SINGLE = ("lexical", "dense", "graph")
BEFORE = {"lexical": 1.0, "dense": 1.0, "graph": 3.0}
DEPTH = 100
Metric = Callable[[Sequence[str], Mapping[str, int]], float | None]
METRIC: dict[str, tuple[str, Metric]] = {
    "multihop": ("recall@5", lambda r, g: recall_at_k(r, g, 5)),
    "beir": ("ndcg@10", lambda r, g: ndcg_at_k(r, g, 10)),
    "locomo": ("recall@10", lambda r, g: recall_at_k(r, g, 10)),
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


def locomo_runs(db: Path) -> dict[str, Any]:
    """Each LoCoMo question's lexical, dense and graph runs as its ``hybrid+graph`` recall
    fuses them (asked in its conversation's namespace at its last session, as the harness
    asks), the turn ids of each memory, and the engine's own ``hybrid+graph`` top 20."""
    data = load_locomo(DATA / SETS["locomo"][0])
    seen: list[Mapping[str, Run]] = []
    build = _read.build_hits

    def capture(query: str, runs: Mapping[str, Run], *rest: Any) -> Any:
        seen.append({c: list(r) for c, r in runs.items()})
        return build(query, runs, *rest)

    out: dict[str, Any] = {"queries": [], "qrels": [], "now": [], "namespace": [], "runs": {}}
    engine: list[list[tuple[int, float]]] = []
    with Memory.open(db, graph={"enabled": True}) as mem:
        _read.build_hits = capture  # type: ignore[assignment]
        try:
            for conv in sorted({q.conv for q in data.questions}):
                asked = [q for q in data.questions if q.conv == conv]
                now = last_session_time(data, conv)
                hits = mem.recall_many(
                    [q.text for q in asked],
                    k=20,
                    namespace=f"locomo.{conv}",
                    channels="hybrid+graph",
                    now=now,
                )
                engine += [[(h.id, h.score) for h in hs] for hs in hits]
                for q in asked:
                    out["queries"].append(q.text)
                    out["qrels"].append({} if q.category == 5 else dict.fromkeys(q.evidence, 1))
                    out["now"].append(now)
                    out["namespace"].append(f"locomo.{conv}")
        finally:
            _read.build_hits = build
    if len(seen) != len(engine):
        raise RuntimeError(f"{len(seen)} runs captured for {len(engine)} questions")
    out["runs"] = {c: [dict(r)[c] for r in seen] for c in SINGLE}
    out["runs"]["hybrid+graph"] = engine
    store = SQLiteStore(db, readonly=True)
    try:
        rows = store.conn.execute(
            "SELECT id, json_extract(meta, '$.dia_id') FROM memories"
            " WHERE namespace LIKE 'locomo.%'"
        ).fetchall()
    finally:
        store.close()
    out["labels"] = {str(i): [dia] for i, dia in rows}
    out["db"] = str(db)
    return out


def stage_runs(args: argparse.Namespace) -> None:
    for name in args.sets.split(","):
        db = args.cache / f"{name}.db"
        cached = args.cache / f"{name}.runs.json.gz"
        if not args.no_harness:
            harness(name, db, args.reports / f"{name}.json")
        if cached.exists() and not args.again:
            continue
        runs = locomo_runs(db) if SETS[name][1] == "locomo" else channel_runs(name, db)
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

    def half(self, part: int) -> Collection:
        """The first (``part`` 1) or second (2) half of the queries, as a collection of its
        own: a setting chosen on one half is reported on the other."""
        out = Collection.__new__(Collection)
        cut = len(self.qrels) // 2
        pick = slice(0, cut) if part == 1 else slice(cut, None)
        out.name, out.metric_name, out.metric = f"{self.name}/{part}", self.metric_name, self.metric
        out.labels = self.labels
        out.qrels = self.qrels[pick]
        out.runs = {c: r[pick] for c, r in self.runs.items()}
        return out

    def score(self, ranked: Sequence[Sequence[tuple[int, float]]]) -> float:
        expanded = [[lab for d, _ in run for lab in self.labels.get(d, ())] for run in ranked]
        value = mean_over_queries(
            self.metric(r, g) for r, g in zip(expanded, self.qrels, strict=True)
        )
        return round(value or 0.0, 4)

    def fused(self, method: Fuser) -> float:
        out = [
            method({c: self.runs[c][i] for c in SINGLE})[0][:DEPTH] for i in range(len(self.qrels))
        ]
        return self.score(out)


class Conversations(Collection):
    """LoCoMo's cached runs: each fusion is replayed through the engine's conversation step
    (:func:`engramdb.engine._read._conversation`, on the kept store) over the runs the
    fusion counts, and the top 20 scored with turn recall@10 (categories 1-4)."""

    def __init__(self, name: str, cached: Mapping[str, Any]) -> None:
        super().__init__(name, cached)
        keep = [i for i, g in enumerate(cached["qrels"]) if any(v > 0 for v in g.values())]
        self.queries = [cached["queries"][i] for i in keep]
        self.now = [float(cached["now"][i]) for i in keep]
        self.where = [cached["namespace"][i] for i in keep]
        self.store = SQLiteStore(cached["db"], readonly=True)
        self.config = load_config()
        self.memo: list[dict[Any, list[tuple[int, float]]]] = [{} for _ in keep]
        self.turns_only: list[bool | None] = [None for _ in keep]

    def replay(self, i: int, fused: list[tuple[int, float]], used: tuple[str, ...]) -> Run:
        """One question's top 20 after the conversation step, as the engine gives it."""
        lookups = StoreLookups(self.store, "m.namespace = ?", [self.where[i]])
        runs = {c: self.runs[c][i] for c in used}
        if self.turns_only[i] is None:
            every = {d for r in (self.runs[c][i] for c in SINGLE) for d, _ in r}
            rows = lookups.turns_around(sorted(every))
            self.turns_only[i] = every <= {row[0] for row in rows}
        # when every candidate is a turn, the conversation step orders them all from the
        # runs it is given, whatever the fused order: only the runs counted matter
        key: Any = used if self.turns_only[i] else (used, tuple(d for d, _ in fused))
        if key not in self.memo[i]:
            out = fused
            if self.config.conversation.enabled:
                out = _read._conversation(
                    self.queries[i], runs, fused, self.now[i], lookups, self.config
                )
            out = current_first(out, lookups.superseded([d for d, _ in out]))
            self.memo[i][key] = out[:20]
        return self.memo[i][key]

    def fused(self, method: Fuser) -> float:
        out = []
        for i in range(len(self.qrels)):
            fused, used = method({c: self.runs[c][i] for c in SINGLE})
            out.append(self.replay(i, fused, used))
        return self.score(out)


Params = dict[str, float]
Fused = tuple[list[tuple[int, float]], tuple[str, ...]]
Fuser = Callable[[Mapping[str, Run]], Fused]
"""A fusion: the fused run and the channels whose runs it counted (what LoCoMo's
conversation step re-scores turns from)."""
Family = tuple[Callable[[Params], Fuser], list[Params]]
RECALL = load_config().recall
HYBRID = ("lexical", "dense")


def _grid(**axes: Sequence[float]) -> list[Params]:
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def _weights(p: Params) -> dict[str, float]:
    return {"lexical": p["lexical"], "dense": 1.0, "graph": p["graph"]}


def hybrid(runs: Mapping[str, Run]) -> Fused:
    """The engine's ``hybrid``: lexical and dense fused as ``recall`` says."""
    fused = fuse(
        {c: runs[c] for c in HYBRID},
        method=RECALL.fusion,
        k=RECALL.rrf_k,
        weights=RECALL.weights,
    )
    return fused, HYBRID


def _on(runs: Mapping[str, Run], weight: float) -> Fused:
    """The graph counted: its run alone (``weight`` 0) or max-fused with lexical and dense
    (1:1:``weight``)."""
    if weight <= 0:
        return [(d, float(s)) for d, s in runs["graph"]], SINGLE
    return fuse_max(runs, weights={"lexical": 1.0, "dense": 1.0, "graph": weight}), SINGLE


def _top_within(runs: Mapping[str, Run], other: Run, n: int) -> bool:
    """Whether the graph's top hit is among ``other``'s first ``n`` (``n`` 0: yes)."""
    graph = runs["graph"]
    return n <= 0 or (bool(graph) and graph[0][0] in {d for d, _ in other[:n]})


def _overlap(a: Run, b: Run, n: int) -> int:
    return len({d for d, _ in a[:n]} & {d for d, _ in b[:n]})


def fuse_z(runs: Mapping[str, Run], weights: Mapping[str, float]) -> list[tuple[int, float]]:
    """Weighted sum of each run's z-scores (over its own hits); a missing hit counts as
    its run's lowest z-score."""
    fused: dict[int, float] = {}
    floors = 0.0
    for channel, run in runs.items():
        weight = weights.get(channel, 1.0)
        if not run or weight == 0:
            continue
        scores = [s for _, s in run]
        mean = sum(scores) / len(scores)
        spread = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5 or 1.0
        floor = (min(scores) - mean) / spread
        floors += weight * floor
        for doc, score in run:
            fused[doc] = fused.get(doc, 0.0) + weight * ((score - mean) / spread - floor)
    return sorted(((d, s + floors) for d, s in fused.items()), key=lambda item: (-item[1], item[0]))


def families() -> dict[str, Family]:  # noqa: C901 - one closure per family
    def plain(method: str) -> Callable[[Params], Fuser]:
        def make(p: Params) -> Fuser:
            weights = _weights(p)
            return lambda runs: (fuse(runs, method=method, weights=weights), SINGLE)

        return make

    def gated(p: Params) -> Fuser:
        weights = _weights(p)
        return lambda runs: (
            fuse_with_graph(
                runs,
                alone_below=p["alone below"],
                agree_within=int(p["agree within"]),
                method="max",
                weights=weights,
            ),
            SINGLE,
        )

    def steep_lexical(p: Params) -> Fuser:
        def run(runs: Mapping[str, Run]) -> Fused:
            g = runs["graph"]
            if g and steepness(g) <= p["steep"] and _top_within(runs, runs["lexical"], int(p["n"])):
                return _on(runs, p["on"])
            return hybrid(runs)

        return run

    def steep_hybrid(p: Params) -> Fuser:
        def run(runs: Mapping[str, Run]) -> Fused:
            base = hybrid(runs)
            g = runs["graph"]
            if g and steepness(g) <= p["steep"] and _top_within(runs, base[0], int(p["n"])):
                return _on(runs, p["on"])
            return base

        return run

    def overlapping(p: Params) -> Fuser:
        def run(runs: Mapping[str, Run]) -> Fused:
            base = hybrid(runs)
            g = runs["graph"]
            if g and steepness(g) <= p["steep"] and _overlap(g, base[0], 10) >= p["overlap"]:
                return _on(runs, p["on"])
            return base

        return run

    def confident(p: Params) -> Fuser:
        def run(runs: Mapping[str, Run]) -> Fused:
            g = runs["graph"]
            if not g or not _top_within(runs, runs["lexical"], int(p["n"])):
                return hybrid(runs)
            weight = p["top"] * max(0.0, p["steep"] - steepness(g)) / p["steep"]
            if weight <= 0:
                return hybrid(runs)
            return _on(runs, weight)

        return run

    def confident_max(p: Params) -> Fuser:
        def run(runs: Mapping[str, Run]) -> Fused:
            g = runs["graph"]
            weight = 0.0
            if g and _top_within(runs, runs["lexical"], int(p["n"])):
                weight = p["top"] * max(0.0, p["steep"] - steepness(g)) / p["steep"]
            weights = {"lexical": p["lexical"], "dense": 1.0, "graph": weight}
            if weight <= 0:
                return fuse_max({c: runs[c] for c in HYBRID}, weights=weights), HYBRID
            return fuse_max(runs, weights=weights), SINGLE

        return run

    engine = default_fusion()

    def new_beside_lexical(p: Params) -> Fuser:
        def run(runs: Mapping[str, Run]) -> Fused:
            base, _ = hybrid(runs)
            g = runs["graph"]
            if (
                g
                and _top_within(runs, base, int(p["n"]))
                and _overlap(g, runs["lexical"], 10) <= p["shared"]
            ):
                return engine(runs) if p["on"] < 0 else _on(runs, p["on"])
            weights = {"lexical": 1.0, "dense": 1.0, "graph": p["else"]}
            if p["else"] <= 0:
                return base, HYBRID
            return fuse_max(runs, weights=weights), SINGLE

        return run

    def bonus(p: Params) -> Fuser:
        def run(runs: Mapping[str, Run]) -> Fused:
            base, _ = hybrid(runs)
            n = int(p["within"])
            head, tail = base[:n], base[n:]
            g, h = minmax(runs["graph"]), minmax(head)
            scored = sorted(
                ((d, h[d] + p["w"] * g.get(d, 0.0)) for d, _ in head),
                key=lambda item: (-item[1], item[0]),
            )
            top = scored[-1][1] if scored else 0.0
            return scored + [(d, min(s, top)) for d, s in tail], SINGLE

        return run

    steep = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0]
    on = [0, 1, 2, 3, 5]
    return {
        "rrf": (plain("rrf"), _grid(lexical=[0.5, 1], graph=[1, 2, 3, 5, 10, 20, 40])),
        "weighted": (plain("weighted"), _grid(lexical=[0.1, 0.3, 1], graph=[1, 2, 5, 10, 20])),
        "max": (plain("max"), _grid(lexical=[0.1, 0.3, 0.5, 1], graph=[1, 2, 3, 5, 10, 20])),
        "graph alone when steep and corroborated, else max": (
            gated,
            _grid(
                lexical=[1],
                graph=[1, 2, 3],
                **{
                    "alone below": [0.0, 0.3, 0.4, 0.5, 0.6, 0.7],
                    "agree within": [0, 3, 5, 10],
                },
            ),
        ),
        # hybrid unless the graph's walk is steep and lexical's first n hold its top hit;
        # then the graph alone (on 0) or max-fused at weight on
        "graph when steep and in lexical's top n, else hybrid": (
            steep_lexical,
            _grid(steep=steep, n=[0, 1, 3, 5, 10, 20], on=on),
        ),
        "graph when steep and in hybrid's top n, else hybrid": (
            steep_hybrid,
            _grid(steep=steep, n=[1, 3, 5, 10, 20], on=on),
        ),
        "graph when its top 10 overlaps hybrid's, else hybrid": (
            overlapping,
            _grid(steep=[0.6, 0.8, 1.0], overlap=[1, 2, 3, 4, 5, 6], on=on),
        ),
        "graph weight by steepness when in lexical's top n, else hybrid": (
            confident,
            _grid(steep=[0.5, 0.7, 0.9, 1.0], top=[1, 2, 3, 5, 10], n=[0, 5, 10]),
        ),
        "max fusion, the graph weighing by steepness when in lexical's top n": (
            confident_max,
            _grid(
                lexical=[0.5, 1],
                steep=[0.5, 0.7, 0.9, 1.0],
                top=[0.5, 1, 2, 3, 5, 10],
                n=[0, 5, 10],
            ),
        ),
        # the graph counts when hybrid backs its top hit and its top 10 brings passages
        # lexical's top 10 lacks: then the engine's fusion before (on -1), the graph alone
        # (on 0) or max-fused at weight on; else hybrid (else 0) or max-fused at weight else
        "graph when hybrid's top n holds its top hit and it adds to lexical's top 10": (
            new_beside_lexical,
            _grid(
                n=[1, 2, 3, 5], shared=[4, 5, 6, 7, 8, 10], on=[-1, 0, 2], **{"else": [0, 0.5, 1]}
            ),
        ),
        "z-scores": (
            lambda p: lambda runs: (fuse_z(runs, _weights(p)), SINGLE),
            _grid(lexical=[0.5, 1], graph=[0.5, 1, 2, 3, 5]),
        ),
        "graph as a bonus within hybrid's top N": (
            bonus,
            _grid(within=[5, 10, 20, 50], w=[0.1, 0.25, 0.5, 1, 2]),
        ),
    }


def default_fusion() -> Fuser:
    """The engine's ``hybrid+graph`` fusion with the default settings."""
    config = load_config()
    return lambda runs: (
        fuse_with_graph(
            runs,
            alone_below=config.graph.fusion_alone_below,
            agree_within=config.graph.fusion_agree_within,
            method=config.graph.fusion,
            k=config.recall.rrf_k,
            weights=fusion_of(runs, config)[1],
        ),
        SINGLE,
    )


def _baseline(name: str, row: Mapping[str, Any]) -> float:
    """What a fusion must reach on a collection: hybrid, and on MuSiQue and SciFact also
    the best single channel."""
    if name.split("/")[0].split("-")[0] in SINGLES_TOO:
        return max(float(row["hybrid"]), float(row["best single"]))
    return float(row["hybrid"])


def _related(a: str, b: str) -> bool:
    """Whether two collections share queries (a half with itself; SciFact with its subset)."""
    return a == b or ("/" not in a + b and a.split("-")[0] == b.split("-")[0])


def _objective(margins: Sequence[float]) -> float:
    """How a parameter setting ranks on the collections it is chosen on: its worst margin
    over what each must reach (:func:`_baseline`) first, then the mean margin."""
    return min(margins) + 1e-3 * sum(margins) / len(margins)


HEADLINE = {"multihop": "recall@5", "beir": "ndcg@10", "locomo": "recall@10"}


def harness_figures(folder: Path) -> dict[str, dict[str, Any]]:
    """Each harness report's headline metric per channel (stage 1's reports)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        metric = HEADLINE.get(report["kind"])
        if metric is None:
            continue
        row = {c: m.get(metric) for c, m in report["metrics"].items()}
        out[path.stem] = {"metric": metric, **row, "graph size": report["config"].get("graph")}
    return out


def _load(cache: Path, name: str) -> dict[str, Collection]:
    with gzip.open(cache / f"{name}.runs.json.gz", "rt", encoding="utf-8") as fh:
        cached = json.load(fh)
    if SETS[name][1] == "locomo":
        return {name: Conversations(name, cached)}
    col = Collection(name, cached)
    if SETS[name][1] == "multihop":  # one multi-hop set: its halves stand in for two
        return {f"{name}/1": col.half(1), f"{name}/2": col.half(2)}
    return {name: col}


def _alone(channel: str) -> Fuser:
    return lambda runs: ([(d, float(s)) for d, s in runs[channel]], (channel,))


def _channels(name: str, col: Collection) -> dict[str, Any]:
    row: dict[str, Any] = {"metric": col.metric_name}
    for channel in SINGLE:
        row[channel] = col.fused(_alone(channel))
    row["hybrid+graph (engine)"] = col.score(col.runs["hybrid+graph"])
    row["hybrid"] = col.fused(hybrid)
    row["best single"] = max(row[c] for c in SINGLE)
    row["default"] = col.fused(default_fusion())
    row["default = engine"] = row["default"] == row["hybrid+graph (engine)"]
    row["must reach"] = _baseline(name, row)
    if not isinstance(col, Conversations):
        row["rrf 1:1:3 (the default before)"] = col.fused(
            lambda runs: (fuse(runs, weights=BEFORE), SINGLE)
        )
    return row


def stage_fuse(args: argparse.Namespace) -> None:
    names = [n for n in args.sets.split(",") if (args.cache / f"{n}.runs.json.gz").exists()]
    sets: dict[str, Collection] = {}
    for name in names:
        sets.update(_load(args.cache, name))
    table = {name: _channels(name, col) for name, col in sets.items()}
    log("channels", json.dumps(table))
    result: dict[str, Any] = {"channels": table, "families": {}}
    wanted = args.families.split(",") if args.families else None
    for fam, (make, grid) in families().items():
        if wanted is not None and not any(w in fam for w in wanted):
            continue
        started = time.process_time()
        fusers = [make(p) for p in grid]
        scores = {name: [col.fused(f) for f in fusers] for name, col in sets.items()}
        margins = {n: [s - table[n]["must reach"] for s in scores[n]] for n in sets}
        pool = [n for n in sets if n.split("/")[0].split("-")[0] in args.choose_on.split(",")]
        loco = {}
        for held in sets:
            others = [n for n in pool if not _related(n, held)]
            if not others:
                continue
            best = max(range(len(grid)), key=lambda i: _objective([margins[n][i] for n in others]))
            loco[held] = {
                "params": grid[best],
                "score": scores[held][best],
                "margin": round(margins[held][best], 4),
            }
        chosen = max(range(len(grid)), key=lambda i: _objective([margins[n][i] for n in pool]))
        result["families"][fam] = {
            "chosen on": pool,
            "chosen": {"params": grid[chosen], **{n: scores[n][chosen] for n in sets}},
            "worst margin, chosen on all": round(min(margins[n][chosen] for n in pool), 4),
            "leave one out": loco,
            "worst margin, leave one out": min((v["margin"] for v in loco.values()), default=None),
            "cpu seconds": round(time.process_time() - started, 1),
        }
        log(fam, json.dumps(result["families"][fam]))
    result["harness"] = harness_figures(args.reports)
    print(json.dumps({"offline": table, "harness": result["harness"]}, indent=1))
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
    ap.add_argument("--choose-on", default=",".join(CHOOSE_ON), help="collections to choose on")
    ap.add_argument("--families", default="", help="only the families whose names hold these")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    (stage_runs if args.stage == "runs" else stage_fuse)(args)


if __name__ == "__main__":
    main()
