"""Leave-one-collection-out (LOCO) evaluation of the LambdaRank reranker.

For each collection X: train LambdaRank on the judged queries of every other collection,
rerank X's hybrid candidates with it, and compare nDCG@10 / recall@10 on X with and without
reranking. Collections (``../shared/data``): SciFact (test queries; its train queries are
training data only), MEDLINE, CACM, LISA, TIME (BEIR layout), MuSiQue (``beir/`` view) and
LoCoMo (categories 1-4 with evidence; a turn is relevant when it is evidence).

Stores are built once with the default MiniLM embedder and cached
(``bench/cache/loco/<name>.db``, near-duplicate merging off, one un-chunked memory per
document or turn), as are each query's top-100 hybrid candidates
(``bench/cache/loco/<name>.pools.json.gz``). Features are then computed from the cached
candidates, so training runs take seconds.

Training balances the collections: every query of a collection weighs
``1 / queries-in-that-collection``, so SciFact's 809 train queries or LoCoMo's 1,500 do not
drown MEDLINE's 30. Boosting rounds: fixed (``--rounds``, 100 by default, not tuned on these
collections), or with ``--rounds 0`` chosen by a leave-one-collection-out inside the
training collections (``--grid``; slow: one fit per inner collection).

A list of conversation turns keeps its fused order in the shipped reranker
(``LambdaRankReranker``); ``model_on_every_list`` reports the model applied to it anyway.

Usage::

    PYTHONPATH=src python bench/rerank_loco.py --out bench/results/rerank_loco.json
    PYTHONPATH=src python bench/rerank_loco.py --ship   # also train on all, ship the model
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engramdb import Memory, Record
from engramdb.eval.datasets import load_beir
from engramdb.eval.metrics import mean_over_queries, ndcg_at_k, recall_at_k
from engramdb.rerank import FEATURES, candidate_features, train_lambdarank
from engramdb.rerank.lambdarank import BUNDLED, is_turn
from engramdb.types import ChannelScore, Hit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "bench" / "cache" / "loco"
BUILD = {"recognize": {"enabled": False}, "embed": {"threads": 2}}
DEPTH = 100
COLLECTIONS = ("scifact", "medline", "cacm", "lisa", "time", "musique", "locomo")
BEIR_PATHS = {
    "scifact": DATA / "scifact",
    "medline": DATA / "medline",
    "cacm": DATA / "cacm",
    "lisa": DATA / "lisa",
    "time": DATA / "time",
    "musique": DATA / "musique" / "beir",
}
PKG = ROOT / "src" / "engramdb"


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# -- stores and candidate pools ----------------------------------------------------------------


@dataclass
class Judged:
    """One judged query: its id, text, namespace, split and relevant documents."""

    qid: str
    text: str
    namespace: str
    split: str
    qrels: dict[str, int]


def _session_time(value: str) -> float:
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    raise ValueError(f"unparsed LoCoMo time {value!r}")


def build_beir(mem: Memory, name: str) -> list[Judged]:
    path = BEIR_PATHS[name]
    test = load_beir(path, split="test")
    if not mem.stats().memories:
        log("building", name, len(test.documents), "documents")
        records = [
            Record(text=d.text, document=d.id, source=name, chunk=False) for d in test.documents
        ]
        for i in range(0, len(records), 1000):
            mem.add_many(records[i : i + 1000], namespace=name)
    judged = [
        Judged(q.id, q.text, name, "test", {d: g for d, g in q.qrels.items() if g > 0})
        for q in test.queries
    ]
    if (path / "qrels" / "train.tsv").exists():
        train = load_beir(path, split="train")
        judged += [
            Judged(q.id, q.text, name, "train", {d: g for d, g in q.qrels.items() if g > 0})
            for q in train.queries
        ]
    return [j for j in judged if j.qrels]


def build_locomo(mem: Memory) -> list[Judged]:
    turns = [json.loads(x) for x in (DATA / "locomo" / "turns.jsonl").read_text().splitlines()]
    if not mem.stats().memories:
        log("building locomo", len(turns), "turns")
        convs: dict[str, list[Record]] = {}
        for row in turns:
            conv = convs.setdefault(row["conv"], [])
            text = f"{row['speaker']}: {row['text']}"
            if row.get("image_caption"):
                text += f" [shares {row['image_caption']}]"
            conv.append(
                Record(
                    text=text,
                    source="locomo",
                    document=row["conv"],
                    ordinal=len(conv),
                    event_time=_session_time(row["date_time"]) + len(conv),
                    chunk=False,
                    meta={"speaker": row["speaker"], "dia_id": row["dia_id"]},
                )
            )
        for conv, records in sorted(convs.items()):
            mem.add_many(records, namespace=f"locomo.{conv}")
    rows = [json.loads(x) for x in (DATA / "locomo" / "qa.jsonl").read_text().splitlines()]
    return [
        Judged(
            f"{r['conv']}#{r['qa_idx']}",
            r["question"],
            f"locomo.{r['conv']}",
            "test",
            {f"{r['conv']}:{e}": 1 for e in r["evidence"]},
        )
        for r in rows
        if r["category"] != 5 and r["evidence"]
    ]


def _doc_key(name: str, namespace: str, document: object, meta: dict[str, Any]) -> str:
    if name == "locomo":
        return f"{namespace.removeprefix('locomo.')}:{meta.get('dia_id')}"
    return str(document)


def build_pools(name: str) -> Path:
    """Build (or reuse) the store of ``name`` and cache its queries' top-100 candidates."""
    out = CACHE / f"{name}.pools.json.gz"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with Memory.open(CACHE / f"{name}.db", **BUILD) as mem:
        judged = build_locomo(mem) if name == "locomo" else build_beir(mem, name)
        log("candidates", name, len(judged), "queries")
        texts: dict[int, str] = {}
        docs: dict[int, str] = {}
        queries = []
        by_ns: dict[str, list[Judged]] = {}
        for j in judged:
            by_ns.setdefault(j.namespace, []).append(j)
        for ns, group in sorted(by_ns.items()):
            for i in range(0, len(group), 64):
                part = group[i : i + 64]
                pools = mem.recall_many([j.text for j in part], k=DEPTH, namespace=ns)
                for j, hits in zip(part, pools, strict=True):
                    for h in hits:
                        texts[h.id] = h.text
                        docs[h.id] = _doc_key(name, h.namespace, h.position.document, dict(h.meta))
                    queries.append(
                        {
                            "qid": j.qid,
                            "text": j.text,
                            "split": j.split,
                            "qrels": j.qrels,
                            "hits": [
                                [h.id, h.score, {c: [s.rank, s.score] for c, s in h.why.items()}]
                                for h in hits
                            ],
                        }
                    )
    payload = {"name": name, "texts": texts, "docs": docs, "queries": queries}
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        json.dump(payload, fh)
    log("cached", out)
    return out


# -- features and evaluation -------------------------------------------------------------------


@dataclass
class Group:
    """One judged query's candidates: features, labels, and document keys in fused order."""

    collection: str
    qid: str
    split: str
    query: str
    hits: list[Hit]
    docs: list[str]
    labels: list[int]
    qrels: dict[str, int]
    x: np.ndarray


def load_groups(name: str) -> list[Group]:
    with gzip.open(build_pools(name), "rt", encoding="utf-8") as fh:
        payload = json.load(fh)
    texts, docs = payload["texts"], payload["docs"]
    with Memory.open(CACHE / f"{name}.db", **BUILD) as mem:  # positions and meta
        ids = [int(i) for i in texts]
        records = {r.id: r for i in range(0, len(ids), 500) for r in mem.get_many(ids[i : i + 500])}
    out = []
    for q in payload["queries"]:
        hits = [
            Hit(
                id=int(i),
                score=float(s),
                text=texts[str(i)],
                namespace=name,
                source=None,
                position=records[int(i)].position,
                event_time=None,
                meta=dict(records[int(i)].meta),
                why={c: ChannelScore(rank=int(r), score=float(v)) for c, (r, v) in why.items()},
            )
            for i, s, why in q["hits"]
        ]
        keys = [docs[str(h.id)] for h in hits]
        qrels = {str(d): int(g) for d, g in q["qrels"].items()}
        out.append(
            Group(
                collection=name,
                qid=q["qid"],
                split=q["split"],
                query=q["text"],
                hits=hits,
                docs=keys,
                labels=[qrels.get(k, 0) for k in keys],
                qrels=qrels,
                x=candidate_features(q["text"], hits),
            )
        )
    return out


def metrics(runs: Sequence[list[str]], groups: Sequence[Group]) -> dict[str, float]:
    return {
        name: round(
            mean_over_queries(fn(r, g.qrels, 10) for r, g in zip(runs, groups, strict=True)) or 0.0,
            4,
        )
        for name, fn in (("ndcg@10", ndcg_at_k), ("recall@10", recall_at_k))
    }


def rerank_runs(
    model: str, groups: Sequence[Group], rounds: int | None = None, *, shipped: bool = False
) -> list[list[str]]:
    """Each group's top 10 documents by the model's score (the first ``rounds`` trees);
    ``shipped``: as :class:`LambdaRankReranker` does it (lists of turns keep their order)."""
    import lightgbm as lgb

    booster = lgb.Booster(model_str=model)
    runs = []
    for g in groups:
        if shipped and any(is_turn(h) for h in g.hits):
            runs.append(g.docs[:10])
            continue
        s = booster.predict(g.x, num_iteration=rounds, num_threads=1)
        order = sorted(range(len(g.hits)), key=lambda i: (-float(s[i]), i))
        runs.append([g.docs[i] for i in order[:10]])
    return runs


def fit(train: Sequence[Group], params: dict[str, Any], rounds: int) -> str:
    """A model over ``train``, every collection weighing the same in total."""
    counts: dict[str, int] = {}
    for g in train:
        counts[g.collection] = counts.get(g.collection, 0) + 1
    weights = [1.0 / counts[g.collection] for g in train]
    return train_lambdarank(
        [(g.x, g.labels) for g in train], rounds=rounds, params=params, weights=weights
    )


def choose_rounds(train: Sequence[Group], params: dict[str, Any], grid: Sequence[int]) -> int:
    """Boosting rounds by leave-one-collection-out inside ``train``: the count with the
    best mean nDCG@10 gain over the inner held-out collections (ties: fewer rounds)."""
    names = sorted({g.collection for g in train})
    gains: dict[int, list[float]] = {r: [] for r in grid}
    for held in names:
        inner = [g for g in train if g.collection != held]
        dev = evaluation_groups([g for g in train if g.collection == held])
        base = metrics([g.docs[:10] for g in dev], dev)["ndcg@10"]
        model = fit(inner, params, max(grid))
        for r in grid:
            gains[r].append(metrics(rerank_runs(model, dev, r), dev)["ndcg@10"] - base)
    return max(grid, key=lambda r: (statistics.mean(gains[r]), -r))


def evaluation_groups(groups: Sequence[Group]) -> list[Group]:
    """The test queries; SciFact's train queries are never evaluated on."""
    test = [g for g in groups if g.split == "test"]
    return test or list(groups)


def training_groups(groups: Sequence[Group]) -> list[Group]:
    """SciFact trains on its train queries only, so its test figures stay clean."""
    if any(g.split == "train" for g in groups):
        return [g for g in groups if g.split == "train"]
    return list(groups)


def loco(
    all_groups: dict[str, list[Group]], params: dict[str, Any], rounds: int, grid: Sequence[int]
) -> dict[str, Any]:
    """For each collection: trained on the others, measured on it."""
    table: dict[str, Any] = {}
    for held in all_groups:
        train = [g for name, gs in all_groups.items() if name != held for g in training_groups(gs)]
        test = evaluation_groups(all_groups[held])
        r = rounds or choose_rounds(train, params, grid)
        model = fit(train, params, r)
        base = metrics([g.docs[:10] for g in test], test)
        reranked = metrics(rerank_runs(model, test, shipped=True), test)
        table[held] = {
            "queries": len(test),
            "rounds": r,
            "hybrid": base,
            "hybrid+rerank": reranked,
            "model_on_every_list": metrics(rerank_runs(model, test), test),
            "ndcg@10_gain": round(reranked["ndcg@10"] - base["ndcg@10"], 4),
            "recall@10_gain": round(reranked["recall@10"] - base["recall@10"], 4),
        }
        log(held, json.dumps(table[held]))
    table["mean"] = {
        key: round(statistics.mean(table[n][key] for n in all_groups), 4)
        for key in ("ndcg@10_gain", "recall@10_gain")
    }
    table["mean"]["hybrid_ndcg@10"] = round(
        statistics.mean(table[n]["hybrid"]["ndcg@10"] for n in all_groups), 4
    )
    table["mean"]["reranked_ndcg@10"] = round(
        statistics.mean(table[n]["hybrid+rerank"]["ndcg@10"] for n in all_groups), 4
    )
    table["target_met"] = bool(
        all(table[n]["ndcg@10_gain"] >= 0 for n in all_groups)
        and table["mean"]["ndcg@10_gain"] >= 0.02
    )
    return table


def latency(all_groups: dict[str, list[Group]], model: str) -> dict[str, float]:
    """CPU milliseconds per query: features of 100 candidates, and the model's scoring."""
    import lightgbm as lgb

    booster = lgb.Booster(model_str=model)
    groups = [g for gs in all_groups.values() for g in evaluation_groups(gs)[:50]]
    t0 = time.process_time()
    feats = [candidate_features(g.query, g.hits) for g in groups]
    t1 = time.process_time()
    for x in feats:
        booster.predict(x, num_threads=1)
    t2 = time.process_time()
    return {
        "queries": len(groups),
        "features_ms": round((t1 - t0) * 1000 / len(groups), 3),
        "predict_ms": round((t2 - t1) * 1000 / len(groups), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collections", default=",".join(COLLECTIONS))
    ap.add_argument("--stages", default="pools,loco")
    ap.add_argument("--rounds", type=int, default=100, help="0: chosen by inner LOCO")
    ap.add_argument("--grid", default="25,50,100,200,400")
    ap.add_argument("--params", default="{}", help="JSON LightGBM parameters to override")
    ap.add_argument("--ship", action="store_true", help="train on all collections, ship it")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    names = [c.strip() for c in args.collections.split(",") if c.strip()]
    stages = set(args.stages.split(","))
    for name in names:
        build_pools(name)
    if "loco" not in stages:
        return
    params = json.loads(args.params)
    grid = [int(r) for r in args.grid.split(",")]
    t0 = time.perf_counter()
    groups = {name: load_groups(name) for name in names}
    report: dict[str, Any] = {
        "features": list(FEATURES),
        "depth": DEPTH,
        "params": params,
        "queries": {
            n: {"train": len(training_groups(gs)), "test": len(evaluation_groups(gs))}
            for n, gs in groups.items()
        },
        "features_s": round(time.perf_counter() - t0, 1),
    }
    report["loco"] = loco(groups, params, args.rounds, grid)
    everything = [g for gs in groups.values() for g in training_groups(gs)]
    rounds = args.rounds or choose_rounds(everything, params, grid)
    model = fit(everything, params, rounds)
    report["all_collections_model"] = {"rounds": rounds, "bytes": len(model.encode())}
    report["latency"] = latency(groups, model)
    if args.ship:  # the features changed: an older model would not load
        (PKG / "rerank" / "data" / BUNDLED).write_text(model)
        log("shipped", BUNDLED, "target met:", report["loco"]["target_met"])
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
