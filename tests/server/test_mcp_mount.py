"""MCP (Streamable HTTP) inside the REST app: exactly /mcp, behind the same keys."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from engramdb.server import ServerSettings

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("engramdb.mcp") is None or importlib.util.find_spec("mcp") is None,
    reason="the MCP adapter is not installed",
)

ACCEPT = {"Accept": "application/json, text/event-stream"}


def _rpc(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}


def test_post_to_exactly_mcp_is_served_without_redirect(client: Any) -> None:
    r = client.post("/mcp", json=_rpc("tools/list"), headers=ACCEPT, follow_redirects=False)
    assert r.status_code == 200, r.text
    tools = {tool["name"] for tool in r.json()["result"]["tools"]}
    assert {"remember", "recall"} <= tools
    assert r.headers["x-request-id"]


def test_mcp_tools_act_on_the_same_store(client: Any) -> None:
    call = _rpc("tools/call", {"name": "remember", "arguments": {"text": "MCP was here."}})
    r = client.post("/mcp", json=call, headers=ACCEPT)
    assert r.status_code == 200, r.text
    hits = client.post("/v1/recall", json={"query": "MCP was here"}).json()["hits"]
    assert hits[0]["text"] == "MCP was here."


def test_mcp_needs_a_key_once_the_store_has_one(client: Any, keys: Any) -> None:
    r = client.post("/mcp", json=_rpc("tools/list"), headers={**ACCEPT, "X-Request-ID": "req-7"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "Unauthorized"
    assert r.json()["error"]["request_id"] == "req-7" == r.headers["x-request-id"]
    r = client.post("/mcp", json=_rpc("tools/list"), headers={**ACCEPT, **keys.alice})
    assert r.status_code == 200


def test_mcp_can_be_left_out(make_client: Any) -> None:
    client = make_client(ServerSettings(mcp=False))
    assert client.post("/mcp", json=_rpc("tools/list"), headers=ACCEPT).status_code == 404
