"""``engram mcp``: a real subprocess speaking MCP on stdio to the SDK's stdio client."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from _mcp_support import FACT, scenario
from click.testing import CliRunner
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from engramdb.cli import cli
from engramdb.service import MemoryService, Scope

HASH = {"model": "hash", "dim": 64}


def _config(folder: Path) -> Path:
    path = folder / "engramdb.toml"
    path.write_text('[embed]\nmodel = "hash"\ndim = 64\n', encoding="utf-8")
    return path


def serve(tmp_path: Path, *options: str, body: Callable[[ClientSession], Awaitable[Any]]) -> Any:
    """Start ``python -m engramdb mcp OPTIONS`` and run ``body`` with an initialized session.

    Also checks that every line the server wrote on stdout was a protocol message.
    """
    args = ["-m", "engramdb", "mcp", "--config", str(_config(tmp_path)), *options]
    params = StdioServerParameters(command=sys.executable, args=args, cwd=tmp_path)
    noise: list[Exception] = []

    async def collect(message: Any) -> None:
        if isinstance(message, Exception):
            noise.append(message)

    async def main() -> Any:
        with (tmp_path / "stderr.log").open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, message_handler=collect) as session,
            ):
                await session.initialize()
                return await body(session)

    result = anyio.run(main)
    assert noise == []
    return result


def test_every_tool_over_stdio(tmp_path: Path) -> None:
    db = tmp_path / "notes.db"
    serve(tmp_path, "--db", str(db), "--namespace", "me", body=lambda s: scenario(s, "me"))
    assert db.exists()


def test_the_command_serves_the_scope_its_options_say(tmp_path: Path, monkeypatch: Any) -> None:
    db = tmp_path / "notes.db"
    with MemoryService.open(db, embed=HASH) as service:
        service.remember(Scope.local(), [FACT], namespace="team")
    served: list[Any] = []

    async def run_stdio(service: MemoryService, scope: Scope) -> None:
        served.append((scope, service.memory.store.readonly, service.stats(scope).namespaces))

    monkeypatch.setattr("engramdb.mcp.run_stdio", run_stdio)
    config = str(_config(tmp_path))
    for options in (["--read-only"], ["--namespace", "me"]):
        result = CliRunner().invoke(cli, ["mcp", "--db", str(db), "--config", config, *options])
        assert result.exit_code == 0, result.output
    assert served == [
        (Scope(None, None, False), True, {"team": 1}),
        (Scope(None, ("me",), True), False, {}),
    ]


def test_read_only_on_a_missing_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    db = tmp_path / "missing.db"
    result = CliRunner().invoke(cli, ["mcp", "--db", str(db), "--read-only"])
    assert result.exit_code == 1 and "Error:" in result.output
    assert not db.exists()


def test_without_the_sdk_the_command_names_the_extra(monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)
    result = CliRunner().invoke(cli, ["mcp", "--db", "unused.db"])
    assert result.exit_code == 2 and "engramdb[server]" in result.output
