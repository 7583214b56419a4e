from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from engramdb.errors import IngestError
from engramdb.ingest import parse_time

LOCOMO_TURNS = Path(__file__).parents[4] / "shared" / "data" / "locomo" / "turns.jsonl"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        (1683554160, 1683554160.0),
        (1683554160.5, 1683554160.5),
        (1683554160000, 1683554160.0),  # above 1e11: milliseconds
        (-86400, -86400.0),
        ("1683554160", 1683554160.0),
        ("1683554160000", 1683554160.0),
        ("2023-05-08", utc(2023, 5, 8)),
        ("20230508", utc(2023, 5, 8)),
        ("2023-05-08T13:56:00", utc(2023, 5, 8, 13, 56)),  # naive means UTC
        ("2023-05-08T13:56:00Z", utc(2023, 5, 8, 13, 56)),
        ("2023-05-08 15:56:00+02:00", utc(2023, 5, 8, 13, 56)),
        ("  2023-05-08T13:56:00.250Z  ", utc(2023, 5, 8, 13, 56) + 0.25),
        ("1:56 pm on 8 May, 2023", utc(2023, 5, 8, 13, 56)),  # LoCoMo
        ("10:04 am on 19 December, 2023", utc(2023, 12, 19, 10, 4)),
        ("May 8, 2023", utc(2023, 5, 8)),
        ("Mon, 08 May 2023 15:56:00 +0200", utc(2023, 5, 8, 13, 56)),
        ("8 May 2023 8:56 EST", utc(2023, 5, 8, 13, 56)),
        ("8 May 2023 13:56 UTC", utc(2023, 5, 8, 13, 56)),
        ("2023", 2023.0),  # a number in a string is epoch seconds, not a year
        ("2023-05", utc(2023, 5, 1)),
        (dt.datetime(2023, 5, 8, 13, 56), utc(2023, 5, 8, 13, 56)),
        (
            dt.datetime(2023, 5, 8, 15, 56, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            utc(2023, 5, 8, 13, 56),
        ),
        (dt.date(2023, 5, 8), utc(2023, 5, 8)),
    ],
)
def test_parse_time(value: object, expected: float) -> None:
    assert parse_time(value) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_time(value: object) -> None:
    assert parse_time(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "expected epoch seconds"),
        ("not a date 99:99", "expected epoch seconds"),
        ("May 8", "no year"),
        ("hello 5", "no year"),
        ("8 May 2023 10:00 XYZ", "unknown time zone 'XYZ'"),
        (float("nan"), "not a finite number"),
        (float("inf"), "not a finite number"),
        (True, "boolean"),
        ([2023, 5, 8], "unsupported type list"),
        ({"t": 1}, "unsupported type dict"),
    ],
)
def test_unparseable_times_name_the_value(value: object, reason: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_time(value)
    assert repr(value) in str(info.value)
    assert reason in str(info.value)


def test_free_form_parse_does_not_depend_on_today() -> None:
    # dateutil fills missing fields from "today" unless told otherwise; the result must not.
    assert parse_time("8 May 2023") == utc(2023, 5, 8)


@pytest.mark.skipif(not LOCOMO_TURNS.exists(), reason="LoCoMo data not present")
def test_every_locomo_session_time_parses() -> None:
    lines = LOCOMO_TURNS.read_text(encoding="utf-8").splitlines()
    stamps = {json.loads(line)["date_time"] for line in lines}
    parsed = {s: parse_time(s) for s in stamps}
    assert all(v is not None for v in parsed.values())
    times = [v for v in parsed.values() if v is not None]
    assert utc(2019, 1, 1) < min(times) and max(times) < utc(2026, 1, 1)
