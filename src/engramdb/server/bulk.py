"""The ``/v1`` routes of bulk work: ingest jobs (multipart uploads) and the NDJSON export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from engramdb.server._json import StrictJSONRoute
from engramdb.server._stream import NDJSON, ndjson_response
from engramdb.server.auth import Caller, Service
from engramdb.server.errors import ERROR_RESPONSES
from engramdb.server.models import JobOut, JobsOut
from engramdb.server.settings import ServerSettings

__all__ = ["router"]

router = APIRouter(prefix="/v1", route_class=StrictJSONRoute, responses=ERROR_RESPONSES)

_NAMESPACE = "The namespace to write to (default: the key's first)."
_PATTERN = r"^[\w.\-:@]+$"


def _settings(request: Request) -> ServerSettings:
    settings = request.app.state.settings
    assert isinstance(settings, ServerSettings)
    return settings


@router.post("/ingest", status_code=202, tags=["jobs"])
def ingest(
    request: Request,
    files: Annotated[list[UploadFile], File(min_length=1, description="The files to remember.")],
    scope: Caller,
    service: Service,
    namespace: Annotated[
        str | None, Form(min_length=1, max_length=128, pattern=_PATTERN, description=_NAMESPACE)
    ] = None,
) -> JobOut:
    """Queue files for a bulk ingest job (answered once they are safely on disk)."""
    uploads = [(upload.filename or f"upload-{i}", upload.file) for i, upload in enumerate(files)]
    limit = _settings(request).max_file_bytes
    job = service.submit_ingest(scope, uploads, namespace=namespace, max_file_bytes=limit)
    return JobOut.model_validate(job)


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(
    job_id: Annotated[str, PathParam(min_length=1, max_length=128)],
    scope: Caller,
    service: Service,
) -> JobOut:
    """An ingest job and how far it got."""
    return JobOut.model_validate(service.job(scope, job_id))


@router.get("/jobs", tags=["jobs"])
def list_jobs(
    scope: Caller,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=500, description="How many at most.")] = 50,
) -> JobsOut:
    """The key's latest ingest jobs, newest first."""
    return JobsOut(jobs=[JobOut.model_validate(j) for j in service.list_jobs(scope, limit=limit)])


@router.get(
    "/export",
    tags=["reading"],
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {"schema": {"type": "string"}}}}},
)
async def export(
    scope: Caller,
    service: Service,
    namespace: Annotated[str | None, Query(min_length=1, max_length=128, pattern=_PATTERN)] = None,
    vectors: Annotated[bool, Query(description="Include each memory's vector.")] = False,
) -> StreamingResponse:
    """The key's memories as NDJSON, one memory per line (the format of ``engram export``)."""
    return await ndjson_response(
        lambda: service.export(scope, namespace=namespace, vectors=vectors)
    )
