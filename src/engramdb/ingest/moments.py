"""Times as API callers give them (event times, ``as_of``, ``now``): UTC epoch seconds or
ISO-8601 text.

Stricter than the file loaders' :func:`~engramdb.ingest.parse_time` (which also reads
milliseconds and dated phrases): a request says exactly one thing, and what a caller sends
must mean the same in Python, on every route and in every tool.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from engramdb.errors import InvalidInputError

__all__ = ["EARLIEST", "LATEST", "event_time", "strict_time"]

EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
"""The earliest event time accepted (the year 1)."""
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
"""The latest event time accepted (the end of the year 9999)."""


def event_time(value: float | str | None) -> float | None:
    """:func:`strict_time` of an ``event_time``.

    Raises:
        InvalidInputError: not a time, not finite, or outside the years 1 to 9999.
    """
    return strict_time(value, "event_time")


def strict_time(value: float | str | None, name: str) -> float | None:
    """``value`` as UTC epoch seconds: a number is taken as seconds, a string must be
    ISO-8601 (a time without a zone is UTC) or hold a number.

    Raises:
        InvalidInputError: not a time, not finite, or outside the years 1 to 9999.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInputError(f"{name} must be a number or a string, got {value!r}")
    seconds: float
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise InvalidInputError(
                    f"{name} must be ISO-8601 (2024-05-02T10:00:00Z) or epoch seconds, "
                    f"got {value[:60]!r}"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or not EARLIEST <= seconds <= LATEST:
        raise InvalidInputError(f"{name} must fall between the years 1 and 9999")
    return seconds
