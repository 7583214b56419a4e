"""``engram serve``: the REST API, the web UI and MCP over HTTP, on uvicorn."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import click

from engramdb._optional import require
from engramdb.cli import cli
from engramdb.cli._options import db_option, default_db_path
from engramdb.service import is_loopback

__all__: list[str] = []


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _run(app: Any, host: str, port: int) -> None:
    """Serve ``app`` until interrupted, printing the URL once the socket listens."""
    import uvicorn

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                bound = [s.getsockname() for srv in self.servers for s in srv.sockets]
                actual = bound[0][1] if bound else port
                click.echo(f"engram serve: listening on {_url(host, actual)}")

    config = uvicorn.Config(
        app, host=host, port=port, access_log=False, log_level="warning", lifespan="on"
    )
    _Server(config).run()


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback needs a key in the store.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@db_option
def serve(host: str, port: int, db: str | None, config: str | None) -> None:
    """Serve the store: REST API under /v1, web UI at /, MCP at /mcp.

    With keys in the store (engram keys add) every request needs one; with none, only
    loopback addresses are allowed. The OpenAPI schema is at /openapi.json, interactive docs
    at /docs. Stops on Ctrl-C; unfinished ingest jobs resume at the next start.

    \b
    Example:
        engram keys add alice --namespace alice --db team.db
        engram serve --db team.db --host 0.0.0.0 --port 8765
    """
    require("fastapi", extra="server")
    require("uvicorn", extra="server")
    from engramdb.server import create_app
    from engramdb.service import MemoryService

    path = Path(db) if db else default_db_path()
    refusal = click.ClickException(
        f"refusing to listen on {host} with no key in the store: make one first "
        f"(engram keys add NAME --namespace NS --db {path})"
    )
    if not is_loopback(host) and not path.exists():
        raise refusal
    with MemoryService.open(path, config) as service:
        if not is_loopback(host) and not service.keys.any():
            raise refusal
        logging.getLogger("engramdb.access").setLevel(logging.INFO)
        _run(create_app(service), host, port)
