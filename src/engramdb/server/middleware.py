"""The ASGI middleware every HTTP request goes through.

It gives the request an id (a sane client ``X-Request-ID``, else a new one) and echoes it in
the response; caps the request body while it is read (not only by its ``Content-Length``);
turns an exception nothing else handled into the ``500`` envelope, with the traceback in the
log; and writes one access-log line per request to logger ``engramdb.access`` (method, path,
status, milliseconds, key name, request id; never a key or a body).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from fastapi import HTTPException
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engramdb.server.errors import error_response

__all__ = ["RequestContextMiddleware"]

access_log = logging.getLogger("engramdb.access")
logger = logging.getLogger("engramdb.server")

_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}$")


class BodyTooLarge(HTTPException):
    """Raised while a request body is read past its limit (rendered as ``413 TooLarge``)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is over its {limit:,}-byte limit")


def _request_id(headers: Headers) -> str:
    given = headers.get("x-request-id", "")
    return given if _SANE_ID.match(given) else uuid.uuid4().hex


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


class RequestContextMiddleware:
    """Request id, body limit, last-resort error envelope and access log.

    Args:
        app: the application.
        max_body_bytes: the limit of a request body.
        max_upload_bytes: the limit of a ``multipart/form-data`` body (file uploads).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = _request_id(headers)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        limit = self.max_upload_bytes if multipart else self.max_body_bytes
        started = time.perf_counter()
        sent: dict[str, int] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = int(message["status"])
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            declared = _declared_length(headers)
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            await self.app(scope, _limited(receive, limit), send_with_id)
        except BodyTooLarge as exc:
            if "status" in sent:
                raise
            reply = error_response(413, "TooLarge", str(exc.detail), request_id)
            await reply(scope, receive, send_with_id)
        except Exception:
            logger.exception("%s %s failed (%s)", scope["method"], scope["path"], request_id)
            if "status" in sent:
                raise  # the response has begun: the server drops the connection
            reply = error_response(
                500, "Internal", "the server failed on this request (see its log)", request_id
            )
            await reply(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %s %.1fms key=%s id=%s",
                scope["method"],
                scope["path"],
                sent.get("status", "-"),
                (time.perf_counter() - started) * 1000,
                state.get("key_name") or "-",
                request_id,
            )


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once the body passes ``limit`` bytes."""
    total = 0

    async def receive_limited() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise BodyTooLarge(limit)
        return message

    return receive_limited
