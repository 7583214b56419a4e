"""Recall in steps over REST and MCP: ``steps`` and ``clues`` reach the engine."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.client.client import Client

from engramdb.mcp import create_server
from engramdb.service import MemoryService, Scope

CHAIN = [
    "The Zephyr Lamp was designed at Orvalis Works.",
    "Orvalis Works was founded by Tamsin Quell.",
    "Tamsin Quell grew up in Brevik Harbor.",
    "The museum opened a new wing for modern sculpture.",
    "Rain fell over the valley for most of the week.",
    "A quiet library keeps maps of old trade routes.",
    "The orchestra rehearsed a symphony in the evening.",
    "Farmers sold apples and pears at the market square.",
    "The bridge was repainted after the winter storms.",
]


def test_rest_recall_in_steps(client: Any) -> None:
    items = [{"text": t} for t in CHAIN]
    assert client.post("/v1/memories", json={"items": items}).status_code < 300
    ask = {"query": "Zephyr Lamp", "channels": "lexical", "k": 5}
    one = client.post("/v1/recall", json=ask).json()
    assert [h["text"] for h in one["hits"]] == CHAIN[:1]
    two = client.post("/v1/recall", json={**ask, "steps": 2, "clues": ["terms"]}).json()
    assert sorted(h["text"] for h in two["hits"]) == sorted(CHAIN[:2])
    assert two["hits"][1]["why"]["step"]["rank"] == 2
    bad = client.post("/v1/recall", json={**ask, "steps": 9})
    assert bad.status_code == 422
    unknown = client.post("/v1/recall", json={**ask, "clues": ["psychic"]})
    assert unknown.status_code == 422


def test_mcp_recall_in_steps(service: MemoryService) -> None:
    async def body(client: Client) -> Any:
        for text in CHAIN:
            await client.call_tool("remember", {"text": text})
        ask = {"query": "Zephyr Lamp", "channels": "lexical", "k": 5}
        one = await client.call_tool("recall", ask)
        two = await client.call_tool("recall", {**ask, "steps": 2})
        return one, two

    async def main() -> Any:
        async with Client(create_server(service, lambda _request: Scope.local())) as client:
            return await body(client)

    one, two = anyio.run(main)
    assert "Zephyr Lamp was designed" in str(one.content)
    assert "Orvalis Works was founded" not in str(one.content)
    assert "Orvalis Works was founded" in str(two.content)
