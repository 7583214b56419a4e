"""``engram calibrate`` and ``engram check``: maintenance of a store."""

from __future__ import annotations

import click

from engramdb.cli import cli
from engramdb.cli._options import db_option, emit_json, json_option, open_memory

__all__: list[str] = []


@cli.command()
@click.option("--namespace", default=None, help="Calibrate this namespace (default: the store).")
@click.option(
    "--cues",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="Cue -> memory pairs drawn from the store.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the draw.")
@json_option
@db_option
def calibrate(
    namespace: str | None, cues: int, seed: int, as_json: bool, db: str | None, config: str | None
) -> None:
    """Calibrate relevance for recall --coverage (recall itself never calibrates).

    Draws memories, makes a cue from each, recalls it and stores the scores; recall
    --coverage uses them until the scope's size moves by more than 10% (then it warns
    that the calibration is stale: run this again).

    \b
    Example:
        engram calibrate --namespace work
        engram recall "freeze" --coverage 0.9 --namespace work
    """
    with open_memory(db, config, create=False) as mem:
        cal = mem.calibrate(namespace=namespace, cues=cues, seed=seed)
    if as_json:
        emit_json(
            {
                "scope": cal.scope,
                "memories": cal.memories,
                "cues": len(cal.scores),
                "threshold_0.1": cal.threshold(0.1),
            }
        )
        return
    click.echo(
        f"calibrated {cal.scope!r}: {len(cal.scores)} cues over {cal.memories} memories "
        f"(threshold at 90% coverage: {cal.threshold(0.1):.3f})"
    )


@cli.command()
@db_option
def check(db: str | None, config: str | None) -> None:
    """Check the store file and its indexes (reads the whole file).

    SQLite's integrity check, then the memories against the lexical index's rows and the
    dense index's vectors. Exits 1 and lists the problems when there are any.

    \b
    Example:
        engram check --db team.db
    """
    with open_memory(db, config, create=False) as mem:
        problems = mem.check()
    if problems:
        raise click.ClickException("; ".join(problems))
    click.echo("ok")
