"""``engram tools add`` and ``engram tools list``: tools as memories."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from engramdb.cli import cli
from engramdb.cli._options import db_option, emit_json, json_option, open_memory
from engramdb.engine.memory import DEFAULT_NAMESPACE
from engramdb.errors import IngestError, InvalidInputError

__all__: list[str] = []


def _read(path: str) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: cannot read it ({exc})") from exc
    except ValueError as exc:
        raise IngestError(f"{path}: not valid JSON ({exc})") from exc


@cli.group()
def tools() -> None:
    """Tools an agent can call, remembered with their specs and versions.

    \b
    Example:
        engram tools add openai_tools.json mcp_tools_list.json --server github
        engram tools list
    """


@tools.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--namespace", "-n", default=DEFAULT_NAMESPACE, show_default=True)
@click.option("--server", default=None, help="Source server of tools whose spec names none.")
@json_option
@db_option
def add(  # noqa: PLR0913 - the command's options
    files: tuple[str, ...],
    namespace: str,
    server: str | None,
    as_json: bool,
    db: str | None,
    config: str | None,
) -> None:
    """Add the tools of FILES: OpenAI function/tool JSON or MCP tools/list results (or
    JSON Schema). A tool given again unchanged is left as it is; a changed spec supersedes
    its previous version. Every file is read and checked before anything is written.

    \b
    Example:
        engram tools add openai_tools.json
        engram tools add fs_tools_list.json --server filesystem --namespace agent
    """
    from engramdb.tools.specs import load_specs

    loaded = []
    for path in files:
        data = _read(path)
        try:
            load_specs(data, server=server)  # every file checked before the first write
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}: {exc}") from exc
        loaded.append(data)
    with open_memory(db, config, create=True) as mem:
        results = [mem.add_tools(data, namespace=namespace, server=server) for data in loaded]
    if as_json:
        emit_json([r.as_dict() for r in results])
        return
    for path, r in zip(files, results, strict=True):
        click.echo(
            f"{path}: {r.added} added, {r.superseded} new version(s), {r.unchanged} unchanged"
        )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "now"
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@tools.command("list")
@click.option("--namespace", "-n", default=None, help="One namespace [default: all].")
@click.option("--versions", is_flag=True, help="Show superseded versions too.")
@json_option
@db_option
def list_tools(
    namespace: str | None, versions: bool, as_json: bool, db: str | None, config: str | None
) -> None:
    """List the stored tools (current versions) with their server and demonstrations.

    \b
    Example:
        engram tools list --namespace agent
        engram tools list --versions --json
    """
    with open_memory(db, config, create=False) as mem:
        found = mem.tools(namespace=namespace, versions=versions)
    if as_json:
        emit_json([t.as_dict() for t in found])
        return
    for t in found:
        where = f"{t.server}/" if t.server else ""
        state = (
            "" if t.valid_to is None else f"  superseded {_when(t.valid_to)} by {t.superseded_by}"
        )
        summary = " ".join(t.description.split())[:80]
        click.echo(f"{t.id}  [{t.namespace}] {where}{t.name}  demos={t.demos}{state}  {summary}")
