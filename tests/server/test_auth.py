"""Keys and namespaces over REST: 401 without a valid key, 404 outside the key's
namespaces, empty reads there, 403 for a read-only key's writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _server_support import wait_for_job

from engramdb.server import create_app
from engramdb.service import MemoryService

ALICE_TEXT = "Alice moved the deploy freeze to Friday."


def _v1_calls(service: MemoryService) -> list[tuple[str, str]]:
    """Every (method, path) of the /v1 API in its OpenAPI schema, path parameters filled."""
    calls = []
    for path, operations in create_app(service).openapi()["paths"].items():
        if path.startswith("/v1"):
            filled = path.replace("{memory_id}", "1").replace("{job_id}", "0" * 32)
            calls += [(method.upper(), filled) for method in operations]
    return calls


def test_every_v1_route_needs_a_valid_key(client: Any, keys: Any, service: MemoryService) -> None:
    calls = _v1_calls(service)
    assert len(calls) == 22
    for method, path in calls:
        for headers in ({}, keys.bad, keys.revoked, {"Authorization": "Basic YTpi"}):
            r = client.request(method, path, headers=headers, json={"text": "x", "query": "x"})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"]["type"] == "Unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"


def test_whoami_names_the_key_and_its_rights(client: Any, keys: Any) -> None:
    assert client.get("/v1/whoami", headers=keys.alice).json() == {
        "key": "alice",
        "namespaces": ["alice", "shared"],
        "write": True,
        "keys_required": True,
    }
    assert client.get("/v1/whoami", headers=keys.reader).json()["write"] is False


@pytest.fixture
def alices(client: Any, keys: Any) -> int:
    """Alice's memory in her first namespace (where writes go by default)."""
    r = client.post("/v1/memories", json={"text": ALICE_TEXT}, headers=keys.alice)
    assert r.json()["namespace"] == "alice"
    return int(r.json()["memories"][0]["id"])


def test_ids_outside_the_keys_namespaces_are_404(client: Any, keys: Any, alices: int) -> None:
    assert client.get(f"/v1/memories/{alices}", headers=keys.alice).status_code == 200
    for call in (client.get, client.delete):
        r = call(f"/v1/memories/{alices}", headers=keys.bob)
        assert r.status_code == 404
        assert r.json()["error"]["message"] == f"no memory with id {alices}"
    r = client.get(f"/v1/memories/{alices}/neighbours", headers=keys.bob)
    assert r.status_code == 404
    assert client.get(f"/v1/memories/{alices}", headers=keys.alice).status_code == 200


def test_writes_outside_the_keys_namespaces_are_404(client: Any, keys: Any, alices: int) -> None:
    r = client.post("/v1/memories", json={"text": "x", "namespace": "alice"}, headers=keys.bob)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "namespace 'alice' not found"
    r = client.post("/v1/forget", json={"source": "x", "namespace": "alice"}, headers=keys.bob)
    assert r.status_code == 404
    files = {"files": ("a.txt", b"some text")}
    r = client.post("/v1/ingest", files=files, data={"namespace": "alice"}, headers=keys.bob)
    assert r.status_code == 404
    r = client.post("/v1/forget", json={"where": {"namespace": "alice"}}, headers=keys.bob)
    assert r.json() == {"forgotten": 0}
    assert client.get(f"/v1/memories/{alices}", headers=keys.alice).status_code == 200


def test_reads_outside_the_keys_namespaces_are_empty(client: Any, keys: Any, alices: int) -> None:
    for body in ({"query": "deploy freeze"}, {"query": "deploy freeze", "namespace": "alice"}):
        r = client.post("/v1/recall", json=body, headers=keys.bob)
        assert r.json()["hits"] == []
        r = client.post("/v1/context", json=body, headers=keys.bob)
        assert r.json()["blocks"] == []
    for body in ({"text": ALICE_TEXT}, {"text": ALICE_TEXT, "namespace": "alice"}):
        r = client.post("/v1/recognize", json=body, headers=keys.bob)
        assert r.json() == {"kind": "new", "score": 0.0, "match": None}
    assert client.get("/v1/stats", headers=keys.bob).json()["namespaces"] == {}
    assert client.get("/v1/stats", headers=keys.bob).json()["store"] is None
    for params in ({}, {"namespace": "alice"}):
        text = client.get("/v1/export", params=params, headers=keys.bob).text
        assert ALICE_TEXT not in text
        assert all("text" not in json.loads(line) for line in text.splitlines())
    hits = client.post("/v1/recall", json={"query": "deploy freeze"}, headers=keys.alice)
    assert hits.json()["hits"][0]["id"] == alices


def test_jobs_outside_the_keys_namespaces_are_404(client: Any, keys: Any) -> None:
    files = {"files": ("notes.txt", b"A note about the deploy freeze.")}
    job = client.post("/v1/ingest", files=files, headers=keys.alice).json()
    assert job["namespace"] == "alice"
    r = client.get(f"/v1/jobs/{job['id']}", headers=keys.bob)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "NotFound"
    assert client.get("/v1/jobs", headers=keys.bob).json() == {"jobs": []}
    assert [j["id"] for j in client.get("/v1/jobs", headers=keys.alice).json()["jobs"]] == [
        job["id"]
    ]
    assert wait_for_job(client, job["id"], keys.alice)["state"] == "done"


def test_read_only_key_may_read_but_not_write(client: Any, keys: Any) -> None:
    shared = client.post(
        "/v1/memories", json={"text": "Shared note.", "namespace": "shared"}, headers=keys.alice
    ).json()["memories"][0]["id"]
    assert client.get(f"/v1/memories/{shared}", headers=keys.reader).status_code == 200
    hits = client.post("/v1/recall", json={"query": "shared note"}, headers=keys.reader).json()
    assert [h["id"] for h in hits["hits"]] == [shared]
    writes = [
        ("POST", "/v1/memories", {"json": {"text": "mine"}}),
        ("POST", "/v1/memories", {"json": {"text": "mine", "namespace": "shared"}}),
        ("DELETE", f"/v1/memories/{shared}", {}),
        ("POST", "/v1/forget", {"json": {"source": "x"}}),
        ("POST", "/v1/ingest", {"files": {"files": ("a.txt", b"text")}}),
    ]
    for method, path, kwargs in writes:
        r = client.request(method, path, headers=keys.reader, **kwargs)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["type"] == "Forbidden"
    assert client.get(f"/v1/memories/{shared}", headers=keys.reader).status_code == 200


def test_a_revoked_key_stops_working_at_once(
    client: Any, keys: Any, service: MemoryService
) -> None:
    assert client.get("/v1/whoami", headers=keys.bob).status_code == 200
    service.keys.revoke("bob")
    assert client.get("/v1/whoami", headers=keys.bob).status_code == 401


def test_without_keys_only_a_loopback_host_is_served(make_client: Any) -> None:
    """A page re-pointed at 127.0.0.1 (DNS rebinding) carries its own Host: refused."""
    for host in ("127.0.0.1:8765", "localhost", "[::1]:80", "127.0.0.2"):
        client = make_client(base_url=f"http://{host}")
        assert client.get("/v1/stats").status_code == 200, host
    for host in ("evil.example:8765", "192.168.1.5", "attacker.com"):
        client = make_client(base_url=f"http://{host}")
        response = client.get("/v1/stats")
        assert response.status_code == 403, host
        assert response.json()["error"]["type"] == "Forbidden"
        mcp = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert mcp.status_code == 403, host


def test_with_keys_any_host_may_present_a_key(make_client: Any, keys: Any) -> None:
    client = make_client(base_url="http://memory.example.org")
    assert client.get("/v1/stats").status_code == 401
    assert client.get("/v1/stats", headers=keys.alice).status_code == 200
