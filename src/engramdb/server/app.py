"""The app factory: routes, error envelope, middleware, lifespan, MCP and the web UI."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import FastAPI, HTTPException
from starlette.responses import Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope as AsgiScope

from engramdb._version import __version__
from engramdb.server import bulk, routes, tool_routes
from engramdb.server.errors import ERROR_RESPONSES, install_error_handlers
from engramdb.server.middleware import RequestContextMiddleware
from engramdb.server.models import HealthOut
from engramdb.server.settings import ServerSettings
from engramdb.service import MemoryService

if TYPE_CHECKING:
    from engramdb.mcp import McpHttp

__all__ = ["create_app"]

logger = logging.getLogger("engramdb.server")

_DESCRIPTION = """The engramdb service: a shared long-term memory over one SQLite file.

Every `/v1` route needs `Authorization: Bearer <key>` once the store has a key
(`engram keys add`). Errors are one JSON envelope:
`{"error": {"status", "type", "message", "request_id"}}`.

JSON bodies are UTF-8, at most 8 MiB, with finite numbers, integers within 64 bits and at
most 64 levels of nesting; anything else is a `422`. Uploads: 128 MiB per file.
"""


class _UI(StaticFiles):
    """The web UI's files, for requests no route matched: ``GET /`` is ``index.html``; a
    path that is no file is a ``404`` and another method on a file a ``405``."""

    async def get_response(self, path: str, scope: AsgiScope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            full_path, stat = await anyio.to_thread.run_sync(self.lookup_path, path)
            if stat is None:
                raise HTTPException(404)
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        response = await super().get_response(path, scope)
        response.headers.update(_UI_HEADERS)
        return response


_UI_HEADERS = {
    # The UI loads only its own files and talks only to this server; memories are user
    # data, so no script, style or frame from anywhere else may run in its page.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _mcp(service: MemoryService, settings: ServerSettings) -> McpHttp | None:
    """The MCP endpoint, when enabled and installed."""
    if not settings.mcp or importlib.util.find_spec("engramdb.mcp") is None:
        return None
    try:
        from engramdb.mcp import create_mcp_http
    except ImportError as exc:  # the package is there but the mcp SDK is not
        logger.warning("MCP is off: %s", exc)
        return None
    return create_mcp_http(service)


async def _stop_jobs(service: MemoryService) -> None:
    await anyio.to_thread.run_sync(service.jobs.stop)


def _lifespan(
    service: MemoryService, settings: ServerSettings, mcp: McpHttp | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the MCP session manager and the job runner; stop them on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if mcp is not None:
                await stack.enter_async_context(mcp.lifespan())
            if settings.run_jobs:
                service.jobs.start()
                stack.push_async_callback(_stop_jobs, service)
            yield

    return lifespan


def create_app(service: MemoryService, settings: ServerSettings | None = None) -> FastAPI:
    """The REST server of ``service`` as an ASGI app (FastAPI).

    FastAPI, because it derives the OpenAPI schema that clients and the API tests rely on
    from the typed request and response models, and runs on uvicorn. The app does not own
    the service: its lifespan starts and stops the job runner, the caller closes the service.

    Args:
        service: the memory to serve.
        settings: request limits and optional parts (default: :class:`ServerSettings`).

    Returns:
        The app: ``/v1`` (the REST API), ``/healthz``, ``/openapi.json`` and ``/docs``,
        ``/mcp`` (MCP over Streamable HTTP, when installed) and the web UI at ``/``.
    """
    settings = settings or ServerSettings()
    mcp = _mcp(service, settings)
    app = FastAPI(
        title="engramdb",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=_lifespan(service, settings, mcp),
    )
    app.state.service = service
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(bulk.router)
    app.include_router(tool_routes.router)

    @app.get("/healthz", tags=["service"], responses={500: ERROR_RESPONSES[500]})
    async def healthz() -> HealthOut:
        """The server is up (no key needed)."""
        return HealthOut(status="ok", version=__version__)

    if mcp is not None:
        # A route, not a mount: a POST to exactly /mcp is served, with no redirect.
        app.router.routes.append(Route("/mcp", mcp.app, include_in_schema=False))
    static = settings.static_dir
    if static is not None and Path(static).is_dir():
        app.router.default = _UI(directory=static, html=True)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    return app
