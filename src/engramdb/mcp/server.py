"""The MCP server over a :class:`~engramdb.service.MemoryService`.

Built on the SDK's low-level :class:`mcp.server.lowlevel.Server`: the tools come from
:data:`engramdb.mcp.tools.TOOLS`, their arguments are checked against the same pydantic
models that give their schemas, and the service runs on a worker thread (its calls block on
SQLite and the embedder). Who is calling is asked of ``scope_of`` on every call, with the
transport's request (the HTTP request on Streamable HTTP, ``None`` on stdio).

Every failure a caller can cause comes back as a tool result with ``isError`` and a one-line
message (``NotFound: no memory with id 7``) that the model can read and act on, and so does a
store that fails (a lock held too long, a full disk); only an unknown tool name is a protocol
error, as the specification asks.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)
from pydantic import ValidationError

from engramdb._version import __version__
from engramdb.errors import EngramError
from engramdb.mcp._schema import describe_errors, input_schema
from engramdb.mcp.tools import TOOLS, ToolSpec
from engramdb.service import MemoryService, Scope

__all__ = ["INSTRUCTIONS", "ScopeOf", "create_server"]

_log = logging.getLogger(__name__)

ScopeOf = Callable[[Any], Scope]
"""The caller's scope, from the transport's request object (``None`` on stdio).

Raises :class:`~engramdb.errors.UnauthorizedError` when the request carries no valid key.
"""

INSTRUCTIONS = (
    "engramdb is a long-term memory. Before answering anything that may depend on earlier "
    "conversations, the user, people, decisions or events, call recall (or context for a "
    "cited block within a token budget). Remember durable facts, decisions and preferences as "
    "short self-contained statements with names and dates. Forget only when asked to."
)


def _failure(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=message)], is_error=True)


def _listing(spec: ToolSpec) -> Tool:
    return Tool(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        input_schema=input_schema(spec.arguments),
        annotations=spec.annotations,
    )


def create_server(
    service: MemoryService, scope_of: ScopeOf, *, name: str = "engramdb"
) -> Server[Any]:
    """The MCP server of ``service``'s verbs (not yet bound to a transport).

    Args:
        service: the memory the tools act on.
        scope_of: the caller's scope from the transport's request (``None`` on stdio).
        name: the server's name in the MCP handshake.

    Returns:
        A low-level MCP server: run it over stdio with :func:`engramdb.mcp.run_stdio`, or over
        HTTP with :func:`engramdb.mcp.create_mcp_http`.
    """
    specs = {spec.name: spec for spec in TOOLS}
    listing = ListToolsResult(tools=[_listing(spec) for spec in TOOLS])
    schemas = {tool.name: tool.input_schema for tool in listing.tools}

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult:
        spec = specs.get(params.name)
        if spec is None:
            raise MCPError(
                INVALID_PARAMS, f"unknown tool {params.name!r}; the tools are {', '.join(specs)}"
            )
        try:
            arguments = spec.arguments.model_validate(params.arguments or {})
        except ValidationError as exc:
            _log.info("tool %s: bad arguments: %s", spec.name, describe_errors(exc))
            return _failure(f"InvalidInput: {describe_errors(exc)}")
        try:
            scope = scope_of(ctx.request)
            run = functools.partial(spec.run, service, scope, arguments)
            answer = await anyio.to_thread.run_sync(run)
        except EngramError as exc:
            _log.info("tool %s failed: %s [%s]", spec.name, exc, exc.name)
            return _failure(f"{exc.name}: {exc}")
        except RecursionError:
            return _failure("InvalidInput: the arguments are nested too deeply to process")
        except (sqlite3.Error, OSError) as exc:  # e.g. a lock held past the busy timeout
            _log.warning("tool %s failed on the store", spec.name, exc_info=exc)
            return _failure(f"Store: the store failed: {exc} [{type(exc).__name__}]")
        return CallToolResult(
            content=[TextContent(text=answer.text)], structured_content=answer.data
        )

    return Server(
        name,
        version=__version__,
        title="engramdb memory",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=schemas.get,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
