"""Who is asking: the service of the app, and the caller's scope from its bearer key."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engramdb.service import MemoryService, Scope

__all__ = ["Caller", "Service", "caller", "service_of"]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key made with `engram keys add` (not needed while the store has none).",
)


def service_of(request: Request) -> MemoryService:
    """The service the app was created with."""
    return cast(MemoryService, request.app.state.service)


async def _service(request: Request) -> MemoryService:
    return service_of(request)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    """The scope of the request's ``Authorization: Bearer <key>``.

    Run on the event loop: the key lookup is one indexed read of a WAL database (about
    0.1 ms, and readers never wait for writers), cheaper than a hop to the threadpool.

    Raises:
        UnauthorizedError: the store has keys and the request has none, or an unknown or
            revoked one.
        ForbiddenError: the store has no keys and the request's ``Host`` is not loopback.
    """
    key = credentials.credentials if credentials is not None else None
    scope = service_of(request).authenticate(key, host=request.headers.get("host", ""))
    request.state.key_name = scope.key
    return scope


Service = Annotated[MemoryService, Depends(_service)]
Caller = Annotated[Scope, Depends(caller)]
