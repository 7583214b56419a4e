"""Strict JSON request bodies: UTF-8, finite numbers, 64-bit integers, bounded nesting.

Python's ``json`` module accepts ``NaN`` and ``Infinity``, turns ``1e400`` into infinity,
reads integers of any size and strings with unpaired surrogates (``"\\ud800"``); any of
these would fail later, deep in the engine or when the answer is written. Here they are a
``422`` at the door instead. Routes get it through :class:`StrictJSONRoute`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

__all__ = ["MAX_DEPTH", "StrictJSONRoute", "parse_json"]

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects a request body may have."""
_INT64 = (-(2**63), 2**63 - 1)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _int64(text: str) -> int:
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError(f"the integer {text[:40]}... does not fit in 64 bits")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check(data: Any) -> None:
    """Raise ValueError for nesting deeper than :data:`MAX_DEPTH` or an unpaired surrogate."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            value.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    key.encode("utf-8")
                stack.append((item, depth + 1))


def parse_json(body: bytes) -> Any:
    """Parse a request body strictly.

    Raises:
        json.JSONDecodeError: the body is not UTF-8 or not valid JSON, holds a non-finite
            number, an integer outside 64 bits, an unpaired surrogate, or nests too deeply.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("the body is not UTF-8", "", exc.start) from None
    try:
        data = json.loads(text, parse_float=_finite, parse_int=_int64, parse_constant=_no_constant)
        _check(data)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", "", 0) from None
    except ValueError as exc:
        reason = "a string holds an unpaired surrogate" if isinstance(exc, UnicodeError) else exc
        raise json.JSONDecodeError(str(reason), "", 0) from None
    return data


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """An API route whose JSON body is read by :func:`parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict
