"""The ``/v1/tools`` and ``/v1/demos`` routes: tools and demonstrations as memories.

Writes go to a namespace the key may write (its first when none is named); reads cover one
namespace of the key (its first when none is named) and find nothing outside it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from engramdb.server._json import StrictJSONRoute
from engramdb.server.auth import Caller, Service
from engramdb.server.errors import ERROR_RESPONSES
from engramdb.server.requests import Namespace
from engramdb.service import tools as verbs

__all__ = ["router"]

router = APIRouter(prefix="/v1", route_class=StrictJSONRoute, responses=ERROR_RESPONSES)

_STRICT = ConfigDict(extra="forbid")
Request = Annotated[str, Field(min_length=1, pattern=r"\S", description="The request.")]
Relevance = Annotated[float | None, Field(ge=0.0, le=1.0)]


class ToolsIn(BaseModel):
    """Tool specs: OpenAI function/tool JSON, an MCP ``tools/list`` result or JSON Schema."""

    model_config = _STRICT

    specs: Any = Field(description="One spec, a list of specs, or a tools/list result.")
    namespace: Namespace | None = None
    server: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class DemoIn(BaseModel):
    """A served request and the call(s) it led to, or its answer."""

    model_config = _STRICT

    request: Request
    calls: list[dict[str, Any]] | None = None
    answer: str | None = None
    namespace: Namespace | None = None
    meta: dict[str, Any] | None = None


class RecallToolsIn(BaseModel):
    model_config = _STRICT

    request: Request
    k: Annotated[int, Field(ge=1, le=100)] = 5
    namespace: Namespace | None = None
    min_relevance: Relevance = None
    among: list[int | str] | None = None


class RecallDemosIn(BaseModel):
    model_config = _STRICT

    request: Request
    k: Annotated[int, Field(ge=1, le=100)] = 3
    namespace: Namespace | None = None
    min_relevance: Relevance = None
    diversity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3


@router.post("/tools", status_code=201, tags=["tools"])
def add_tools(body: ToolsIn, scope: Caller, service: Service) -> dict[str, Any]:
    """Remember tools; an unchanged one is left as it is, a changed one gets a new version."""
    result = verbs.add_tools(
        service, scope, body.specs, namespace=body.namespace, server=body.server
    )
    return result.as_dict()


@router.get("/tools", tags=["tools"])
def list_tools(
    scope: Caller,
    service: Service,
    namespace: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> dict[str, Any]:
    """The current tools of one namespace."""
    found = verbs.list_tools(service, scope, namespace=namespace)
    return {"tools": [t.as_dict() for t in found]}


@router.post("/demos", status_code=201, tags=["tools"])
def add_demo(body: DemoIn, scope: Caller, service: Service) -> dict[str, Any]:
    """Remember a demonstration; it attaches to the tools its calls name."""
    demo = verbs.add_demo(
        service,
        scope,
        body.request,
        calls=body.calls,
        answer=body.answer,
        namespace=body.namespace,
        meta=body.meta,
    )
    return demo.as_dict()


@router.post("/tools/recall", tags=["tools"])
def recall_tools(body: RecallToolsIn, scope: Caller, service: Service) -> dict[str, Any]:
    """The tools a request most likely calls, with calibrated relevance (``abstain`` when
    ``min_relevance`` leaves none)."""
    hits = verbs.recall_tools(
        service,
        scope,
        body.request,
        k=body.k,
        namespace=body.namespace,
        min_relevance=body.min_relevance,
        among=body.among,
    )
    return hits.as_dict()


@router.post("/demos/recall", tags=["tools"])
def recall_demos(body: RecallDemosIn, scope: Caller, service: Service) -> dict[str, Any]:
    """Worked examples for a request, diverse (MMR)."""
    hits = verbs.recall_demos(
        service,
        scope,
        body.request,
        k=body.k,
        namespace=body.namespace,
        min_relevance=body.min_relevance,
        lambda_=1.0 - body.diversity,
    )
    return hits.as_dict()
