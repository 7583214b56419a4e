"""``engram cluster``: a sharded store's status, growth and pending writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from engramdb.cli import cli
from engramdb.cli._options import emit_json, json_option

if TYPE_CHECKING:
    from engramdb.cluster import ClusterStats
    from engramdb.service import ClusterMemory

__all__ = ["backend_option", "cluster_options", "open_cluster"]

F = TypeVar("F", bound=Callable[..., Any])
_CATALOG = "catalog.db"


def backend_option(fn: F) -> F:
    """``--cluster-backend`` (hidden): ``local`` runs the shards in this process."""
    return click.option(
        "--cluster-backend",
        "backend",
        type=click.Choice(["ray", "local"]),
        default="ray",
        show_default=True,
        hidden=True,
        help="local: the shards run in this process instead of as Ray actors.",
    )(fn)


def cluster_options(fn: F) -> F:
    """``--cluster ADDR``, ``--db-root PATH``, ``--config`` and the hidden backend option."""
    options = [
        click.option(
            "--cluster",
            "address",
            metavar="ADDR",
            required=True,
            help="The Ray cluster: ray://HOST:10001, auto, or local (this machine).",
        ),
        click.option(
            "--db-root",
            type=click.Path(file_okay=False),
            required=True,
            help="The cluster's folder (its catalog and shard stores), the same on every node.",
        ),
        click.option(
            "--config",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="TOML config file: the cluster's engine configuration.",
        ),
        backend_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@contextmanager
def open_cluster(
    address: str,
    db_root: str,
    config: str | None,
    *,
    backend: str = "ray",
    shards: int | None = None,
    home: bool = False,
    existing: bool = False,
) -> Iterator[ClusterMemory]:
    """Open the cluster under ``db_root`` for one command and close it afterwards.

    Args:
        address: the ``--cluster`` value (``local``, ``auto``, ``ray://HOST:PORT``).
        db_root: the cluster's folder.
        config: the ``--config`` TOML path.
        backend: ``ray``, or ``local`` for shards in this process.
        shards: the number of shards of a new cluster.
        home: also open the service's store of keys and jobs (``engram serve``).
        existing: the cluster must exist already (a command that only reads or grows it).

    Raises:
        click.ClickException: ``existing`` and no cluster is there.
    """
    from engramdb.service import ClusterMemory

    root = Path(db_root).expanduser()
    if existing and not (root / _CATALOG).is_file():
        raise click.ClickException(
            f"no cluster at {root} (start one with: engram serve --cluster {address} "
            f"--db-root {root} --shards N)"
        )
    mem = ClusterMemory.open(
        address,
        root=root,
        shards=shards,
        config=config,
        backend=backend,
        home=home,
    )
    try:
        yield mem
    finally:
        mem.close()


@cli.group()
def cluster() -> None:
    """A sharded store on a Ray cluster: its status, a new shard, pending writes.

    \b
    Example:
        engram serve --cluster ray://head:10001 --db-root /data/engram --shards 8
        engram cluster status --cluster ray://head:10001 --db-root /data/engram
        engram cluster add-shard --cluster ray://head:10001 --db-root /data/engram
    """


def _status(stats: ClusterStats, root: Path) -> dict[str, Any]:
    shards = [
        {
            "name": name,
            "memories": part.memories,
            "namespaces": dict(part.namespaces),
            "db_bytes": part.db_bytes,
        }
        for name, part in stats.shards.items()
    ]
    return {
        "root": str(root),
        "version": stats.version,
        "memories": stats.memories,
        "namespaces": dict(stats.namespaces),
        "pending": stats.pending,
        "shards": shards,
        "missing": list(stats.missing),
    }


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


@cluster.command("status")
@cluster_options
@json_option
def status(address: str, db_root: str, config: str | None, backend: str, as_json: bool) -> None:
    """Show the shards with their memory counts, missing shards and pending writes.

    Also the routing version (bumped by every shard added and namespace pinned).

    \b
    Example:
        engram cluster status --cluster ray://head:10001 --db-root /data/engram
    """
    with open_cluster(address, db_root, config, backend=backend, existing=True) as mem:
        stats = mem.cluster_stats()
        root = mem.root
    found = _status(stats, root)
    if as_json:
        emit_json(found)
        return
    count = len(stats.shards) + len(stats.missing)
    click.echo(
        f"cluster at {root}: {_plural(count, 'shard')} ({len(stats.missing)} missing), "
        f"{_plural(stats.memories, 'memory', 'memories')}, "
        f"routing version {stats.version}, {_plural(stats.pending, 'pending write')}"
    )
    width = max([len(n) for n in [*stats.shards, *stats.missing]], default=0)
    for shard in found["shards"]:
        counted = _plural(shard["memories"], "memory", "memories")
        click.echo(f"  {shard['name']:<{width}}  {counted}")
    for name in stats.missing:
        click.echo(f"  {name:<{width}}  missing (did not answer)")


@cluster.command("add-shard")
@cluster_options
@json_option
def add_shard(address: str, db_root: str, config: str | None, backend: str, as_json: bool) -> None:
    """Add a shard and move to it its share of the routing slots with their memories.

    Writes wait while memories move; recalls go on (a moved memory counts once).

    \b
    Example:
        engram cluster add-shard --cluster ray://head:10001 --db-root /data/engram
    """
    with open_cluster(address, db_root, config, backend=backend, existing=True) as mem:
        added = mem.add_shard()
    if as_json:
        emit_json(added)
        return
    click.echo(
        f"added {added['shard']}: {added['slots']:,} routing slots and "
        f"{added['moved']:,} memories moved to it; {added['memories']:,} memories in the cluster"
    )


@cluster.command("flush")
@cluster_options
@json_option
def flush(address: str, db_root: str, config: str | None, backend: str, as_json: bool) -> None:
    """Apply the writes journaled while their shards were down.

    Exits 1 while some remain pending (their shards still do not answer).

    \b
    Example:
        engram cluster flush --cluster ray://head:10001 --db-root /data/engram
    """
    with open_cluster(address, db_root, config, backend=backend, existing=True) as mem:
        applied = mem.flush()
        stats = mem.cluster_stats()
    if as_json:
        emit_json({"applied": applied, "pending": stats.pending, "missing": list(stats.missing)})
    else:
        click.echo(f"applied {_plural(applied, 'pending write')}")
    if stats.pending:
        missing = f" (shards not answering: {', '.join(stats.missing)})" if stats.missing else ""
        raise click.ClickException(
            f"{_plural(stats.pending, 'write')} still pending{missing}; run flush again "
            "once they answer"
        )
