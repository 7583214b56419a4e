"""MCP over Streamable HTTP, behind the service's bearer keys.

:func:`create_mcp_http` gives an :class:`McpHttp`: ``.app`` is an ASGI app for any host app
to route to, and ``.lifespan()`` is what the host enters in its own lifespan. The app serves
wherever it is routed (it does not look at the path), so a host routes the exact path to it,
``/mcp`` with no redirect::

    mcp = create_mcp_http(service)
    app.add_route("/mcp", mcp.app, include_in_schema=False)   # FastAPI or Starlette

    @asynccontextmanager
    async def lifespan(app):
        async with mcp.lifespan():
            yield

Every request is authenticated here, before the MCP transport sees it: with keys in the
store, a missing, unknown or revoked ``Authorization: Bearer <key>`` is a ``401`` with the
service's JSON error envelope; otherwise the key's :class:`~engramdb.service.Scope` rides in
the request to every tool call it carries.

Sessions are stateless and answers are plain JSON: each POST is a whole exchange, nothing is
held between requests, any worker can answer any request, and a key is checked on every one.
The tools need nothing more (no server-to-client requests, no notifications to push), so the
endpoint takes POST only: a GET (a stream of server messages) or a DELETE (the end of a
session) is a ``405``, which clients take as "no such stream".
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from engramdb.errors import ForbiddenError, UnauthorizedError
from engramdb.mcp.server import create_server
from engramdb.service import MemoryService
from engramdb.service import Scope as Caller

__all__ = ["MAX_BODY_BYTES", "McpHttp", "create_mcp_http"]

_log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest MCP request body (the REST API's JSON limit too)."""

_CALLER = "engramdb.caller"
"""The ASGI scope key under which a request carries its caller's :class:`Scope`."""


def _caller_of(request: Any) -> Caller:
    """The scope :class:`McpHttp` attached to ``request`` (the starlette request the SDK
    hands each message).

    Raises:
        UnauthorizedError: the request did not come through :class:`McpHttp`.
    """
    caller = getattr(request, "scope", {}).get(_CALLER)
    if not isinstance(caller, Caller):
        raise UnauthorizedError("this request was not authenticated")
    return caller


def _bearer(scope: Scope) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, if any."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name.lower() == b"authorization":
            kind, _, key = value.decode("latin-1").strip().partition(" ")
            key = key.strip()
            return key if kind.lower() == "bearer" and key else None
    return None


def _host(scope: Scope) -> str:
    """The request's ``Host`` header ("" when it has none)."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name.lower() == b"host":
            return value.decode("latin-1")
    return ""


async def _reply(
    scope: Scope, send: Send, status: int, kind: str, message: str, **headers: str
) -> None:
    """Answer with the service's error envelope (with the host's request id, if it set one)."""
    request_id = (scope.get("state") or {}).get("request_id")
    envelope = {
        "error": {"status": status, "type": kind, "message": message, "request_id": request_id}
    }
    body = json.dumps(envelope).encode()
    fields = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    fields += [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


class _Endpoint:
    """The ASGI app of :class:`McpHttp` (a class instance, so hosts route to it as ASGI)."""

    def __init__(self, owner: McpHttp):
        self._owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        manager = self._owner._manager
        if manager is None:
            await _reply(scope, send, 503, "Unavailable", "the MCP endpoint is not running")
            return
        service = self._owner.service
        try:
            caller = await anyio.to_thread.run_sync(
                functools.partial(service.authenticate, _bearer(scope), host=_host(scope))
            )
        except UnauthorizedError as exc:
            challenge = {"WWW-Authenticate": 'Bearer realm="engramdb"'}
            await _reply(scope, send, 401, exc.name, str(exc), **challenge)
            return
        except ForbiddenError as exc:
            await _reply(scope, send, 403, exc.name, str(exc))
            return
        if scope["method"] != "POST":
            # Stateless: no stream of server messages to open (GET), no session to end (DELETE).
            said = "the MCP endpoint takes POST"
            await _reply(scope, send, 405, "MethodNotAllowed", said, Allow="POST")
            return
        await manager.handle_request({**scope, _CALLER: caller}, receive, send)


class McpHttp:
    """The MCP endpoint of a service, for an ASGI host app.

    Attributes:
        service: the memory the tools act on.
        app: the ASGI app; route the endpoint's exact path to it (see the module docs).
    """

    def __init__(self, service: MemoryService):
        self.service = service
        self.server = create_server(service, _caller_of)
        self.app = _Endpoint(self)
        self._manager: StreamableHTTPSessionManager | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Serve requests while inside (enter it in the host app's lifespan; re-enterable
        after it exits, for hosts started more than once)."""
        if self._manager is not None:
            raise RuntimeError("McpHttp.lifespan() is already running")
        manager = StreamableHTTPSessionManager(
            app=self.server,
            json_response=True,
            stateless=True,
            max_request_body_size=MAX_BODY_BYTES,
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None


def create_mcp_http(service: MemoryService) -> McpHttp:
    """The MCP (Streamable HTTP) endpoint of ``service``: ``.app`` and ``.lifespan()``.

    Example::

        mcp = create_mcp_http(service)
        app.add_route("/mcp", mcp.app, include_in_schema=False)
    """
    return McpHttp(service)
