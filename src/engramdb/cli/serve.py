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
from engramdb.cli.cluster import backend_option, open_cluster
from engramdb.service import SERVICE_STORE, is_loopback

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
@click.option(
    "--cluster",
    "address",
    metavar="ADDR",
    default=None,
    help="Serve a sharded store on a Ray cluster instead of one file: ray://HOST:10001, "
    "auto, or local (this machine); needs --db-root.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    default=None,
    help="Shards of a new cluster [default: 1]; an existing one opens as it is.",
)
@click.option(
    "--db-root",
    type=click.Path(file_okay=False),
    default=None,
    help=f"The cluster's folder, the same on every node (keys: --db ROOT/{SERVICE_STORE}).",
)
@backend_option
@db_option
def serve(
    host: str,
    port: int,
    address: str | None,
    shards: int | None,
    db_root: str | None,
    backend: str,
    db: str | None,
    config: str | None,
) -> None:
    """Serve the store: REST API under /v1, web UI at /, MCP at /mcp.

    With keys in the store (engram keys add) every request needs one; with none, only
    loopback addresses are allowed. The OpenAPI schema is at /openapi.json, interactive docs
    at /docs. Stops on Ctrl-C; unfinished ingest jobs resume at the next start.

    With --cluster the memories live in the shards of a cluster under --db-root, and the
    keys and ingest jobs in ROOT/service.db; supersessions, history and export are not
    served there yet.

    \b
    Example:
        engram keys add alice --namespace alice --db team.db
        engram serve --db team.db --host 0.0.0.0 --port 8765
        engram serve --cluster ray://head:10001 --shards 8 --db-root /data/engram
    """
    require("fastapi", extra="server")
    require("uvicorn", extra="server")
    if address is None:
        if shards is not None or db_root is not None:
            raise click.UsageError("--shards and --db-root go with --cluster ADDR")
        _serve_store(host, port, db, config)
        return
    if db is not None:
        raise click.UsageError(
            "--db is one store file, --cluster a sharded store: give one of them "
            "(the cluster's folder is --db-root)"
        )
    if db_root is None:
        raise click.UsageError("--cluster needs --db-root, the cluster's folder")
    _serve_cluster(host, port, cluster=(address, db_root, backend), shards=shards, config=config)


def _refusal(host: str, path: Path) -> click.ClickException:
    return click.ClickException(
        f"refusing to listen on {host} with no key in the store: make one first "
        f"(engram keys add NAME --namespace NS --db {path})"
    )


def _serve_cluster(
    host: str,
    port: int,
    *,
    cluster: tuple[str, str, str],
    shards: int | None,
    config: str | None,
) -> None:
    """Serve the cluster ``(address, root, backend)``; its keys are in ROOT/service.db."""
    from engramdb.server import create_app
    from engramdb.service import MemoryService

    address, root, backend = cluster
    keys = Path(root).expanduser() / SERVICE_STORE
    if not is_loopback(host) and not keys.exists():
        raise _refusal(host, keys)
    with (
        open_cluster(address, root, config, backend=backend, shards=shards, home=True) as mem,
        MemoryService(mem, own=False) as service,
    ):
        if not is_loopback(host) and not service.keys.any():
            raise _refusal(host, keys)
        logging.getLogger("engramdb.access").setLevel(logging.INFO)
        click.echo(f"engram serve: cluster at {mem.root}, {len(mem.shards)} shard(s)", err=True)
        _run(create_app(service), host, port)


def _serve_store(host: str, port: int, db: str | None, config: str | None) -> None:
    """Serve the store file ``db``."""
    from engramdb.server import create_app
    from engramdb.service import MemoryService

    path = Path(db) if db else default_db_path()
    if not is_loopback(host) and not path.exists():
        raise _refusal(host, path)
    with MemoryService.open(path, config) as service:
        if not is_loopback(host) and not service.keys.any():
            raise _refusal(host, path)
        logging.getLogger("engramdb.access").setLevel(logging.INFO)
        _run(create_app(service), host, port)
