"""MCP over Streamable HTTP: the SDK's own client against uvicorn serving a minimal Starlette
app that routes /mcp to ``create_mcp_http(service).app`` and runs its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from _mcp_support import FACT, data, error, scenario, serving
from mcp.client.client import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types.version import MODERN_PROTOCOL_VERSIONS

from engramdb.service import MemoryService

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


@asynccontextmanager
async def session(url: str, key: str | None = None) -> AsyncIterator[ClientSession]:
    """A ClientSession over Streamable HTTP after the initialize handshake."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def test_every_tool_over_http_without_keys(mcp_url: str) -> None:
    async def main() -> None:
        async with session(mcp_url) as client:
            await scenario(client, "default")

    anyio.run(main)


def test_a_post_to_exactly_the_mount_path_answers_without_redirect(mcp_url: str) -> None:
    response = httpx.post(mcp_url, json=INITIALIZE, headers=ACCEPT, follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["result"]["serverInfo"]["name"] == "engramdb"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_only_post_is_served(mcp_url: str, method: str) -> None:
    response = httpx.request(method, mcp_url, headers=ACCEPT)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["type"] == "MethodNotAllowed"


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-key", "Basic eDp5", "Bearer"])
def test_without_a_valid_key_the_answer_is_401_when_keys_exist(
    service: MemoryService, mcp_url: str, authorization: str | None
) -> None:
    service.keys.add("alice", ["a"])
    headers = dict(ACCEPT)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = httpx.post(mcp_url, json=INITIALIZE, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"]["status"] == 401 and body["error"]["type"] == "Unauthorized"
    assert body["error"]["request_id"] is None and body["error"]["message"]


def test_a_key_never_sees_another_namespace(service: MemoryService, mcp_url: str) -> None:
    alice = service.keys.add("alice", ["a"]).key
    bob = service.keys.add("bob", ["b"]).key

    async def main() -> None:
        async with session(mcp_url, alice) as client:
            await scenario(client, "a")
            added = data(await client.call_tool("remember", {"text": FACT, "source": "slack"}))
        memory_id = added["memories"][0]["id"]
        async with session(mcp_url, bob) as client:
            call = client.call_tool
            assert data(await call("recall", {"query": "deploy freeze"}))["hits"] == []
            assert data(await call("recall", {"query": "freeze", "namespace": "a"}))["hits"] == []
            assert data(await call("recognize", {"text": FACT}))["kind"] == "new"
            assert data(await call("stats", {}))["namespaces"] == {}
            assert error(await call("forget", {"id": memory_id})).startswith("NotFound:")
            assert data(await call("forget", {"source": "slack"})) == {"forgotten": 0}
            denied = error(await call("remember", {"text": "x", "namespace": "a"}))
            assert denied == "NotFound: namespace 'a' not found"
            assert data(await call("remember", {"text": "Bob's own note."}))["namespace"] == "b"
        async with session(mcp_url, alice) as client:
            hits = data(await client.call_tool("recall", {"query": "deploy freeze"}))["hits"]
            assert [hit["id"] for hit in hits] == [memory_id]

    anyio.run(main)


def test_a_read_only_key_reads_but_cannot_write(service: MemoryService, mcp_url: str) -> None:
    writer = service.keys.add("writer", ["team"]).key
    reader = service.keys.add("reader", ["team"], read_only=True).key

    async def main() -> None:
        async with session(mcp_url, writer) as client:
            data(await client.call_tool("remember", {"text": FACT}))
        async with session(mcp_url, reader) as client:
            hits = data(await client.call_tool("recall", {"query": "deploy freeze"}))["hits"]
            assert hits[0]["text"] == FACT
            refused = error(await client.call_tool("remember", {"text": "more"}))
            assert refused.startswith("Forbidden:")
            refused = error(await client.call_tool("forget", {"id": hits[0]["id"]}))
            assert refused.startswith("Forbidden:")

    anyio.run(main)


def test_the_sdk_client_in_auto_mode_is_scoped_too(service: MemoryService, mcp_url: str) -> None:
    alice = service.keys.add("alice", ["a"]).key

    async def main() -> Any:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {alice}"}) as http,
            Client(streamable_http_client(mcp_url, http_client=http)) as client,
        ):
            assert client.protocol_version in MODERN_PROTOCOL_VERSIONS  # no handshake
            data(await client.call_tool("remember", {"text": FACT}))
            return data(await client.call_tool("stats", {}))

    assert anyio.run(main)["namespaces"] == {"a": 1}


def test_the_rest_server_routes_mcp_to_the_endpoint(service: MemoryService) -> None:
    from engramdb.server import create_app

    alice = service.keys.add("alice", ["a"]).key

    async def main() -> None:
        async with session(f"{base}/mcp", alice) as client:
            await scenario(client, "a")

    with serving(create_app(service)) as base:
        assert httpx.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT).status_code == 401
        anyio.run(main)


def test_the_endpoint_answers_inside_its_lifespan_only(service: MemoryService) -> None:
    from engramdb.mcp import create_mcp_http

    mcp = create_mcp_http(service)

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=mcp.app)
        statuses = []
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            statuses.append((await http.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code)
            for _ in range(2):  # a host may start and stop more than once
                async with mcp.lifespan():
                    response = await http.post("/mcp", json=INITIALIZE, headers=ACCEPT)
                    statuses.append(response.status_code)
            statuses.append((await http.post("/mcp", json=INITIALIZE, headers=ACCEPT)).status_code)
        return statuses

    assert anyio.run(main) == [503, 200, 200, 503]
