"""Calendar periods for query times: days, weeks, months, seasons and years in UTC.

Every period is half-open, ``[start, end)``, on naive datetimes read as UTC. Weeks start on
Monday (ISO 8601); weekends are Saturday and Sunday; seasons are the northern meteorological
ones (spring March-May, summer June-August, autumn September-November, winter
December-February, named after the year of its December).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DAY",
    "SEASONS",
    "Period",
    "Unit",
    "add_months",
    "centred_week",
    "current",
    "day",
    "earliest_after",
    "holiday",
    "latest_ended",
    "latest_started",
    "midnight",
    "month",
    "part",
    "season",
    "unit_at",
    "week",
    "weekday_after",
    "weekday_before",
    "weekday_on_or_before",
    "weekend_after",
    "weekend_before",
    "weekend_of_month",
    "weeks_of_month",
    "year",
]

Unit = Literal["day", "week", "weekend", "month", "season", "year", "decade", "span"]
Part = Literal["early", "mid", "late", "first half", "second half"]

DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
SATURDAY = 5
SEASONS: dict[str, int] = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}
_MONTHS_IN = {"month": 1, "season": 3, "year": 12, "decade": 120}
# how many years back (and one forward) a recurring date is looked for: Feb 29 recurs in 8
_YEARS_SEARCHED = 9


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open span of time ``[start, end)`` and the calendar unit it was named by."""

    start: dt.datetime
    end: dt.datetime
    unit: Unit

    def hull(self, other: Period) -> Period:
        """The smallest span holding both periods."""
        return Period(min(self.start, other.start), max(self.end, other.end), "span")


def midnight(t: dt.datetime) -> dt.datetime:
    """The start of ``t``'s day."""
    return dt.datetime(t.year, t.month, t.day)


def add_months(t: dt.datetime, n: int) -> dt.datetime:
    """``t`` moved by ``n`` calendar months; the day is clamped to the month's length."""
    index = t.year * 12 + t.month - 1 + n
    y, m = divmod(index, 12)
    d = min(t.day, _days_in_month(y, m + 1))
    return t.replace(year=y, month=m + 1, day=d)


def _days_in_month(y: int, m: int) -> int:
    """(The stdlib ``calendar`` module would cost ~25 ms to import, for this.)"""
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def day(t: dt.datetime) -> Period:
    """The day holding ``t``."""
    start = midnight(t)
    return Period(start, start + DAY, "day")


def week(t: dt.datetime) -> Period:
    """The Monday-to-Sunday week holding ``t``."""
    start = midnight(t) - dt.timedelta(days=t.weekday())
    return Period(start, start + WEEK, "week")


def centred_week(t: dt.datetime) -> Period:
    """Seven days around ``t``'s day: three before it, three after."""
    start = midnight(t) - 3 * DAY
    return Period(start, start + WEEK, "week")


def month(y: int, m: int) -> Period:
    """Calendar month ``m`` of year ``y``."""
    start = dt.datetime(y, m, 1)
    return Period(start, add_months(start, 1), "month")


def year(y: int) -> Period:
    """Calendar year ``y``."""
    return Period(dt.datetime(y, 1, 1), dt.datetime(y + 1, 1, 1), "year")


def decade(y: int) -> Period:
    """The ten years from ``y`` (1990 for the 1990s)."""
    return Period(dt.datetime(y, 1, 1), dt.datetime(y + 10, 1, 1), "decade")


def season(y: int, name: str) -> Period:
    """The season ``name`` (a key of :data:`SEASONS`) that starts in year ``y``."""
    start = dt.datetime(y, SEASONS[name], 1)
    return Period(start, add_months(start, 3), "season")


def unit_at(t: dt.datetime, unit: str) -> Period:
    """The calendar ``unit`` (day, week, month, year, decade) holding ``t``."""
    if unit in ("day", "night"):
        return day(t)
    if unit in ("week", "weekend"):
        return week(t)
    if unit == "month":
        return month(t.year, t.month)
    if unit == "decade":
        return decade(t.year - t.year % 10)
    return year(t.year)


def _occurrences(make: Callable[[int], Period | None], ref: dt.datetime) -> list[Period]:
    """The yearly occurrences of a recurring period around ``ref``, oldest first."""
    found = (make(y) for y in range(ref.year - _YEARS_SEARCHED + 1, ref.year + 2))
    return [p for p in found if p is not None]


def latest_started(make: Callable[[int], Period | None], ref: dt.datetime) -> Period | None:
    """The latest yearly occurrence that has started by ``ref`` ("in May", "on May 7")."""
    return next((p for p in reversed(_occurrences(make, ref)) if p.start <= ref), None)


def latest_ended(make: Callable[[int], Period | None], ref: dt.datetime) -> Period | None:
    """The latest yearly occurrence that is over by ``ref`` ("last May", "last summer")."""
    return next((p for p in reversed(_occurrences(make, ref)) if p.end <= ref), None)


def earliest_after(make: Callable[[int], Period | None], ref: dt.datetime) -> Period | None:
    """The first yearly occurrence that starts after ``ref`` ("next May")."""
    return next((p for p in _occurrences(make, ref) if p.start > ref), None)


def current(make: Callable[[int], Period | None], ref: dt.datetime) -> Period | None:
    """The yearly occurrence holding ``ref``, else this year's ("this May", "this winter")."""
    holding = [p for p in _occurrences(make, ref) if p.start <= ref < p.end]
    return holding[0] if holding else make(ref.year)


def weekday_on_or_before(t: dt.datetime, weekday: int) -> Period:
    """The latest day with that weekday (Monday 0) on or before ``t``'s day."""
    return day(midnight(t) - dt.timedelta(days=(t.weekday() - weekday) % 7))


def weekday_before(t: dt.datetime, weekday: int) -> Period:
    """The latest day with that weekday strictly before ``t``'s day."""
    return day(midnight(t) - dt.timedelta(days=(t.weekday() - weekday - 1) % 7 + 1))


def weekday_after(t: dt.datetime, weekday: int) -> Period:
    """The first day with that weekday strictly after ``t``'s day."""
    return day(midnight(t) + dt.timedelta(days=(weekday - t.weekday() - 1) % 7 + 1))


def _weekend(saturday: dt.datetime) -> Period:
    return Period(saturday, saturday + 2 * DAY, "weekend")


def weekend_before(t: dt.datetime) -> Period:
    """The latest Saturday-Sunday that is over by the start of ``t``'s day."""
    saturday = weekday_on_or_before(t, SATURDAY).start
    if saturday + 2 * DAY > midnight(t):
        saturday -= WEEK
    return _weekend(saturday)


def weekend_after(t: dt.datetime) -> Period:
    """The first Saturday-Sunday that starts on or after ``t``'s day."""
    start = midnight(t)
    return _weekend(start + dt.timedelta(days=(SATURDAY - start.weekday()) % 7))


def weekend_of_month(p: Period, first: bool) -> Period:
    """The first (or last) weekend whose Saturday falls in month ``p``."""
    if first:
        return weekend_after(p.start)
    return _weekend(weekday_before(p.end, SATURDAY).start)


def weeks_of_month(p: Period, index: int, count: int = 1) -> Period:
    """``count`` weeks of month ``p``: the ``index``-th seven days (0 first), or the last
    ones when ``index`` is negative."""
    if index < 0:
        return Period(p.end - count * WEEK, p.end, "span")
    start = p.start + index * WEEK
    return Period(start, min(start + count * WEEK, p.end), "span")


def part(p: Period, which: Part) -> Period:
    """A third ("early", "mid", "late") or half of a month, season, year or decade.

    A month splits on days 11 and 21 (halves on day 16); longer periods on month boundaries.
    """
    if p.unit == "month":
        cuts = {"early": (1, 11), "mid": (11, 21), "first half": (1, 16), "second half": (16, 0)}
        first, last = cuts.get(which, (21, 0))
        start = p.start.replace(day=first)
        end = p.end if last == 0 else p.start.replace(day=last)
        return Period(start, end, "span")
    months = _MONTHS_IN.get(p.unit, 12)
    third, half = max(months // 3, 1), max(months // 2, 1)
    bounds = {
        "early": (0, third),
        "mid": (third, months - third),
        "late": (months - third, months),
        "first half": (0, half),
        "second half": (half, months),
    }[which]
    return Period(add_months(p.start, bounds[0]), add_months(p.start, bounds[1]), "span")


def _thanksgiving(y: int) -> dt.datetime:
    first = dt.datetime(y, 11, 1)
    return first + dt.timedelta(days=(3 - first.weekday()) % 7 + 21)


def _easter(y: int) -> dt.datetime:
    from dateutil.easter import easter

    d = easter(y)
    return dt.datetime(d.year, d.month, d.day)


_FIXED_HOLIDAYS: dict[str, tuple[int, int]] = {
    "christmas": (12, 25),
    "christmas eve": (12, 24),
    "new year's eve": (12, 31),
    "new year's day": (1, 1),
    "halloween": (10, 31),
    "valentine's day": (2, 14),
    "independence day": (7, 4),
}


def holiday(name: str, y: int) -> Period:
    """The day of holiday ``name`` in year ``y`` (US dates for Thanksgiving and the 4th)."""
    if name == "thanksgiving":
        return day(_thanksgiving(y))
    if name == "easter":
        return day(_easter(y))
    m, d = _FIXED_HOLIDAYS[name]
    return day(dt.datetime(y, m, d))
