"""``engram context``: a packed, cited context block for a prompt."""

from __future__ import annotations

import json
from typing import cast

import click

from engramdb.cli import cli
from engramdb.cli._options import (
    DashArgCommand,
    db_option,
    json_option,
    k_option,
    open_memory,
    parse_where,
    recall_options,
)
from engramdb.context import Order

__all__: list[str] = []


@cli.command(cls=DashArgCommand)
@click.argument("query")
@click.option("--budget", "budget", type=int, default=1000, show_default=True, help="Token budget.")
@click.option(
    "--order",
    type=click.Choice(["relevance", "edges", "chronological"]),
    default="relevance",
    show_default=True,
    help="Block order: best first, best at both ends, or by event time.",
)
@k_option(20, "Hits to recall.")
@recall_options
@click.option(
    "--tokens",
    "counter",
    default="estimate",
    show_default=True,
    help="Token counter: estimate, tiktoken or tiktoken:<encoding> (context extra).",
)
@json_option
@db_option
def context(
    query: str,
    budget: int,
    order: str,
    k: int,
    namespace: str | None,
    where: str | None,
    min_relevance: float | None,
    coverage: float | None,
    rerank: str | None,
    counter: str,
    as_json: bool,
    db: str | None,
    config: str | None,
) -> None:
    """Recall for QUERY and pack the hits into a cited context within a token budget.

    Prints the context as plain text with a citation line per block (source, position,
    time), or as JSON with --json. Exits 0 with a note on stderr when recall abstains.
    QUERY may start with "-".

    \b
    Example:
        engram context "when did we move the deploy freeze?" --budget 800 --order edges
    """
    condition = parse_where(where)
    with open_memory(db, config, create=False) as mem:
        hits = mem.recall(
            query,
            k=k,
            namespace=namespace,
            where=condition,
            min_relevance=min_relevance,
            coverage=coverage,
            rerank=rerank,
        )
        packed = mem.context(
            hits, budget_tokens=budget, order=cast(Order, order), count_tokens=counter
        )
    if as_json:
        data = packed.as_dict()
        data.update(abstain=hits.abstain, reason=hits.reason)
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    if hits.abstain:
        click.echo(f"abstained: {hits.reason}", err=True)
    elif not packed.blocks:
        click.echo("nothing fits the budget", err=True)
    if packed.text:
        click.echo(packed.text)
