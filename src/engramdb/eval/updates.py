"""The knowledge-update probe: does recall give the latest value of a fact that changed?

A data set is a LoCoMo folder (``turns.jsonl`` + ``qa.jsonl``, see
:mod:`engramdb.eval.conversations`) plus an optional ``truth.jsonl``, one line per
question::

    {"conv": "c1", "qa_idx": 0, "gold": "D7:3", "stale": ["D2:5", "D4:1"],
     "as_of": "2023-03-20T12:00:00+00:00", "tags": ["city", "same-wording"]}

``gold`` is the turn that states the current value, ``stale`` the earlier turns it
overrode. ``as_of`` (optional; epoch seconds, ISO-8601 or a LoCoMo session time) is a time
between two of those statements: recalled as of then, the value valid at that time (the
latest statement made by then) is the expected one. ``tags`` (optional) group the metrics.
A question without a truth line takes its evidence turns: the latest is the gold, the
others are stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engramdb.eval.conversations import ConversationSet, Question, Turn, load_locomo
from engramdb.eval.conversations import parse_session_time as _session_time
from engramdb.eval.datasets import EvalDataError, field_str, read_jsonl
from engramdb.eval.metrics import mean_over_queries, mrr_at_k, recall_at_k
from engramdb.eval.retrieval import ingest_conversations, last_session_time
from engramdb.eval.runner import (
    QueryRun,
    RunContext,
    TaskResult,
    latency_summary,
    run_queries,
)

__all__ = [
    "UPDATE_METRICS",
    "UpdateQuestion",
    "UpdateSet",
    "evaluate_updates",
    "load_updates",
    "parse_time",
    "score_update",
]

UPDATE_METRICS = ("current@1", "stale@1", "recall@5", "mrr@10")
"""Per-question metrics; the ``as_of`` pass reports them again as ``as_of/<metric>``, and
each is also reported per tag (``<tag>/<metric>``)."""
DEPTH = 10
"""Turns recalled per question."""
TOP_SHOWN = 10
TRUTH_FILE = "truth.jsonl"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateQuestion:
    """One question about a fact that changed, with what answers it now and as of a time.

    Attributes:
        question: the question (``conv#qa_idx``, its text).
        gold: the turn that states the current value.
        stale: the earlier turns that ``gold`` overrode.
        as_of: a time between two statements (epoch seconds), or ``None``.
        valid: the statement valid at ``as_of`` (the latest made by then), or ``None``.
        tags: labels the metrics are also grouped by.
    """

    question: Question
    gold: str
    stale: tuple[str, ...]
    as_of: float | None = None
    valid: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def statements(self) -> tuple[str, ...]:
        """Every statement of the fact: the stale ones and the gold."""
        return (*self.stale, self.gold)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSet:
    """The conversations, the questions with a gold turn, and the files read."""

    conversations: ConversationSet
    questions: tuple[UpdateQuestion, ...]
    without_gold: tuple[str, ...]
    files: tuple[Path, ...]


def parse_time(value: Any) -> float:
    """A time as UTC epoch seconds: a number, ISO-8601 (naive means UTC) or a LoCoMo
    session time (``"1:56 pm on 8 May, 2023"``).

    Raises:
        ValueError: none of those.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"a time must be a number or a string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return _session_time(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


# -- loading ----------------------------------------------------------------------------------


def _turn_ids(row: Mapping[str, Any], key: str, path: Path, line: int) -> tuple[str, ...]:
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise EvalDataError(f"field {key!r} must be a list of turn ids", path=path, line=line)
    return tuple(value)


def _valid_at(when: float, ids: Sequence[str], turns: Mapping[str, Turn]) -> str | None:
    """The statement in force at ``when``: the latest made by then."""
    made = [turns[i] for i in ids if turns[i].event_time <= when]
    return max(made, key=lambda t: (t.event_time, t.ordinal)).dia_id if made else None


def _as_of(row: Mapping[str, Any], path: Path, line: int) -> float | None:
    if row.get("as_of") is None:
        return None
    try:
        return parse_time(row["as_of"])
    except ValueError as exc:
        raise EvalDataError(f"field 'as_of': {exc}", path=path, line=line) from exc


def _from_truth(
    row: Mapping[str, Any], question: Question, turns: Mapping[str, Turn], at: tuple[Path, int]
) -> UpdateQuestion:
    path, line = at
    gold = field_str(row, "gold", path, line)
    stale = _turn_ids(row, "stale", path, line)
    unknown = [t for t in (gold, *stale) if t not in turns]
    if unknown:
        raise EvalDataError(
            f"unknown turn id(s) {', '.join(unknown)} in {question.conv}", path=path, line=line
        )
    if gold in stale:
        raise EvalDataError(f"turn {gold} is both gold and stale", path=path, line=line)
    tags = _turn_ids(row, "tags", path, line)
    as_of = _as_of(row, path, line)
    valid = None if as_of is None else _valid_at(as_of, (*stale, gold), turns)
    if as_of is not None and valid is None:
        raise EvalDataError("'as_of' precedes every statement of the fact", path=path, line=line)
    return UpdateQuestion(
        question=question, gold=gold, stale=stale, as_of=as_of, valid=valid, tags=tags
    )


def _from_evidence(question: Question, turns: Mapping[str, Turn]) -> UpdateQuestion | None:
    if not question.evidence:
        return None
    ordered = sorted(question.evidence, key=lambda e: turns[e].ordinal)
    return UpdateQuestion(question=question, gold=ordered[-1], stale=tuple(ordered[:-1]))


def _truth_rows(
    path: Path, questions: Mapping[str, Question]
) -> dict[str, tuple[dict[str, Any], int]]:
    rows: dict[str, tuple[dict[str, Any], int]] = {}
    for line, row in read_jsonl(path):
        qid = f"{field_str(row, 'conv', path, line)}#{field_str(row, 'qa_idx', path, line)}"
        if qid not in questions:
            raise EvalDataError(f"no question {qid} in qa.jsonl", path=path, line=line)
        if qid in rows:
            raise EvalDataError(f"a second truth line for {qid}", path=path, line=line)
        rows[qid] = (row, line)
    return rows


def load_updates(path: Path) -> UpdateSet:
    """A knowledge-update folder: LoCoMo's files and an optional ``truth.jsonl``.

    Raises:
        EvalDataError: what :func:`~engramdb.eval.conversations.load_locomo` refuses, or a
            truth line that is malformed, names an unknown question or turn, gives a
            question twice, or has an ``as_of`` before every statement.
    """
    convs = load_locomo(path)
    by_id = {q.id: q for q in convs.questions}
    turns: dict[str, dict[str, Turn]] = {}
    for turn in convs.turns:
        turns.setdefault(turn.conv, {})[turn.dia_id] = turn
    truth_file = path / TRUTH_FILE
    rows = _truth_rows(truth_file, by_id) if truth_file.is_file() else {}
    questions: list[UpdateQuestion] = []
    without: list[str] = []
    for question in convs.questions:
        known = turns[question.conv]
        if question.id in rows:
            row, line = rows[question.id]
            found: UpdateQuestion | None = _from_truth(row, question, known, (truth_file, line))
        else:
            found = _from_evidence(question, known)
        if found is None:
            without.append(question.id)
        else:
            questions.append(found)
    files = (*convs.files, truth_file) if rows else convs.files
    return UpdateSet(
        conversations=convs, questions=tuple(questions), without_gold=tuple(without), files=files
    )


# -- scoring ----------------------------------------------------------------------------------


def score_update(
    run: QueryRun,
    top_labels: Sequence[str],
    expected: str,
    others: Sequence[str],
) -> dict[str, float | None]:
    """The metrics of one recall against the expected statement.

    Args:
        run: the recall (its ranked turn ids).
        top_labels: the turn ids of the top hit (several when turns were merged).
        expected: the statement that should come first.
        others: the statements that should not (overridden, or not made yet).

    Returns:
        ``current@1`` (the top hit is ``expected``), ``stale@1`` (the top hit is one of
        ``others``), ``recall@5`` and ``mrr@10`` of ``expected``.
    """
    gold = {expected: 1}
    return {
        "current@1": 1.0 if expected in top_labels else 0.0,
        "stale@1": 1.0 if any(o in top_labels for o in others) else 0.0,
        "recall@5": recall_at_k(run.ranked, gold, 5),
        "mrr@10": mrr_at_k(run.ranked, gold, 10),
    }


def _top_labels(run: QueryRun, labels: Mapping[int, Sequence[str]]) -> list[str]:
    return list(labels.get(run.top.id, ())) if run.top is not None else []


def _row(
    item: UpdateQuestion, run: QueryRun, labels: Mapping[int, Sequence[str]]
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": item.question.id,
        "tags": list(item.tags),
        "gold": item.gold,
        "stale": list(item.stale),
        "ms": round(run.ms, 3),
    }
    row.update(score_update(run, _top_labels(run, labels), item.gold, item.stale))
    row["top"] = list(dict.fromkeys(run.ranked))[:TOP_SHOWN]
    return row


def _add_as_of(
    row: dict[str, Any],
    item: UpdateQuestion,
    run: QueryRun,
    labels: Mapping[int, Sequence[str]],
    valid: str,
) -> None:
    others = [s for s in item.statements if s != valid]
    scores = score_update(run, _top_labels(run, labels), valid, others)
    row.update({"as_of": item.as_of, "as_of/valid": valid, "as_of/ms": round(run.ms, 3)})
    row.update({f"as_of/{name}": value for name, value in scores.items()})
    row["as_of/top"] = list(dict.fromkeys(run.ranked))[:TOP_SHOWN]


def _names() -> list[str]:
    return [*UPDATE_METRICS, *(f"as_of/{n}" for n in UPDATE_METRICS)]


def _means(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def mean(part: Sequence[Mapping[str, Any]], name: str) -> float | None:
        value = mean_over_queries(r.get(name) for r in part)
        return round(value, 6) if value is not None else None

    out: dict[str, Any] = {name: mean(rows, name) for name in _names()}
    for tag in sorted({t for r in rows for t in r["tags"]}):
        part = [r for r in rows if tag in r["tags"]]
        out.update({f"{tag}/{name}": mean(part, name) for name in _names()})
    return out


# -- the task ---------------------------------------------------------------------------------


def _channel(
    ctx: RunContext,
    data: UpdateSet,
    mine: Mapping[str, Sequence[UpdateQuestion]],
    labels: Mapping[str, Mapping[int, Sequence[str]]],
    channel: str,
) -> tuple[list[dict[str, Any]], list[float]]:
    """One channel's rows: every question at the end of its conversation, and the
    questions with ``as_of`` again as of that time."""
    rows: list[dict[str, Any]] = []
    ms: list[float] = []
    for conv, items in mine.items():
        namespace, known = f"updates.{conv}", labels[conv]
        now = last_session_time(data.conversations, conv)
        texts = [item.question.text for item in items]
        runs = run_queries(
            ctx, texts, channel=channel, k=DEPTH, namespace=namespace, labels=known, now=now
        )
        ms += [r.ms for r in runs]
        for item, run in zip(items, runs, strict=True):
            row = _row(item, run, known)
            if item.as_of is not None and item.valid is not None:
                (then,) = run_queries(
                    ctx,
                    [item.question.text],
                    channel=channel,
                    k=DEPTH,
                    namespace=namespace,
                    labels=known,
                    as_of=item.as_of,
                )
                _add_as_of(row, item, then, known, item.valid)
            rows.append(row)
    return rows, ms


def evaluate_updates(ctx: RunContext, data: UpdateSet) -> TaskResult:
    """Ingest each conversation into ``updates.<conv>`` and ask about facts that changed.

    Every question is recalled once as asked after its conversation (``now=`` the last
    session): ``current@1`` is whether the top hit states the
    current value, ``stale@1`` whether it states an overridden one, ``recall@5`` and
    ``mrr@10`` rank the current one. Questions with ``as_of`` are recalled again with
    ``as_of=`` that time, scored against the statement valid then (``as_of/…``).

    Raises:
        InvalidInputError: a channel the engine does not know, or a reused store that holds
            other memories in a conversation's namespace.
    """
    questions = list(data.questions[: ctx.limit] if ctx.limit else data.questions)
    convs = {item.question.conv for item in questions}
    labels, ingested = ingest_conversations(ctx, data.conversations, convs, prefix="updates")
    mine = {conv: [q for q in questions if q.question.conv == conv] for conv in sorted(labels)}
    params = {
        "k": DEPTH,
        "now": "last session",
        "as_of": "truth",
    }
    result = TaskResult(metrics={}, latency_ms={}, ingest=ingested, per_query={}, params=params)
    for channel in ctx.channels:
        rows, ms = _channel(ctx, data, mine, labels, channel)
        result.metrics[channel] = _means(rows)
        result.latency_ms[channel] = latency_summary(ms)
        result.per_query[channel] = rows
    tags = sorted({t for q in questions for t in q.tags})
    result.info.update(
        conversations=len(labels),
        turns=sum(1 for t in data.conversations.turns if t.conv in labels),
        questions=len(questions),
        as_of=sum(1 for q in questions if q.as_of is not None),
        stale=sum(len(q.stale) for q in questions),
        by_tag={tag: sum(1 for q in questions if tag in q.tags) for tag in tags},
        without_gold=len(data.without_gold),
    )
    return result
