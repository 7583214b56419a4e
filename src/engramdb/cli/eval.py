"""``engram eval``: offline evaluation runs and report comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from engramdb.cli import cli
from engramdb.cli._options import progress_bar
from engramdb.cli.cluster import backend_option

__all__: list[str] = []

KIND_CHOICES = (
    "beir",
    "multihop",
    "locomo",
    "longmemeval",
    "updates",
    "needle",
    "sort",
    "recognition",
    "retention",
    "tools",
)
"""The same names as ``engramdb.eval.KINDS`` (kept literal so ``engram --help`` stays light)."""
RERANK_CHOICES = ("lambdarank", "mmr")
"""The same names as ``engramdb.eval.runner.RERANK_SUFFIXES``."""


class _EvalGroup(click.Group):
    """``engram eval PATH ...`` runs an evaluation; ``engram eval compare A B`` compares."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] != "--help":
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _ints(value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(v.replace("_", "")) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from exc


def _floats(value: str | None) -> tuple[float, ...]:
    if not value:
        return ()
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from exc


def _rerankers(value: str | None) -> tuple[str, ...]:
    names = tuple(v.strip() for v in (value or "").split(",") if v.strip())
    unknown = [n for n in names if n not in RERANK_CHOICES]
    if unknown:
        raise click.BadParameter(
            f"unknown reranker(s) {', '.join(unknown)}; valid: {', '.join(RERANK_CHOICES)}"
        )
    return names


@cli.group("eval", cls=_EvalGroup)
def eval_group() -> None:
    """Measure recall quality and speed offline, with every channel side by side.

    \b
    engram eval PATH [OPTIONS]        run an evaluation (same as `engram eval run`)
    engram eval compare A.json B.json show metric deltas between two reports

    \b
    Example:
        engram eval ../shared/data/scifact --db /tmp/scifact.db --out scifact.json
        engram eval ../shared/data/gutenberg --kind needle --sizes 100,1000 --out needle.json
        engram eval compare before.json after.json
    """


@eval_group.command("run")
@click.argument("path", type=click.Path())
@click.option(
    "--kind",
    type=click.Choice(KIND_CHOICES),
    help="Data set family or probe [default: from the path].",
)
@click.option(
    "--channels",
    default="lexical,dense,hybrid",
    show_default=True,
    help="Channels to compare: lexical, dense, graph, hybrid (lexical + dense), hybrid+graph "
    "(all three fused); a graph channel builds the graph on the eval store (graph extra). "
    "A +rerank or +mmr suffix, always last, reranks a channel: hybrid+graph+rerank.",
)
@click.option(
    "--rerank",
    help="Rerankers to add as channels: lambdarank (<channel>+rerank, rerank extra) and/or "
    "mmr (<channel>+mmr), e.g. lambdarank,mmr.",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 5),
    help="Also run each channel recalled in up to N steps, as <channel>@N (a channel may "
    "name its own: hybrid+graph@2).",
)
@click.option(
    "--clues",
    help="What the steps of <channel>@N channels add to the query: phrases (graph bridges), "
    "terms (RM3), centroid (Rocchio), llm; comma-separated [default: phrases,terms with the "
    "graph, else terms].",
)
@click.option(
    "--alpha",
    "alphas",
    help="Conformal error rates, e.g. 0.05,0.1,0.2: recall again with coverage=1-α and "
    "report coverage and set size per α (beir, multihop, locomo).",
)
@click.option(
    "--unanswerable-holdout",
    "unanswerable",
    type=click.IntRange(min=1),
    help="Make N judged queries unanswerable (their relevant documents are left out, in a "
    "namespace of their own) and report abstention (beir, multihop).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Queries (or probe items) to run.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random choice.")
@click.option(
    "--sizes",
    help="Needle haystack sizes, SORT excerpt words or retention distractors, e.g. 100,1000.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option(
    "--markdown", type=click.Path(dir_okay=False), help="Also write the Markdown summary here."
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    help="Write PNG plots into this folder (plots extra).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="Store file to reuse (caches embeddings) [default: a temporary one].",
)
@click.option(
    "--cluster",
    metavar="ADDR",
    help="Run on a cluster instead of one store: local (a Ray instance on this machine), "
    "auto or ray://HOST:PORT.",
)
@click.option(
    "--shards",
    type=click.IntRange(min=1),
    help="Shards of the new cluster [default: 1] (with --cluster).",
)
@click.option(
    "--db-root",
    type=click.Path(file_okay=False),
    help="The cluster's folder, kept (with --cluster) [default: a temporary one].",
)
@backend_option
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Engine TOML config.")
@click.option(
    "--embedder",
    type=click.Choice(["minilm-int8", "hash"]),
    help="Embedder [default: from the config].",
)
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def run(path: str, **opts: Any) -> None:
    """Evaluate a data set folder (or LongMemEval file) and print a Markdown summary.

    Kinds: beir (nDCG@10, recall@10/100, MRR@10), multihop (recall@2/5, all-recall@5),
    locomo (turn recall@1/5/10/20, MRR@10 and session recall per category, abstention on
    category 5), longmemeval (a JSON file: session recall_any/recall_all, nDCG@10 and
    turn recall per question type, abstention on _abs questions), updates (LoCoMo layout
    plus truth.jsonl: current@1, stale@1, also as of an earlier time), and probes built
    from a book folder: needle, sort, recognition, retention.

    \b
    Example:
        engram eval ../shared/data/musique --kind multihop --out musique.json --plots plots/
        engram eval longmemeval_s.json --kind longmemeval --limit 50 --out lme.json
        engram eval ../shared/data/scifact --channels hybrid --rerank lambdarank,mmr \\
            --alpha 0.05,0.1,0.2 --unanswerable-holdout 150 --out scifact-precision.json
        engram eval ../shared/data/scifact --cluster local --shards 4 --out scifact-4.json
        engram eval ../shared/data/musique --kind multihop --channels hybrid+graph --steps 2
    """
    from engramdb.eval import EvalOptions, evaluate, to_markdown

    if opts["plots"]:
        from engramdb.eval.plots import require_matplotlib

        require_matplotlib()
    embedder = opts["embedder"]
    options = EvalOptions(
        kind=opts["kind"],
        channels=tuple(opts["channels"].split(",")),
        rerank=_rerankers(opts["rerank"]),
        steps=opts["steps"],
        clues=tuple(c.strip() for c in (opts["clues"] or "").split(",") if c.strip()),
        alphas=_floats(opts["alphas"]),
        unanswerable=opts["unanswerable"] or 0,
        limit=opts["limit"],
        seed=opts["seed"],
        sizes=_ints(opts["sizes"]),
        db=opts["db"],
        config=opts["config"],
        embed={"model": embedder} if embedder else None,
        cluster=opts["cluster"],
        shards=opts["shards"],
        db_root=opts["db_root"],
        cluster_backend=opts["backend"],
    )
    with progress_bar(opts["progress"]) as bar:
        report = evaluate(path, options, progress=bar)
    _write(report, summary=to_markdown(report), opts=opts)


def _write(report: Any, *, summary: str, opts: dict[str, Any]) -> None:
    """Print the summary and write the requested files."""
    click.echo(summary)
    if opts["out"]:
        click.echo(f"wrote {report.save(opts['out'])}", err=True)
    if opts["markdown"]:
        target = Path(opts["markdown"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(summary + "\n", encoding="utf-8")
        click.echo(f"wrote {target}", err=True)
    if opts["plots"]:
        from engramdb.eval.plots import write_plots

        for written in write_plots(report, opts["plots"]):
            click.echo(f"wrote {written}", err=True)


@eval_group.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
def compare(a: str, b: str) -> None:
    """Show every metric of two reports side by side with its delta (B - A).

    \b
    Example:
        engram eval compare baseline.json candidate.json
    """
    from engramdb.eval import compare_reports, comparison_markdown, load_report

    result = compare_reports(
        load_report(a), load_report(b), a_name=Path(a).stem, b_name=Path(b).stem
    )
    click.echo(comparison_markdown(result), nl=False)
