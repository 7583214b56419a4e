"""Shared option bundles and helpers for the CLI commands."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from engramdb import Memory
from engramdb.errors import InvalidFilterError

__all__ = [
    "db_option",
    "default_db_path",
    "emit_json",
    "json_option",
    "k_option",
    "open_memory",
    "parse_where",
    "progress_bar",
    "recall_options",
]

F = TypeVar("F", bound=Callable[..., Any])


def default_db_path() -> Path:
    """``$ENGRAMDB_HOME/memory.db``, else the platform's user data directory."""
    home = os.environ.get("ENGRAMDB_HOME")
    if home:
        return Path(home).expanduser() / "memory.db"
    import platformdirs

    return Path(platformdirs.user_data_dir("engramdb", appauthor=False)) / "memory.db"


def db_option(fn: F) -> F:
    """``--db PATH`` (default: ``$ENGRAMDB_HOME/memory.db`` or the user data dir)."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        default=None,
        help="Store file [default: $ENGRAMDB_HOME/memory.db, else the user data dir].",
    )(
        click.option(
            "--config",
            "config",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="TOML config file (sections: chunk, embed, lexical, recognize, recall, "
            "graph, ann).",
        )(fn)
    )


def json_option(fn: F) -> F:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(fn)


def k_option(fn: F) -> F:
    """``-k``: number of hits."""
    return click.option("-k", "k", type=int, default=5, show_default=True, help="Number of hits.")(
        fn
    )


def recall_options(fn: F) -> F:
    """What narrows and orders a recall: ``--namespace``, ``--where``, ``--min-relevance``,
    ``--coverage`` and ``--rerank`` (validated here, passed to :meth:`Memory.recall`)."""
    options = [
        click.option(
            "--namespace", "-n", default=None, help="Search one namespace [default: all]."
        ),
        click.option("--where", default=None, help='JSON filter, e.g. \'{"speaker": "Alice"}\'.'),
        click.option(
            "--min-relevance",
            type=click.FloatRange(0.0, 1.0),
            default=None,
            help="Keep hits whose calibrated relevance is at least this probability.",
        ),
        click.option(
            "--coverage",
            type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
            default=None,
            help="Conformal coverage, e.g. 0.9: keep hits above the store's threshold "
            "(calibrates).",
        ),
        click.option(
            "--rerank",
            type=click.Choice(["mmr", "lambdarank"]),
            default=None,
            help="Rerank the candidates: mmr (diversity) or lambdarank (rerank extra).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@contextmanager
def open_memory(db: str | None, config: str | None) -> Iterator[Memory]:
    """Open the store for one command and close it afterwards."""
    path = Path(db) if db else default_db_path()
    mem = Memory.open(path, config)
    try:
        yield mem
    finally:
        mem.close()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    """Print a dataclass (or plain data) as JSON."""
    click.echo(json.dumps(_plain(value), ensure_ascii=False, indent=2, default=str))


def parse_where(value: str | None) -> object:
    """Parse a ``--where`` JSON filter.

    Raises:
        InvalidFilterError: the value is not valid JSON.
    """
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise InvalidFilterError(f"--where must be a JSON object: {exc}") from exc


@contextmanager
def progress_bar(
    enabled: bool, labels: dict[str, str] | None = None
) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar on stderr, fed by ``(stage, done, total)`` callbacks."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task((labels or {}).get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update
