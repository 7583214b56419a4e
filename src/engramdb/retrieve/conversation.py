"""Recall over conversation turns: a turn scored with its neighbours, its speaker, its session.

A conversation turn is a memory with a document, an ordinal and a speaker. Its own text is
often too short to match a question ("Seven years now!"): the turn before it, which it
answers, holds the question's words. This module re-scores the candidates of one recall
that are such turns, from the channels' runs alone:

1. **Channel scores.** Each channel's run is min-max normalised (:func:`fusion.minmax`);
   a turn outside a run scores 0 there (the run's last hit also scores 0, so nothing
   outside the run needs scoring).
2. **Context.** ``u_c(t) = n_c(t) + prev · n_c(t−1) + next · n_c(t+1)``, where ``t±1`` are
   the turns the caller names as ``t``'s neighbours, in the same document and session.
   A neighbour that no channel found becomes a candidate too.
3. **Fusion.** ``F(t) = Σ_c w_c · u_c(t)``.
4. **Priors** (multiplicative): ``× (1 + speaker)`` when the query names ``t``'s speaker;
   ``× (1 + temporal)`` when the query asks *when* and ``t`` holds a time expression;
   ``× (words(t) / median words of the candidates) ** length``.
5. **Session.** ``F'(t) = F(t) + session · S(t's session)``, ``S`` the mean of the
   ``session_top`` best ``F`` among the candidates of that session (missing ones count 0).

:func:`rescore` then puts the turns, in ``F'`` order, into the ranks that turns held in
the fused list; every other memory (documents, notes) keeps its rank, and every rank keeps
the fused score it had, so the score profile that calibration sees is unchanged.

The time-expression and question-word rules are English.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engramdb.config import ConversationConfig
from engramdb.query import TimeIntent, find_speakers, parse_time_intent
from engramdb.retrieve.fusion import Run, minmax

__all__ = [
    "ConversationParams",
    "Neighbours",
    "Turn",
    "as_turn",
    "has_time_expression",
    "rescore",
    "score_turns",
]

Neighbours = Mapping[int, tuple[int | None, int | None]]
"""For a turn id, the ids of the turns just before and just after it (``None``: none)."""

_WORD = re.compile(r"[^\W_]+")
_ANCHOR_STOP = frozenset({"the", "a", "an", "my", "our", "his", "her", "their", "your", "of"})
_TIME_WORDS = frozenset(
    """yesterday today tonight tomorrow ago last next recently lately week weeks weekend
    weekends month months year years day days night nights morning mornings evening evenings
    monday mondays tuesday tuesdays wednesday wednesdays thursday thursdays friday fridays
    saturday saturdays sunday sundays january february march april may june july august
    september october november december spring summer autumn fall winter""".split()  # noqa: SIM905
)
_YEAR = re.compile(r"(?:19|20)\d\d")


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """What the re-scoring needs to know of one conversation turn.

    Attributes:
        document: the conversation it belongs to.
        ordinal: its position in the document.
        speaker: who said it.
        session: the part of the conversation it belongs to (``None``: the whole document
            is one session); neighbours and the session prior never cross sessions.
        text: its stored text.
    """

    document: str
    ordinal: int
    speaker: str
    session: Hashable | None
    text: str
    time: float | None = None


ConversationParams = ConversationConfig
"""The weights of the re-scoring: :class:`engramdb.config.ConversationConfig`."""


def as_turn(
    document: str | None,
    ordinal: int | None,
    meta: Mapping[str, Any],
    text: str,
    time: float | None = None,
) -> Turn | None:
    """A memory as a :class:`Turn`, or ``None`` when it is not a conversation turn.

    A turn has a document, an ordinal and a speaker (``meta["speaker"]``, else
    ``meta["role"]``, a non-empty string); its session is ``meta["session"]`` when present.
    """
    speaker = meta.get("speaker", meta.get("role"))
    if document is None or ordinal is None or not isinstance(speaker, str) or not speaker:
        return None
    session = meta.get("session")
    return Turn(
        document=document,
        ordinal=ordinal,
        speaker=speaker,
        session=session if isinstance(session, Hashable) else str(session),
        text=text,
        time=time,
    )


def has_time_expression(text: str) -> bool:
    """Whether the text names a time (``yesterday``, ``last week``, ``May``, ``2022`` ...)."""
    return any(
        w in _TIME_WORDS or (len(w) == 4 and _YEAR.fullmatch(w) is not None)
        for w in _WORD.findall(text.lower())
    )


def _session(turn: Turn) -> tuple[str, Hashable | None]:
    return turn.document, turn.session


def _links(
    members: Sequence[int], turns: Mapping[int, Turn], neighbours: Neighbours
) -> tuple[dict[int, int], dict[int, int]]:
    """``(prev, next)`` maps among turns of the same session; a member's own pair wins."""
    prev: dict[int, int] = {}
    nxt: dict[int, int] = {}
    for own in (True, False):
        for t in members:
            before, after = neighbours.get(t, (None, None))
            for other, forward, backward in ((before, prev, nxt), (after, nxt, prev)):
                if other is None or other == t or other not in turns:
                    continue
                if _session(turns[other]) != _session(turns[t]):
                    continue
                if own:
                    forward[t] = other
                else:
                    backward.setdefault(other, t)
    return prev, nxt


def _words(text: str) -> int:
    return max(1, len(text.split()))


def score_turns(
    query: str,
    runs: Mapping[str, Run],
    turns: Mapping[int, Turn],
    neighbours: Neighbours,
    params: ConversationParams | None = None,
    intent: TimeIntent | None = None,
) -> list[tuple[int, float]]:
    """The turn candidates of one recall, re-scored, best first (ties: smaller id).

    Args:
        query: the query text.
        runs: each channel's run, best first.
        turns: every candidate that is a conversation turn, and the turns named in
            ``neighbours``; ids missing here are not turns and are left out.
        neighbours: for each turn in the runs, its previous and next turn.
        params: the weights (default: :class:`ConversationParams`).
        intent: what the query says about time (:func:`engramdb.query.parse_time_intent`).

    Returns:
        ``(id, score)`` for every turn in the runs and every neighbour of one.
    """
    p = ConversationParams() if params is None else params
    norm = {c: minmax(run) for c, run in runs.items() if run}
    members = list(dict.fromkeys(t for run in runs.values() for t, _ in run if t in turns))
    prev, nxt = _links(members, turns, neighbours)
    candidates = list(dict.fromkeys([*members, *prev.values(), *nxt.values()]))
    if not candidates:
        return []
    scores: dict[int, float] = {}
    for t in candidates:
        before, after = prev.get(t), nxt.get(t)
        total = 0.0
        for channel, n in norm.items():
            u = n.get(t, 0.0)
            if before is not None:
                u += p.prev * n.get(before, 0.0)
            if after is not None:
                u += p.next * n.get(after, 0.0)
            total += p.weights.get(channel, 1.0) * u
        scores[t] = total
    when = (intent if intent is not None else parse_time_intent(query, 0.0)).asks_when
    _apply_priors(query, scores, turns, p, when=when)
    if intent is not None:
        _apply_time(scores, turns, intent, p)
    _apply_session(scores, turns, p)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _apply_priors(
    query: str,
    scores: dict[int, float],
    turns: Mapping[int, Turn],
    p: ConversationParams,
    *,
    when: bool,
) -> None:
    named = set(find_speakers(query, sorted({turns[t].speaker for t in scores})))
    when = p.temporal > 0 and when
    words = {t: _words(turns[t].text) for t in scores} if p.length else {}
    median = statistics.median(words.values()) if words else 1.0
    for t in scores:
        turn = turns[t]
        factor = 1.0
        if turn.speaker in named:
            factor *= 1.0 + p.speaker
        if when and has_time_expression(turn.text):
            factor *= 1.0 + p.temporal
        if p.length:
            factor *= math.pow(words[t] / median, p.length)
        scores[t] *= factor


def _anchor_time(
    anchor: str, scores: Mapping[int, float], turns: Mapping[int, Turn]
) -> float | None:
    """The time of the candidate turn that best names the anchor event ("the trip"): the
    most of the anchor's words (at least half), then the best score."""
    wanted = {w.lower() for w in _WORD.findall(anchor)} - _ANCHOR_STOP
    if not wanted:
        return None
    best: tuple[float, float, float] | None = None
    for t, score in scores.items():
        time = turns[t].time
        if time is None:
            continue
        found = len(wanted & {w.lower() for w in _WORD.findall(turns[t].text)}) / len(wanted)
        if found >= 0.5 and (best is None or (found, score) > best[:2]):
            best = (found, score, time)
    return None if best is None else best[2]


def _apply_time(
    scores: dict[int, float], turns: Mapping[int, Turn], intent: TimeIntent, p: ConversationParams
) -> None:
    """Soft priors from the query's time expressions: a turn in its window, a turn on the
    asked side of its anchor event, and (for "the first time", "most recent") the earliest
    or latest turns, are boosted; none is removed."""
    times = {t: time for t in scores if (time := turns[t].time) is not None}
    if not times:
        return
    if intent.window is not None and p.window:
        lo, hi = intent.window
        _boost(scores, [t for t, time in times.items() if lo <= time < hi], p.window)
    if intent.anchor is not None and intent.relation in ("before", "after") and p.anchor:
        at = _anchor_time(intent.anchor, scores, turns)
        if at is not None:
            before = intent.relation == "before"
            side = [t for t, time in times.items() if (time < at if before else time > at)]
            _boost(scores, side, p.anchor)
    if intent.order is not None and p.order:
        first, last = min(times.values()), max(times.values())
        if last > first:
            for t, time in times.items():
                late = (time - first) / (last - first)
                scores[t] *= 1.0 + p.order * (late if intent.order == "last" else 1.0 - late)


def _boost(scores: dict[int, float], ids: Sequence[int], weight: float) -> None:
    for t in ids:
        scores[t] *= 1.0 + weight


def _apply_session(
    scores: dict[int, float], turns: Mapping[int, Turn], p: ConversationParams
) -> None:
    if not p.session:
        return
    by_session: dict[tuple[str, Hashable | None], list[float]] = {}
    for t, s in scores.items():
        by_session.setdefault(_session(turns[t]), []).append(s)
    prior = {
        key: sum(sorted(values, reverse=True)[: p.session_top]) / p.session_top
        for key, values in by_session.items()
    }
    for t in scores:
        scores[t] += p.session * prior[_session(turns[t])]


def rescore(  # noqa: PLR0913 - the recall's parts
    query: str,
    runs: Mapping[str, Run],
    fused: Run,
    turns: Mapping[int, Turn],
    neighbours: Neighbours,
    params: ConversationParams | None = None,
    intent: TimeIntent | None = None,
) -> list[tuple[int, float]]:
    """The fused list with its turns re-ordered by :func:`score_turns`.

    Memories that are not turns keep their ranks; the ranks that turns held are filled
    with the re-scored turns, best first, and the turns left over (neighbours no channel
    found, and turns pushed out) follow the fused list. Each rank keeps the fused score it
    had, so scores stay non-increasing; the leftovers take the last fused score.

    Args:
        query: the query text.
        runs: each channel's run, best first.
        fused: the runs' fusion, best first (e.g. :func:`fusion.fuse`).
        turns: see :func:`score_turns`.
        neighbours: see :func:`score_turns`.
        params: the weights (default: :class:`ConversationParams`).

    Returns:
        ``(id, score)`` pairs, best first; the fused list itself when it holds no turn.
    """
    ranked = [t for t, _ in score_turns(query, runs, turns, neighbours, params, intent)]
    if not ranked:
        return [(doc, float(score)) for doc, score in fused]
    known = set(ranked)
    ranked += [doc for doc, _ in fused if doc in turns and doc not in known]
    order = iter(ranked)
    out = [(next(order) if doc in turns else doc, float(score)) for doc, score in fused]
    last = out[-1][1] if out else 0.0
    return out + [(t, last) for t in order]
