"""The MCP tools in-process (the SDK's client connected straight to the server): answers,
argument checks and errors, and scopes."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from _mcp_support import FACT, data, error, scenario
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError

from engramdb.mcp import create_server
from engramdb.service import MemoryService, Scope


def run(service: MemoryService, scope: Scope, body: Callable[[Client], Awaitable[Any]]) -> Any:
    """Run ``body`` with a client of ``service``'s MCP server, as ``scope``."""

    async def main() -> Any:
        async with Client(create_server(service, lambda _request: scope)) as client:
            return await body(client)

    return anyio.run(main)


def test_every_tool_in_process(service: MemoryService) -> None:
    run(service, Scope.local("me"), lambda client: scenario(client, "me"))


def test_the_server_introduces_itself(service: MemoryService) -> None:
    async def body(client: Client) -> None:
        assert client.server_info is not None and client.server_info.name == "engramdb"
        assert client.instructions is not None and "recall" in client.instructions

    run(service, Scope.local(), body)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("recall", {}, "InvalidInput: query: Field required"),
        ("recall", {"query": "x", "k": "many"}, "InvalidInput: k: Input should be a valid integer"),
        ("recall", {"query": "x", "min_relevance": 2}, "min_relevance: Input should be less"),
        ("recall", {"query": "x", "limit": 3}, "limit: Extra inputs are not permitted"),
        ("recall", {"query": "x", "channels": "psychic"}, "InvalidInput:"),
        ("recall", {"query": "x", "where": {"$or": []}}, "InvalidFilter:"),
        ("recall", {"query": "   "}, "InvalidInput:"),
        ("context", {"query": "x", "budget_tokens": 0}, "budget_tokens: Input should be greater"),
        ("context", {"query": "x", "order": "random"}, "order: Input should be 'relevance'"),
        ("remember", {"text": ""}, "text: String should have at least 1 character"),
        ("remember", {"text": "x", "event_time": "last week"}, "InvalidInput: event_time must"),
        ("remember", {"text": "x", "meta": []}, "meta: Input should be a valid dictionary"),
        ("forget", {}, "InvalidInput: forget needs exactly one of: id, source, where (got none)"),
        ("forget", {"id": 1, "source": "s"}, "exactly one of: id, source, where (got id, source)"),
        ("forget", {"id": 1, "namespace": "me"}, "namespace goes with source or where"),
        ("recognize", {"text": None}, "text: Input should be a valid string"),
    ],
)
def test_bad_arguments_are_tool_errors(
    service: MemoryService, tool: str, arguments: dict[str, Any], message: str
) -> None:
    async def body(client: Client) -> str:
        return error(await client.call_tool(tool, arguments))

    assert message in run(service, Scope.local("me"), body)


def test_an_unknown_tool_is_a_protocol_error(service: MemoryService) -> None:
    async def body(client: Client) -> None:
        with pytest.raises(MCPError, match="unknown tool 'dream'"):
            await client.call_tool("dream", {})

    run(service, Scope.local(), body)


def test_hits_are_compact_with_iso_times(service: MemoryService) -> None:
    async def body(client: Client) -> Any:
        when = {"event_time": "2024-05-02T10:00:00Z"}
        data(await client.call_tool("remember", {"text": FACT, "source": "slack", **when}))
        data(await client.call_tool("remember", {"text": "The cat sat.", "event_time": 0}))
        return data(await client.call_tool("recall", {"query": "deploy freeze", "k": 1}))

    [hit] = run(service, Scope.local("me"), body)["hits"]
    assert set(hit) <= {
        "id",
        "text",
        "source",
        "relevance",
        "event_time",
        "superseded_by",
        "valid_to",
    }
    assert hit["text"] == FACT and hit["source"] == "slack"
    assert hit["event_time"] == "2024-05-02T10:00:00Z"


def test_recall_reads_as_of_a_time_and_shows_what_superseded_a_hit(
    service: MemoryService,
) -> None:
    async def body(client: Client) -> Any:
        for text, day in (("Alice lives in Porto.", "01"), ("Alice lives in Lisbon.", "20")):
            when = {"event_time": f"2024-05-{day}T10:00:00Z"}
            data(await client.call_tool("remember", {"text": text, **when}))
        now = data(await client.call_tool("recall", {"query": "Alice lives", "k": 2}))
        then = await client.call_tool(
            "recall", {"query": "Alice lives", "k": 2, "as_of": "2024-05-10T00:00:00Z"}
        )
        return now, data(then)

    now, then = run(service, Scope.local("me"), body)
    assert [h["text"] for h in now["hits"]] == ["Alice lives in Lisbon.", "Alice lives in Porto."]
    assert now["hits"][1]["superseded_by"] == now["hits"][0]["id"]
    assert now["hits"][1]["valid_to"] == "2024-05-20T10:00:00Z"
    assert [h["text"] for h in then["hits"]] == ["Alice lives in Porto."]


def test_forget_by_source_and_by_filter(service: MemoryService) -> None:
    async def body(client: Client) -> list[Any]:
        call = client.call_tool
        for i in range(3):
            data(
                await call("remember", {"text": f"Slack note {i} about topic {i}.", "source": "s"})
            )
        notes = {"Lunch moved to noon.": "a", "Deploys pause in May.": "a", "Ship it.": "b"}
        for text, team in notes.items():
            data(await call("remember", {"text": text, "meta": {"team": team}}))
        return [
            data(await call("forget", {"source": "s"})),
            data(await call("forget", {"where": {"team": "a"}, "namespace": "me"})),
            data(await call("stats", {})),
        ]

    by_source, by_filter, stats = run(service, Scope.local("me"), body)
    assert by_source == {"forgotten": 3}
    assert by_filter == {"forgotten": 2}
    assert stats["memories"] == 1


def test_context_without_matches_says_so(service: MemoryService) -> None:
    async def body(client: Client) -> Any:
        return await client.call_tool("context", {"query": "anything at all"})

    result = run(service, Scope.local("me"), body)
    assert not result.is_error and result.content[0].text == "No memory matches this query."
    assert result.structured_content["ids"] == []


def test_context_cites_its_memories(service: MemoryService) -> None:
    async def body(client: Client) -> Any:
        added = data(await client.call_tool("remember", {"text": FACT, "source": "slack"}))
        packed = await client.call_tool("context", {"query": "deploy freeze", "k": 5})
        return added, packed

    added, packed = run(service, Scope.local("me"), body)
    assert packed.content[0].text.startswith("[1] slack")
    assert packed.structured_content["ids"] == [added["memories"][0]["id"]]
    assert 0 < packed.structured_content["tokens"] <= packed.structured_content["budget_tokens"]


def test_a_read_only_scope_refuses_writes(service: MemoryService) -> None:
    service.remember(Scope.local(), [FACT], namespace="me")

    async def body(client: Client) -> list[str]:
        hits = data(await client.call_tool("recall", {"query": "deploy freeze"}))["hits"]
        return [
            hits[0]["text"],
            error(await client.call_tool("remember", {"text": "more"})),
            error(await client.call_tool("forget", {"id": hits[0]["id"]})),
        ]

    text, remember, forget = run(service, Scope.local("me", write=False), body)
    assert text == FACT
    assert remember.startswith("Forbidden:") and forget.startswith("Forbidden:")


def test_a_namespace_scope_sees_only_its_namespace(service: MemoryService) -> None:
    service.remember(Scope.local(), [FACT], namespace="other")

    async def body(client: Client) -> list[Any]:
        return [
            data(await client.call_tool("recall", {"query": "deploy freeze"}))["hits"],
            data(await client.call_tool("recognize", {"text": FACT}))["kind"],
            data(await client.call_tool("stats", {}))["memories"],
        ]

    assert run(service, Scope.local("me"), body) == [[], "new", 0]
    assert run(service, Scope.local(), body)[1:] == ["exact", 1]


def test_a_failing_store_is_a_tool_error(service: MemoryService, monkeypatch: Any) -> None:
    def locked(scope: Scope) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(service, "stats", locked)

    async def body(client: Client) -> str:
        return error(await client.call_tool("stats", {}))

    message = run(service, Scope.local(), body)
    assert message == "Store: the store failed: database is locked [OperationalError]"


def test_a_time_past_the_calendar_comes_back_as_a_number(service: MemoryService) -> None:
    service.memory.add(FACT, event_time=1e18)  # the Python API takes any number

    async def body(client: Client) -> Any:
        refused = error(await client.call_tool("remember", {"text": "x", "event_time": 1e18}))
        assert refused == "InvalidInput: event_time must fall between the years 1 and 9999"
        return data(await client.call_tool("recall", {"query": "deploy freeze"}))

    assert run(service, Scope.local(), body)["hits"][0]["event_time"] == 1e18
