"""``recall_tools`` and ``recall_demos`` through the MCP SDK's client, in process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from _mcp_support import data, error
from mcp.client.client import Client

from engramdb.mcp import create_server
from engramdb.service import MemoryService, Scope
from engramdb.service import tools as verbs

DATA = Path(__file__).parents[1] / "data" / "tools"


def _fill(service: MemoryService) -> None:
    scope = Scope.local()
    verbs.add_tools(
        service, scope, json.loads((DATA / "mcp.json").read_text()), namespace=None, server="fs"
    )
    verbs.add_tools(
        service, scope, json.loads((DATA / "openai.json").read_text()), namespace=None, server=None
    )
    for request, name in [
        ("show me what is in notes.txt", "read_file"),
        ("what files are in my home folder", "list_directory"),
        ("tell me the forecast for Lisbon", "get_weather"),
    ]:
        verbs.add_demo(
            service,
            scope,
            request,
            calls=[{"name": name, "arguments": {}}],
            answer=None,
            namespace=None,
            meta=None,
        )


def _call(service: MemoryService, scope: Scope, name: str, arguments: dict[str, Any]) -> Any:
    async def main() -> Any:
        async with Client(create_server(service, lambda _request: scope)) as client:
            return await client.call_tool(name, arguments)

    return anyio.run(main)


def test_recall_tools_through_the_sdk_client(service: MemoryService) -> None:
    _fill(service)
    found = data(
        _call(service, Scope.local(), "recall_tools", {"request": "read notes.txt", "k": 2})
    )
    top = found["tools"][0]
    assert top["name"] == "read_file" and top["server"] == "fs"
    assert top["parameters"]["required"] == ["path"] and 0 <= top["relevance"] <= 1
    assert "abstain" not in found
    among = {"request": "read notes.txt", "among": ["send_email"]}
    assert [
        t["name"] for t in data(_call(service, Scope.local(), "recall_tools", among))["tools"]
    ] == ["send_email"]
    none = {"request": "zebra giraffe", "min_relevance": 0.999}
    empty = data(_call(service, Scope.local(), "recall_tools", none))
    assert empty["tools"] == [] and empty["abstain"] is True and "relevance" in empty["reason"]


def test_recall_demos_through_the_sdk_client(service: MemoryService) -> None:
    _fill(service)
    found = data(_call(service, Scope.local(), "recall_demos", {"request": "forecast for Oslo"}))
    assert found["demos"][0]["request"] == "tell me the forecast for Lisbon"
    assert found["demos"][0]["calls"] == [{"name": "get_weather", "arguments": {}}]


def test_a_namespace_outside_the_scope_holds_no_tools(service: MemoryService) -> None:
    _fill(service)
    other = Scope.local("elsewhere")
    assert data(_call(service, other, "recall_tools", {"request": "read notes.txt"}))["tools"] == []
    hidden = {"request": "read notes.txt", "namespace": "default"}
    assert data(_call(service, other, "recall_tools", hidden))["tools"] == []


def test_bad_arguments_are_clear_errors(service: MemoryService) -> None:
    message = error(_call(service, Scope.local(), "recall_tools", {"request": "x", "k": 0}))
    assert "InvalidInput: k:" in message
    message = error(_call(service, Scope.local(), "recall_demos", {"request": ""}))
    assert "InvalidInput: request:" in message
