"""``engram graph``: inspect the memory graph (stats, a phrase's neighbours, a path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from engramdb import Memory
from engramdb.cli import cli
from engramdb.cli._options import (
    DashArgCommand,
    db_option,
    emit_json,
    json_option,
    k_option,
    open_memory,
)
from engramdb.graph.extract import normalize_phrase

__all__: list[str] = []

_SNIPPET = 70


@contextmanager
def _open(db: str | None, config: str | None) -> Iterator[Memory]:
    """Open an existing store with the graph on (memories not in it yet are added first).

    Raises:
        StoreNotFoundError: there is no store at the path (none is created).
    """
    with open_memory(db, config, create=False, graph={"enabled": True}) as mem:
        yield mem


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


@cli.group()
def graph() -> None:
    """Inspect the memory graph of phrases and memories (``graph`` extra).

    \b
    Example:
        engram graph stats
        engram graph neighbors "Marie Curie"
        engram graph path "Pierre Curie" Poland
    """


@graph.command()
@json_option
@db_option
def stats(as_json: bool, db: str | None, config: str | None) -> None:
    """Counts of phrases, memories and edges, and the most connected phrases.

    \b
    Example:
        engram graph stats --json
    """
    with _open(db, config) as mem:
        counts = mem.graph.stats()
        index = mem.graph.index()
        order = index.passages_per_phrase.argsort()[::-1][:10]
        hubs = [(index.phrases[i], int(index.passages_per_phrase[i])) for i in order]
    if as_json:
        emit_json({**counts, "hubs": hubs})
        return
    for key, value in counts.items():
        click.echo(f"{key:>14}  {value}")
    if hubs:
        click.echo("  most memories: " + ", ".join(f"{p} ({n})" for p, n in hubs))


@graph.command(cls=DashArgCommand)
@click.argument("phrase")
@k_option(20, "Neighbours shown.")
@json_option
@db_option
def neighbors(phrase: str, k: int, as_json: bool, db: str | None, config: str | None) -> None:
    """PHRASE's neighbouring phrases (co-occurrence and synonym edges) and its memories.

    \b
    Example:
        engram graph neighbors "Marie Curie" -k 10
    """
    key = normalize_phrase(phrase)
    with _open(db, config) as mem:
        edges = mem.graph.store.neighbors(key, limit=k)
        ids = mem.graph.store.passages_of(key)
        texts = mem.store.texts(ids[:k])
    if as_json:
        emit_json({"phrase": key, "neighbors": edges, "memories": ids})
        return
    if not ids:
        click.echo(f"no phrase {key!r} in the graph")
        return
    for other, kind, weight in edges:
        click.echo(f"{weight:8.2f}  {kind:<8} {other}")
    click.echo(f"in {len(ids)} memories:")
    for memory_id in ids[:k]:
        click.echo(f"  #{memory_id}  {_snippet(texts.get(memory_id, ''))}")


@graph.command(cls=DashArgCommand)
@click.argument("start")
@click.argument("end")
@json_option
@db_option
def path(start: str, end: str, as_json: bool, db: str | None, config: str | None) -> None:
    """The shortest chain of phrases and memories from START to END.

    \b
    Example:
        engram graph path "Pierre Curie" Poland
    """
    a, b = normalize_phrase(start), normalize_phrase(end)
    with _open(db, config) as mem:
        nodes = mem.graph.index().path(a, b)
        ids = [int(n[1:]) for n in nodes if n.startswith("#")]
        texts = mem.store.texts(ids)
    if as_json:
        emit_json({"from": a, "to": b, "path": nodes})
        return
    if not nodes:
        click.echo(f"no path from {a!r} to {b!r}")
        return
    for node in nodes:
        if node.startswith("#"):
            click.echo(f"  {node}  {_snippet(texts.get(int(node[1:]), ''))}")
        else:
            click.echo(node)
