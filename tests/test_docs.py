"""Every CLI command has help with an example, and docs/cli.md matches the --help texts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click
from click.testing import CliRunner

from engramdb.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_command_has_help_with_an_example() -> None:
    gen = _load_generator()
    for path in gen._commands(cli):  # type: ignore[attr-defined]
        out = CliRunner().invoke(cli, [*path, "--help"]).output
        command = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.commands[name]
        if not isinstance(command, click.Group):
            assert "Example:" in out, path


def test_cli_reference_is_current() -> None:
    gen = _load_generator()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == gen.render(), "docs/cli.md is stale: run python scripts/gen_cli_docs.py"  # type: ignore[attr-defined]
