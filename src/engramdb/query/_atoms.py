"""The temporal expressions of a query, found with regular expressions.

:func:`find_atoms` returns, in text order and without overlaps, every expression it knows:
:class:`Atom` (a date, month, season, year, holiday or a phrase relative to the time of
speaking, resolved later against a reference time) and :class:`Offset` ("the week before",
"two days after", "the Sunday before": a span placed relative to whatever follows it).
Matching runs on the lower-cased query; the original is read only for capitals ("May" the
month against "may" the verb).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from engramdb.query import _calendar as cal
from engramdb.query._calendar import DAY, Period

__all__ = ["MONTHS", "WEEKDAYS", "Atom", "Needs", "Offset", "find_atoms"]

Resolve = Callable[[dt.datetime], Period | None]
Needs = Literal["none", "deictic", "year"]
"""What an atom resolves against: nothing (an absolute date), the time of speaking
("yesterday", "last week"), or a year taken from context ("May 7", "in June")."""

MONTHS: dict[str, int] = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sept": 9,
    "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
WEEKDAYS: dict[str, int] = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6,
}  # fmt: skip
_NUMBERS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_VAGUE: dict[str, tuple[int, int]] = {"couple": (1, 3), "few": (2, 5), "several": (3, 7)}
# Month names that are also common words or names: a month only with a capital or a number.
_AMBIGUOUS_MONTHS = frozenset({"may", "march", "june", "august"})
_HOLIDAY_NAMES: dict[str, str] = {
    "xmas": "christmas", "christmas day": "christmas", "new years": "new year's day",
    "new year's": "new year's day", "new years day": "new year's day",
    "new years eve": "new year's eve", "valentines": "valentine's day",
    "valentine's": "valentine's day", "valentines day": "valentine's day",
    "fourth of july": "independence day", "the fourth of july": "independence day",
}  # fmt: skip

_FULL_MONTH = "|".join(m for m in MONTHS if len(m) > 4 or m in ("may", "june", "july"))
_ANY_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(WEEKDAYS)
_NUM = (
    r"(?:\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|(?:a\s+)?couple(?:\s+of)?|(?:a\s+)?few|several)"
)
_UNIT = r"(?:day|night|week|weekend|month|year|decade)"
_YEAR = r"(?:19|20)\d\d(?!\d)"
_QUAL = r"(?:this\s+past|this\s+coming|last|this|next|past|coming)"
_SEP = r"(?:\s*,\s*|\s+)"

# Words after which a bare month, season or year is a time ("in May", "since 2020").
_CONTEXT = re.compile(
    r"\b(?:in|on|during|since|until|till|by|before|after|from|through|throughout|over"
    r"|around|between|and|or|to|for|early|mid|late|about)[\s-]*$"
)
_PART = re.compile(
    r"(?:\b(?P<third>early|mid|late)"
    r"|\b(?:the\s+)?(?:very\s+)?(?P<edge>beginning|start|middle|end)\s+of"
    r"|\b(?:the\s+)?(?P<half>first|second)\s+half\s+of"
    r"|\b(?:the\s+)?(?P<wk>first|second|third|fourth|last)\s+week\s+of"
    r"|\b(?:the\s+)?(?P<wkd>first|last)\s+weekend\s+of"
    rf"|\b(?:the\s+)?(?P<wn>first|last)\s+(?P<n>{_NUM})\s+weeks\s+of)[\s-]*$"
)
_LOOKBACK = 48  # characters searched before an expression for its context or part
_THIRDS: dict[str, cal.Part] = {
    "early": "early", "mid": "mid", "late": "late", "beginning": "early", "start": "early",
    "middle": "mid", "end": "late",
}  # fmt: skip
_WEEK_INDEX = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}


@dataclass(frozen=True, slots=True)
class Atom:
    """One temporal expression: its span, how to resolve it, and the unit it names."""

    start: int
    end: int
    resolve: Resolve
    needs: Needs
    unit: cal.Unit | None = None


@dataclass(frozen=True, slots=True)
class Offset:
    """A span placed before or after what follows it: "the week before", "3 days after"."""

    start: int
    end: int
    direction: Literal["before", "after"]
    apply: Callable[[Period], Period]


Builder = Callable[[re.Match[str], str, str], Atom | Offset | None]


def _count(text: str) -> tuple[int, int]:
    """The least and most a number word means: "two" (2, 2), "a few" (2, 5)."""
    words = text.split()
    for word in words:
        if word in _VAGUE:
            return _VAGUE[word]
    n = int(words[0]) if words[0].isdigit() else _NUMBERS[words[0]]
    return n, n


def _unit(word: str) -> str:
    word = word.removesuffix("s")
    return "day" if word == "night" else word


def _step(t: dt.datetime, unit: str, n: int) -> dt.datetime:
    """``t`` moved by exactly ``n`` units (negative: back)."""
    if unit == "day":
        return t + n * DAY
    if unit in ("week", "weekend"):
        return t + 7 * n * DAY
    months = {"month": 1, "year": 12, "decade": 120}[unit]
    return cal.add_months(t, months * n)


def _moved(t: dt.datetime, unit: str, n: int) -> Period:
    """The calendar unit ``n`` units away from ``t`` (weeks: seven days around the day)."""
    moved = _step(t, unit, n)
    return cal.centred_week(moved) if unit in ("week", "weekend") else cal.unit_at(moved, unit)


def _counted(t: dt.datetime, unit: str, counts: tuple[int, int], sign: int) -> Period:
    """The span ``counts`` units away from ``t``, back (``sign`` -1) or forward (+1)."""
    near, far = (_moved(t, unit, sign * n) for n in counts)
    return near if counts[0] == counts[1] else near.hull(far)


def _rolling(ref: dt.datetime, unit: str, n: int) -> Period:
    """The last ``n`` units up to and including ``ref``'s day."""
    today = cal.midnight(ref)
    return Period(_step(today, unit, -n), today + DAY, "span")


def _day(y: int, m: int, d: int) -> Period | None:
    try:
        return cal.day(dt.datetime(y, m, d))
    except ValueError:
        return None


def _has_context(low: str, start: int) -> bool:
    """Whether a preposition or a part ("the end of") comes right before ``start``."""
    lookback = max(0, start - _LOOKBACK)
    return _CONTEXT.search(low, lookback, start) is not None or bool(
        _PART.search(low, lookback, start)
    )


def _recurring(make: Callable[[int], Period | None], qualifier: str | None) -> Resolve:
    """Resolve a yearly period ("May", "summer", "Christmas") by its qualifier."""
    q = " ".join(qualifier.split()) if qualifier else None

    def resolve(ref: dt.datetime) -> Period | None:
        if q in ("last", "past", "this past"):
            return cal.latest_ended(make, ref)
        if q in ("next", "coming", "this coming"):
            return cal.earliest_after(make, ref)
        if q == "this":
            return cal.current(make, ref)
        return cal.latest_started(make, ref)

    return resolve


def _fixed(p: Period | None) -> Resolve:
    return lambda _ref: p


# -- builders: one per pattern -------------------------------------------------------------


def _iso(m: re.Match[str], _low: str, _orig: str) -> Atom | None:
    p = _day(int(m["y"]), int(m["m"]), int(m["d"]))
    return Atom(m.start(), m.end(), _fixed(p), "none", "day") if p else None


def _numeric(m: re.Match[str], _low: str, _orig: str) -> Atom | None:
    a, b = int(m["a"]), int(m["b"])
    mo, d = (b, a) if a > 12 else (a, b)
    p = _day(int(m["y"]), mo, d)
    return Atom(m.start(), m.end(), _fixed(p), "none", "day") if p else None


def _month_day(m: re.Match[str], _low: str, _orig: str) -> Atom | None:
    mo, d = MONTHS[m["m"]], int(m["d"])
    if _day(2000, mo, d) is None:  # 2000 is a leap year: only impossible days fail
        return None
    if m["y"]:
        return Atom(m.start(), m.end(), _fixed(_day(int(m["y"]), mo, d)), "none", "day")
    resolve = _recurring(lambda y: _day(y, mo, d), None)
    return Atom(m.start(), m.end(), resolve, "year", "day")


def _month_year(m: re.Match[str], _low: str, _orig: str) -> Atom:
    p = cal.month(int(m["y"]), MONTHS[m["m"]])
    return Atom(m.start(), m.end(), _fixed(p), "none", "month")


def _month(m: re.Match[str], low: str, orig: str) -> Atom | None:
    name = m["m"]
    if m["q"] is None and not _has_context(low, m.start()):
        return None
    if name in _AMBIGUOUS_MONTHS and not orig[m.start("m")].isupper():
        return None
    mo = MONTHS[name]
    resolve = _recurring(lambda y: cal.month(y, mo), m["q"])
    return Atom(m.start(), m.end(), resolve, "deictic" if m["q"] else "year", "month")


def _year(m: re.Match[str], low: str, _orig: str) -> Atom | None:
    if not m["the"] and not _has_context(low, m.start()):
        return None
    return Atom(m.start(), m.end(), _fixed(cal.year(int(m["y"]))), "none", "year")


def _season(m: re.Match[str], low: str, _orig: str) -> Atom | None:
    name, q = m["s"], m["q"]
    if not (q or m["y"] or _has_context(low, m.start())):
        return None  # "the fall colours", "did he fall"
    if m["y"]:
        return Atom(m.start(), m.end(), _fixed(cal.season(int(m["y"]), name)), "none", "season")
    resolve = _recurring(lambda y: cal.season(y, name), q)
    return Atom(m.start(), m.end(), resolve, "deictic" if q else "year", "season")


def _decade(m: re.Match[str], _low: str, _orig: str) -> Atom:
    p = cal.decade(int(m["y"]) * 10)
    return Atom(m.start(), m.end(), _fixed(p), "none", "decade")


_DAY_WORDS = {
    "the day before yesterday": -2, "yesterday": -1, "last night": -1, "today": 0,
    "tonight": 0, "this morning": 0, "this afternoon": 0, "this evening": 0,
    "earlier today": 0, "tomorrow": 1, "the day after tomorrow": 2,
}  # fmt: skip


def _day_word(m: re.Match[str], _low: str, _orig: str) -> Atom:
    n = _DAY_WORDS[" ".join(m[0].split())]
    return Atom(m.start(), m.end(), lambda ref: cal.day(ref + n * DAY), "deictic", "day")


def _qualified_unit(m: re.Match[str], _low: str, _orig: str) -> Atom:
    q, unit = " ".join(m["q"].split()), m["u"]
    n = {"last": -1, "past": -1, "this past": -1, "this": 0}.get(q, 1)

    def resolve(ref: dt.datetime) -> Period:
        if unit != "weekend":
            return cal.unit_at(_step(ref, unit, n), unit)
        if n < 0:
            return cal.weekend_before(ref)
        if q in ("coming", "this coming"):
            return cal.weekend_after(ref)
        return cal.weekend_after(cal.week(ref).start + 7 * n * DAY)

    return Atom(m.start(), m.end(), resolve, "deictic", None)


def _weekday(m: re.Match[str], _low: str, _orig: str) -> Atom | None:
    q = " ".join(m["q"].split()) if m["q"] else None
    if m["pl"] and q is None:  # "on Sundays": a habit, not a day
        return None
    wd = WEEKDAYS[m["w"]]

    def resolve(ref: dt.datetime) -> Period:
        if q in ("last", "past", "this past"):
            return cal.weekday_before(ref, wd)
        if q in ("coming", "this coming"):
            return cal.weekday_after(ref, wd)
        if q in ("this", "next"):
            monday = cal.week(ref).start + (7 * DAY if q == "next" else 0 * DAY)
            return cal.day(monday + wd * DAY)
        return cal.weekday_on_or_before(ref, wd)

    return Atom(m.start(), m.end(), resolve, "deictic", "day")


def _rolling_span(m: re.Match[str], _low: str, _orig: str) -> Atom | None:
    if not (m["the"] or m["n"] or m["u"].endswith("s")):
        return None  # "last week" is the calendar week
    n = _count(m["n"])[1] if m["n"] else 1
    unit = _unit(m["u"])
    return Atom(m.start(), m.end(), lambda ref: _rolling(ref, unit, n), "deictic", None)


def _ago(m: re.Match[str], _low: str, _orig: str) -> Atom:
    counts, unit = _count(m["n"]), _unit(m["u"])
    sign = 1 if m["dir"].startswith("from") else -1
    resolve: Resolve = lambda ref: _counted(ref, unit, counts, sign)  # noqa: E731
    return Atom(m.start(), m.end(), resolve, "deictic", None)


def _in_future(m: re.Match[str], _low: str, _orig: str) -> Atom:
    """ "in two weeks": that far ahead of the time of speaking."""
    counts, unit = _count(m["n"]), _unit(m["u"])
    resolve: Resolve = lambda ref: _counted(ref, unit, counts, 1)  # noqa: E731
    return Atom(m.start(), m.end(), resolve, "deictic", None)


def _other_day(m: re.Match[str], _low: str, _orig: str) -> Atom:
    resolve: Resolve = lambda ref: Period(cal.midnight(ref) - 7 * DAY, cal.midnight(ref), "span")  # noqa: E731
    return Atom(m.start(), m.end(), resolve, "deictic", None)


def _holiday(m: re.Match[str], _low: str, _orig: str) -> Atom:
    key = " ".join(m["h"].split())
    name = _HOLIDAY_NAMES.get(key, key)
    if m["y"]:
        p = cal.holiday(name, int(m["y"]))
        return Atom(m.start(), m.end(), _fixed(p), "none", "day")
    resolve = _recurring(lambda y: cal.holiday(name, y), m["q"])
    return Atom(m.start(), m.end(), resolve, "deictic" if m["q"] else "year", "day")


def _offset(m: re.Match[str], _low: str, _orig: str) -> Offset | None:
    word = m["u"]
    if word.endswith("s") and not m["n"]:
        return None  # "days before the wedding": no span to place
    direction: Literal["before", "after"] = (
        "before" if m["dir"] in ("before", "prior to") else "after"
    )
    counts = _count(m["n"]) if m["n"] else None
    unit = _unit(word)
    wd = WEEKDAYS.get(unit)

    def apply(anchor: Period) -> Period:
        if wd is not None:
            if direction == "before":
                return cal.weekday_before(anchor.start, wd)
            return cal.weekday_after(anchor.end - DAY, wd)
        if counts is not None:
            return _counted(anchor.start, unit, counts, -1 if direction == "before" else 1)
        if unit == "weekend":
            before = direction == "before"
            return cal.weekend_before(anchor.start) if before else cal.weekend_after(anchor.end)
        if direction == "before":
            return Period(_step(anchor.start, unit, -1), anchor.start, "span")
        return Period(anchor.end, _step(anchor.end, unit, 1), "span")

    return Offset(m.start(), m.end(), direction, apply)


_DIGITS = tuple("0123456789")
_MONTH_STEMS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_QUALIFIERS = ("last", "this", "next", "past", "coming")

# (pattern, builder, words of which one must be in the query for the pattern to be tried)
_RULES: list[tuple[str, Builder, tuple[str, ...]]] = [
    (r"\b(?P<y>[12]\d{3})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})\b", _iso, _DIGITS),
    (r"\b(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>[12]\d{3})\b", _numeric, _DIGITS),
    (
        rf"\b(?P<m>{_ANY_MONTH})\.?\s+(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?!\d)"
        rf"(?:{_SEP}(?:of\s+)?(?P<y>{_YEAR}))?\b",
        _month_day,
        _DIGITS,
    ),
    (
        rf"\b(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m>{_ANY_MONTH})\b\.?"
        rf"(?:{_SEP}(?P<y>{_YEAR}))?",
        _month_day,
        _DIGITS,
    ),
    (rf"\b(?P<m>{_ANY_MONTH})\.?{_SEP}(?:of\s+)?(?P<y>{_YEAR})", _month_year, _DIGITS),
    (rf"\b(?:(?P<q>{_QUAL})\s+)?(?P<m>{_FULL_MONTH})\b", _month, _MONTH_STEMS),
    (rf"\b(?P<the>the\s+year\s+)?(?P<y>{_YEAR})\b", _year, _DIGITS),
    (
        rf"\b(?:(?P<q>{_QUAL})\s+|(?P<the>the)\s+)?(?P<s>spring|summer|fall|autumn|winter)\b"
        rf"(?:\s+(?:of\s+)?(?P<y>{_YEAR}))?",
        _season,
        ("spring", "summer", "fall", "autumn", "winter"),
    ),
    (r"\b(?:the\s+)?(?P<y>(?:19|20)\d)0'?s\b", _decade, _DIGITS),
    (
        r"\b(?:" + "|".join(w.replace(" ", r"\s+") for w in _DAY_WORDS) + r")\b",
        _day_word,
        ("day", "night", "tomorrow", "this"),
    ),
    (
        rf"\b(?P<q>{_QUAL})\s+(?P<u>week|weekend|month|year)\b(?!\s+of\b)",
        _qualified_unit,
        _QUALIFIERS,
    ),
    (
        rf"\b(?:(?P<q>{_QUAL})\s+)?(?P<w>{_WEEKDAY})(?P<pl>s)?\b"
        r"(?:\s+(?:morning|afternoon|evening|night))?",
        _weekday,
        ("day",),
    ),
    (
        rf"\b(?:(?P<the>the)\s+)?(?:last|past)\s+(?:(?P<n>{_NUM})\s+)?(?P<u>{_UNIT}s?)\b"
        r"(?!\s+of\b)",
        _rolling_span,
        ("last", "past"),
    ),
    (
        rf"\b(?P<n>{_NUM})\s+(?P<u>{_UNIT})s?\s+(?P<dir>ago|back|from\s+now)\b",
        _ago,
        ("ago", "back", "now"),
    ),
    (rf"\bin\s+(?P<n>{_NUM})\s+(?P<u>{_UNIT})s?\b(?!\s+of\b)", _in_future, ("in ",)),
    (r"\bthe\s+other\s+day\b", _other_day, ("other",)),
    (
        rf"\b(?:(?P<q>last|this|next)\s+)?(?P<h>christmas\s+eve|christmas(?:\s+day)?|xmas"
        r"|new\s+year'?s(?:\s+(?:eve|day))?|halloween|thanksgiving|valentine'?s(?:\s+day)?"
        rf"|easter|independence\s+day|(?:the\s+)?fourth\s+of\s+july)\b(?:\s+(?P<y>{_YEAR}))?",
        _holiday,
        (
            "christmas",
            "xmas",
            "year",
            "halloween",
            "thanksgiving",
            "valentine",
            "easter",
            "independence",
            "july",
        ),
    ),
    (
        rf"\b(?:(?:the|last|that)\s+)?(?:(?P<n>{_NUM})\s+)?(?P<u>{_UNIT}s?|(?:{_WEEKDAY})s?)"
        r"\s+(?P<dir>before|after|prior\s+to|following)\b",
        _offset,
        ("before", "after", "prior", "following"),
    ),
]


@functools.cache
def _compiled() -> list[tuple[re.Pattern[str], Builder, tuple[str, ...]]]:
    """The rules' patterns, compiled on first use (~15 ms, kept out of import time)."""
    return [(re.compile(pattern), build, words) for pattern, build, words in _RULES]


def _with_part(atom: Atom, low: str, previous_end: int) -> Atom:
    """Extend a month, season, year or decade atom with a part before it ("mid-", "the
    first week of"), if there is one."""
    if atom.unit not in ("month", "season", "year", "decade"):
        return atom
    m = _PART.search(low, max(previous_end, atom.start - _LOOKBACK), atom.start)
    if m is None:
        return atom
    choose = _part_chooser(m)
    base = atom.resolve

    def resolve(ref: dt.datetime) -> Period | None:
        p = base(ref)
        return None if p is None else choose(p)

    return Atom(m.start(), atom.end, resolve, atom.needs, "span")


def _part_chooser(m: re.Match[str]) -> Callable[[Period], Period]:
    if m["third"] or m["edge"]:
        third = _THIRDS[m["third"] or m["edge"]]
        return lambda p: cal.part(p, third)
    if m["half"]:
        half: cal.Part = "first half" if m["half"] == "first" else "second half"
        return lambda p: cal.part(p, half)
    if m["wk"]:
        index = _WEEK_INDEX[m["wk"]]
        return lambda p: cal.weeks_of_month(p, index)
    if m["wkd"]:
        first = m["wkd"] == "first"
        return lambda p: cal.weekend_of_month(p, first)
    count, index = _count(m["n"])[1], _WEEK_INDEX[m["wn"]]
    return lambda p: cal.weeks_of_month(p, index, count)


def find_atoms(low: str, orig: str) -> list[Atom | Offset]:
    """Every temporal expression in a query, in text order, without overlaps.

    Where expressions overlap, the one starting first wins, then the longer, then the one
    whose rule comes first in ``_RULES``.

    Args:
        low: the query, lower-cased (same length as ``orig``).
        orig: the query as written.

    Returns:
        The atoms and offsets, sorted by position.
    """
    found: list[tuple[int, int, int, Atom | Offset]] = []
    for rank, (pattern, build, words) in enumerate(_compiled()):
        if not any(word in low for word in words):
            continue
        for m in pattern.finditer(low):
            item = build(m, low, orig)
            if item is not None:
                found.append((item.start, item.start - item.end, rank, item))
    found.sort(key=lambda entry: entry[:3])
    chosen: list[Atom | Offset] = []
    end = 0
    for start, _neg, _rank, item in found:
        if start >= end:
            if isinstance(item, Atom):
                item = _with_part(item, low, end)
            chosen.append(item)
            end = item.end
    return chosen
