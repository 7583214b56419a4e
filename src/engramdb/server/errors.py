"""One JSON error envelope for every error the server answers.

``{"error": {"status", "type", "message", "request_id"[, "details"]}}``: an
:class:`~engramdb.errors.EngramError` is rendered from its ``code`` and ``name``, a request
that does not match the schema is ``422 Validation`` (``details`` lists each problem), an
HTTP error of the framework (unknown route, wrong method, unreadable body) keeps its status,
and anything unexpected is ``500 Internal`` with a generic message: its traceback goes to the
log (logger ``engramdb.server``), never to the client.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from engramdb.errors import EngramError, UnauthorizedError

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "ErrorDetail",
    "ErrorEnvelope",
    "error_response",
    "install_error_handlers",
    "request_id_of",
]

logger = logging.getLogger("engramdb.server")

_TYPES = {
    400: "InvalidInput",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "TooLarge",
    415: "UnsupportedMediaType",
    422: "Validation",
    500: "Internal",
}
_SHOWN_PROBLEMS = 5
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}


class ErrorDetail(BaseModel):
    """One problem of a request that does not match the schema."""

    loc: list[str | int] = Field(description="Where: e.g. ['body', 'k'] or ['query', 'limit'].")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """What went wrong."""

    status: int = Field(description="The HTTP status, repeated.")
    type: str = Field(description="The error's name, e.g. NotFound, InvalidInput, Validation.")
    message: str = Field(description="For people.")
    request_id: str = Field(description="The request's id (also the X-Request-ID header).")
    details: list[ErrorDetail] | None = Field(
        default=None, description="Validation errors only: each problem."
    )


class ErrorEnvelope(BaseModel):
    """The body of every error response."""

    error: ErrorBody


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorEnvelope, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("Invalid input (InvalidInput, InvalidFilter, ...)."),
    401: _described("No key, or an unknown or revoked one."),
    403: _described("A read-only key asked to write."),
    404: _described("No such memory, job or namespace within the key's namespaces."),
    413: _described("The request body or an uploaded file is over its limit."),
    422: _described("The request does not match the schema."),
    500: _described("A fault of the server."),
}
"""The error responses every ``/v1`` route declares in the OpenAPI schema."""


def request_id_of(request: Request) -> str:
    """The id the middleware gave the request."""
    return str(getattr(request.state, "request_id", "") or "-")


def error_response(
    status: int,
    kind: str,
    message: str,
    request_id: str,
    *,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The envelope as a response."""
    body = ErrorBody(
        status=status, type=kind, message=message, request_id=request_id, details=details
    )
    content = ErrorEnvelope(error=body).model_dump(mode="json", exclude_none=True)
    return JSONResponse(content, status_code=status, headers=headers)


def _engram_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EngramError)
    if exc.code >= 500:
        logger.error("%s failed: %s", request.url.path, exc, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
    return error_response(exc.code, exc.name, str(exc), request_id_of(request), headers=headers)


def _problem(error: Any) -> ErrorDetail:
    loc = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
    msg = str(error.get("msg", "invalid"))
    kind = str(error.get("type", "invalid"))
    reason = (error.get("ctx") or {}).get("error")
    if kind == "json_invalid":
        loc = loc[:1]  # a character offset says little to the reader of the message
        msg = f"the body is not valid JSON: {reason}" if reason else "the body is not valid JSON"
    return ErrorDetail(loc=loc, msg=msg, type=kind)


def _said(detail: ErrorDetail) -> str:
    where = ".".join(str(p) for p in detail.loc if p != "body")
    return f"{where}: {detail.msg}" if where else detail.msg


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [_problem(e) for e in exc.errors()]
    message = "; ".join(_said(d) for d in details[:_SHOWN_PROBLEMS]) or "invalid request"
    if len(details) > _SHOWN_PROBLEMS:
        message += f"; and {len(details) - _SHOWN_PROBLEMS} more (see details)"
    return error_response(422, "Validation", message, request_id_of(request), details=details)


def _allowed(request: Request) -> str | None:
    """Every method the API documents for the request's path (one path may be served by
    several routes: ``GET`` and ``DELETE /v1/memories/{id}``), for a 405's ``Allow``."""
    app = request.app
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "allow", None)
    if table is None:
        table = [
            (compile_path(path)[0], {m.upper() for m in item if m.upper() in _METHODS})
            for path, item in app.openapi()["paths"].items()
        ]
        app.state.allow = table
    methods = {m for pattern, found in table if pattern.match(request.url.path) for m in found}
    return ", ".join(sorted(methods)) or None


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    if message == phrase and status in (404, 405):
        message = f"{phrase}: {request.method} {request.url.path}"
    kind = _TYPES.get(status, "".join(phrase.split()))
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = _allowed(request) or headers.get("Allow", "")
    return error_response(status, kind, message, request_id_of(request), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Render every handled error as the envelope (unexpected ones: see the middleware)."""
    app.add_exception_handler(EngramError, _engram_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
