"""Recall over conversation turns on LoCoMo: the re-scorings of ``engramdb.retrieve.conversation``
measured, tuned by conversation folds, and checked against the module itself.

    python bench/locomo_recall.py collect [--from /tmp/ev/locomo.db] [--rounds]
    python bench/locomo_recall.py table [--out table.md]
    python bench/locomo_recall.py check
    python bench/locomo_recall.py sessions

``collect`` builds (or copies) a store with the turns of the 10 conversations, one namespace
``locomo.<conv>`` each (the records ``engram eval`` writes), and caches per conversation the
turns, the questions of categories 1-4 with evidence, every lexical score (the engine's FTS5
query, and the same query with a longer English stop-word list) and every dense score
(query · stored MiniLM vector); ``--rounds`` also embeds each turn with its previous and with
its next turn ("round" vectors, minutes on two cores).

``table`` evaluates each method in numpy over the cached scores, exactly as the read path
would see them: each channel's run is its top ``DEPTH`` hits, min-max normalised, 0 outside
it. Weights are tuned by coordinate descent on ``OBJECTIVE`` over a grid, on fold A (the
first 5 conversations, ids sorted) and reported on fold B and vice versa ("held-out"), and
tuned and reported on all 10 ("all-10", in-sample).

``check`` runs the module (``rescore``) on the runs of real ``Memory.recall_many`` calls with
the neighbours fetched from the store by one SQL statement, as the read path would, confirms
the figures of ``table`` and measures the added latency. ``sessions`` shows how far session
recall@5 can go: the recall of a ranking of sessions by their best turn, and what a
session-diverse re-ranking of the turns trades for it.

Everything is cached under ``/tmp/locomo-research`` (``--cache``).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from engramdb import Memory  # noqa: E402
from engramdb.eval.conversations import load_locomo  # noqa: E402
from engramdb.eval.retrieval import turn_record  # noqa: E402
from engramdb.lexical.tokenize import query_terms  # noqa: E402
from engramdb.query import find_speakers, parse_time_intent  # noqa: E402
from engramdb.retrieve.conversation import (  # noqa: E402
    ConversationParams,
    Turn,
    as_turn,
    has_time_expression,
    rescore,
)
from engramdb.retrieve.fusion import fuse  # noqa: E402

DATA = Path("/work/shared/data/locomo")
CACHE = Path("/tmp/locomo-research")
DEPTH = 100  # RecallConfig.candidates: each channel's run
OBJECTIVE = ("r10", "s5")  # tuned: turn recall@10 + session recall@5

# A general English stop-word list (function words, pronouns, auxiliaries, question words).
STOP_EXT = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves""".split()  # noqa: SIM905
)

GRID: dict[str, list[float]] = {
    "wp": [0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0],
    "wn": [0, 0.1, 0.2, 0.3, 0.4, 0.5],
    "wd": [0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5],
    "sig": [0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0],
    "tau": [0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],
    "lam": [0, 0.25, 0.5, 0.75, 1.0],
    "gam": [0, 0.1, 0.2, 0.3, 0.5],
    "top": [1, 2, 3],
}
NEUTRAL: dict[str, float] = {
    "wl": 1.0,
    "wd": 0.0,
    "wp": 0.0,
    "wn": 0.0,
    "sig": 0.0,
    "tau": 0.0,
    "lam": 0.0,
    "gam": 0.0,
    "top": 1,
}


# -- collect -----------------------------------------------------------------------------------


def ext_query(text: str) -> str:
    """The query with the longer stop-word list applied (the text itself when nothing is left)."""
    terms = [t for t in query_terms(text) if t not in STOP_EXT]
    return " ".join(terms) or text


def build_store(path: Path, source: Path | None) -> None:
    """Copy a store ``engram eval`` filled, or fill a new one the same way."""
    if source is not None:
        with sqlite3.connect(source) as src, sqlite3.connect(path) as dst:
            src.backup(dst)
        return
    data = load_locomo(DATA)
    with Memory.open(path) as mem:
        for conv in sorted({t.conv for t in data.turns}):
            records = [turn_record(t, data.name) for t in data.turns if t.conv == conv]
            mem.add_many(records, namespace=f"locomo.{conv}")


def collect(cache_dir: Path, source: Path | None, rounds: bool) -> None:
    store = cache_dir / "store.db"
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not store.exists():
        build_store(store, source)
    data = load_locomo(DATA)
    out = cache_dir / "turns"
    out.mkdir(exist_ok=True)
    with Memory.open(store) as mem:
        all_ids, all_vectors = mem.dense_index.vectors()
        row = {int(i): j for j, i in enumerate(all_ids.tolist())}
        for conv in sorted({t.conv for t in data.turns}):
            turns = [t for t in data.turns if t.conv == conv]
            ns = f"locomo.{conv}"
            records = sorted(
                mem.get_many(mem.ids(namespace=ns), sightings=True),
                key=lambda r: r.position.ordinal,
            )
            ids = [r.id for r in records]
            labels = [
                [
                    turns[o].dia_id
                    for o in sorted(
                        {r.position.ordinal} | {s.position.ordinal for s in r.sightings}
                    )
                ]
                for r in records
            ]
            qs = [q for q in data.questions if q.conv == conv and q.category != 5 and q.evidence]
            texts = [q.text for q in qs]
            vectors = all_vectors[[row[i] for i in ids]]
            arrays = {"dense": mem.embedder.embed_queries(texts) @ vectors.T}
            column = {i: j for j, i in enumerate(ids)}
            for name, query in (("lex", texts), ("lex_ext", [ext_query(t) for t in texts])):
                found, scores = mem._lexical.search(
                    query, 10_000, where="m.namespace = ?", params=[ns]
                )
                matrix = np.zeros((len(qs), len(ids)), dtype=np.float32)
                for qi in range(len(qs)):
                    for i, s in zip(found[qi], scores[qi], strict=True):
                        if i >= 0:
                            matrix[qi, column[int(i)]] = s
                arrays[name] = matrix
            if rounds:
                arrays["dense_rounds"] = _round_scores(
                    mem, records, vectors, texts, cache_dir / "rounds" / conv
                )
            meta = {
                "ids": ids,
                "ordinal": [r.position.ordinal for r in records],
                "speaker": [r.meta["speaker"] for r in records],
                "session": [r.meta["session"] for r in records],
                "text": [r.text for r in records],
                "labels": labels,
                "questions": [
                    {
                        "id": q.id,
                        "text": q.text,
                        "category": q.category,
                        "evidence": list(q.evidence),
                    }
                    for q in qs
                ],
            }
            (out / f"{conv}.json").write_text(json.dumps(meta))
            np.savez(out / f"{conv}.npz", **arrays)
            print(f"{conv}: {len(ids)} turns, {len(qs)} questions", flush=True)


def _round_scores(
    mem: Memory, records: Sequence[Any], vectors: np.ndarray, texts: list[str], stem: Path
) -> np.ndarray:
    """max(turn, previous+turn, turn+next) dense scores (rounds embedded as one text; the
    round vectors are cached as ``<stem>.prev.npy`` and ``<stem>.next.npy``)."""
    same = [
        i > 0 and records[i - 1].meta["session"] == r.meta["session"] for i, r in enumerate(records)
    ]
    prev = [(records[i - 1].text + "\n" if same[i] else "") + r.text for i, r in enumerate(records)]
    nxt = [
        r.text + ("\n" + records[i + 1].text if i + 1 < len(records) and same[i + 1] else "")
        for i, r in enumerate(records)
    ]
    stem.parent.mkdir(parents=True, exist_ok=True)
    rounds = []
    for suffix, round_texts in (("prev", prev), ("next", nxt)):
        path = stem.with_name(f"{stem.name}.{suffix}.npy")
        if not path.exists():
            np.save(path, mem.embedder.embed_documents(round_texts))
        rounds.append(np.load(path))
    q = mem.embedder.embed_queries(texts)
    return np.maximum.reduce([q @ vectors.T, *(q @ r.T for r in rounds)])


# -- the numpy model ---------------------------------------------------------------------------


@dataclass
class Conv:
    name: str
    ids: list[int]
    ordinal: np.ndarray
    speaker: list[str]
    session: np.ndarray
    text: list[str]
    labels: list[list[str]]
    questions: list[dict[str, Any]]
    arrays: Mapping[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.ids)


@cache
def load(cache_dir: Path, name: str) -> Conv:
    meta = json.loads((cache_dir / "turns" / f"{name}.json").read_text())
    arrays = dict(np.load(cache_dir / "turns" / f"{name}.npz"))
    return Conv(
        name=name,
        ids=meta["ids"],
        ordinal=np.asarray(meta["ordinal"]),
        speaker=meta["speaker"],
        session=np.asarray(meta["session"]),
        text=meta["text"],
        labels=meta["labels"],
        questions=meta["questions"],
        arrays=arrays,
    )


def conversations(cache_dir: Path) -> list[str]:
    return sorted(p.stem for p in (cache_dir / "turns").glob("*.json"))


def run_member(scores: np.ndarray, matched: np.ndarray | None) -> np.ndarray:
    """(Q, n) bool: in the query's top-DEPTH run (ties by column = by id, as FTS5 orders)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH]
    member = np.zeros(scores.shape, dtype=bool)
    np.put_along_axis(member, order, True, axis=1)
    return member if matched is None else member & matched


def minmax_run(scores: np.ndarray, member: np.ndarray) -> np.ndarray:
    """fusion.minmax of each run; 0 outside it."""
    lo = np.where(member, scores, np.inf).min(axis=1, keepdims=True)
    hi = np.where(member, scores, -np.inf).max(axis=1, keepdims=True)
    flat = ~(hi > lo)
    span = np.where(flat, 1.0, hi - lo)
    x = np.where(flat, 1.0, (scores - np.where(np.isfinite(lo), lo, 0.0)) / span)
    return np.where(member, x, 0.0)


@dataclass
class Prepared:
    conv: Conv
    channels: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (normalised, member)
    linked: np.ndarray  # (n,) column j-1 is column j's previous turn
    named: np.ndarray  # (Q, n)
    when_time: np.ndarray  # (Q, n)
    words: np.ndarray  # (n,)
    session_cols: list[np.ndarray]


@cache
def prepare(cache_dir: Path, name: str, lexical: str, dense: str) -> Prepared:
    c = load(cache_dir, name)
    channels = {}
    if lexical:
        lex = c.arrays[lexical]
        member = run_member(lex, lex > 0)
        channels["lexical"] = (minmax_run(lex, member), member)
    if dense:
        d = c.arrays[dense]
        member = run_member(d, None)
        channels["dense"] = (minmax_run(d, member), member)
    linked = np.r_[False, (np.diff(c.ordinal) == 1) & (c.session[1:] == c.session[:-1])]
    speakers = sorted(set(c.speaker))
    named = np.zeros((len(c.questions), c.n), dtype=bool)
    when = np.zeros(len(c.questions), dtype=bool)
    for qi, q in enumerate(c.questions):
        named[qi] = np.isin(c.speaker, sorted(find_speakers(q["text"], speakers)))
        when[qi] = parse_time_intent(q["text"], 0.0).asks_when
    has_time = np.asarray([has_time_expression(t) for t in c.text])
    return Prepared(
        conv=c,
        channels=channels,
        linked=linked,
        named=named,
        when_time=when[:, None] & has_time[None, :],
        words=np.asarray([max(1, len(t.split())) for t in c.text], dtype=float),
        session_cols=[np.flatnonzero(c.session == s) for s in np.unique(c.session)],
    )


def _prev(x: np.ndarray, linked: np.ndarray) -> np.ndarray:
    """At column j, the value at j's previous turn (0 when none)."""
    y = np.zeros_like(x)
    y[:, 1:] = x[:, :-1] * linked[1:]
    return y


def _next(x: np.ndarray, linked: np.ndarray) -> np.ndarray:
    y = np.zeros_like(x)
    y[:, :-1] = x[:, 1:] * linked[1:]
    return y


def model_scores(prep: Prepared, p: Mapping[str, float]) -> np.ndarray:
    """(Q, n) scores of the module's formula; -inf for turns that are not candidates."""
    linked = prep.linked
    member = np.zeros(prep.named.shape, dtype=bool)
    total = np.zeros(prep.named.shape)
    for channel, (x, m) in prep.channels.items():
        w = p["wl"] if channel == "lexical" else p["wd"]
        member |= m
        total += w * (x + p["wp"] * _prev(x, linked) + p["wn"] * _next(x, linked))
    cand = member | _prev(member.astype(float), linked).astype(bool)
    cand |= _next(member.astype(float), linked).astype(bool)
    total *= 1 + p["sig"] * prep.named
    total *= 1 + p["tau"] * prep.when_time
    if p["lam"]:
        words = np.where(cand, prep.words[None, :], np.nan)
        median = np.nanmedian(words, axis=1, keepdims=True)
        total *= (prep.words[None, :] / median) ** p["lam"]
    total = np.where(cand, total, 0.0)
    if p["gam"]:
        top = int(p["top"])
        prior = np.zeros_like(total)
        for cols in prep.session_cols:
            best = -np.sort(-total[:, cols], axis=1)[:, :top]
            prior[:, cols] = (best.sum(axis=1) / top)[:, None]
        total = total + p["gam"] * prior
    return np.where(cand, total, -np.inf)


def rrf_scores(prep: Prepared) -> np.ndarray:
    """The engine's default fusion (RRF, k=60) of the runs; -inf outside every run."""
    out = np.zeros(prep.named.shape)
    member_any = np.zeros(prep.named.shape, dtype=bool)
    for channel, (_, member) in prep.channels.items():
        raw = prep.conv.arrays["lex" if channel == "lexical" else "dense"]
        scores = np.where(member, raw, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(1, order.shape[1] + 1)[None, :], axis=1)
        out += np.where(member, 1.0 / (60 + rank), 0.0)
        member_any |= member
    return np.where(member_any, out, -np.inf)


# -- metrics -----------------------------------------------------------------------------------


def _session(dia_id: str) -> int:
    return int(dia_id[1:].split(":")[0])


def question_metrics(c: Conv, ranked_cols: Iterable[Sequence[int]]) -> dict[str, np.ndarray]:
    """Per-question turn recall@1/5/10/20 and session recall@5/10 (eval/retrieval.py)."""
    keys = ("r1", "r5", "r10", "r20", "s5", "s10")
    out = {k: np.zeros(len(c.questions)) for k in keys}
    for qi, cols in enumerate(ranked_cols):
        ranked: list[str] = []
        for j in cols:
            ranked += [label for label in c.labels[j] if label not in ranked]
            if len(ranked) >= 20:
                break
        gold = set(c.questions[qi]["evidence"])
        sessions = {_session(e) for e in gold}
        for k in (1, 5, 10, 20):
            out[f"r{k}"][qi] = len(gold & set(ranked[:k])) / len(gold)
        for k in (5, 10):
            touched = {_session(x) for x in ranked[:k]}
            out[f"s{k}"][qi] = len(sessions & touched) / len(sessions)
    out["cat"] = np.asarray([q["category"] for q in c.questions])
    return out


def top_columns(scores: np.ndarray, depth: int = 25) -> list[list[int]]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    return [[int(j) for j in row if np.isfinite(scores[qi, j])] for qi, row in enumerate(order)]


def summarize(rows: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    cat = np.concatenate([r["cat"] for r in rows])
    out = {
        k: float(np.concatenate([r[k] for r in rows]).mean())
        for k in ("r1", "r5", "r10", "r20", "s5", "s10")
    }
    r10 = np.concatenate([r["r10"] for r in rows])
    for category in (1, 2, 3, 4):
        out[f"cat{category}/r10"] = float(r10[cat == category].mean())
    out["questions"] = float(len(cat))
    return out


# -- methods and tuning ------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    name: str
    lexical: str  # cache array: "lex" (the engine's query), "lex_ext", or "" (channel off)
    dense: str  # "dense", "dense_rounds", or ""
    free: tuple[str, ...]  # tuned weights; the rest stay NEUTRAL (or ``fixed``)
    fixed: tuple[tuple[str, float], ...] = ()
    kind: str = "model"  # "model"; "rrf": the engine's fusion; "plain": one channel's run


ALL = ("wp", "wn", "wd", "sig", "tau", "lam", "gam", "top")
METHODS = (
    Method("lexical", "lex", "", (), kind="plain"),
    Method("dense", "", "dense", (), kind="plain"),
    Method("hybrid RRF (today's default)", "lex", "dense", (), kind="rrf"),
    Method("hybrid min-max fusion", "lex", "dense", ("wd",)),
    Method("+ context (prev/next)", "lex", "dense", ("wd", "wp", "wn")),
    Method("+ speaker prior", "lex", "dense", ("wd", "sig")),
    Method("+ temporal prior", "lex", "dense", ("wd", "tau")),
    Method("+ length prior", "lex", "dense", ("wd", "lam")),
    Method("+ session prior", "lex", "dense", ("wd", "gam", "top")),
    Method("conversation: all", "lex", "dense", ALL),
    Method("conversation: lexical only", "lex", "", tuple(k for k in ALL if k != "wd")),
    Method(
        "conversation: dense only",
        "",
        "dense",
        tuple(k for k in ALL if k != "wd"),
        fixed=(("wl", 0.0), ("wd", 1.0)),
    ),
    Method("lexical, ext. stop words", "lex_ext", "", (), kind="plain"),
    Method("conversation: all, ext. stop words", "lex_ext", "dense", ALL),
    Method("conversation: all, ext. stop words + round vectors", "lex_ext", "dense_rounds", ALL),
)


def method_scores(cache_dir: Path, method: Method, name: str, p: Mapping[str, float]):
    prep = prepare(cache_dir, name, method.lexical, method.dense)
    if method.kind == "rrf":
        return prep, rrf_scores(prep)
    if method.kind == "plain":
        ((channel, (_, member)),) = prep.channels.items()
        raw = prep.conv.arrays[method.lexical or method.dense]
        return prep, np.where(member, raw, -np.inf)
    return prep, model_scores(prep, p)


def evaluate(cache_dir: Path, method: Method, p: Mapping[str, float], convs: Sequence[str]):
    rows = []
    for name in convs:
        prep, scores = method_scores(cache_dir, method, name, p)
        rows.append(question_metrics(prep.conv, top_columns(scores)))
    return summarize(rows)


def objective(result: Mapping[str, float]) -> float:
    return sum(result[k] for k in OBJECTIVE)


def tune(cache_dir: Path, method: Method, convs: Sequence[str], rounds: int = 2):
    """Coordinate descent over GRID from the neutral weights."""
    p: dict[str, float] = {**NEUTRAL, **dict(method.fixed)}
    if "wd" in method.free:
        p["wd"] = 0.5
    best = objective(evaluate(cache_dir, method, p, convs))
    for _ in range(rounds):
        moved = False
        for key in method.free:
            for value in GRID[key]:
                if p[key] == value:
                    continue
                trial = {**p, key: value}
                score = objective(evaluate(cache_dir, method, trial, convs))
                if score > best + 1e-9:
                    best, p, moved = score, trial, True
        if not moved:
            break
    return p


def crossfold(cache_dir: Path, method: Method) -> dict[str, Any]:
    convs = conversations(cache_dir)
    fold_a, fold_b = convs[:5], convs[5:]
    if not method.free:
        p = {**NEUTRAL, **dict(method.fixed)}
        result = evaluate(cache_dir, method, p, convs)
        return {"params": {"A": p, "B": p, "all": p}, "held_out": result, "all10": result}
    pa, pb = tune(cache_dir, method, fold_a), tune(cache_dir, method, fold_b)
    rows = []
    for p, held in ((pa, fold_b), (pb, fold_a)):
        for name in held:
            prep, scores = method_scores(cache_dir, method, name, p)
            rows.append(question_metrics(prep.conv, top_columns(scores)))
    p_all = tune(cache_dir, method, convs)
    return {
        "params": {"A": pa, "B": pb, "all": p_all},
        "held_out": summarize(rows),
        "all10": evaluate(cache_dir, method, p_all, convs),
    }


COLUMNS = ("r1", "r5", "r10", "s5", "cat2/r10", "cat1/r10", "cat3/r10", "cat4/r10")


def table(cache_dir: Path, out: Path | None, only: str | None) -> None:
    results_file = cache_dir / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for method in METHODS:
        if only and only not in method.name:
            continue
        key = f"{method}|DEPTH={DEPTH}|{OBJECTIVE}|{sorted(GRID.items())}"
        if key not in results:
            started = time.perf_counter()
            results[key] = {"name": method.name, **crossfold(cache_dir, method)}
            results_file.write_text(json.dumps(results, indent=1))
            print(f"{method.name}: {time.perf_counter() - started:.0f} s", flush=True)
    lines = [
        "| method | " + " | ".join(f"{c} held-out / all-10" for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    params = []
    for method in METHODS:
        key = f"{method}|DEPTH={DEPTH}|{OBJECTIVE}|{sorted(GRID.items())}"
        if key not in results:
            continue
        r = results[key]
        cells = [f"{r['held_out'][c]:.3f} / {r['all10'][c]:.3f}" for c in COLUMNS]
        lines.append(f"| {method.name} | " + " | ".join(cells) + " |")
        if method.free:
            shown = {
                fold: {k: r["params"][fold][k] for k in method.free} for fold in ("A", "B", "all")
            }
            params.append(f"- {method.name}: {json.dumps(shown)}")
    text = "\n".join(lines + ["", "Tuned weights (fold A, fold B, all 10):", *params]) + "\n"
    print(text)
    if out is not None:
        out.write_text(text)


# -- check: the module on real recall runs -----------------------------------------------------


def module_params(p: Mapping[str, float]) -> ConversationParams:
    return ConversationParams(
        weights={"lexical": p["wl"], "dense": p["wd"]},
        prev=p["wp"],
        next=p["wn"],
        speaker=p["sig"],
        temporal=p["tau"],
        length=p["lam"],
        session=p["gam"],
        session_top=int(p["top"]),
    )


NEIGHBOURS_SQL = """
WITH wanted(id) AS (SELECT value FROM json_each(?))
SELECT m.id, m.document, m.ordinal, m.text, m.meta
FROM wanted JOIN memories AS c ON c.id = wanted.id
JOIN memories AS m ON m.namespace = c.namespace AND m.document = c.document
 AND m.ordinal BETWEEN c.ordinal - 1 AND c.ordinal + 1
WHERE coalesce(json_extract(c.meta, '$.speaker'), json_extract(c.meta, '$.role')) IS NOT NULL
"""
"""Every candidate that may be a turn, with the memories next to it, in one statement (the
index ``memories_document (namespace, document, ordinal)`` serves the join). The read path
adds its filter on ``m`` (namespace, ``where``), so that a neighbour the filter excludes is
neither context nor a hit."""


def fetch_turns(conn: sqlite3.Connection, ids: Sequence[int]):
    """What the read path must supply: ``turns`` and ``neighbours`` for ``rescore``."""
    turns: dict[int, Turn] = {}
    at: dict[tuple[str, int], int] = {}
    for i, document, ordinal, text, meta in conn.execute(NEIGHBOURS_SQL, (json.dumps(list(ids)),)):
        turn = as_turn(document, ordinal, json.loads(meta), text)
        if turn is not None:
            turns[i] = turn
            at[(document, ordinal)] = i
    asked = set(ids)
    neighbours = {
        i: (at.get((t.document, t.ordinal - 1)), at.get((t.document, t.ordinal + 1)))
        for i, t in turns.items()
        if i in asked
    }
    return turns, neighbours


def check(cache_dir: Path) -> None:
    results = json.loads((cache_dir / "results.json").read_text())
    chosen = next(r for r in results.values() if r["name"] == "conversation: all")
    if module_params(chosen["params"]["all"]) != ConversationParams():
        print("note: ConversationParams' defaults differ from the weights tuned on all 10")
    conn = sqlite3.connect(cache_dir / "store.db")
    timings: dict[str, list[float]] = {"recall": [], "fetch": [], "rescore": []}
    rows: dict[str, list[dict[str, np.ndarray]]] = {"all": [], "held": []}
    with Memory.open(cache_dir / "store.db", readonly=True) as mem:
        for fold_index, name in enumerate(conversations(cache_dir)):
            c = load(cache_dir, name)
            column = {i: j for j, i in enumerate(c.ids)}
            held = chosen["params"]["B" if fold_index < 5 else "A"]
            texts = [q["text"] for q in c.questions]
            ranked: dict[str, list[list[int]]] = {"all": [], "held": []}
            for text in texts:
                started = time.perf_counter()
                runs = {
                    ch: [
                        (h.id, h.why[ch].score)
                        for h in mem.recall(text, k=DEPTH, namespace=f"locomo.{name}", channels=ch)
                    ]
                    for ch in ("lexical", "dense")
                }
                fused = fuse(runs)
                t1 = time.perf_counter()
                candidates = list(dict.fromkeys(i for run in runs.values() for i, _ in run))
                turns, neighbours = fetch_turns(conn, candidates)
                t2 = time.perf_counter()
                for which, p in (("all", chosen["params"]["all"]), ("held", held)):
                    out = rescore(text, runs, fused, turns, neighbours, module_params(p))
                    ranked[which].append([column[i] for i, _ in out[:25]])
                t3 = time.perf_counter()
                timings["recall"].append(t1 - started)
                timings["fetch"].append(t2 - t1)
                timings["rescore"].append((t3 - t2) / 2)
            for which in ("all", "held"):
                rows[which].append(question_metrics(c, ranked[which]))
            print(f"{name} done", flush=True)
    for which, label in (("held", "held-out"), ("all", "all-10")):
        got = summarize(rows[which])
        want = chosen["held_out" if which == "held" else "all10"]
        print(label, "module:", {k: round(got[k], 4) for k in COLUMNS})
        print(label, "numpy: ", {k: round(want[k], 4) for k in COLUMNS})
    for stage, values in timings.items():
        ms = sorted(v * 1000 for v in values)
        print(f"{stage}: p50 {statistics.median(ms):.2f} ms, p99 {ms[int(len(ms) * 0.99)]:.2f} ms")


# -- sessions: how far session recall@5 can go -------------------------------------------------


def diversify(scores: np.ndarray, session: np.ndarray, delta: float, depth: int = 25):
    """Greedy: a candidate's score times ``delta ** (turns already placed from its session)``."""
    ranked = []
    for row in scores:
        cand = [int(j) for j in np.argsort(-row, kind="stable")[: 3 * depth] if np.isfinite(row[j])]
        placed: dict[int, int] = {}
        out: list[int] = []
        while cand and len(out) < depth:
            best = max(cand, key=lambda j: row[j] * delta ** placed.get(int(session[j]), 0))
            cand.remove(best)
            out.append(best)
            placed[int(session[best])] = placed.get(int(session[best]), 0) + 1
        ranked.append(out)
    return ranked


def sessions(cache_dir: Path) -> None:
    """Session recall@k of a ranking of *sessions* (by their best turn) — the ceiling of a
    top-k of turns from k different sessions — and a session-diverse re-ranking's trade."""
    results = json.loads((cache_dir / "results.json").read_text())
    chosen = next(r for r in results.values() if r["name"] == "conversation: all")
    method = next(m for m in METHODS if m.name == "conversation: all")
    p = chosen["params"]["all"]
    ceiling: dict[int, list[float]] = {1: [], 3: [], 5: [], 10: []}
    rows: dict[float, list[dict[str, np.ndarray]]] = {d: [] for d in (1.0, 0.9, 0.8, 0.6, 0.3)}
    for name in conversations(cache_dir):
        prep, scores = method_scores(cache_dir, method, name, p)
        c = prep.conv
        best = np.stack([scores[:, cols].max(axis=1) for cols in prep.session_cols], axis=1)
        labels = np.asarray([c.session[cols[0]] for cols in prep.session_cols])
        for qi, q in enumerate(c.questions):
            order = labels[np.argsort(-best[qi], kind="stable")]
            gold = {_session(e) for e in q["evidence"]}
            for k in ceiling:
                ceiling[k].append(len(gold & set(order[:k].tolist())) / len(gold))
        for delta in rows:
            rows[delta].append(question_metrics(c, diversify(scores, c.session, delta)))
    print("sessions ranked by their best turn, recall of evidence sessions@k (all-10 weights):")
    print({k: round(float(np.mean(v)), 4) for k, v in ceiling.items()})
    print("session-diverse re-ranking (delta = 1: none):")
    for delta, parts in rows.items():
        r = summarize(parts)
        shown = " ".join(f"{k} {r[k]:.3f}" for k in ("r5", "r10", "s5", "s10"))
        print(f"  delta {delta}: {shown}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("collect", "table", "check", "sessions"))
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        help="copy this store (built by engram eval) instead of building one",
    )
    parser.add_argument("--rounds", action="store_true", help="collect: embed round texts too")
    parser.add_argument("--out", type=Path, default=None, help="table: also write it here")
    parser.add_argument("--only", default=None, help="table: only methods whose name has this")
    args = parser.parse_args(argv)
    stages: dict[str, Callable[[], None]] = {
        "collect": lambda: collect(args.cache, args.source, args.rounds),
        "table": lambda: table(args.cache, args.out, args.only),
        "check": lambda: check(args.cache),
        "sessions": lambda: sessions(args.cache),
    }
    stages[args.stage]()


if __name__ == "__main__":
    main()
