"""parse_time_intent: a table of questions with the window, order and anchor they should give."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from engramdb.errors import InvalidInputError
from engramdb.query import TimeIntent, parse_time_intent

# A Saturday, noon UTC.
NOW = dt.datetime(2023, 5, 20, 12, tzinfo=dt.UTC).timestamp()


def day(text: str) -> float:
    """Epoch seconds of an ISO date (or date-time) in UTC."""
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.UTC).timestamp()


def window(start: str, end: str) -> tuple[float, float]:
    return day(start), day(end)


WINDOWS = [
    # relative to now (Saturday 2023-05-20)
    ("What did I eat yesterday?", ("2023-05-19", "2023-05-20")),
    ("What did Anna say today?", ("2023-05-20", "2023-05-21")),
    ("What did we do the day before yesterday?", ("2023-05-18", "2023-05-19")),
    ("What did Anna say this morning?", ("2023-05-20", "2023-05-21")),
    ("What happened last Tuesday?", ("2023-05-16", "2023-05-17")),
    ("Who called on Tuesday?", ("2023-05-16", "2023-05-17")),
    ("Who called on Saturday?", ("2023-05-20", "2023-05-21")),
    ("What happened last Saturday?", ("2023-05-13", "2023-05-14")),
    ("What is planned for next Tuesday?", ("2023-05-23", "2023-05-24")),
    ("What did we discuss last week?", ("2023-05-08", "2023-05-15")),
    ("What did I do this week?", ("2023-05-15", "2023-05-22")),
    ("What is planned for next week?", ("2023-05-22", "2023-05-29")),
    ("What did we plan last month?", ("2023-04-01", "2023-05-01")),
    ("What happened this month?", ("2023-05-01", "2023-06-01")),
    ("What is due next month?", ("2023-06-01", "2023-07-01")),
    ("Where did Bob travel last year?", ("2022-01-01", "2023-01-01")),
    ("What did we read this year?", ("2023-01-01", "2024-01-01")),
    ("What did Tom do last weekend?", ("2023-05-13", "2023-05-15")),
    ("What did Tom buy two weeks ago?", ("2023-05-03", "2023-05-10")),
    ("What did Tom buy 3 days ago?", ("2023-05-17", "2023-05-18")),
    ("What did Tom buy a few days ago?", ("2023-05-15", "2023-05-19")),
    ("What did Tom buy a month ago?", ("2023-04-01", "2023-05-01")),
    ("Where was Evan two years ago?", ("2021-01-01", "2022-01-01")),
    ("What has Sam done in the past two weeks?", ("2023-05-06", "2023-05-21")),
    ("What will we do in two weeks?", ("2023-05-31", "2023-06-07")),
    ("What did I say the other day?", ("2023-05-13", "2023-05-20")),
    # months, days and years
    ("What did Caroline attend in May 2023?", ("2023-05-01", "2023-06-01")),
    ("What did Caroline attend in May?", ("2023-05-01", "2023-06-01")),
    ("What did Caroline attend in June?", ("2022-06-01", "2022-07-01")),
    ("What happened last May?", ("2022-05-01", "2022-06-01")),
    ("What happened on May 7?", ("2023-05-07", "2023-05-08")),
    ("What happened on May 27?", ("2022-05-27", "2022-05-28")),
    ("What happened on 7 May 2023?", ("2023-05-07", "2023-05-08")),
    ("What happened on 2023-05-07?", ("2023-05-07", "2023-05-08")),
    ("What did they agree on 05/07/2023?", ("2023-05-07", "2023-05-08")),
    ("What did Gina find on 1 February, 2023?", ("2023-02-01", "2023-02-02")),
    ("What book did Tim finish on 8th December, 2022?", ("2022-12-08", "2022-12-09")),
    ("Where was the photo taken on December 1,2022?", ("2022-12-01", "2022-12-02")),
    ("What did they give him on Aug 15th?", ("2022-08-15", "2022-08-16")),
    ("Where did James go in 2022?", ("2022-01-01", "2023-01-01")),
    ("What did we listen to in the 1990s?", ("1990-01-01", "2000-01-01")),
    ("What did Joanna photograph last summer?", ("2022-06-01", "2022-09-01")),
    ("What state did Joanna visit in summer 2021?", ("2021-06-01", "2021-09-01")),
    ("What did we watch on Christmas?", ("2022-12-25", "2022-12-26")),
    ("What do they watch during Thanksgiving?", ("2022-11-24", "2022-11-25")),
    # parts and ranges
    ("What did Dave open in early 2023?", ("2023-01-01", "2023-05-01")),
    ("What happened in mid-2022?", ("2022-05-01", "2022-09-01")),
    ("What did Dave open in late 2022?", ("2022-09-01", "2023-01-01")),
    ("Which classes did Evan join in mid-August 2022?", ("2022-08-11", "2022-08-21")),
    ("What did Nate win in the beginning of November 2022?", ("2022-11-01", "2022-11-11")),
    ("Where was Dave in the last week of August 2022?", ("2022-08-25", "2022-09-01")),
    ("Where was Dave in the last two weeks of August 2022?", ("2022-08-18", "2022-09-01")),
    ("Where was Tim in the second week of November 2022?", ("2022-11-08", "2022-11-15")),
    ("What was Dave doing in the first weekend of October 2022?", ("2022-10-01", "2022-10-03")),
    ("Was the first half of September 2022 a good month?", ("2022-09-01", "2022-09-16")),
    ("What happened towards the end of summer 2022?", ("2022-08-01", "2022-09-01")),
    ("What did Tim read between March and May 2023?", ("2023-03-01", "2023-06-01")),
    ("Where was John between August 11 and August 15 2022?", ("2022-08-11", "2022-08-16")),
    ("What has Sam done since 2020?", ("2020-01-01", "2023-05-20T12:00:00")),
    ("What had she written before 2020?", ("-inf", "2020-01-01")),
    ("How many games had Nate won by July 10, 2022?", ("-inf", "2022-07-11")),
    # relative to a date in the question
    ("Where was Tim in the week before 16 November 2022?", ("2022-11-09", "2022-11-16")),
    ("What did Jo do on the Sunday before October 25, 2022?", ("2022-10-23", "2022-10-24")),
    ("What did Maria do the weekend before April 10, 2023?", ("2023-04-08", "2023-04-10")),
    ("What did Maria get two weeks before August 11, 2022?", ("2022-07-25", "2022-08-01")),
    ("What did we do the day after Christmas 2022?", ("2022-12-26", "2022-12-27")),
    ("What did Joanna finish last Friday on 23 January, 2022?", ("2022-01-21", "2022-01-24")),
    ("What did Nate do on May 7 in 2022?", ("2022-05-07", "2022-05-08")),
    ("What did Tim write last week, as said on November 6, 2023?", ("2023-10-30", "2023-11-07")),
    # "recently" gives a window only when nothing else does
    ("What did Melanie paint recently?", ("2023-04-20", "2023-05-21")),
    ("What cake did Joanna make recently in May 2022?", ("2022-05-01", "2022-06-01")),
]

NO_WINDOW = [
    "When did Caroline go to the LGBTQ support group?",
    "When did Melanie paint a sunrise?",
    "What did Caroline research?",
    "May I ask what Melanie painted?",
    "It may rain, so what did Anna pack?",
    "What did Mark say about the march?",
    "Did June visit Caroline?",
    "How did August feel about it?",
    "What did the son see when he watched the fall colours?",
    "Did the boy fall off his bike?",
    "What did Tim do at 3 pm?",
    "What did Sam eat in the morning?",
    "Which team won 2000 points?",
    "What did they play on Sundays?",
    "What is Cyberpunk 2077 about?",
    "How many days did the trip take?",
    "What did Melanie do after the charity race?",
    "Who won first place?",
    "",
]


@pytest.mark.parametrize(("query", "expected"), WINDOWS)
def test_window(query: str, expected: tuple[str, str]) -> None:
    intent = parse_time_intent(query, NOW)
    start, end = (-math.inf if e == "-inf" else day(e) for e in expected)
    assert intent.window == (start, end)


@pytest.mark.parametrize("query", NO_WINDOW)
def test_no_window(query: str) -> None:
    assert parse_time_intent(query, NOW).window is None


@pytest.mark.parametrize(
    ("query", "order"),
    [
        ("When did Caroline first go hiking?", "first"),
        ("What did Nate do the first time he met Joanna?", "first"),
        ("How did Jolene and her partner initially meet?", "first"),
        ("Which pet did Jolene adopt first - Susie or Seraphim?", "first"),
        ("What is the most recent book Tim read?", "last"),
        ("What book is Jon currently reading?", "last"),
        ("What game is Nate playing now?", "last"),
        ("What was the latest project?", "last"),
        ("When was the last photo of Deborah taken?", "last"),
        ("What did Melanie paint recently?", "last"),
        ("Who won first place?", None),
        ("What do you know about snow?", None),
        ("What did Tom do last week?", None),
        ("Where was Dave in the last week of August 2023?", None),
        ("What did Anna do after her first marathon?", None),
    ],
)
def test_order(query: str, order: str | None) -> None:
    assert parse_time_intent(query, NOW).order == order


@pytest.mark.parametrize(
    ("query", "relation", "anchor"),
    [
        ("What did Melanie realize after the charity race?", "after", "the charity race"),
        ("What did Jean go through before meeting Maria?", "before", "meeting Maria"),
        ("What did Mel make during the pottery workshop?", "during", "the pottery workshop"),
        ("Where did they go the weekend before the trip?", "before", "the trip"),
        ("How has his fitness improved since starting boot camps?", "after", "starting boot camps"),
        ("What did John do after his trip in August 2023?", "after", "his trip"),
        ("What did Anna wear two days after the wedding?", "after", "the wedding"),
        ("Who was the building named after?", None, None),
        ("After how many weeks did Tim call?", None, None),
        ("What did Evan do after that?", None, None),
        ("What is John feeling about following dreams?", None, None),
        ("Which activity did Sam resume after a long time?", None, None),
        ("What did Tom do last week?", None, None),
    ],
)
def test_anchor(query: str, relation: str | None, anchor: str | None) -> None:
    intent = parse_time_intent(query, NOW)
    assert (intent.relation, intent.anchor) == (relation, anchor)


def test_event_anchor_and_window_together() -> None:
    intent = parse_time_intent("What did John do after his trip in August 2022?", NOW)
    assert intent.window == window("2022-08-01", "2022-09-01")
    assert (intent.relation, intent.anchor) == ("after", "his trip")


def test_offset_before_an_event_has_no_window() -> None:
    intent = parse_time_intent("Where did they go the weekend before the trip?", NOW)
    assert intent.window is None
    assert intent.spans == ((18, 36),)


@pytest.mark.parametrize(
    ("query", "texts"),
    [
        ("What did we discuss last week?", ["last week"]),
        ("What did Caroline attend in May 2023?", ["in May 2023"]),
        ("What has Sam done since 2020?", ["since 2020"]),
        ("What did Tim read between March and May 2023?", ["between March and May 2023"]),
        ("When did Nate first win a tournament?", ["first"]),
        ("What did Melanie do after the charity race?", []),
        ("Where was Tim in the week before 16 May 2023?", ["in the week before 16 May 2023"]),
        ("What book is Jon currently reading this month?", ["currently", "this month"]),
    ],
)
def test_spans(query: str, texts: list[str]) -> None:
    intent = parse_time_intent(query, NOW)
    assert [query[s:e] for s, e in intent.spans] == texts


@pytest.mark.parametrize(
    ("query", "asks"),
    [
        ("When did Caroline go to the LGBTQ support group?", True),
        ("What year did John start surfing?", True),
        ("In which month's game did John score the most?", True),
        ("How long ago was Caroline's 18th birthday?", True),
        ("How long has Melanie been practising art?", True),
        ("In what year did Jon start his shop?", True),
        ("So, when is the party?", True),
        ("Who supports Caroline when she has a negative experience?", False),
        ("What did Caroline do when she arrived?", False),
        ("Which city did John visit in May 2023?", False),
    ],
)
def test_asks_when(query: str, asks: bool) -> None:
    assert parse_time_intent(query, NOW).asks_when is asks


def test_curly_quotes_and_capitals() -> None:
    intent = parse_time_intent("WHAT DID NEW YEAR’S EVE 2022 BRING?", NOW)
    assert intent.window == window("2022-12-31", "2023-01-01")


def test_a_question_about_nothing_gives_the_empty_intent() -> None:
    assert parse_time_intent("What did Caroline research?", NOW) == TimeIntent()


def test_after_a_date_still_to_come_is_open() -> None:
    intent = parse_time_intent("What happens after 2030?", NOW)
    assert intent.window == (day("2031-01-01"), math.inf)


@pytest.mark.parametrize("query", [None, 3, b"last week"])
def test_query_must_be_a_string(query: object) -> None:
    with pytest.raises(InvalidInputError, match="query must be a string"):
        parse_time_intent(query, NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf, True, "2023", 1e12, -1e12])
def test_now_must_be_finite_epoch_seconds(now: object) -> None:
    with pytest.raises(InvalidInputError, match="now must be"):
        parse_time_intent("last week", now)  # type: ignore[arg-type]
