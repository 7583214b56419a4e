"""``engram index``: the dense vector index (exact flat or SPANN): stats, build, rebuild."""

from __future__ import annotations

import click

from engramdb.cli import cli
from engramdb.cli._options import db_option, emit_json, json_option, open_memory
from engramdb.types import IndexStats

__all__: list[str] = []


def _describe(info: IndexStats) -> str:
    if info.kind == "flat" or info.spann is None:
        return f"flat index: {info.count} vectors in RAM (exact search)"
    return (
        f"SPANN index at {info.path}: {info.count} vectors in {info.spann['heads']} lists, "
        f"{info.spann['disk_bytes'] / 1e6:.1f} MB on disk"
    )


@cli.group()
def index() -> None:
    """The dense vector index: exact flat search for small stores, SPANN for large ones.

    With the default [ann] kind = "auto", a store uses SPANN once it holds more than
    ann.spann_threshold memories (50,000), or once "engram index build" made one for it.

    \b
    Example:
        engram index stats
        engram index build
        engram index rebuild
    """


@index.command()
@json_option
@db_option
def stats(as_json: bool, db: str | None, config: str | None) -> None:
    """Which index is in use, its size and whether it reflects the store.

    For SPANN: lists (heads), list sizes, disk bytes, the store version the index reflects
    against the store's data version, and why it was last (re)built when opening it.

    \b
    Example:
        engram index stats --json
    """
    with open_memory(db, config, create=False) as mem:
        info = mem.dense_index.stats()
    if as_json:
        emit_json(info)
        return
    click.echo(_describe(info))
    click.echo(f"memories    {info.memories} (index holds {info.count})")
    click.echo(
        f"log         store at {info.log_seq}, folder saved at {info.store_version}, "
        f"{info.pending} changes pending" + ("  STALE" if info.stale else "")
    )
    click.echo(f"choice      ann.kind={info.configured}, threshold {info.spann_threshold}")
    if info.kind == "spann" and info.spann is not None:
        sizes = info.spann["list_size"]
        click.echo(
            f"lists       mean {sizes['mean']:.1f}, p99 {sizes['p99']:.0f}, max {sizes['max']}, "
            f"replication {info.spann['replication']:.2f}, head index {info.spann['head_index']}"
        )
    if info.last_build:
        click.echo(f"built       {info.last_build}")


@index.command()
@db_option
def build(db: str | None, config: str | None) -> None:
    """Build the SPANN index now, even below ann.spann_threshold, and keep using it.

    Nothing is done when a fresh SPANN index exists. Needs ann.kind "auto" or "spann".

    \b
    Example:
        engram index build --db notes.db
    """
    with open_memory(db, config, create=False) as mem:
        mem.dense_index.build()
        info = mem.dense_index.stats()
    click.echo(_describe(info))


@index.command()
@db_option
def rebuild(db: str | None, config: str | None) -> None:
    """Rebuild the dense index in use from the store's cached vectors.

    \b
    Example:
        engram index rebuild --db notes.db
    """
    with open_memory(db, config, create=False) as mem:
        mem.dense_index.rebuild()
        info = mem.dense_index.stats()
    click.echo("rebuilt " + _describe(info))
