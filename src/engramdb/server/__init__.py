"""The REST server of the service (``server`` extra): ``engram serve`` runs it on uvicorn.

:func:`create_app` builds a FastAPI app over a :class:`~engramdb.service.MemoryService`.
FastAPI, because it generates the OpenAPI schema (which clients and the schema-driven API
tests use) from the typed pydantic request and response models, and runs on uvicorn.

Layout:

* ``app`` — the factory: lifespan (job runner, MCP), middleware, the UI's static files;
* ``routes`` and ``bulk`` — the thin ``/v1`` routes (parse → service verb → model);
* ``requests`` and ``models`` — the request and response bodies of docs/service.md;
* ``auth`` — the bearer key → :class:`~engramdb.service.Scope` dependency;
* ``errors`` — the one JSON error envelope; ``middleware`` — request ids, body limits,
  the last-resort ``500`` and the access log;
* ``settings`` — :class:`ServerSettings`, the limits.
"""

from __future__ import annotations

from engramdb.server.app import create_app
from engramdb.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
