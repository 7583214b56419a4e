"""``engram mcp``: the memory as an MCP server over stdio, for local clients."""

from __future__ import annotations

from pathlib import Path

import click

from engramdb._optional import require
from engramdb.cli import cli
from engramdb.cli._options import db_option, default_db_path

__all__: list[str] = []


@cli.command("mcp")
@click.option(
    "--namespace",
    "-n",
    default=None,
    help="The one namespace the client reads and writes [default: reads every namespace, "
    "writes to 'default'].",
)
@click.option(
    "--read-only", is_flag=True, help="Refuse remember and forget; open the store read-only."
)
@db_option
def mcp(namespace: str | None, read_only: bool, db: str | None, config: str | None) -> None:
    """Serve the memory to an MCP client (Claude Desktop, Claude Code, Cursor) over stdio.

    The client starts this command and speaks the Model Context Protocol on its stdin and
    stdout; logs go to stderr. Tools: remember, recall, recognize, forget, context, stats.
    Needs the server extra: pip install "engramdb[server]". See docs/mcp.md for client
    configuration.

    \b
    Example:
        engram mcp --db ~/notes.db --namespace me
        claude mcp add engramdb -- engram mcp --db ~/notes.db --namespace me
    """
    require("mcp", extra="server")
    import anyio

    from engramdb.mcp import run_stdio
    from engramdb.service import MemoryService, Scope

    path = Path(db) if db else default_db_path()
    scope = Scope.local(namespace, write=not read_only)
    with MemoryService.open(path, config, create=not read_only, readonly=read_only) as service:
        anyio.run(run_stdio, service, scope)
