"""MCP over stdio: one local client (an editor, a desktop app) and one fixed scope."""

from __future__ import annotations

from mcp.server.stdio import stdio_server

from engramdb.mcp.server import create_server
from engramdb.service import MemoryService, Scope

__all__ = ["run_stdio"]


async def run_stdio(service: MemoryService, scope: Scope) -> None:
    """Serve ``service`` over stdin and stdout until the client closes stdin.

    Only protocol messages reach stdout: while it runs, anything else written to the
    process's standard output goes to stderr.

    Args:
        service: the memory the tools act on.
        scope: what the client may see and do, e.g. ``Scope.local("me", write=False)``.
    """
    server = create_server(service, lambda _request: scope)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
