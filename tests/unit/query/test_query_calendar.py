"""The calendar arithmetic under query times, against day-by-day brute force."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from engramdb.query import _calendar as cal

DAY = dt.timedelta(days=1)
times = st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2100, 1, 1))
weekdays = st.integers(min_value=0, max_value=6)


def days_from(start: dt.datetime, step: int) -> list[dt.datetime]:
    return [cal.midnight(start) + step * n * DAY for n in range(15)]


@given(times, weekdays)
def test_weekday_on_or_before(t: dt.datetime, wd: int) -> None:
    expected = next(d for d in days_from(t, -1) if d.weekday() == wd)
    assert cal.weekday_on_or_before(t, wd) == cal.Period(expected, expected + DAY, "day")


@given(times, weekdays)
def test_weekday_before_and_after(t: dt.datetime, wd: int) -> None:
    before = next(d for d in days_from(t, -1)[1:] if d.weekday() == wd)
    after = next(d for d in days_from(t, 1)[1:] if d.weekday() == wd)
    assert cal.weekday_before(t, wd).start == before
    assert cal.weekday_after(t, wd).start == after


@given(times)
def test_weekends(t: dt.datetime) -> None:
    today = cal.midnight(t)
    over = [d for d in days_from(t, -1) if d.weekday() == 5 and d + 2 * DAY <= today]
    ahead = [d for d in days_from(t, 1) if d.weekday() == 5]
    assert cal.weekend_before(t) == cal.Period(over[0], over[0] + 2 * DAY, "weekend")
    assert cal.weekend_after(t).start == ahead[0]


@given(times)
def test_week_is_monday_to_monday_around_t(t: dt.datetime) -> None:
    w = cal.week(t)
    assert w.start.weekday() == 0 and w.start <= t < w.end == w.start + 7 * DAY


@given(times, st.integers(min_value=-600, max_value=600))
def test_add_months_keeps_the_day_or_clamps_it(t: dt.datetime, n: int) -> None:
    moved = cal.add_months(t, n)
    assert (moved.year * 12 + moved.month) - (t.year * 12 + t.month) == n
    assert moved.day == t.day or (moved + DAY).day == 1  # clamped to the month's last day
    assert moved.time() == t.time()


@given(times, st.sampled_from(["month", "season", "year", "decade"]))
def test_thirds_and_halves_tile_the_period(t: dt.datetime, unit: str) -> None:
    p = {
        "month": cal.month(t.year, t.month),
        "season": cal.season(t.year, "winter"),
        "year": cal.year(t.year),
        "decade": cal.decade(t.year - t.year % 10),
    }[unit]
    early, mid, late = (cal.part(p, w) for w in ("early", "mid", "late"))
    assert (early.start, early.end, mid.end, late.end) == (p.start, mid.start, late.start, p.end)
    first, second = cal.part(p, "first half"), cal.part(p, "second half")
    assert (first.start, first.end, second.end) == (p.start, second.start, p.end)


@given(times, st.integers(min_value=1, max_value=12))
def test_recurring_occurrences_bracket_the_reference(t: dt.datetime, m: int) -> None:
    def make(y: int) -> cal.Period:
        return cal.month(y, m)

    started, ended, ahead = (
        f(make, t) for f in (cal.latest_started, cal.latest_ended, cal.earliest_after)
    )
    assert started is not None and ended is not None and ahead is not None
    assert started.start <= t and ended.end <= t < ahead.start
    assert make(started.start.year + 1).start > t  # the latest one that has begun
    assert make(ahead.start.year - 1).start <= t  # the first one still to come


@given(st.integers(min_value=1950, max_value=2100))
def test_holidays(y: int) -> None:
    thanksgiving = cal.holiday("thanksgiving", y).start
    assert thanksgiving.weekday() == 3 and thanksgiving.month == 11
    assert 22 <= thanksgiving.day <= 28
    assert cal.holiday("christmas", y).start == dt.datetime(y, 12, 25)
    assert cal.holiday("easter", y).start.weekday() == 6


def test_known_easters() -> None:
    assert cal.holiday("easter", 2023).start == dt.datetime(2023, 4, 9)
    assert cal.holiday("easter", 2024).start == dt.datetime(2024, 3, 31)


def test_weeks_and_weekends_of_a_month() -> None:
    august = cal.month(2023, 8)
    assert cal.weeks_of_month(august, 1).start == dt.datetime(2023, 8, 8)
    assert cal.weeks_of_month(august, -1, 2).start == dt.datetime(2023, 8, 18)
    assert cal.weekend_of_month(august, first=True).start == dt.datetime(2023, 8, 5)
    assert cal.weekend_of_month(august, first=False).start == dt.datetime(2023, 8, 26)
    september = cal.month(2023, 9)  # ends on a Saturday: its last weekend spills over
    assert cal.weekend_of_month(september, first=False).start == dt.datetime(2023, 9, 30)
