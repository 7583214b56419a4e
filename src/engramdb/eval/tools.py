"""``--kind tools``: recalling tools by their text and usage (BFCL-style folders).

Layout (BEIR plus two files): ``corpus.jsonl`` of tools (``_id``, ``title`` = name,
``metadata.function`` = the spec), ``queries.jsonl`` (``metadata.candidates`` = the tools the
entry offered), ``qrels/test.tsv``, ``demos.jsonl`` (``_id`` of its query, ``request``,
``calls``) and ``unanswerable.jsonl`` (requests none of their candidates answers).

Every tool is added with its corpus id as its server, so versions of one name (reworded from
entry to entry) stay distinct tools and the exact-id metrics can be computed; demonstrations
call tools by name only, so they attach to every version of it.

Usage protocol: k folds over queries. For fold *f*, a namespace holds every tool and the
demonstrations of the other folds' queries, less any whose request text (case and spacing
folded) is a fold-*f* query's: a query's own demonstration, and any with the same text, is
never in memory when it is asked. The fitted fusions learn from those demonstrations only.

Unseen protocol: tool names are split into k groups; for group *g*, the demonstrations that
call any name of *g* are left out, and the queries whose tools are all in *g* are asked: the
usage of the tools they need was never seen, nor were the fusions fitted on it.

Channels: ``lexical`` (BM25), ``dense`` (the description's cosine), ``text`` (both, fused:
description-only), ``pooled`` and ``matched`` (text plus usage pooled into one vector per
tool, or matched request by request), ``hybrid`` (all: what ``recall_tools`` does). Metrics
per channel: ``recall@1``, ``recall@5``, ``ndcg@10`` on exact ids, ``name-recall@1`` and
``name-recall@5`` (the ranking with the versions of a name merged into one: the relevant
names among its top k), and abstention: each answerable query and each unanswerable
request recalled among its entry's candidates, with ``min_relevance`` 0.5.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engramdb import Demo, Memory, ToolFusion
from engramdb.eval.datasets import EvalDataError, field_str, find_file, read_jsonl, read_qrels
from engramdb.eval.metrics import mean_over_queries, ndcg_at_k, recall_at_k, roc_auc
from engramdb.eval.runner import RunContext, TaskResult, latency_summary

__all__ = ["TOOL_CHANNELS", "ToolSet", "evaluate_tools", "folds_of", "load_tools", "train_demos"]

TOOL_CHANNELS = ("lexical", "dense", "text", "pooled", "matched", "hybrid")
_USES: dict[str, tuple[str, ...]] = {
    "text": ("dense", "lexical"),
    "pooled": ("dense", "lexical", "pooled"),
    "matched": ("dense", "lexical", "matched"),
    "hybrid": ("dense", "lexical", "matched", "pooled"),
}
_FIXED = {
    "lexical": ToolFusion(use=("lexical",), weights=(1.0,), bias=0.0),
    "dense": ToolFusion(use=("dense",), weights=(1.0,), bias=0.0),
}
FOLDS = 5
ABSTAIN_AT = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolQuery:
    """A request, its category, the tools its entry offered and (answerable) needs."""

    id: str
    text: str
    category: str
    candidates: tuple[str, ...]
    relevant: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSet:
    """A tools data set: specs by corpus id, queries, demonstrations, unanswerable requests."""

    files: tuple[Path, ...]
    specs: Mapping[str, Mapping[str, Any]]
    names: Mapping[str, str]
    queries: tuple[ToolQuery, ...]
    demos: Mapping[str, tuple[str, tuple[Mapping[str, Any], ...]]]
    unanswerable: tuple[ToolQuery, ...]


def _query(row: Mapping[str, Any], path: Path, line: int, relevant: frozenset[str]) -> ToolQuery:
    meta = row.get("metadata") or {}
    cands = meta.get("candidates", []) if isinstance(meta, Mapping) else []
    if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
        raise EvalDataError(
            "metadata.candidates must be a list of corpus ids", path=path, line=line
        )
    return ToolQuery(
        id=field_str(row, "_id", path, line),
        text=field_str(row, "text", path, line),
        category=str(meta.get("category", "")) if isinstance(meta, Mapping) else "",
        candidates=tuple(cands),
        relevant=relevant,
    )


def load_tools(path: Path) -> ToolSet:
    """Read and check a tools folder.

    Raises:
        EvalDataError: a missing file, a malformed row, or an id that does not resolve.
    """
    corpus_path = find_file(path, "corpus.jsonl")
    specs: dict[str, Mapping[str, Any]] = {}
    names: dict[str, str] = {}
    for line, row in read_jsonl(corpus_path):
        doc = field_str(row, "_id", corpus_path, line)
        meta = row.get("metadata")
        spec = meta.get("function") if isinstance(meta, Mapping) else None
        if not isinstance(spec, Mapping):
            raise EvalDataError(
                "metadata.function (the spec) is missing", path=corpus_path, line=line
            )
        specs[doc] = spec
        names[doc] = field_str(row, "title", corpus_path, line)
    queries_path = find_file(path, "queries.jsonl")
    rows = list(read_jsonl(queries_path))
    known = {str(row.get("_id")): None for _, row in rows}
    qrels_path = find_file(path / "qrels", "test.tsv")
    qrels = read_qrels(qrels_path, known, set(specs))
    queries = []
    for line, row in rows:
        qid = field_str(row, "_id", queries_path, line)
        rel = frozenset(c for c, g in qrels.get(qid, {}).items() if g > 0)
        if rel:
            queries.append(_query(row, queries_path, line, rel))
    demos_path = find_file(path, "demos.jsonl")
    demos: dict[str, tuple[str, tuple[Mapping[str, Any], ...]]] = {}
    for line, row in read_jsonl(demos_path):
        calls = row.get("calls")
        if not isinstance(calls, list):
            raise EvalDataError("calls must be a list", path=demos_path, line=line)
        kept = tuple({"name": c["name"], "arguments": c.get("arguments", {})} for c in calls)
        demos[field_str(row, "_id", demos_path, line)] = (
            field_str(row, "request", demos_path, line),
            kept,
        )
    un_path = find_file(path, "unanswerable.jsonl")
    unanswerable = tuple(
        _query(row, un_path, line, frozenset()) for line, row in read_jsonl(un_path)
    )
    for q in (*queries, *unanswerable):
        missing = [c for c in (*q.candidates, *q.relevant) if c not in specs]
        if missing:
            raise EvalDataError(f"query {q.id}: unknown corpus id {missing[0]}", path=path)
    return ToolSet(
        files=(corpus_path, queries_path, qrels_path, demos_path, un_path),
        specs=specs,
        names=names,
        queries=tuple(queries),
        demos=demos,
        unanswerable=unanswerable,
    )


def folds_of(ids: Sequence[str], k: int, seed: int) -> list[int]:
    """The fold of each id: a seeded hash, stable whatever the order."""
    return [int(hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()[:8], 16) % k for i in ids]


def train_demos(
    data: ToolSet, held: Sequence[ToolQuery], *, skip_names: frozenset[str] = frozenset()
) -> list[tuple[str, str, tuple[Mapping[str, Any], ...]]]:
    """The demonstrations memory may hold while ``held`` are asked: none of a held query
    and none whose request text is a held query's; none calling a name in ``skip_names``."""
    held_ids = {q.id for q in held}
    held_texts = {Demo.request_key(q.text) for q in held}
    out = []
    for qid, (request, calls) in data.demos.items():
        if qid in held_ids or Demo.request_key(request) in held_texts:
            continue
        if any(c["name"] in skip_names for c in calls):
            continue
        out.append((qid, request, calls))
    return out


def _fill(memory: Memory, data: ToolSet, namespace: str, demos: Sequence[Any]) -> dict[int, str]:
    """Every tool (unchanged ones are left as they are in a reused store) and exactly
    ``demos`` (those a reused store holds are removed first)."""
    memory.forget_demos([d.id for d in memory.demos(namespace=namespace)])
    result = memory.add_tools(
        [{**spec, "server": doc} for doc, spec in data.specs.items()], namespace=namespace
    )
    for _, request, calls in demos:
        memory.add_demo(request, list(calls), namespace=namespace)
    return dict(zip(result.ids, data.specs, strict=True))


def _scores(
    ranked: Sequence[str], names: Mapping[str, str], q: ToolQuery
) -> dict[str, float | None]:
    rel = {c: 1 for c in q.relevant}
    rel_names = {names[c] for c in q.relevant}

    merged = list(dict.fromkeys(names[c] for c in ranked))  # versions of a name merged

    def name_recall(k: int) -> float:
        return len(set(merged[:k]) & rel_names) / len(rel_names)

    return {
        "recall@1": recall_at_k(ranked, rel, 1),
        "recall@5": recall_at_k(ranked, rel, 5),
        "ndcg@10": ndcg_at_k(ranked, rel, 10),
        "name-recall@1": name_recall(1),
        "name-recall@5": name_recall(5),
    }


class _Run:
    """One protocol's rankings and abstention figures, per channel."""

    def __init__(self, data: ToolSet) -> None:
        self.data = data
        self.rows: dict[str, list[dict[str, float | None]]] = {c: [] for c in TOOL_CHANNELS}
        self.best: dict[str, dict[bool, list[float]]] = {c: {True: [], False: []} for c in _USES}
        self.ms: list[float] = []
        self.fusions: dict[str, list[dict[str, object]]] = {c: [] for c in _USES}

    def ask(  # noqa: PLR0913 - one fold's parts
        self,
        memory: Memory,
        namespace: str,
        owners: Mapping[int, str],
        queries: Sequence[ToolQuery],
        unanswerable: Sequence[ToolQuery],
    ) -> None:
        fusions = {
            **_FIXED,
            **{c: memory.fit_tool_fusion(use, namespace=namespace) for c, use in _USES.items()},
        }
        for c in _USES:
            self.fusions[c].append(fusions[c].as_dict())
        column = {doc: i for i, doc in enumerate(owners.values())}
        for q in queries:
            started = time.perf_counter()
            memory.recall_tools(q.text, 10, namespace=namespace)
            self.ms.append((time.perf_counter() - started) * 1000)
            tools, x = memory.tool_features(q.text, namespace=namespace)
            docs = [owners[t.id] for t in tools]
            for channel, fusion in fusions.items():
                logits = fusion.logits(x)
                order = np.argsort(-logits, kind="stable")[:10]
                self.rows[channel].append(_scores([docs[i] for i in order], self.data.names, q))
                if channel in _USES:
                    self._abstain(channel, fusion, x, docs, column, q, answerable=True)
        for q in unanswerable:
            tools, x = memory.tool_features(q.text, namespace=namespace)
            docs = [owners[t.id] for t in tools]
            for channel in _USES:
                self._abstain(channel, fusions[channel], x, docs, column, q, answerable=False)

    def _abstain(  # noqa: PLR0913 - one request's parts
        self,
        channel: str,
        fusion: ToolFusion,
        x: np.ndarray,
        docs: Sequence[str],
        column: Mapping[str, int],
        q: ToolQuery,
        *,
        answerable: bool,
    ) -> None:
        rows = [column[c] for c in q.candidates if c in column]
        if rows:
            self.best[channel][answerable].append(float(fusion.relevance(x[rows]).max()))

    def metrics(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for channel, rows in self.rows.items():
            figures: dict[str, Any] = {
                name: _round(mean_over_queries(r[name] for r in rows))
                for name in ("recall@1", "recall@5", "ndcg@10", "name-recall@1", "name-recall@5")
            }
            figures["queries"] = len(rows)
            if channel in _USES:
                figures["abstention"] = _abstention(self.best[channel])
                figures["fusion"] = self.fusions[channel]
            out[channel] = figures
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _abstention(best: Mapping[bool, Sequence[float]]) -> dict[str, Any]:
    pos, neg = list(best[True]), list(best[False])
    return {
        "threshold": ABSTAIN_AT,
        "answerable": len(pos),
        "unanswerable": len(neg),
        "abstain_unanswerable": _round(
            sum(b < ABSTAIN_AT for b in neg) / len(neg) if neg else None
        ),
        "abstain_answerable": _round(sum(b < ABSTAIN_AT for b in pos) / len(pos) if pos else None),
        "auroc": _round(roc_auc(pos, neg)),
    }


def evaluate_tools(ctx: RunContext, data: ToolSet) -> TaskResult:
    """Run the usage and unseen protocols (see the module docstring).

    Raises:
        InvalidInputError: the run's memory is a cluster (tools live in one store).
    """
    memory = ctx.memory
    if not isinstance(memory, Memory):
        from engramdb.errors import InvalidInputError

        raise InvalidInputError("--kind tools runs on one store, not a cluster")
    queries = list(data.queries)[: ctx.limit] if ctx.limit else list(data.queries)
    folds = folds_of([q.id for q in queries], FOLDS, ctx.seed)
    un_folds = folds_of([q.id for q in data.unanswerable], FOLDS, ctx.seed)
    usage, unseen = _Run(data), _Run(data)
    started = time.perf_counter()
    for f in range(FOLDS):
        held = [q for q, g in zip(queries, folds, strict=True) if g == f]
        ns = f"fold{f}"
        owners = _fill(memory, data, ns, train_demos(data, held))
        unans = [q for q, g in zip(data.unanswerable, un_folds, strict=True) if g == f]
        usage.ask(memory, ns, owners, held, unans)
        if ctx.progress is not None:
            ctx.progress("tools: usage folds", f + 1, FOLDS)
    names = sorted(set(data.names.values()))
    groups = dict(zip(names, folds_of(names, FOLDS, ctx.seed), strict=True))
    for g in range(FOLDS):
        skip = frozenset(n for n in names if groups[n] == g)
        held = [q for q in queries if all(data.names[c] in skip for c in q.relevant)]
        ns = f"unseen{g}"
        owners = _fill(memory, data, ns, train_demos(data, held, skip_names=skip))
        unseen.ask(memory, ns, owners, held, [])
        if ctx.progress is not None:
            ctx.progress("tools: unseen folds", g + 1, FOLDS)
    metrics = usage.metrics()
    for channel, figures in unseen.metrics().items():
        figures.pop("abstention", None)
        metrics[channel]["unseen"] = figures
    return TaskResult(
        metrics=metrics,
        latency_ms={"hybrid": latency_summary(usage.ms)},
        ingest={"seconds": round(time.perf_counter() - started, 3)},
        per_query={},
        info={
            "tools": len(data.specs),
            "queries": len(queries),
            "demos": len(data.demos),
            "unanswerable": len(data.unanswerable),
            "folds": FOLDS,
        },
        params={
            "folds": FOLDS,
            "abstain_at": ABSTAIN_AT,
            "default_fusion": ToolFusion.default().as_dict(),
            "protocols": {
                "usage": "k-fold over queries; a query's demonstration and same-text ones left out",
                "unseen": "tool names split in k groups; usage of the asked group's names left out",
            },
        },
    )
