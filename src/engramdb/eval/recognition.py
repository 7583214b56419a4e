"""Familiarity probes: recognition (2-AFC) of stored text against near-duplicate foils.

* **recognition**: stored sentences against near-duplicate foils that were never stored
  (two adjacent words swapped; a name swapped for another name) and against unrelated
  unseen sentences. ``Memory.recognize`` scores each; reported are the ROC AUC, the 2-AFC
  accuracy of each target against its own foil, the hit rate (targets not called "new")
  and false-alarm rates (foils not called "new"). Channels play no part.
* **retention** (in :mod:`engramdb.eval.retention`): cued recall as distractors pile up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engramdb import ClusterMemory, Memory, Record
from engramdb.eval.books import Paragraph
from engramdb.eval.datasets import EvalDataError
from engramdb.eval.metrics import mean_over_queries, roc_auc, two_afc_accuracy
from engramdb.eval.probes import entity_swap, name_pool, word_swap
from engramdb.eval.runner import (
    RunContext,
    TaskResult,
    ingest,
    latency_summary,
)

__all__ = ["TARGETS", "evaluate_recognition", "normalized", "recognize_all"]

TARGETS = 300
"""Stored sentences in the recognition probe (``--limit``)."""
FOIL_TYPES = ("word-swap", "entity-swap")


def normalized(text: str) -> str:
    """Lower case with single spaces: the key that tells texts apart."""
    return " ".join(text.lower().split())


def _round(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def _sentence_pool(sentences: Sequence[Paragraph]) -> list[Paragraph]:
    seen: set[str] = set()
    pool = []
    for s in sentences:
        key = normalized(s.text)
        if 8 <= len(key.split()) <= 40 and 40 <= len(key) <= 300 and key not in seen:
            seen.add(key)
            pool.append(s)
    return pool


def recognize_all(
    memory: Memory | ClusterMemory, texts: Sequence[str], namespace: str
) -> tuple[list[tuple[str, float]], list[float]]:
    answers: list[tuple[str, float]] = []
    ms: list[float] = []
    for text in texts:
        started = time.perf_counter()
        found = memory.recognize(text, namespace=namespace)
        ms.append((time.perf_counter() - started) * 1000)
        answers.append((found.kind, found.score))
    return answers, ms


def _foils(
    targets: Sequence[Paragraph], rng: random.Random, names: Sequence[str]
) -> list[tuple[int, str, str]]:
    stored = {normalized(t.text) for t in targets}
    foils = []
    for i, target in enumerate(targets):
        for kind, text in (
            ("word-swap", word_swap(target.text, rng)),
            ("entity-swap", entity_swap(target.text, rng, names)),
        ):
            if text is not None and normalized(text) not in stored:
                foils.append((i, kind, text))
    return foils


def evaluate_recognition(
    ctx: RunContext, sentences: Sequence[Paragraph], source: Path
) -> TaskResult:
    """Recognition of stored sentences against near-duplicate foils and unseen sentences.

    Raises:
        EvalDataError: fewer than twice ``--limit`` (default 300) usable sentences.
    """
    rng = random.Random(f"recognition/{ctx.seed}")
    pool = _sentence_pool(sentences)
    count = ctx.limit or TARGETS
    if len(pool) < 2 * count:
        raise EvalDataError(
            f"needs {2 * count} distinct sentences of 8-40 words; found {len(pool)}", path=source
        )
    rng.shuffle(pool)
    targets, controls = pool[:count], pool[count : 2 * count]
    foils = _foils(targets, rng, name_pool(p.text for p in pool[:50_000]))
    namespace = f"recognition.s{ctx.seed}"
    items = [
        (f"{t.book}:{t.index}", Record(text=t.text, source="eval:recognition", chunk=False))
        for t in targets
    ]
    _, stats = ingest(ctx.memory, items, namespace=namespace, progress=ctx.progress)
    seen, ms_t = recognize_all(ctx.memory, [t.text for t in targets], namespace)
    foiled, ms_f = recognize_all(ctx.memory, [text for _, _, text in foils], namespace)
    unseen, ms_c = recognize_all(ctx.memory, [c.text for c in controls], namespace)
    result = TaskResult(
        metrics={"recognize": _recognition_metrics(seen, foils, foiled, unseen)},
        latency_ms={"recognize": latency_summary(ms_t + ms_f + ms_c)},
        ingest=stats.as_dict(),
        per_query={"recognize": _foil_rows(seen, foils, foiled, ms_f)},
    )
    result.info.update(
        targets=len(targets),
        foils=len(foils),
        controls=len(controls),
        by_type={t: sum(1 for f in foils if f[1] == t) for t in FOIL_TYPES},
    )
    result.params.update(targets=count)
    return result


def _foil_rows(
    seen: Sequence[tuple[str, float]],
    foils: Sequence[tuple[int, str, str]],
    foiled: Sequence[tuple[str, float]],
    ms: Sequence[float],
) -> list[dict[str, Any]]:
    return [
        {
            "id": f"foil{n}",
            "target": i,
            "type": kind,
            "text": text,
            "kind": got[0],
            "score": round(got[1], 6),
            "target_score": round(seen[i][1], 6),
            "ms": round(took, 3),
        }
        for n, ((i, kind, text), got, took) in enumerate(zip(foils, foiled, ms, strict=True))
    ]


def _recognition_metrics(
    seen: Sequence[tuple[str, float]],
    foils: Sequence[tuple[int, str, str]],
    foiled: Sequence[tuple[str, float]],
    unseen: Sequence[tuple[str, float]],
) -> dict[str, float | None]:
    targets = [score for _, score in seen]
    metrics: dict[str, float | None] = {
        "auc": _round(roc_auc(targets, [s for _, s in foiled])),
        "2afc": _round(
            two_afc_accuracy((targets[f[0]], got[1]) for f, got in zip(foils, foiled, strict=True))
        ),
        "hit-rate": _round(mean_over_queries(float(kind != "new") for kind, _ in seen)),
    }
    for kind_name in FOIL_TYPES:
        mine = [(f, got) for f, got in zip(foils, foiled, strict=True) if f[1] == kind_name]
        metrics[f"auc/{kind_name}"] = _round(roc_auc(targets, [got[1] for _, got in mine]))
        metrics[f"2afc/{kind_name}"] = _round(
            two_afc_accuracy((targets[f[0]], got[1]) for f, got in mine)
        )
        metrics[f"false-alarm/{kind_name}"] = _round(
            mean_over_queries(float(got[0] != "new") for _, got in mine)
        )
    metrics["auc/new"] = _round(roc_auc(targets, [s for _, s in unseen]))
    metrics["false-alarm/new"] = _round(
        mean_over_queries(float(kind != "new") for kind, _ in unseen)
    )
    return metrics
