"""``engram history`` and ``engram supersede``: facts that change over time."""

from __future__ import annotations

import datetime as dt

import click

from engramdb.cli import cli
from engramdb.cli._options import db_option, emit_json, json_option, open_memory, time_arg
from engramdb.types import History, Supersession

__all__: list[str] = []


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _link_line(link: Supersession) -> str:
    target = link.new if link.new is not None else "(forgotten)"
    verb = "superseded by" if link.kind == "supersede" else "conflicts with"
    values = ""
    if "old_value" in link.detail:
        values = f"  ({link.detail['old_value']} -> {link.detail.get('new_value')})"
    state = f"  undone {_when(link.undone)}" if link.undone is not None else ""
    return (
        f"  {link.old} {verb} {target} at {_when(link.at)} [{link.origin}, recorded "
        f"{_when(link.recorded)}]{values}{state}"
    )


def _print_history(history: History) -> None:
    click.echo(f"memory {history.id}: {len(history.versions)} version(s)")
    for record in history.versions:
        mark = "*" if record.id == history.id else " "
        until = _when(record.valid_to) if record.valid_to is not None else "now"
        click.echo(f"{mark} {record.id}  {_when(record.valid_from)} .. {until}  {record.text}")
    if history.links:
        click.echo("links:")
        for link in history.links:
            click.echo(_link_line(link))


@cli.command()
@click.argument("memory_id", type=int)
@json_option
@db_option
def history(memory_id: int, as_json: bool, db: str | None, config: str | None) -> None:
    """Show the chain of MEMORY_ID's fact: the memories that superseded it or that it
    superseded, oldest first, with their valid-from and valid-to times, and every link
    (conflicts and undone links included).

    \b
    Example:
        engram history 42
    """
    with open_memory(db, config, create=False) as mem:
        found = mem.history(memory_id)
    if as_json:
        emit_json(found)
        return
    _print_history(found)


@cli.command()
@click.argument("old", type=int)
@click.argument("new", type=int, required=False)
@click.option("--at", default=None, help="When OLD stopped being valid [default: NEW's time].")
@click.option("--undo", is_flag=True, help="Undo OLD's supersession: it is valid again.")
@json_option
@db_option
def supersede(  # noqa: PLR0913 - the command's options
    old: int,
    new: int | None,
    at: str | None,
    undo: bool,
    as_json: bool,
    db: str | None,
    config: str | None,
) -> None:
    """Record that memory NEW supersedes memory OLD, or undo it (--undo OLD).

    OLD is never deleted: recall ranks it after valid memories, --as-of before the change
    still finds it, and "engram history" shows the chain. AT is epoch seconds or ISO-8601.

    \b
    Example:
        engram supersede 12 40
        engram supersede 12 --undo
    """
    if undo == (new is not None):
        raise click.UsageError("give OLD and NEW, or OLD with --undo")
    with open_memory(db, config, create=False) as mem:
        link = mem.unsupersede(old) if new is None else mem.supersede(old, new, at=time_arg(at))
    if as_json:
        emit_json(link)
        return
    click.echo(_link_line(link).strip())
