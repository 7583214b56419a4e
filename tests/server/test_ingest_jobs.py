"""Ingest jobs over REST: multipart upload → 202 with the job → the runner ingests it."""

from __future__ import annotations

import json
from typing import Any

from _server_support import wait_for_job

from engramdb.server import ServerSettings
from engramdb.service import MemoryService

NOTES_MD = b"# Deploys\n\nAlice moved the deploy freeze to Friday.\n\nBob owns the release train.\n"
CHAT = b"\n".join(
    json.dumps({"text": f"Message {i} about the budget meeting in Lisbon."}).encode()
    for i in range(5)
)


def test_ingest_job_end_to_end(client: Any) -> None:
    files = [
        ("files", ("notes.md", NOTES_MD, "text/markdown")),
        ("files", ("chat.jsonl", CHAT, "application/json")),
    ]
    r = client.post("/v1/ingest", files=files, data={"namespace": "team"})
    assert r.status_code == 202
    job = r.json()
    assert job["state"] in ("queued", "running", "done")
    assert job["namespace"] == "team"
    assert [f["name"] for f in job["files"]] == ["notes.md", "chat.jsonl"]
    assert [f["bytes"] for f in job["files"]] == [len(NOTES_MD), len(CHAT)]
    done = wait_for_job(client, job["id"])
    assert done["state"] == "done"
    assert done["error"] is None
    assert done["attempts"] == 1
    assert done["done"] == done["records"] > 0
    assert done["started"] is not None and done["finished"] is not None
    hits = client.post("/v1/recall", json={"query": "deploy freeze", "namespace": "team"}).json()
    assert hits["hits"][0]["source"] == "notes.md"
    assert client.get("/v1/stats").json()["namespaces"]["team"] >= 6
    listed = client.get("/v1/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.get("/v1/jobs", params={"limit": 0}).status_code == 422


def test_a_file_that_cannot_be_loaded_gets_an_error_and_the_job_goes_on(client: Any) -> None:
    files = [
        ("files", ("broken.json", b'{"text": "unterminated', "application/json")),
        ("files", ("good.txt", b"A perfectly fine note.", "text/plain")),
    ]
    job = client.post("/v1/ingest", files=files).json()
    done = wait_for_job(client, job["id"])
    assert done["state"] == "done"
    broken, good = done["files"]
    assert broken["error"] and "broken.json" in broken["error"]
    assert good["error"] is None
    assert good["added"] == 1


def test_ingest_needs_files(client: Any) -> None:
    r = client.post("/v1/ingest", data={"namespace": "team"})
    assert r.status_code == 422
    assert r.json()["error"]["type"] == "Validation"
    r = client.post(
        "/v1/ingest",
        content=b'{"files": []}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422


def test_a_file_over_its_limit_is_413(make_client: Any, service: MemoryService) -> None:
    client = make_client(ServerSettings(max_file_bytes=100))
    files = [("files", ("ok.txt", b"small")), ("files", ("big.txt", b"x" * 101))]
    r = client.post("/v1/ingest", files=files)
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "TooLarge"
    assert "big.txt" in r.json()["error"]["message"]
    assert client.get("/v1/jobs").json() == {"jobs": []}


def test_an_upload_over_its_limit_is_413(make_client: Any) -> None:
    client = make_client(ServerSettings(max_upload_bytes=1000))
    r = client.post("/v1/ingest", files=[("files", ("big.txt", b"x" * 2000))])
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "TooLarge"
    assert client.post("/v1/ingest", files=[("files", ("a.txt", b"fine"))]).status_code == 202


def test_unknown_job_is_404(client: Any) -> None:
    r = client.get("/v1/jobs/" + "f" * 32)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"job {'f' * 32!r} not found"
    assert client.get("/v1/jobs/" + "x" * 200).status_code == 422


def test_jobs_run_only_while_the_app_is_up(make_client: Any, service: MemoryService) -> None:
    client = make_client(ServerSettings(run_jobs=False))
    job = client.post("/v1/ingest", files=[("files", ("a.txt", b"A note."))]).json()
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued"
    assert service.jobs.run_next()
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "done"
