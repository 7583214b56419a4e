"""The time priors of the turn re-scoring: a window, an anchor event, first/last."""

from __future__ import annotations

from engramdb.config import ConversationConfig
from engramdb.query import TimeIntent
from engramdb.retrieve.conversation import Turn, score_turns

DAY = 86_400.0
TEXTS = [
    "We booked the trip to Kyoto.",  # day 10
    "I started pottery classes.",  # day 20
    "I started pottery again.",  # day 30
    "Back from the trip, pottery is on hold.",  # day 40
]


def _turns() -> dict[int, Turn]:
    return {
        i: Turn(document="c", ordinal=i, speaker="Ann", session=i, text=text, time=DAY * 10 * i)
        for i, text in enumerate(TEXTS, start=1)
    }


def _scores(intent: TimeIntent | None, **weights: float) -> dict[int, float]:
    params = ConversationConfig(
        prev=0, next=0, speaker=0, temporal=0, length=0, session=0, **weights
    )
    run = [(i, 1.0) for i in range(1, 5)] + [(99, 0.0)]  # every turn scores 1 before priors
    turns = _turns() | {99: Turn(document="d", ordinal=0, speaker="Bo", session=0, text="x")}
    return dict(score_turns("q", {"lexical": run}, turns, {}, params, intent))


def test_no_intent_leaves_the_scores() -> None:
    assert _scores(None) == _scores(TimeIntent()) == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 99: 0.0}


def test_a_window_boosts_the_turns_inside_it() -> None:
    got = _scores(TimeIntent(window=(DAY * 15, DAY * 35)), window=1.0)
    assert got == {1: 1.0, 2: 2.0, 3: 2.0, 4: 1.0, 99: 0.0}


def test_an_anchor_boosts_the_asked_side_of_the_event() -> None:
    before = _scores(TimeIntent(anchor="the trip", relation="before"), anchor=0.5)
    # "the trip" is named best by turn 1 (both of its words, score 1, earliest id)
    assert before == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 99: 0.0}
    after = _scores(TimeIntent(anchor="the trip", relation="after"), anchor=0.5)
    assert after == {1: 1.0, 2: 1.5, 3: 1.5, 4: 1.5, 99: 0.0}
    unknown = _scores(TimeIntent(anchor="the wedding", relation="after"), anchor=0.5)
    assert unknown == {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 99: 0.0}


def test_first_and_last_lean_on_the_candidates_times() -> None:
    last = _scores(TimeIntent(order="last"), order=0.6)
    assert [round(last[i], 6) for i in (1, 2, 3, 4)] == [1.0, 1.2, 1.4, 1.6]
    first = _scores(TimeIntent(order="first"), order=0.6)
    assert [round(first[i], 6) for i in (1, 2, 3, 4)] == [1.6, 1.4, 1.2, 1.0]
