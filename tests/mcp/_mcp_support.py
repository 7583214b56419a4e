"""Helpers for the MCP tests: the scenario every transport runs, and an HTTP server (uvicorn
on a free loopback port) routing /mcp to the MCP endpoint in a minimal Starlette app."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from mcp.client.session import ClientSession
from mcp.types import CallToolResult

from engramdb.config import MAX_K
from engramdb.service import MemoryService

HASH = {"model": "hash", "dim": 64}
TOOL_NAMES = [
    "remember",
    "recall",
    "recognize",
    "forget",
    "context",
    "stats",
    "recall_tools",
    "recall_demos",
]
FACT = "Alice moved the deploy freeze to Friday."


def data(result: CallToolResult) -> Any:
    """The JSON a successful tool call answered."""
    assert not result.is_error, result.content
    assert result.content[0].type == "text"
    return json.loads(result.content[0].text)


def error(result: CallToolResult) -> str:
    """The message of a failed tool call."""
    assert result.is_error, result.content
    assert result.content[0].type == "text"
    return result.content[0].text


async def check_tools(session: Any) -> None:
    """The listing: every tool, with its schema's types and bounds and its annotations."""
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert list(tools) == TOOL_NAMES
    for tool in tools.values():
        assert tool.description and len(tool.description) > 80
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
    k = tools["recall"].input_schema["properties"]["k"]
    assert (k["type"], k["minimum"], k["maximum"]) == ("integer", 1, MAX_K)
    assert tools["recall"].input_schema["required"] == ["query"]
    assert tools["remember"].input_schema["required"] == ["text"]
    for name in ("recall", "recognize", "context", "stats"):
        assert tools[name].annotations.read_only_hint is True, name
        assert tools[name].annotations.idempotent_hint is True, name
    for name in ("remember", "forget"):
        assert tools[name].annotations.read_only_hint is False, name
    assert tools["forget"].annotations.destructive_hint is True
    assert tools["remember"].annotations.destructive_hint is False


async def scenario(session: ClientSession | Any, namespace: str) -> None:
    """Every tool with real effects, then the errors a caller can cause."""
    await check_tools(session)
    call = session.call_tool

    added = data(await call("remember", {"text": FACT, "source": "slack", "meta": {"team": "x"}}))
    assert added["namespace"] == namespace and added["added"] == 1
    [memory] = added["memories"]
    assert memory["decision"] == "new"
    again = data(await call("remember", {"text": FACT}))
    assert again["memories"] == [{"id": memory["id"], "decision": "exact"}]

    hits = data(await call("recall", {"query": "deploy freeze", "k": 3}))["hits"]
    assert hits[0]["id"] == memory["id"] and hits[0]["text"] == FACT
    assert hits[0]["source"] == "slack"
    assert data(await call("recognize", {"text": FACT}))["kind"] == "exact"
    packed = await call("context", {"query": "deploy freeze", "budget_tokens": 200})
    assert not packed.is_error and FACT in packed.content[0].text
    stats = data(await call("stats", {}))
    assert stats["namespaces"] == {namespace: 1} and stats["memories"] == 1

    assert "k:" in error(await call("recall", {"query": "freeze", "k": 0}))
    assert "k:" in error(await call("recall", {"query": "freeze", "k": MAX_K + 1}))
    assert "query:" in error(await call("recall", {"query": ""}))
    assert error(await call("forget", {"id": 999_999})) == "NotFound: no memory with id 999999"

    assert data(await call("forget", {"id": memory["id"]})) == {"forgotten": 1}
    assert data(await call("recall", {"query": "deploy freeze"}))["hits"] == []
    assert data(await call("stats", {}))["memories"] == 0


# -- an HTTP server for the endpoint -------------------------------------------------------------


def http_app(service: MemoryService) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from engramdb.mcp import create_mcp_http

    mcp = create_mcp_http(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp.lifespan():
            yield

    return Starlette(routes=[Route("/mcp", mcp.app)], lifespan=lifespan)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="warning", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
