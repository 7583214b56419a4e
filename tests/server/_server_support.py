"""Helpers of the REST server tests: bearer headers and waiting for an ingest job."""

from __future__ import annotations

import time
from typing import Any

HASH = {"model": "hash", "dim": 64}


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization`` header of a key."""
    return {"Authorization": f"Bearer {key}"}


def wait_for_job(
    client: Any, job_id: str, headers: dict[str, str] | None = None, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll ``GET /v1/jobs/{job_id}`` until the job is done or failed; return it."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=headers or {}).json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
