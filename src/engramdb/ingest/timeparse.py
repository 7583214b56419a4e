"""Parse event times given as numbers, ISO 8601 or free-form dates into UTC epoch seconds."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re

from engramdb.errors import IngestError

__all__ = ["parse_time"]

_MILLIS_ABOVE = 1e11  # 1e11 seconds is the year 5138; larger numbers are milliseconds
_NUMBER_RE = re.compile(r"[+-]?\d+(?:\.\d*)?")
_HOUR = 3600
# Fields a free-form date leaves out are taken from here; year 1 marks "no year given".
_NO_YEAR = dt.datetime(1, 1, 1)
# Common zone abbreviations dateutil does not resolve by itself (UTC, GMT and Z it does).
_ZONES = {
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2,
    "EET": 2, "EEST": 3, "MSK": 3, "SGT": 8, "HKT": 8, "JST": 9, "KST": 9, "AEST": 10,
    "AEDT": 11, "NZST": 12, "NZDT": 13,
}  # fmt: skip
_HINT = "expected epoch seconds or milliseconds, ISO 8601, or a date like '1:56 pm on 8 May, 2023'"


class _UnknownZoneError(ValueError):
    """Raised from inside dateutil for a zone abbreviation we cannot resolve."""


def _zone_offset(name: str | None, offset: int | None) -> int | None:
    """The ``tzinfos`` callback for dateutil: seconds east of UTC, ``None`` for naive."""
    if offset is not None:
        return offset
    if name is None:
        return None
    hours = _ZONES.get(name.upper())
    if hours is None:
        raise _UnknownZoneError(name)
    return hours * _HOUR


def _from_datetime(value: dt.datetime) -> float:
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _from_number(value: float, original: object) -> float:
    if not math.isfinite(value):
        raise IngestError(f"cannot parse time {original!r}: not a finite number")
    return value / 1000.0 if abs(value) > _MILLIS_ABOVE else float(value)


def _from_free_form(text: str) -> float:
    """Parse a free-form date with dateutil's fuzzy parser; the year must be given."""
    from dateutil import parser  # imported here: dateutil is slow to import

    if not any(ch.isdigit() for ch in text):
        raise IngestError(f"cannot parse time {text!r}: {_HINT}")
    try:
        parsed = parser.parse(text, fuzzy=True, default=_NO_YEAR, tzinfos=_zone_offset)
    except _UnknownZoneError as exc:
        raise IngestError(f"cannot parse time {text!r}: unknown time zone {exc.args[0]!r}") from exc
    except (ValueError, OverflowError) as exc:
        raise IngestError(f"cannot parse time {text!r}: {_HINT}") from exc
    if parsed.year == _NO_YEAR.year:
        raise IngestError(f"cannot parse time {text!r}: it has no year")
    return _from_datetime(parsed)


@functools.lru_cache(maxsize=4096)
def _from_string(text: str) -> float | None:
    """Parse a stripped string (cached: logs repeat the same session times)."""
    if not text:
        return None
    try:
        return _from_datetime(dt.datetime.fromisoformat(text))
    except ValueError:
        pass
    if _NUMBER_RE.fullmatch(text):
        return _from_number(float(text), text)
    return _from_free_form(text)


def parse_time(value: object) -> float | None:
    """Convert an event time to UTC epoch seconds.

    Accepted forms:

    * ``None`` or a blank string: no time, returns ``None``;
    * an int or float (or a string holding one): epoch seconds, or epoch milliseconds
      when its magnitude exceeds ``1e11``;
    * a :class:`datetime.datetime` or :class:`datetime.date` (a date means midnight);
    * an ISO 8601 string (``2023-05-08``, ``2023-05-08T13:56:00+02:00``, ``...Z``);
    * a free-form date that dateutil's fuzzy parser reads, such as LoCoMo's
      ``"1:56 pm on 8 May, 2023"``; it must name the year, and a time zone, if any, must
      be an offset or a common abbreviation (``UTC``, ``EST``, ``CEST``, ...).

    Times without a zone are taken as UTC.

    Args:
        value: the time to convert.

    Returns:
        Seconds since 1970-01-01T00:00:00Z, or ``None`` when no time is given.

    Raises:
        IngestError: the value cannot be read as a time (the message quotes it).

    Example:
        >>> parse_time("1:56 pm on 8 May, 2023")
        1683554160.0
        >>> parse_time(1683554160000)
        1683554160.0
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise IngestError(f"cannot parse time {value!r}: a boolean is not a time")
    if isinstance(value, int | float):
        return _from_number(value, value)
    if isinstance(value, dt.datetime):
        return _from_datetime(value)
    if isinstance(value, dt.date):
        return _from_datetime(dt.datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        return _from_string(value.strip())
    raise IngestError(f"cannot parse time {value!r}: unsupported type {type(value).__name__}")
