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
from engramdb.config import MAX_K, RERANKERS
from engramdb.errors import InvalidFilterError
from engramdb.filter import MAX_DEPTH, Filter, parse_filter

__all__ = [
    "DashArgCommand",
    "db_option",
    "default_db_path",
    "emit_json",
    "json_option",
    "k_option",
    "open_memory",
    "parse_where",
    "progress_bar",
    "recall_options",
    "time_arg",
]

F = TypeVar("F", bound=Callable[..., Any])


class DashArgCommand(click.Command):
    """A command whose arguments may start with ``-``: ``engram recall "-v2 flag" -k 3``.

    Click reads every word that starts with ``-`` as an option. Here a word that starts
    with one ``-`` and is none of the command's options is an argument instead, wherever it
    stands, so a query such as ``"-v2 flag"`` or ``"-5 degrees"`` needs no ``--``. Options
    keep working before and after it: ``-k 3``, ``--where '{...}'``, ``--json``,
    ``--coverage=0.9`` and a number glued to a short option (``-k3``); a text value is never
    glued (``-nwork`` is a query: write ``-n work``). Words starting with ``--`` stay options,
    so a mistyped ``--jsn`` is still reported; a query that starts with ``--`` or is exactly
    an option name needs ``--`` before it.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _dash_words_as_arguments(ctx, args, self.get_params(ctx)))


def _dash_words_as_arguments(
    ctx: click.Context, args: list[str], params: list[click.Parameter]
) -> list[str]:
    """``args`` with the arguments after a ``--`` when one of them starts with ``-``.

    Raises:
        click.BadOptionUsage: an option at the end lacks its value (click would otherwise
            take the ``--`` for it).
    """
    options = {name: p for p in params if isinstance(p, click.Option) for name in _names(p)}
    before: list[str] = []
    arguments: list[str] = []
    incomplete: str | None = None
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            arguments += args[i + 1 :]
            break
        option = options.get(word)
        if option is not None:
            values = _value_count(option)
            if i + values >= len(args):
                incomplete = word
            before += args[i : i + 1 + values]
            i += 1 + values
            continue
        if word.startswith("--") or _is_glued_option(word, options):
            before.append(word)  # an option, or a mistyped one that click should report
        else:
            arguments.append(word)
        i += 1
    if not any(word.startswith("-") and word != "-" for word in arguments):
        return args  # nothing to rescue: let click see the words as typed
    if incomplete is not None:
        raise click.BadOptionUsage(incomplete, f"Option {incomplete!r} requires an argument.", ctx)
    return [*before, "--", *arguments]


def _names(option: click.Option) -> list[str]:
    return [*option.opts, *option.secondary_opts]


def _value_count(option: click.Option) -> int:
    return 0 if option.is_flag or option.count else option.nargs


def _is_glued_option(word: str, options: dict[str, click.Option]) -> bool:
    """Whether ``word`` is a short numeric option with its number glued on, like ``-k3``."""
    option = options.get(word[:2])
    if option is None or len(word) == 2 or _value_count(option) != 1:
        return False
    if not isinstance(option.type, click.types.IntParamType | click.types.FloatParamType):
        return False
    try:
        float(word[2:])
    except ValueError:
        return False
    return True


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


def k_option(default: int = 5, help_text: str = "Number of hits.") -> Callable[[F], F]:
    """``-k``: how many hits, from 1 to :data:`engramdb.config.MAX_K` (a usage error otherwise)."""
    return click.option(
        "-k",
        "k",
        type=click.IntRange(1, MAX_K),
        default=default,
        show_default=True,
        help=help_text,
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
            type=click.Choice(list(RERANKERS)),
            default=None,
            help="Rerank the candidates: mmr (diversity) or lambdarank (rerank extra).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@contextmanager
def open_memory(
    db: str | None, config: str | None, *, create: bool, **overrides: Any
) -> Iterator[Memory]:
    """Open the store for one command and close it afterwards.

    Args:
        db: the ``--db`` path, or ``None`` for :func:`default_db_path`.
        config: the ``--config`` TOML path.
        create: make the store when it does not exist: ``True`` for verbs that add
            memories, ``False`` for verbs that only read, so that a mistyped ``--db`` is an
            error rather than a new empty store.
        **overrides: config sections, as for :meth:`Memory.open`.

    Raises:
        StoreNotFoundError: ``create`` is false and there is no store at the path.
        NotAStoreError: the path is not a store, or a parent folder of it is a file.
    """
    path = Path(db) if db else default_db_path()
    mem = Memory.open(path, config, create=create, **overrides)
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


_JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def parse_where(value: str | None) -> Filter | None:
    """Parse and check a ``--where`` JSON filter (before any store is opened).

    Raises:
        InvalidFilterError: the value is not valid JSON, is nested too deeply, or is not a
            valid filter (see :func:`engramdb.filter.parse_filter`).
    """
    if value is None:
        return None
    try:
        data = json.loads(value)
    except RecursionError:
        # The JSON decoder recurses once per nested array or object.
        raise InvalidFilterError(
            "--where is nested too deeply to read (a filter may nest at most "
            f"{MAX_DEPTH} levels, engramdb.filter.MAX_DEPTH)"
        ) from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise InvalidFilterError(f"--where must be a JSON object: {exc}") from None
    if not isinstance(data, dict):
        kind = _JSON_KINDS.get(type(data), type(data).__name__)
        raise InvalidFilterError(
            f'--where must be a JSON object such as \'{{"speaker": "Alice"}}\', got {kind}'
        )
    return parse_filter(data)


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


def time_arg(value: str | None) -> float | str | None:
    """A time option: epoch seconds when it reads as a number, else the text (ISO-8601,
    checked by the engine)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value
