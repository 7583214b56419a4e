"""``engram export``, ``engram import`` and ``engram backup``: moving and copying a store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engramdb.cli import cli
from engramdb.cli._options import db_option, emit_json, json_option, open_memory

__all__: list[str] = []


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--namespace", "-n", default=None, help="Export one namespace [default: all].")
@click.option("--vectors", is_flag=True, help="Add each memory's embedding (base64 of float32).")
@db_option
def export(
    out: str, namespace: str | None, vectors: bool, db: str | None, config: str | None
) -> None:
    """Export memories with their sightings, times and metadata to OUT as JSON Lines.

    The first line is a header naming the format (engramdb.export, version 1); then one
    memory per line. OUT "-" writes to stdout. A file is written beside OUT and renamed
    into place when complete.

    \b
    Example:
        engram export work.jsonl --namespace work
        engram export - --vectors | gzip > all.jsonl.gz
    """
    with open_memory(db, config, create=False) as mem:
        records = mem.export(namespace=namespace, vectors=vectors)
        count = -1  # the header is not a memory
        with click.open_file(out, "wb", atomic=out != "-") as fh:
            for record in records:
                line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
                fh.write(line.encode("utf-8") + b"\n")
                count += 1
    if out != "-":
        click.echo(f"exported {count} memories to {out}")


@cli.command("import")
@click.argument(
    "source", metavar="IN", type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
@click.option("--namespace", "-n", default=None, help="Import every memory into this namespace.")
@json_option
@db_option
def import_(
    source: str, namespace: str | None, as_json: bool, db: str | None, config: str | None
) -> None:
    """Import memories from an engram export (JSON Lines; IN "-" reads stdin).

    Sightings, times and metadata come back as exported; a memory already in its
    namespace merges (importing the same file twice changes nothing). Vectors in the file
    are used when the store's embedder made them. A file is checked in full before
    anything is written; a malformed line is reported with its number.

    \b
    Example:
        engram import work.jsonl --db restored.db
        engram import work.jsonl --namespace archive --json
    """
    with open_memory(db, config, create=True) as mem:
        result = mem.import_file(
            sys.stdin.buffer if source == "-" else Path(source), namespace=namespace
        )
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"imported {result.records} memories: {result.added} added, {result.merged} merged; "
        f"{result.sightings} sightings added, {result.known_sightings} already there; "
        f"{result.reused} vectors from the file, {result.embedded} embedded"
    )


@cli.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace DEST when it exists.")
@db_option
def backup(dest: str, overwrite: bool, db: str | None, config: str | None) -> None:
    """Copy the store to DEST while it stays in use (a consistent snapshot).

    The copy is written beside DEST, checked with SQLite's integrity check, then renamed
    into place. An existing DEST is kept unless --overwrite.

    \b
    Example:
        engram backup ~/backups/memory-2024-06-01.db
        engram backup nightly.db --overwrite --db team.db
    """
    with open_memory(db, config, create=False) as mem:
        path = mem.backup(dest, overwrite=overwrite)
    click.echo(f"backed up to {path} ({path.stat().st_size / 1e6:.1f} MB)")
