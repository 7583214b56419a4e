"""The ``engram`` command line: thin commands over :class:`engramdb.Memory`."""

from __future__ import annotations

import logging
from typing import Any

import click

from engramdb._version import __version__
from engramdb.errors import EngramError, MissingDependencyError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """The one place that turns engramdb errors into messages and exit codes.

    ``EngramError`` → exit 1 with its message; a missing optional dependency → exit 2.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MissingDependencyError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except EngramError as exc:
            raise click.ClickException(f"{exc} [{exc.name}]") from exc


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="engram")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """engramdb: long-term memory for LLM applications and agents.

    \b
    Example:
        engram add notes/ chats.json --namespace work
        engram recall "when did we move the deploy freeze?" -k 5
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Entry point of the ``engram`` console script."""
    cli(prog_name="engram")


from engramdb.cli import memory as _memory  # noqa: E402  (registers commands)

_ = _memory
from engramdb.cli import context as _context  # noqa: E402, F401  (registers commands)
from engramdb.cli import eval as _eval  # noqa: E402, F401  (registers commands)
from engramdb.cli import graph as _graph  # noqa: E402, F401  (registers commands)
from engramdb.cli import index as _index  # noqa: E402, F401  (registers commands)
