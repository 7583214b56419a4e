"""The ``engram`` command line: thin commands over :class:`engramdb.Memory`."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from typing import Any, NoReturn

import click

from engramdb._version import __version__
from engramdb.errors import EngramError, MissingDependencyError

__all__ = ["cli", "main"]

_log = logging.getLogger(__name__)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(exc: BaseException, message: str) -> NoReturn:
    """Log ``exc``'s traceback (shown with -vv) and exit 1 with ``Error: message``."""
    _log.debug("engram failed", exc_info=exc)
    raise click.ClickException(_one_line(message)) from exc


def _stdout_closed() -> None:
    """The reader of stdout went away (``engram recall x | head -1``): stop quietly.

    Point stdout at /dev/null so that Python's final flush does not fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        pass


class _Group(click.Group):
    """The one place that turns errors into one-line messages and exit codes.

    ``EngramError`` → exit 1 with its message; a missing optional dependency → exit 2.
    Unexpected ``sqlite3.Error``, ``OSError``, ``RecursionError`` and ``MemoryError`` →
    exit 1 with a one-line message too: no traceback reaches the user (``-vv`` logs it).
    A closed stdout (``| head``) ends the command quietly with exit 1.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MissingDependencyError as exc:
            _log.debug("engram failed", exc_info=exc)
            click.echo(f"Error: {_one_line(str(exc))}", err=True)
            ctx.exit(2)
        except EngramError as exc:
            _fail(exc, f"{exc} [{exc.name}]")
        except BrokenPipeError:
            _stdout_closed()
            ctx.exit(1)
        except sqlite3.Error as exc:
            _fail(exc, f"SQLite failed on the store: {exc} [sqlite3.{type(exc).__name__}]")
        except OSError as exc:
            _fail(exc, f"{exc} [{type(exc).__name__}]")
        except RecursionError as exc:
            _fail(exc, f"the input is nested too deeply to process ({exc}) [RecursionError]")
        except MemoryError as exc:
            _fail(exc, f"out of memory{f' ({exc})' if str(exc) else ''} [MemoryError]")


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
from engramdb.cli import cluster as _cluster  # noqa: E402, F401  (registers commands)
from engramdb.cli import context as _context  # noqa: E402, F401  (registers commands)
from engramdb.cli import eval as _eval  # noqa: E402, F401  (registers commands)
from engramdb.cli import facts as _facts  # noqa: E402, F401  (registers commands)
from engramdb.cli import graph as _graph  # noqa: E402, F401  (registers commands)
from engramdb.cli import index as _index  # noqa: E402, F401  (registers commands)
from engramdb.cli import judge as _judge  # noqa: E402, F401  (registers commands)
from engramdb.cli import keys as _keys  # noqa: E402, F401  (registers commands)
from engramdb.cli import maintain as _maintain  # noqa: E402, F401  (registers commands)
from engramdb.cli import mcp as _mcp  # noqa: E402, F401  (registers commands)
from engramdb.cli import serve as _serve  # noqa: E402, F401  (registers commands)
from engramdb.cli import tools as _tools  # noqa: E402, F401  (registers commands)
from engramdb.cli import transfer as _transfer  # noqa: E402, F401  (registers commands)
