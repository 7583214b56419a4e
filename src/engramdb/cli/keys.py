"""``engram keys``: the API keys of a shared store (made, listed, revoked)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from engramdb.cli import cli
from engramdb.cli._options import db_option, emit_json, json_option, open_memory
from engramdb.service import KeyInfo, KeyRing

__all__: list[str] = []


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _row(info: KeyInfo) -> str:
    rights = "read-only" if info.read_only else "read-write"
    state = f"revoked {_when(info.revoked)}" if info.revoked is not None else "live"
    spaces = ",".join(info.namespaces)
    return f"{info.name:<16} {info.prefix}…  {rights:<10} {spaces}  {_when(info.created)}  {state}"


@cli.group()
def keys() -> None:
    """API keys for engram serve: each grants namespaces, read-write or read-only.

    Only a hash of each key is stored, in the store file itself.

    \b
    Example:
        engram keys add alice --namespace alice --namespace shared --db team.db
        engram keys list --db team.db
    """


@keys.command("add")
@click.argument("name")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    required=True,
    help="A namespace the key may use (repeatable; the first is where writes go).",
)
@click.option("--read-only", is_flag=True, help="The key may read but not write.")
@json_option
@db_option
def add_key(
    name: str,
    namespaces: tuple[str, ...],
    read_only: bool,
    as_json: bool,
    db: str | None,
    config: str | None,
) -> None:
    """Make a key called NAME and print it (once: only its hash is kept).

    \b
    Example:
        engram keys add alice --namespace alice --namespace shared --db team.db
        engram keys add ci-bot --namespace shared --read-only --db team.db
    """
    with open_memory(db, config, create=True) as mem:
        made = KeyRing(mem).add(name, namespaces, read_only=read_only)
    if as_json:
        emit_json({"key": made.key, **_info_dict(made.info)})
    else:
        click.echo(made.key)
    click.echo(
        f"key {name!r} made for {', '.join(made.info.namespaces)}: store it now, "
        "it will not be shown again",
        err=True,
    )


def _info_dict(info: KeyInfo) -> dict[str, object]:
    return {
        "name": info.name,
        "prefix": info.prefix,
        "namespaces": list(info.namespaces),
        "read_only": info.read_only,
        "created": info.created,
        "revoked": info.revoked,
    }


@keys.command("list")
@click.option("--revoked", is_flag=True, help="Also list revoked keys.")
@json_option
@db_option
def list_keys(revoked: bool, as_json: bool, db: str | None, config: str | None) -> None:
    """List the keys (never the keys themselves: their first characters).

    \b
    Example:
        engram keys list --db team.db --json
    """
    with open_memory(db, config, create=False) as mem:
        found = KeyRing(mem).list(revoked=revoked)
    if as_json:
        emit_json([_info_dict(info) for info in found])
        return
    if not found:
        click.echo("no keys: the store serves loopback only (engram keys add NAME ...)")
    for info in found:
        click.echo(_row(info))


@keys.command("revoke")
@click.argument("name")
@db_option
def revoke_key(name: str, db: str | None, config: str | None) -> None:
    """Revoke the key called NAME; requests with it fail from now on.

    \b
    Example:
        engram keys revoke ci-bot --db team.db
    """
    with open_memory(db, config, create=False) as mem:
        KeyRing(mem).revoke(name)
    click.echo(f"revoked {name!r}")
