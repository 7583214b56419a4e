"""Precision stage: reranking, calibrated relevance, abstention, conformal coverage, latency.

Data (``../shared/data``): BEIR SciFact (5,183 abstracts, 809 train / 300 test queries) and
LoCoMo (10 conversations, 5,882 turns, 1,986 questions of which 446 are category 5,
adversarial: unanswerable from the conversation).

Stores are built once and cached (``bench/cache/scifact.db``, ``bench/cache/locomo.db``):
one un-chunked memory per abstract (``title + " " + text``, namespace ``scifact``) or per
turn (``"<speaker>: <text>"``, namespace ``locomo.<conv>``), near-duplicate merging off.

Stages (``--stages``, default all):

* ``train``: fits the relevance calibration and a LambdaRank model on SciFact *train*
  queries (top-100 fused candidates, qrels as labels); ``--ship`` writes the calibration
  into the package. The shipped LambdaRank model comes from ``bench/rerank_loco.py --ship``
  (trained on seven collections); the one fitted here is measured in-domain only.
* ``rerank``: SciFact test nDCG@10 / recall@10 for hybrid RRF, +lambdarank, +mmr.
* ``abstain``: abstention precision/recall/F1 (positive = should abstain) on SciFact test
  queries whose relevant abstracts are forgotten in a copy of the store, against the
  answerable rest; and on LoCoMo category 5 against categories 1-4. Thresholds on the top
  hit's relevance are chosen on held-out data (SciFact train, or the other half of the
  LoCoMo conversations), never on the evaluated queries.
* ``coverage``: conformal thresholds for α ∈ {0.05, 0.1, 0.2} from 200 store cues;
  empirical coverage and mean set size on 500 fresh cues and on real queries.
* ``latency``: per-query time of each stage (single query per call).

Usage::

    PYTHONPATH=src python bench/precision.py --out bench/results/precision.json
    PYTHONPATH=src python bench/precision.py --stages train --ship
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engramdb import Memory, Record
from engramdb.calibrate import RelevanceModel, fit_relevance, sample_cues
from engramdb.context import pack
from engramdb.eval.metrics import mean_over_queries, ndcg_at_k, recall_at_k, roc_auc
from engramdb.eval.precision import abstention_scores
from engramdb.rerank import Candidates, LambdaRankReranker, candidate_features, train_lambdarank
from engramdb.types import Hit, Hits

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "bench" / "cache"
BUILD = {"recognize": {"enabled": False}, "embed": {"threads": 2}}
DEPTH = 100
ALPHAS = (0.05, 0.1, 0.2)
PKG = ROOT / "src" / "engramdb"


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# -- data --------------------------------------------------------------------------------------


@dataclass
class SciFact:
    queries: dict[str, str]
    train: dict[str, dict[str, int]]
    test: dict[str, dict[str, int]]


def load_scifact() -> SciFact:
    queries = {}
    for line in (DATA / "scifact" / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for split in qrels:
        lines = (DATA / "scifact" / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        for line in lines:
            q, d, s = line.split("\t")
            if int(s) > 0:
                qrels[split].setdefault(q, {})[d] = int(s)
    return SciFact(queries=queries, train=qrels["train"], test=qrels["test"])


def scifact_records() -> list[Record]:
    out = []
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = f"{row.get('title') or ''} {row['text']}".strip()
            if text:
                out.append(Record(text=text, document=row["_id"], source="scifact", chunk=False))
    return out


def _session_time(value: str) -> float:
    for fmt in ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    raise ValueError(f"unparsed LoCoMo time {value!r}")


def locomo_records() -> dict[str, list[Record]]:
    rows = [json.loads(x) for x in (DATA / "locomo" / "turns.jsonl").read_text().splitlines()]
    out: dict[str, list[Record]] = {}
    for row in rows:
        conv = out.setdefault(row["conv"], [])
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
    return out


def open_scifact(path: Path) -> Memory:
    mem = Memory.open(path, **BUILD)
    if not mem.stats().memories:
        log("building", path)
        mem.add_many(scifact_records(), namespace="scifact")
    return mem


def open_locomo(path: Path) -> Memory:
    mem = Memory.open(path, **BUILD)
    if not mem.stats().memories:
        log("building", path)
        for conv, records in sorted(locomo_records().items()):
            mem.add_many(records, namespace=f"locomo.{conv}")
    return mem


def documents(mem: Memory) -> dict[int, str]:
    """memory id → document id."""
    ids = mem.ids()
    out = {}
    for i in range(0, len(ids), 500):
        for r in mem.get_many(ids[i : i + 500]):
            out[r.id] = str(r.position.document)
    return out


# -- metrics -----------------------------------------------------------------------------------


def prf(flags: Sequence[bool], truth: Sequence[bool]) -> dict[str, float]:
    """Abstention precision/recall/F1 as the eval harness scores it (0 where undefined)."""
    return {k: round(v or 0.0, 4) for k, v in abstention_scores(flags, truth).items()}


def auroc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative), ties count half (rounded)."""
    value = roc_auc(pos, neg)
    return None if value is None else round(value, 4)


def oracle(scores: Sequence[float], truth: Sequence[bool]) -> dict[str, float]:
    """Abstention quality at the best threshold for this very data (an upper bound)."""
    t = best_threshold(scores, truth)
    return prf([s < t for s in scores], truth)


def best_threshold(scores: Sequence[float], truth: Sequence[bool]) -> float:
    """The abstention threshold (abstain when score < t) maximising F1 on this data."""
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    s = np.asarray(scores, dtype=float)[order]
    y = np.asarray(truth, dtype=bool)[order]
    positives = int(y.sum())
    tp = np.concatenate([[0], np.cumsum(y)])  # abstaining on the i lowest scores
    fp = np.concatenate([[0], np.cumsum(~y)])
    f1 = 2 * tp / np.maximum(tp + fp + positives, 1)
    best, best_f1 = 0.0, -1.0
    for i in range(len(s) + 1):
        if i < len(s) and i > 0 and s[i] == s[i - 1]:
            continue  # a threshold cannot split tied scores
        if f1[i] > best_f1:
            best_f1 = float(f1[i])
            best = float(s[i]) if i < len(s) else float(s[-1]) + 1e-9
    return best


# -- candidates --------------------------------------------------------------------------------


def candidates(mem: Memory, texts: Sequence[str], namespace: str | None) -> list[Hits]:
    out: list[Hits] = []
    for i in range(0, len(texts), 64):
        out += mem.recall_many(list(texts[i : i + 64]), k=DEPTH, namespace=namespace)
    return out


def labelled(
    pools: Sequence[Hits],
    qids: Sequence[str],
    qrels: dict[str, dict[str, int]],
    doc: dict[int, str],
) -> list[tuple[str, list[Hit], list[int]]]:
    return [
        (h.query, list(h), [qrels[q].get(doc[x.id], 0) for x in h])
        for h, q in zip(pools, qids, strict=True)
    ]


# -- stages ------------------------------------------------------------------------------------


def stage_train(ctx: dict[str, Any], ship: bool) -> dict[str, Any]:
    sf: SciFact = ctx["scifact"]
    train = ctx["train_groups"]
    test = ctx["test_groups"]
    t0 = time.perf_counter()
    model = fit_relevance(train, trained_on="BEIR SciFact train (809 queries, top-100 hybrid)")
    fit_s = time.perf_counter() - t0
    report: dict[str, Any] = {"relevance_fit_s": round(fit_s, 1)}
    for name, m in (("provisional", RelevanceModel.load()), ("fitted", model)):
        report[f"relevance_{name}"] = calibration_quality(m, test)
    ctx["relevance"] = model
    if ship:
        (PKG / "calibrate" / "data" / "relevance-scifact.json").write_text(model.to_json() + "\n")
        log("shipped relevance model")
    groups = [(candidate_features(q, h), y) for q, h, y in train]
    t0 = time.perf_counter()
    text = train_lambdarank(groups, rounds=300)
    report["lambdarank_fit_s"] = round(time.perf_counter() - t0, 1)
    path = Path(tempfile.gettempdir()) / "engramdb-lambdarank.txt"
    path.write_text(text)
    ctx["lambdarank"] = path
    report["lambdarank_model_bytes"] = len(text.encode())
    del sf
    return report


def calibration_quality(model: RelevanceModel, groups: Sequence[Any]) -> dict[str, float]:
    p = np.concatenate([model.relevance(q, h) for q, h, _ in groups])
    y = np.concatenate([np.asarray(lab) > 0 for _, _, lab in groups]).astype(float)
    eps = 1e-9
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(
        abs(p[bins == b].mean() - y[bins == b].mean()) * (bins == b).mean()
        for b in range(10)
        if (bins == b).any()
    )
    top = np.asarray([model.relevance(q, h)[0] for q, h, _ in groups])
    top_y = np.asarray([lab[0] > 0 for _, _, lab in groups], dtype=float)
    return {
        "log_loss": round(float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))), 4),
        "brier": round(float(np.mean((p - y) ** 2)), 5),
        "ece": round(float(ece), 4),
        "mean_p": round(float(p.mean()), 4),
        "base_rate": round(float(y.mean()), 4),
        "top1_mean_p": round(float(top.mean()), 4),
        "top1_precision": round(float(top_y.mean()), 4),
    }


def stage_rerank(ctx: dict[str, Any], ship: bool) -> dict[str, Any]:
    sf: SciFact = ctx["scifact"]
    mem: Memory = ctx["mem"]
    doc: dict[int, str] = ctx["doc"]
    qids = ctx["test_ids"]
    pools: list[Hits] = ctx["test_pools"]
    runs: dict[str, list[list[str]]] = {"hybrid": [[doc[h.id] for h in p] for p in pools]}
    for name, pool in (("lexical", "lexical"), ("dense", "dense")):
        hits = [mem.recall(sf.queries[q], k=10, channels=pool) for q in qids]
        runs[name] = [[doc[h.id] for h in p] for p in hits]
    if "lambdarank" in ctx:
        rr = LambdaRankReranker(ctx["lambdarank"])
        runs["hybrid+lambdarank"] = [
            [doc[h.id] for h in rr.rerank(Candidates(query=p.query, hits=list(p)), k=10)]
            for p in pools
        ]
    mmr = [mem.recall(sf.queries[q], k=10, rerank="mmr") for q in qids]
    runs["hybrid+mmr"] = [[doc[h.id] for h in p] for p in mmr]
    out = {
        name: {
            metric: round(
                mean_over_queries(fn(r, sf.test[q], 10) for r, q in zip(rs, qids, strict=True))
                or 0.0,
                4,
            )
            for metric, fn in (("ndcg@10", ndcg_at_k), ("recall@10", recall_at_k))
        }
        for name, rs in runs.items()
    }
    gain = out.get("hybrid+lambdarank", {}).get("ndcg@10", 0) - out["hybrid"]["ndcg@10"]
    out["lambdarank_gain"] = round(gain, 4)
    return out


def _split_removed(qrels: dict[str, dict[str, int]]) -> tuple[list[str], list[str], set[str]]:
    """Every other query (sorted ids) is made unanswerable by removing its relevant docs."""
    ids = sorted(qrels, key=lambda q: int(q))
    gone = ids[1::2]
    removed = {d for q in gone for d in qrels[q]}
    kept = [q for q in ids[0::2] if not set(qrels[q]) & removed]
    return kept, gone, removed


def stage_abstain(ctx: dict[str, Any], ship: bool) -> dict[str, Any]:
    sf: SciFact = ctx["scifact"]
    doc: dict[int, str] = ctx["doc"]
    report: dict[str, Any] = {}
    copy = Path(tempfile.mkdtemp()) / "scifact-forgotten.db"
    src = sqlite3.connect(ctx["scifact_path"])
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    splits = {s: _split_removed(getattr(sf, s)) for s in ("train", "test")}
    removed = set().union(*(r for _, _, r in splits.values()))
    with Memory.open(copy, **BUILD) as forgotten:
        if "relevance" in ctx:
            forgotten.relevance_model = ctx["relevance"]
        gone_ids = [i for i, d in doc.items() if d in removed]
        forgotten.forget(ids=gone_ids)
        top: dict[str, tuple[list[float], list[bool]]] = {}
        for split, (kept, gone, _) in splits.items():
            qs = kept + gone
            hits = forgotten.recall_many([sf.queries[q] for q in qs], k=10)
            top[split] = ([h[0].relevance or 0.0 for h in hits], [q in gone for q in qs])
        for alpha in ALPHAS:
            flags = [
                h.abstain
                for h in forgotten.recall_many(
                    [sf.queries[q] for q in splits["test"][0] + splits["test"][1]],
                    k=10,
                    coverage=1 - alpha,
                )
            ]
            report[f"scifact_conformal_alpha{alpha}"] = prf(flags, top["test"][1])
    t = best_threshold(*top["train"])
    scores, truth = top["test"]
    report["scifact"] = {
        "answerable": int(len(truth) - sum(truth)),
        "unanswerable": int(sum(truth)),
        "threshold_from_train": t,
        **prf([s < t for s in scores], truth),
        "auroc": auroc(  # P(an answerable query's top relevance > an unanswerable one's)
            [s for s, u in zip(scores, truth, strict=True) if not u],
            [s for s, u in zip(scores, truth, strict=True) if u],
        ),
        "always_abstain_f1": prf([True] * len(truth), truth)["f1"],
        "oracle_f1": oracle(scores, truth)["f1"],
    }
    report["locomo"] = locomo_abstention(ctx, t)
    return report


def locomo_abstention(ctx: dict[str, Any], scifact_t: float) -> dict[str, Any]:
    mem: Memory = ctx["locomo"]
    if "relevance" in ctx:
        mem.relevance_model = ctx["relevance"]
    rows = [json.loads(x) for x in (DATA / "locomo" / "qa.jsonl").read_text().splitlines()]
    convs = sorted({r["conv"] for r in rows})
    scores: list[float] = []
    truth: list[bool] = []
    half: list[int] = []
    for ci, conv in enumerate(convs):
        qs = [r for r in rows if r["conv"] == conv]
        hits = mem.recall_many([r["question"] for r in qs], k=10, namespace=f"locomo.{conv}")
        scores += [h[0].relevance or 0.0 if len(h) else 0.0 for h in hits]
        truth += [r["category"] == 5 for r in qs]
        half += [ci % 2] * len(qs)
    out: dict[str, Any] = {
        "answerable": int(len(truth) - sum(truth)),
        "unanswerable": int(sum(truth)),
        "auroc": auroc(  # P(an answerable query's top relevance > an unanswerable one's)
            [s for s, u in zip(scores, truth, strict=True) if not u],
            [s for s, u in zip(scores, truth, strict=True) if u],
        ),
        "always_abstain_f1": prf([True] * len(truth), truth)["f1"],
        "scifact_threshold": {
            "threshold": scifact_t,
            **prf([s < scifact_t for s in scores], truth),
        },
    }
    flags = [False] * len(scores)
    for h in (0, 1):  # threshold from the other half of the conversations
        idx = [i for i, x in enumerate(half) if x != h]
        t = best_threshold([scores[i] for i in idx], [truth[i] for i in idx])
        for i, x in enumerate(half):
            if x == h:
                flags[i] = scores[i] < t
    out["cross_conversation_threshold"] = prf(flags, truth)
    out["oracle_f1"] = oracle(scores, truth)["f1"]
    return out


def _coverage(mem: Memory, ns: str | None, cues: list[tuple[int, str]], cal: Any) -> dict[str, Any]:
    pools = candidates(mem, [c for _, c in cues], ns)
    out = {}
    for alpha in ALPHAS:
        t = cal.threshold(alpha)
        kept = [[h.id for h in p if (h.relevance or 0) >= t] for p in pools]
        out[str(alpha)] = {
            "threshold": round(t, 4),
            "coverage": round(
                statistics.mean(s in k for (s, _), k in zip(cues, kept, strict=True)), 4
            ),
            "mean_set_size": round(statistics.mean(len(k) for k in kept), 2),
        }
    return out


def stage_coverage(ctx: dict[str, Any], ship: bool) -> dict[str, Any]:
    mem: Memory = ctx["mem"]
    sf: SciFact = ctx["scifact"]
    doc: dict[int, str] = ctx["doc"]
    if "relevance" in ctx:
        mem.relevance_model = ctx["relevance"]
    t0 = time.perf_counter()
    cal = mem.calibrate(cues=200, seed=0)
    report: dict[str, Any] = {"scifact_calibrate_s": round(time.perf_counter() - t0, 1)}
    ids = sorted(doc)
    texts = {r.id: r.text for r in mem.get_many(random.Random(1).sample(ids, 600))}
    fresh = sample_cues(sorted(texts.items()), n=500, seed=1)
    report["scifact_cues"] = _coverage(mem, None, fresh, cal)
    pools = ctx["test_pools"]
    real = {}
    for alpha in ALPHAS:
        t = cal.threshold(alpha)
        kept = [[doc[h.id] for h in p if (h.relevance or 0) >= t] for p in pools]
        rel = [sf.test[q] for q in ctx["test_ids"]]
        real[str(alpha)] = {
            "coverage_any_relevant": round(
                statistics.mean(bool(set(k) & set(r)) for k, r in zip(kept, rel, strict=True)), 4
            ),
            "coverage_pairs": round(
                sum(len(set(k) & set(r)) for k, r in zip(kept, rel, strict=True))
                / sum(len(r) for r in rel),
                4,
            ),
            "mean_set_size": round(statistics.mean(len(k) for k in kept), 2),
        }
    report["scifact_test_queries"] = real
    report["locomo"] = locomo_coverage(ctx)
    return report


def locomo_coverage(ctx: dict[str, Any]) -> dict[str, Any]:
    mem: Memory = ctx["locomo"]
    if "relevance" in ctx:
        mem.relevance_model = ctx["relevance"]
    rows = [json.loads(x) for x in (DATA / "locomo" / "qa.jsonl").read_text().splitlines()]
    dia: dict[int, str] = {}
    ids = mem.ids()
    for i in range(0, len(ids), 500):
        for r in mem.get_many(ids[i : i + 500]):
            dia[r.id] = str(r.meta.get("dia_id"))
    cov: dict[str, list[float]] = {str(a): [] for a in ALPHAS}
    size: dict[str, list[int]] = {str(a): [] for a in ALPHAS}
    cue_cov: dict[str, list[bool]] = {str(a): [] for a in ALPHAS}
    for conv in sorted({r["conv"] for r in rows}):
        ns = f"locomo.{conv}"
        cal = mem.calibrate(namespace=ns, cues=100, seed=0)
        conv_texts = {r.id: r.text for r in mem.get_many(mem.ids(namespace=ns))}
        fresh = sample_cues(sorted(conv_texts.items()), n=100, seed=1)
        cue_pools = candidates(mem, [c for _, c in fresh], ns)
        qs = [r for r in rows if r["conv"] == conv and r["category"] != 5 and r["evidence"]]
        pools = candidates(mem, [r["question"] for r in qs], ns)
        for alpha in ALPHAS:
            t = cal.threshold(alpha)
            for (src, _), p in zip(fresh, cue_pools, strict=True):
                cue_cov[str(alpha)].append(any(h.id == src and (h.relevance or 0) >= t for h in p))
            for r, p in zip(qs, pools, strict=True):
                kept = {dia[h.id] for h in p if (h.relevance or 0) >= t}
                cov[str(alpha)].append(bool(kept & set(r["evidence"])))
                size[str(alpha)].append(len(kept))
    return {
        a: {
            "cue_coverage": round(statistics.mean(cue_cov[a]), 4),
            "question_coverage_any_evidence": round(statistics.mean(cov[a]), 4),
            "mean_set_size": round(statistics.mean(size[a]), 2),
        }
        for a in cov
    }


def stage_latency(ctx: dict[str, Any], ship: bool) -> dict[str, Any]:
    mem: Memory = ctx["mem"]
    sf: SciFact = ctx["scifact"]
    qs = [sf.queries[q] for q in ctx["test_ids"][:100]]
    pools: list[Hits] = ctx["test_pools"][:100]
    timings: dict[str, list[float]] = {}

    @contextmanager
    def clock(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        timings.setdefault(name, []).append((time.perf_counter() - t0) * 1000)

    model = mem.relevance_model
    rr = LambdaRankReranker(ctx.get("lambdarank"))  # the bundled model unless trained now
    both = ("lexical", "dense")
    reader = mem._reader  # noqa: SLF001 - the fused list without the precision stage
    for q, pool in zip(qs, pools, strict=True):
        with clock("fused top-10, no precision stage"):
            reader.recall_many([q], k=10, namespace=None, where=None, channels=both)
        with clock("fused top-100 (the precision stage's candidates)"):
            reader.recall_many([q], k=DEPTH, namespace=None, where=None, channels=both)
        with clock("recall k=10 (default, with relevance)"):
            mem.recall(q, k=10)
        with clock("relevance calibration of 100 candidates"):
            model.relevance(q, list(pool))
        with clock("lambdarank rerank of 100 candidates"):
            rr.rerank(Candidates(query=q, hits=list(pool)), k=10)
        with clock("recall k=10 + mmr"):
            mem.recall(q, k=10, rerank="mmr")
        hits = mem.recall(q, k=20)
        with clock("pack 20 hits into 1000 tokens"):
            pack(hits, budget_tokens=1000)
        with clock("pack 20 hits into 1000 tokens, edges order"):
            pack(hits, budget_tokens=1000, order="edges")
    return {
        name: {"p50_ms": round(statistics.median(v), 3), "mean_ms": round(statistics.mean(v), 3)}
        for name, v in timings.items()
    }


STAGES = {
    "train": stage_train,
    "rerank": stage_rerank,
    "abstain": stage_abstain,
    "coverage": stage_coverage,
    "latency": stage_latency,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scifact-db", type=Path, default=CACHE / "scifact.db")
    ap.add_argument("--locomo-db", type=Path, default=CACHE / "locomo.db")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--ship", action="store_true", help="write trained models into the package")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    sf = load_scifact()
    mem = open_scifact(args.scifact_db)
    ctx: dict[str, Any] = {"scifact": sf, "mem": mem, "scifact_path": args.scifact_db}
    ctx["doc"] = documents(mem)
    ctx["test_ids"] = sorted(sf.test, key=int)
    train_ids = sorted(sf.train, key=int)
    log("candidates: test")
    ctx["test_pools"] = candidates(mem, [sf.queries[q] for q in ctx["test_ids"]], None)
    ctx["test_groups"] = labelled(ctx["test_pools"], ctx["test_ids"], sf.test, ctx["doc"])
    if "train" in stages:
        log("candidates: train")
        pools = candidates(mem, [sf.queries[q] for q in train_ids], None)
        ctx["train_groups"] = labelled(pools, train_ids, sf.train, ctx["doc"])
    if {"abstain", "coverage"} & set(stages):
        ctx["locomo"] = open_locomo(args.locomo_db)
    results: dict[str, Any] = {"memories": len(ctx["doc"])}
    if args.out and args.out.exists():  # stages run separately add up in one report
        results = {**json.loads(args.out.read_text()), **results}
    for name in stages:
        log("stage", name)
        t0 = time.perf_counter()
        results[name] = STAGES[name](ctx, args.ship)
        results[name]["_seconds"] = round(time.perf_counter() - t0, 1)
        log(name, json.dumps(results[name])[:2000])
    text = json.dumps(results, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
