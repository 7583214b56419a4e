"""parse_time_intent on any text and any reference time, and on the LoCoMo questions."""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engramdb.ingest import parse_time
from engramdb.query import find_speakers, parse_time_intent

LOCOMO = Path(__file__).parents[4] / "shared" / "data" / "locomo"
DAY = 86400.0

# milliseconds, so that ``now - n days`` stays exact
nows = st.integers(min_value=-2 * 10**12, max_value=4 * 10**12).map(lambda ms: ms / 1000)
fragments = st.sampled_from(
    [
        "yesterday", "last week", "in May", "May 7", "7 May 2023", "the first time", "before",
        "after the trip", "during", "since 2020", "between", "and", "last", "first", "recently",
        "the week before", "two weeks ago", "a few", "in early", "mid-", "2022", "summer",
        "Christmas", "on Tuesday", "the Sunday before", "of", "weekend", "?", ",", "now", "May",
    ]
)  # fmt: skip
texts = st.one_of(st.text(max_size=80), st.lists(fragments, max_size=8).map(" ".join))


def utc(t: float) -> dt.datetime:
    """``t`` as a naive UTC datetime, to the second below it."""
    return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=math.floor(t))


def epoch(d: dt.datetime) -> float:
    return d.replace(tzinfo=dt.UTC).timestamp()


@given(texts, st.floats(min_value=-2e9, max_value=4e9))
def test_any_text_gives_a_consistent_intent(query: str, now: float) -> None:
    intent = parse_time_intent(query, now)
    if intent.window is not None:
        assert intent.window[0] < intent.window[1]
        assert not math.isnan(intent.window[0]) and not math.isnan(intent.window[1])
    assert (intent.anchor is None) == (intent.relation is None)
    if intent.anchor is not None:
        assert intent.anchor and intent.anchor in query
    assert list(intent.spans) == sorted(set(intent.spans))
    assert all(0 <= s < e <= len(query) for s, e in intent.spans)


@given(nows)
def test_deictic_windows_hold_the_reference(now: float) -> None:
    today = parse_time_intent("What happened today?", now).window
    assert today is not None and today[0] <= now < today[1] == today[0] + DAY
    yesterday = parse_time_intent("What happened yesterday?", now).window
    assert yesterday == (today[0] - DAY, today[0])
    this_week = parse_time_intent("What happened this week?", now).window
    last_week = parse_time_intent("What happened last week?", now).window
    assert this_week is not None and this_week[0] <= now < this_week[1]
    assert utc(this_week[0]).weekday() == 0
    assert last_week == (this_week[0] - 7 * DAY, this_week[0])
    this_year = parse_time_intent("What happened this year?", now).window
    assert this_year == (
        epoch(dt.datetime(utc(now).year, 1, 1)),
        epoch(dt.datetime(utc(now).year + 1, 1, 1)),
    )


@given(nows, st.integers(min_value=1, max_value=12))
def test_days_ago_is_that_day(now: float, n: int) -> None:
    window = parse_time_intent(f"What did I do {n} days ago?", now).window
    assert window is not None and window[1] - window[0] == DAY
    assert window[0] <= now - n * DAY < window[1]


@given(nows, st.integers(min_value=1, max_value=12))
def test_a_bare_month_is_the_latest_that_has_begun(now: float, month: int) -> None:
    name = dt.date(2000, month, 1).strftime("%B")
    window = parse_time_intent(f"What did I do in {name}?", now).window
    assert window is not None
    start = utc(window[0])
    assert start.month == month and start.day == 1 and window[0] <= now
    next_one = start.replace(year=start.year + 1)
    assert epoch(next_one) > now


def _locomo() -> tuple[list[dict[str, object]], dict[str, float], dict[str, list[str]]]:
    last: dict[str, float] = {}
    speakers: dict[str, set[str]] = collections.defaultdict(set)
    for line in (LOCOMO / "turns.jsonl").read_text(encoding="utf-8").splitlines():
        turn = json.loads(line)
        stamp = parse_time(turn["date_time"])
        assert stamp is not None
        last[turn["conv"]] = max(last.get(turn["conv"], stamp), stamp)
        speakers[turn["conv"]].add(turn["speaker"])
    questions = [json.loads(line) for line in (LOCOMO / "qa.jsonl").read_text().splitlines()]
    return questions, last, {c: sorted(s) for c, s in speakers.items()}


@pytest.mark.skipif(not (LOCOMO / "qa.jsonl").exists(), reason="LoCoMo data not present")
def test_locomo_questions() -> None:
    """Every question reads; the temporal ones have the windows, orders and speakers they
    should (figures from an eyeballed run: 45 of 321 temporal questions name a window)."""
    questions, last, speakers = _locomo()
    counts: collections.Counter[str] = collections.Counter()
    for q in questions:
        conv, text = str(q["conv"]), str(q["question"])
        intent = parse_time_intent(text, last[conv])
        named = find_speakers(text, speakers[conv])
        if q["category"] == 2:
            counts["temporal"] += 1
            counts["window"] += intent.window is not None
            counts["order"] += intent.order is not None
            counts["asks_when"] += intent.asks_when
        counts["questions"] += 1
        counts["speaker"] += bool(named)
    assert counts["temporal"] == 321
    assert counts["window"] >= 45 and counts["order"] >= 15 and counts["asks_when"] >= 250
    assert counts["speaker"] >= 0.99 * counts["questions"]


def test_a_locomo_style_question_without_a_time_expression() -> None:
    intent = parse_time_intent("When did Caroline go to the LGBTQ support group?", 1.7e9)
    assert intent.window is None and intent.order is None and intent.asks_when
