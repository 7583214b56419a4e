"""Commands over one store: add, recall, recognize, forget, get, stats."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from engramdb.cli import cli
from engramdb.cli._options import (
    DashArgCommand,
    db_option,
    emit_json,
    json_option,
    k_option,
    open_memory,
    parse_where,
    progress_bar,
    recall_options,
    time_arg,
)
from engramdb.types import Hit

__all__: list[str] = []

_STAGES = {"load": "Loading", "embed": "Embedding"}


def _oneline(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--namespace", "-n", default="default", show_default=True, help="Namespace to add to."
)
@click.option(
    "--include", multiple=True, help="Glob of files to take from directories (repeatable)."
)
@click.option("--exclude", multiple=True, help="Glob of files to skip (repeatable).")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@db_option
def add(
    paths: tuple[str, ...],
    namespace: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    progress: bool,
    db: str | None,
    config: str | None,
) -> None:
    """Remember files and directories (.txt .md .html .json .jsonl).

    Everything is loaded and checked first, then written in one transaction.

    \b
    Example:
        engram add notes/ chats.json --namespace work --exclude "*.tmp"
    """
    started = time.perf_counter()
    with open_memory(db, config, create=True) as mem, progress_bar(progress, _STAGES) as bar:
        result = mem.ingest(
            paths, namespace=namespace, include=include, exclude=exclude, progress=bar
        )
    took = time.perf_counter() - started
    click.echo(
        f"added {result.added}, merged {result.exact} exact + {result.near} near duplicates, "
        f"skipped {result.skipped} already seen ({result.embedded} embedded, {took:.1f}s)"
    )


def _print_hit(rank: int, hit: Hit) -> None:
    pos = hit.position
    where = f"{hit.source or '-'}"
    if pos.ordinal is not None:
        where += f" #{pos.ordinal}"
    why = ", ".join(
        f"step {s.rank}" + (f" via {', '.join(s.phrases)}" if s.phrases else "")
        if c == "step"
        else f"{c} #{s.rank} ({s.score:.3f})"
        for c, s in hit.why.items()
    )
    for link in hit.relations:
        other = link.new if link.old == hit.id else link.old
        relation = {
            ("supersede", True): "superseded by",
            ("supersede", False): "supersedes",
            ("conflict", True): "conflicts with newer",
            ("conflict", False): "conflicts with older",
        }[(link.kind, link.old == hit.id)]
        why += f"{', ' if why else ''}{relation} {other if other is not None else '(forgotten)'}"
    relevance = f"  relevance={hit.relevance:.3f}" if hit.relevance is not None else ""
    click.echo(
        click.style(f"{rank}. [{hit.score:.4f}] ", bold=True)
        + f"{where}  {_when(hit.event_time)}  id={hit.id}{relevance}"
    )
    click.echo(f"   {_oneline(hit.text, 300)}")
    click.echo(click.style(f"   why: {why or '-'}", dim=True))


@cli.command(cls=DashArgCommand)
@click.argument("query")
@k_option()
@recall_options
@click.option("--channels", default=None, help="lexical, dense or hybrid [default: hybrid].")
@click.option(
    "--as-of", default=None, help="Read the memory as it was then (epoch seconds or ISO-8601)."
)
@click.option(
    "--include-superseded", is_flag=True, help="Rank superseded memories where they fall."
)
@click.option(
    "--steps",
    type=click.IntRange(1, 5),
    default=None,
    help="Recall in up to N steps, each adding clues from the hits so far (multi-hop).",
)
@click.option(
    "--clues",
    default=None,
    help="What later steps add: phrases (graph bridges), terms (RM3), centroid, llm; "
    "comma-separated.",
)
@json_option
@db_option
def recall(  # noqa: PLR0913 - the command's options
    query: str,
    k: int,
    namespace: str | None,
    where: str | None,
    channels: str | None,
    min_relevance: float | None,
    coverage: float | None,
    rerank: str | None,
    as_of: str | None,
    include_superseded: bool,
    steps: int | None,
    clues: str | None,
    as_json: bool,
    db: str | None,
    config: str | None,
) -> None:
    """Recall the memories most relevant to QUERY.

    Each hit shows its fused score and calibrated relevance. With --min-relevance or
    --coverage only hits that pass are kept; when none does, recall abstains and says why
    (exit status 0; "abstain" and "reason" in --json). QUERY may start with "-".

    \b
    Example:
        engram recall "when did we move the deploy freeze?" -k 5 --namespace work
        engram recall "who won the 1998 cup?" --min-relevance 0.5 --rerank lambdarank
        engram recall "-v2 flag" -k 3
        engram recall "where was the founder of Acme born?" --channels hybrid+graph --steps 2
    """
    condition = parse_where(where)
    with open_memory(db, config, create=False) as mem:
        hits = mem.recall(
            query,
            k=k,
            namespace=namespace,
            where=condition,
            channels=channels,
            min_relevance=min_relevance,
            coverage=coverage,
            rerank=rerank,
            as_of=time_arg(as_of),
            include_superseded=include_superseded,
            steps=steps,
            clues=clues,
        )
    if as_json:
        emit_json(hits)
        return
    if hits.abstain:
        click.echo(f"abstained: {hits.reason}")
    elif not hits:
        click.echo("no memories matched")
    for rank, hit in enumerate(hits, start=1):
        _print_hit(rank, hit)


@cli.command(cls=DashArgCommand)
@click.argument("text")
@click.option(
    "--namespace",
    "-n",
    default="default",
    show_default=True,
    help="Look in this namespace (where engram add writes by default).",
)
@json_option
@db_option
def recognize(
    text: str, namespace: str | None, as_json: bool, db: str | None, config: str | None
) -> None:
    """Have I seen TEXT before? exact / near-duplicate / new.

    TEXT may start with "-".

    \b
    Example:
        engram recognize "Alice moved the deploy freeze to Friday."
    """
    with open_memory(db, config, create=False) as mem:
        result = mem.recognize(text, namespace=namespace)
    if as_json:
        emit_json(result)
        return
    click.echo(f"{result.kind} (score {result.score:.3f})")
    if result.match is not None:
        m = result.match
        click.echo(
            f"  id={m.id} seen {m.count}x, first in {m.source or '-'}: {_oneline(m.text, 200)}"
        )


@cli.command()
@click.option("--id", "ids", type=int, multiple=True, help="Memory id (repeatable).")
@click.option("--source", default=None, help="Forget everything seen in this source.")
@click.option(
    "--namespace", "-n", default=None, help="Forget a whole namespace (or restrict --where)."
)
@click.option("--where", default=None, help="JSON filter of memories to forget.")
@db_option
def forget(
    ids: tuple[int, ...],
    source: str | None,
    namespace: str | None,
    where: str | None,
    db: str | None,
    config: str | None,
) -> None:
    """Forget memories and everything derived from them.

    \b
    Example:
        engram forget --source notes/old.md
    """
    condition = parse_where(where)
    with open_memory(db, config, create=False) as mem:
        n = mem.forget(
            list(ids) if ids else None, source=source, namespace=namespace, where=condition
        )
    click.echo(f"forgot {n} memories")


@cli.command()
@click.argument("memory_id", type=int)
@db_option
def get(memory_id: int, db: str | None, config: str | None) -> None:
    """Show one memory with every place it was seen, as JSON.

    \b
    Example:
        engram get 42
    """
    with open_memory(db, config, create=False) as mem:
        emit_json(mem.get(memory_id))


@cli.command()
@json_option
@db_option
def stats(as_json: bool, db: str | None, config: str | None) -> None:
    """Counts, sizes and index freshness of the store.

    \b
    Example:
        engram stats --json
    """
    with open_memory(db, config, create=False) as mem:
        s = mem.stats()
    if as_json:
        emit_json(s)
        return
    click.echo(f"store       {s.path} ({s.db_bytes / 1e6:.1f} MB, version {s.data_version})")
    click.echo(f"memories    {s.memories} ({s.sightings} sightings from {s.sources} sources)")
    for ns, n in s.namespaces.items():
        click.echo(f"  {ns:<10} {n}")
    click.echo(f"embedder    {s.embedder} ({s.embeddings} cached vectors)")
    lex = s.lexical
    click.echo(f"lexical     {lex.rows} rows in {lex.fts_table} (tokenizer {lex.tokenizer})")
    dense = s.dense
    click.echo(
        f"dense       {dense.kind}: {dense.count} vectors"
        + (f", {dense.pending} changes not yet folded" if dense.kind == "spann" else "")
        + ("  STALE" if dense.stale else "")
    )
    if s.graph is not None:
        g = s.graph
        click.echo(
            f"graph       {g.passages} passages, {g.phrases} phrases, {g.pair_edges} pair edges, "
            f"{g.synonym_edges} synonym edges ({g.extractor})"
        )
