"""Loader for conversational memory QA: LoCoMo's flattened ``turns.jsonl`` + ``qa.jsonl``.

``turns.jsonl`` holds one turn per line in chronological order
(``{conv, session, date_time, dia_id, speaker, text[, image_caption]}``); ``qa.jsonl`` one
question per line (``{conv, qa_idx, question, answer, category, evidence: [dia_id, ...]}``).

Evidence ids are ``D<session>:<turn>``. A few upstream ids are malformed (``"D8:6; D9:17"``,
``"D:11:26"``, ``"D30:05"``): they are split and normalised; ids that still name no turn of
the conversation are kept in :attr:`Question.unresolved` and left out of the gold set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engramdb.eval.datasets import EvalDataError, field_str, find_file, read_jsonl

__all__ = ["ConversationSet", "Question", "Turn", "load_locomo", "parse_session_time"]

_TIME_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y")
_EVIDENCE = re.compile(r"D:?(\d+):0*(\d+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One dialogue turn; ``ordinal`` is its index in the conversation (0-based)."""

    conv: str
    session: int
    dia_id: str
    speaker: str
    text: str
    image_caption: str | None
    event_time: float
    ordinal: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Question:
    """One question about one conversation, with its evidence turns and category."""

    conv: str
    id: str
    text: str
    category: int
    evidence: tuple[str, ...]
    unresolved: tuple[str, ...]
    answer: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationSet:
    """All turns and questions, and the files they came from."""

    name: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]
    files: tuple[Path, ...]


def parse_session_time(value: str) -> float:
    """A LoCoMo session time such as ``"1:56 pm on 8 May, 2023"`` as UTC epoch seconds.

    Raises:
        ValueError: the text is not such a time.
    """
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(
        f"unrecognised session time {value!r} (expected e.g. '1:56 pm on 8 May, 2023')"
    )


def _turn(row: dict[str, Any], path: Path, line: int, ordinal: int) -> Turn:
    session = row.get("session")
    if isinstance(session, bool) or not isinstance(session, int):
        raise EvalDataError("field 'session' must be an integer", path=path, line=line)
    text = row.get("text")
    if not isinstance(text, str):
        raise EvalDataError("field 'text' must be a string", path=path, line=line)
    caption = row.get("image_caption")
    try:
        when = parse_session_time(field_str(row, "date_time", path, line))
    except ValueError as exc:
        raise EvalDataError(str(exc), path=path, line=line) from exc
    return Turn(
        conv=field_str(row, "conv", path, line),
        session=session,
        dia_id=field_str(row, "dia_id", path, line),
        speaker=field_str(row, "speaker", path, line),
        text=text,
        image_caption=caption if isinstance(caption, str) and caption.strip() else None,
        event_time=when,
        ordinal=ordinal,
    )


def _load_turns(path: Path) -> tuple[Turn, ...]:
    turns: list[Turn] = []
    counts: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for line, row in read_jsonl(path):
        conv = field_str(row, "conv", path, line)
        turn = _turn(row, path, line, counts.get(conv, 0))
        if (conv, turn.dia_id) in seen:
            raise EvalDataError(
                f"duplicate turn id {turn.dia_id!r} in {conv}", path=path, line=line
            )
        seen.add((conv, turn.dia_id))
        counts[conv] = turn.ordinal + 1
        turns.append(turn)
    if not turns:
        raise EvalDataError("no turns", path=path)
    return tuple(turns)


def _split_evidence(raw: Any, path: Path, line: int) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        raise EvalDataError("field 'evidence' must be a list of turn ids", path=path, line=line)
    ids: list[str] = []
    for item in raw:
        for token in re.split(r"[;,\s]+", item.strip()):
            match = _EVIDENCE.fullmatch(token)
            ids.append(f"D{match.group(1)}:{match.group(2)}" if match else token)
    return [i for i in ids if i]


def _question(row: dict[str, Any], path: Path, line: int, known: dict[str, set[str]]) -> Question:
    conv = field_str(row, "conv", path, line)
    if conv not in known:
        raise EvalDataError(f"unknown conversation {conv!r}", path=path, line=line)
    category = row.get("category")
    if isinstance(category, bool) or not isinstance(category, int):
        raise EvalDataError("field 'category' must be an integer", path=path, line=line)
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        raise EvalDataError("field 'question' must be non-empty text", path=path, line=line)
    evidence = _split_evidence(row.get("evidence", []), path, line)
    resolved = tuple(dict.fromkeys(e for e in evidence if e in known[conv]))
    unresolved = tuple(e for e in evidence if e not in known[conv])
    return Question(
        conv=conv,
        id=f"{conv}#{field_str(row, 'qa_idx', path, line)}",
        text=text,
        category=category,
        evidence=resolved,
        unresolved=unresolved,
        answer=row.get("answer", row.get("adversarial_answer")),
    )


def load_locomo(path: Path) -> ConversationSet:
    """A LoCoMo folder (``turns.jsonl`` + ``qa.jsonl``).

    Raises:
        EvalDataError: a missing file, a malformed line, an unparsable session time or a
            question about an unknown conversation.
    """
    turns_file = find_file(path, "turns.jsonl", "turns.jsonl.gz")
    qa_file = find_file(path, "qa.jsonl", "qa.jsonl.gz")
    turns = _load_turns(turns_file)
    known: dict[str, set[str]] = {}
    for turn in turns:
        known.setdefault(turn.conv, set()).add(turn.dia_id)
    questions = tuple(_question(row, qa_file, line, known) for line, row in read_jsonl(qa_file))
    if not questions:
        raise EvalDataError("no questions", path=qa_file)
    return ConversationSet(
        name=path.name, turns=turns, questions=questions, files=(turns_file, qa_file)
    )
