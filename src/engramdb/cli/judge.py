"""``engram facts propose``: an LLM judge proposes facts that change (``remote`` extra)."""

from __future__ import annotations

import click

from engramdb.cli import cli
from engramdb.cli._options import db_option, emit_json, json_option, open_memory
from engramdb.recognize.judge import LLMJudge
from engramdb.types import MemoryRecord, Supersession

__all__: list[str] = []


@cli.group()
def facts() -> None:
    """Facts that change: proposals by an LLM judge (see also "engram history" and
    "engram supersede").

    \b
    Example:
        engram facts propose --judge-url http://localhost:8000 --model qwen2.5-7b
    """


def _print(links: list[Supersession], records: dict[int, MemoryRecord]) -> None:
    for link in links:
        new = link.new if link.new is not None else "(forgotten)"
        reason = link.detail.get("reason") or "no reason given"
        click.echo(f"{link.old} -> {new}  {link.detail.get('proposal')}: {reason}")
        for memory_id, role in ((link.old, "old"), (link.new, "new")):
            if memory_id in records:
                click.echo(f"    {role} {memory_id}: {records[memory_id].text}")
    if links:
        click.echo(
            f"{len(links)} proposal(s) recorded as conflicts; nothing was superseded. "
            "Accept one with: engram supersede OLD NEW"
        )
    else:
        click.echo("no proposals")


@facts.command()
@click.option("--judge-url", required=True, help="OpenAI-compatible server (root, /v1 or full).")
@click.option("--model", required=True, help="Chat model name sent to the server.")
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    help="Environment variable holding the server's key.",
)
@click.option("--namespace", "-n", default="default", show_default=True, help="Namespace.")
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=200,
    show_default=True,
    help="Pairs asked at most, most similar first.",
)
@click.option(
    "--min-similarity",
    type=click.FloatRange(-1.0, 1.0),
    default=0.5,
    show_default=True,
    help="Least cosine similarity of a pair's embeddings.",
)
@json_option
@db_option
def propose(
    judge_url: str,
    model: str,
    api_key_env: str,
    namespace: str,
    limit: int,
    min_similarity: float,
    as_json: bool,
    db: str | None,
    config: str | None,
) -> None:
    """Ask an LLM which memories state a new value of an older one's fact in other words
    ("I work for Initech." ... "My job is at Globex now."), and record its answers as
    proposals: conflict links with origin "judge". Nothing is superseded or deleted.

    Pairs asked: valid memories of the namespace with the same speaker, similar
    embeddings, not linked yet; the older one first. Accept a proposal with "engram
    supersede OLD NEW". Needs the remote extra (pip install "engramdb[remote]").

    \b
    Example:
        engram facts propose --judge-url http://localhost:8000 --model qwen2.5-7b
        engram facts propose --judge-url http://localhost:8000 --model m -n work --json
    """
    with (
        LLMJudge(judge_url, model=model, api_key_env=api_key_env) as judge,
        open_memory(db, config, create=False) as mem,
    ):
        links = mem.propose_changes(
            judge, namespace=namespace, limit=limit, min_similarity=min_similarity
        )
        ids = [i for link in links for i in (link.old, link.new) if i is not None]
        records = {r.id: r for r in mem.get_many(ids)}
    if as_json:
        emit_json(links)
        return
    _print(links, records)
