"""The ``/v1`` routes over single memories and reads: parse → a service verb → a response model.

Every route is a sync ``def``: the engine is synchronous and thread-safe, so FastAPI runs
each call in its threadpool and the event loop never waits on SQLite or the embedder.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from engramdb.server._json import StrictJSONRoute
from engramdb.server.auth import Caller, Service
from engramdb.server.errors import ERROR_RESPONSES
from engramdb.server.models import (
    AddedOut,
    AddOut,
    ContextOut,
    ForgetOut,
    HistoryOut,
    HitOut,
    LinkOut,
    MemoryOut,
    NeighbourOut,
    NeighboursOut,
    RecallOut,
    RecognizeOut,
    StatsOut,
    WhoAmIOut,
)
from engramdb.server.requests import (
    AddIn,
    ContextIn,
    ForgetIn,
    RecallIn,
    RecognizeIn,
    SupersedeIn,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", route_class=StrictJSONRoute, responses=ERROR_RESPONSES)

MemoryId = Annotated[int, PathParam(ge=0, le=2**63 - 1, description="A memory id.")]


@router.post("/memories", status_code=201, tags=["memories"])
def add_memories(body: AddIn, scope: Caller, service: Service) -> AddOut:
    """Remember one text or many, in one transaction."""
    target = scope.writable(body.namespace)
    result = service.remember(scope, body.records(), namespace=target)
    return AddOut(
        namespace=target,
        added=result.added,
        exact=result.exact,
        near=result.near,
        skipped=result.skipped,
        memories=[
            AddedOut(id=i, decision=d, input=n)
            for i, d, n in zip(result.ids, result.decisions, result.inputs, strict=True)
        ],
    )


@router.get("/memories/{memory_id}", tags=["memories"])
def get_memory(memory_id: MemoryId, scope: Caller, service: Service) -> MemoryOut:
    """One memory with every place it was seen."""
    return MemoryOut.model_validate(service.get(scope, memory_id))


@router.get("/memories/{memory_id}/neighbours", tags=["memories"])
def memory_neighbours(
    memory_id: MemoryId,
    scope: Caller,
    service: Service,
    k: Annotated[int, Query(ge=1, le=100, description="How many at most.")] = 10,
) -> NeighboursOut:
    """Memories that share phrases with this one in the memory graph."""
    found = service.neighbours(scope, memory_id, k=k)
    return NeighboursOut(
        graph=service.graph,
        neighbours=[NeighbourOut(id=r.id, text=r.text, phrases=list(p)) for r, p in found],
    )


@router.get("/memories/{memory_id}/history", tags=["memories"])
def memory_history(memory_id: MemoryId, scope: Caller, service: Service) -> HistoryOut:
    """The chain of this memory's fact: the memories that superseded it or that it
    superseded, oldest first, and every link (conflicts and undone links included)."""
    return HistoryOut.model_validate(service.history(scope, memory_id))


@router.post("/memories/{memory_id}/supersede", tags=["memories"])
def supersede_memory(
    memory_id: MemoryId, body: SupersedeIn, scope: Caller, service: Service
) -> LinkOut:
    """Record that ``new`` supersedes this memory; it is kept, valid until ``at``."""
    return LinkOut.model_validate(service.supersede(scope, memory_id, body.new, at=body.at))


@router.delete("/memories/{memory_id}/supersede", tags=["memories"])
def unsupersede_memory(memory_id: MemoryId, scope: Caller, service: Service) -> LinkOut:
    """Undo this memory's supersession: it is valid again (the link stays in its history)."""
    return LinkOut.model_validate(service.unsupersede(scope, memory_id))


@router.delete("/memories/{memory_id}", tags=["memories"])
def delete_memory(memory_id: MemoryId, scope: Caller, service: Service) -> ForgetOut:
    """Forget one memory."""
    service.delete(scope, memory_id)
    return ForgetOut(forgotten=1)


@router.post("/forget", tags=["memories"])
def forget(body: ForgetIn, scope: Caller, service: Service) -> ForgetOut:
    """Forget by source or by filter, in one namespace or every namespace of the key."""
    removed = service.forget(scope, source=body.source, where=body.where, namespace=body.namespace)
    return ForgetOut(forgotten=removed)


@router.post("/recall", tags=["reading"])
def recall(body: RecallIn, scope: Caller, service: Service) -> RecallOut:
    """The memories most relevant to a query, best first."""
    hits = service.recall(scope, body.query, **body.options())
    return RecallOut(
        query=hits.query,
        abstain=hits.abstain,
        reason=hits.reason,
        hits=[HitOut.model_validate(h) for h in hits],
    )


@router.post("/recognize", tags=["reading"])
def recognize(body: RecognizeIn, scope: Caller, service: Service) -> RecognizeOut:
    """Have I seen this? Exact, near or new among the key's memories."""
    found = service.recognize(scope, body.text, namespace=body.namespace)
    return RecognizeOut.model_validate(found)


@router.post("/context", tags=["reading"])
def context(body: ContextIn, scope: Caller, service: Service) -> ContextOut:
    """A packed, cited context block ready for a prompt."""
    packed = service.context(
        scope,
        body.query,
        budget_tokens=body.budget_tokens,
        order=body.order,
        **body.options(),
    )
    return ContextOut.model_validate({**packed.as_dict(), "query": body.query, "text": packed.text})


@router.get("/stats", tags=["reading"])
def stats(scope: Caller, service: Service) -> StatsOut:
    """Counts of the key's namespaces (the whole store's statistics for every namespace)."""
    return StatsOut.model_validate(service.stats(scope))


@router.get("/whoami", tags=["keys"])
def whoami(scope: Caller, service: Service) -> WhoAmIOut:
    """The key in use and what it may do."""
    return WhoAmIOut(
        key=scope.key,
        namespaces=None if scope.namespaces is None else list(scope.namespaces),
        write=scope.write,
        keys_required=service.keys.any(),
    )
