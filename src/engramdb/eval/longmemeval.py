"""LongMemEval: long-term chat memory questions, each over its own haystack of sessions.

The published layout is one JSON file holding a list of questions::

    {"question_id": "e47becba", "question_type": "single-session-user",
     "question": "...", "answer": "...", "question_date": "2023/05/30 (Tue) 23:40",
     "haystack_session_ids": ["s1", ...], "haystack_dates": ["2023/05/20 (Sat) 02:21", ...],
     "haystack_sessions": [[{"role": "user", "content": "...", "has_answer": true}, ...], ...],
     "answer_session_ids": ["s1"]}

Question ids ending in ``_abs`` are abstention questions (the haystack does not answer
them). Every haystack is stored once (identical haystacks share a namespace, named by
their digest), one memory per turn; each question is recalled in its haystack's
namespace at its own date (``now=``). ``question_type`` and ``answer`` are read only to
score.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engramdb import Record
from engramdb.eval.datasets import EvalDataError, read_json
from engramdb.eval.metrics import group_recall_at_k, mean_over_queries, ndcg_at_k, recall_at_k
from engramdb.eval.precision import ABSTAIN_BELOW, abstention
from engramdb.eval.runner import (
    IngestStats,
    QueryRun,
    RunContext,
    TaskResult,
    ingest,
    latency_summary,
    run_queries,
)

__all__ = [
    "LONGMEMEVAL_METRICS",
    "Haystack",
    "LongMemEvalSet",
    "LongQuestion",
    "evaluate_longmemeval",
    "load_longmemeval",
    "longmemeval_means",
    "longmemeval_row",
    "parse_longmemeval_date",
]

LONGMEMEVAL_METRICS = (
    "recall_any@1",
    "recall_any@5",
    "recall_any@10",
    "recall_all@5",
    "recall_all@10",
    "ndcg@10",
    "turn-recall@5",
    "turn-recall@10",
)
"""Per-question metrics, each also per question type (``<type>/<metric>``)."""
DEPTH = 50
"""Turns recalled per question (the session ranking of ``ndcg@10`` needs more than 10)."""
CURVE = (1, 2, 3, 5, 10, 20, 50)
"""Cutoffs of the turn-level recall@k curve in ``series``."""
TOP_SHOWN = 10
_DATE = re.compile(r"\s*(\d{4})/(\d{1,2})/(\d{1,2})\s*(?:\(\w+\))?\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True, slots=True, kw_only=True)
class Haystack:
    """The sessions one or more questions are asked over, one label per turn.

    Attributes:
        digest: SHA-256 of the sessions' ids, dates and turns (as given).
        labels: turn labels in order, ``"<session id>#<turn index>"``.
        records: one un-chunked record per turn, in the same order.
        session_of: each label's session id.
    """

    digest: str
    labels: tuple[str, ...]
    records: tuple[Record, ...]
    session_of: Mapping[str, str]

    @property
    def namespace(self) -> str:
        """Where the haystack is stored: ``longmemeval.<digest, 16 hex digits>``."""
        return f"longmemeval.{self.digest[:16]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class LongQuestion:
    """One question: its text and date (read at query time) and what scores it."""

    id: str
    type: str
    text: str
    date: float
    haystack: str
    answer_sessions: tuple[str, ...]
    unresolved: tuple[str, ...]
    answer_turns: tuple[str, ...]
    abstention: bool
    answer: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class LongMemEvalSet:
    """All questions, their distinct haystacks (by digest) and the file read."""

    name: str
    questions: tuple[LongQuestion, ...]
    haystacks: Mapping[str, Haystack]
    files: tuple[Path, ...]


def parse_longmemeval_date(value: str) -> float:
    """A LongMemEval date such as ``"2023/05/20 (Sat) 02:21"`` as UTC epoch seconds.

    Raises:
        ValueError: the text is not such a date.
    """
    match = _DATE.fullmatch(value)
    if match is None:
        raise ValueError(f"unrecognised date {value!r} (expected e.g. '2023/05/20 (Sat) 02:21')")
    year, month, day, hour, minute = (int(g) for g in match.groups())
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


# -- loading ----------------------------------------------------------------------------------


def _file(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("*.json")) if path.is_dir() else []
    if len(found) != 1:
        raise EvalDataError(
            f"expected one LongMemEval .json file in the folder, found {len(found)}: name the file",
            path=path,
        )
    return found[0]


def _strings(row: Mapping[str, Any], key: str, where: str, path: Path) -> list[str]:
    value = row.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EvalDataError(f"{where}: field {key!r} must be a list of strings", path=path)
    return value


def _text(row: Mapping[str, Any], key: str, where: str, path: Path) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise EvalDataError(f"{where}: field {key!r} must be non-empty text", path=path)
    return value


def _date(value: str, where: str, path: Path) -> float:
    try:
        return parse_longmemeval_date(value)
    except ValueError as exc:
        raise EvalDataError(f"{where}: {exc}", path=path) from exc


def _turns(session: Any, where: str, path: Path) -> list[tuple[str, str, bool]]:
    if not isinstance(session, list):
        raise EvalDataError(f"{where}: a session must be a list of turns", path=path)
    out = []
    for number, turn in enumerate(session):
        if not (
            isinstance(turn, dict)
            and isinstance(turn.get("role"), str)
            and isinstance(turn.get("content"), str)
        ):
            raise EvalDataError(
                f"{where}, turn {number}: a turn must be an object with string role and content",
                path=path,
            )
        out.append((turn["role"], turn["content"], turn.get("has_answer") is True))
    return out


def _haystack(row: Mapping[str, Any], where: str, path: Path, source: str) -> Haystack:
    ids = _strings(row, "haystack_session_ids", where, path)
    dates = _strings(row, "haystack_dates", where, path)
    sessions = row.get("haystack_sessions")
    if not isinstance(sessions, list) or not len(ids) == len(dates) == len(sessions):
        raise EvalDataError(
            f"{where}: haystack_session_ids, haystack_dates and haystack_sessions must be "
            "lists of the same length",
            path=path,
        )
    canonical = json.dumps([ids, dates, sessions], sort_keys=True, ensure_ascii=False)
    labels: list[str] = []
    records: list[Record] = []
    session_of: dict[str, str] = {}
    seen: dict[str, int] = {}
    for sid, date, session in zip(ids, dates, sessions, strict=True):
        when = _date(date, f"{where}, session {sid}", path)
        seen[sid] = seen.get(sid, 0) + 1
        key = sid if seen[sid] == 1 else f"{sid}~{seen[sid]}"  # a session id given twice
        for index, (role, content, has_answer) in enumerate(_turns(session, where, path)):
            label = f"{key}#{index}"
            session_of[label] = sid
            labels.append(label)
            meta = {"role": role, "session": sid, "turn": index, "has_answer": has_answer}
            records.append(
                Record(
                    text=f"{role}: {content}",
                    source=source,
                    document=key,
                    ordinal=len(records),
                    event_time=when,
                    chunk=False,
                    meta=meta,
                )
            )
    if not records:
        raise EvalDataError(f"{where}: the haystack has no turns", path=path)
    return Haystack(
        digest=hashlib.sha256(canonical.encode()).hexdigest(),
        labels=tuple(labels),
        records=tuple(records),
        session_of=session_of,
    )


def _answer_turns(haystack: Haystack, sessions: Sequence[str]) -> tuple[str, ...]:
    """The turns marked ``has_answer`` in the question's answer sessions (a haystack
    shared by several questions carries the marks of all of them)."""
    return tuple(
        label
        for label, record in zip(haystack.labels, haystack.records, strict=True)
        if record.meta.get("has_answer") is True and haystack.session_of[label] in sessions
    )


def _question(row: Any, number: int, path: Path, haystacks: dict[str, Haystack]) -> LongQuestion:
    if not isinstance(row, dict):
        raise EvalDataError(f"question #{number} must be an object", path=path)
    qid = _text(row, "question_id", f"question #{number}", path)
    where = f"question #{number} ({qid})"
    haystack = _haystack(row, where, path, f"eval:{path.stem}")
    haystack = haystacks.setdefault(haystack.digest, haystack)
    answers = _strings(row, "answer_session_ids", where, path)
    sessions = set(haystack.session_of.values())
    resolved = tuple(dict.fromkeys(s for s in answers if s in sessions))
    return LongQuestion(
        id=qid,
        type=_text(row, "question_type", where, path),
        text=_text(row, "question", where, path),
        date=_date(_text(row, "question_date", where, path), where, path),
        haystack=haystack.digest,
        answer_sessions=resolved,
        unresolved=tuple(s for s in answers if s not in sessions),
        answer_turns=_answer_turns(haystack, resolved),
        abstention=qid.endswith("_abs"),
        answer=row.get("answer"),
    )


def load_longmemeval(path: Path) -> LongMemEvalSet:
    """A LongMemEval JSON file, or a folder holding exactly one ``.json`` file.

    Raises:
        EvalDataError: no such file, not JSON, not a list of questions, a missing or
            mistyped field, haystack lists of different lengths, an unparsable date or a
            question id given twice.
    """
    source = _file(path)
    rows = read_json(source)
    if not isinstance(rows, list) or not rows:
        raise EvalDataError("expected a non-empty JSON list of questions", path=source)
    haystacks: dict[str, Haystack] = {}
    questions = [_question(row, n, source, haystacks) for n, row in enumerate(rows)]
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise EvalDataError(f"question id {question.id!r} given twice", path=source)
        seen.add(question.id)
    return LongMemEvalSet(
        name=source.stem, questions=tuple(questions), haystacks=haystacks, files=(source,)
    )


# -- scoring ----------------------------------------------------------------------------------


def _rounded(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


def _sessions(ranked: Sequence[str], session_of: Mapping[str, str]) -> list[str]:
    """The distinct sessions of ranked turns, in order of their best turn."""
    return list(dict.fromkeys(session_of[label] for label in ranked if label in session_of))


def _scores(question: LongQuestion, run: QueryRun, haystack: Haystack) -> dict[str, Any]:
    """The ranking metrics of one answerable question (``None`` where undefined)."""
    out: dict[str, float | None] = dict.fromkeys(LONGMEMEVAL_METRICS)
    gold = question.answer_sessions
    if gold:
        for k in (1, 5, 10):
            share = group_recall_at_k(run.ranked, haystack.session_of, gold, k)
            out[f"recall_any@{k}"] = 1.0 if share else 0.0
            if k > 1:
                out[f"recall_all@{k}"] = 1.0 if share == 1.0 else 0.0
        ranked = _sessions(run.ranked, haystack.session_of)
        out["ndcg@10"] = ndcg_at_k(ranked, dict.fromkeys(gold, 1), 10)
    turns = dict.fromkeys(question.answer_turns, 1)
    if turns:
        for k in (5, 10):
            out[f"turn-recall@{k}"] = recall_at_k(run.ranked, turns, k)
    return out


def longmemeval_row(question: LongQuestion, run: QueryRun, haystack: Haystack) -> dict[str, Any]:
    """One question's per-query row: its metrics (``None`` for an ``_abs`` question), its
    top turns and the distinct sessions they come from."""
    row: dict[str, Any] = {
        "id": question.id,
        "question_type": question.type,
        "ms": round(run.ms, 3),
        "unanswerable": question.abstention,
    }
    if question.abstention:
        row.update(dict.fromkeys(LONGMEMEVAL_METRICS))
    else:
        row.update(_scores(question, run, haystack))
    row["top"] = list(dict.fromkeys(run.ranked))[:TOP_SHOWN]
    row["sessions"] = _sessions(run.ranked, haystack.session_of)[:TOP_SHOWN]
    row["relevance"] = run.best
    return row


def longmemeval_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each metric's mean over the rows that have it, overall and per question type."""
    out: dict[str, Any] = {
        name: _rounded(mean_over_queries(r[name] for r in rows)) for name in LONGMEMEVAL_METRICS
    }
    for kind in sorted({r["question_type"] for r in rows}):
        part = [r for r in rows if r["question_type"] == kind]
        for name in LONGMEMEVAL_METRICS:
            out[f"{kind}/{name}"] = _rounded(mean_over_queries(r[name] for r in part))
    return out


def _curve(questions: Sequence[LongQuestion], runs: Sequence[QueryRun]) -> dict[str, float | None]:
    pairs = [
        (run, dict.fromkeys(q.answer_turns, 1))
        for q, run in zip(questions, runs, strict=True)
        if not q.abstention and q.answer_turns
    ]
    return {
        str(k): _rounded(mean_over_queries(recall_at_k(r.ranked, g, k) for r, g in pairs))
        for k in CURVE
    }


# -- the task ---------------------------------------------------------------------------------


def _ingest(
    ctx: RunContext, data: LongMemEvalSet, digests: Iterable[str]
) -> tuple[dict[str, dict[int, list[str]]], IngestStats]:
    labels: dict[str, dict[int, list[str]]] = {}
    total = IngestStats()
    for digest in digests:
        haystack = data.haystacks[digest]
        items = list(zip(haystack.labels, haystack.records, strict=True))
        labels[digest], stats = ingest(
            ctx.memory, items, namespace=haystack.namespace, progress=ctx.progress
        )
        total = total + stats
    return labels, total


def _recall(
    ctx: RunContext,
    data: LongMemEvalSet,
    questions: Sequence[LongQuestion],
    labels: Mapping[str, Mapping[int, Sequence[str]]],
    channel: str,
) -> list[QueryRun]:
    """Each question alone, in its haystack's namespace, at its own date (``now``)."""
    quiet = dataclasses.replace(ctx, progress=None)
    runs: list[QueryRun] = []
    for done, question in enumerate(questions, 1):
        haystack = data.haystacks[question.haystack]
        runs += run_queries(
            quiet,
            [question.text],
            channel=channel,
            k=DEPTH,
            namespace=haystack.namespace,
            labels=labels[question.haystack],
            now=question.date,
        )
        if ctx.progress is not None and (done % 25 == 0 or done == len(questions)):
            ctx.progress(f"recall {channel}", done, len(questions))
    return runs


def evaluate_longmemeval(ctx: RunContext, data: LongMemEvalSet) -> TaskResult:
    """Ingest each distinct haystack into its own namespace, recall every question there.

    Session-level ``recall_any@k`` is 1 when some answer session holds one of the top
    ``k`` turns, ``recall_all@k`` when every answer session does; ``ndcg@10`` ranks the
    distinct sessions of the hits (in order of their best turn) against the answer
    sessions; ``turn-recall@k`` is the share of ``has_answer`` turns among the top ``k``
    (questions with such turns only). ``_abs`` questions are left out of these and
    scored in ``abstention`` against the rest.

    Raises:
        InvalidInputError: a channel the engine does not know, or a reused store that holds
            other memories in a haystack's namespace.
    """
    questions = list(data.questions[: ctx.limit] if ctx.limit else data.questions)
    labels, ingested = _ingest(ctx, data, dict.fromkeys(q.haystack for q in questions))
    truth: list[bool | None] = [q.abstention for q in questions]
    params = {
        "abstain_below": ABSTAIN_BELOW,
        "k": DEPTH,
        "now": "question date",
    }
    result = TaskResult(
        metrics={}, latency_ms={}, ingest=ingested.as_dict(), per_query={}, params=params
    )
    curves: dict[str, dict[str, float | None]] = {}
    for channel in ctx.channels:
        runs = _recall(ctx, data, questions, labels, channel)
        rows = [
            longmemeval_row(q, r, data.haystacks[q.haystack])
            for q, r in zip(questions, runs, strict=True)
        ]
        metrics = longmemeval_means(rows)
        metrics["abstention"] = abstention(runs, truth)
        result.metrics[channel] = metrics
        result.latency_ms[channel] = latency_summary([r.ms for r in runs])
        result.per_query[channel] = rows
        curves[channel] = _curve(questions, runs)
    result.series["recall@k"] = curves
    result.info.update(_counts(data, questions, labels))
    return result


def _counts(
    data: LongMemEvalSet, questions: Sequence[LongQuestion], labels: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "questions": len(questions),
        "haystacks": len(labels),
        "turns": sum(len(data.haystacks[d].labels) for d in labels),
        "abstention": sum(q.abstention for q in questions),
        "by_type": {
            kind: sum(1 for q in questions if q.type == kind)
            for kind in sorted({q.type for q in questions})
        },
        "without_answer_turns": sum(
            1 for q in questions if not q.abstention and not q.answer_turns
        ),
        "unresolved_answer_sessions": sorted(
            f"{q.id}:{s}" for q in questions for s in q.unresolved
        ),
    }
