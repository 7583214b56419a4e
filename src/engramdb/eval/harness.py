"""``evaluate``: load a data set, ingest it into a fresh store, recall, score, report.

Example:
    >>> from pathlib import Path
    >>> from engramdb.eval import EvalOptions, evaluate
    >>> options = EvalOptions(channels=("lexical",), embed={"model": "hash", "dim": 64})
    >>> report = evaluate(Path("tests/data/eval/tiny_beir"), options)  # doctest: +SKIP
    >>> report.metrics["lexical"]["ndcg@10"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engramdb import ClusterMemory, EngineConfig, InvalidInputError, Memory
from engramdb._optional import require
from engramdb.eval.books import load_books, load_sentences
from engramdb.eval.conversations import load_locomo
from engramdb.eval.datasets import KINDS, checksum, detect_kind, load_beir, load_multihop
from engramdb.eval.longmemeval import evaluate_longmemeval, load_longmemeval
from engramdb.eval.needle import evaluate_needle
from engramdb.eval.order import evaluate_sort
from engramdb.eval.precision import check_alphas
from engramdb.eval.recognition import evaluate_recognition
from engramdb.eval.report import Report, versions
from engramdb.eval.retention import evaluate_retention
from engramdb.eval.retrieval import MULTIHOP_METRICS, evaluate_locomo, evaluate_retrieval
from engramdb.eval.runner import (
    DEFAULT_CHANNELS,
    Progress,
    RunContext,
    TaskResult,
    check_channels,
    rerank_channels,
    split_channel,
    step_channels,
    uses_graph,
)
from engramdb.eval.tools import evaluate_tools, load_tools
from engramdb.eval.updates import evaluate_updates, load_updates

__all__ = ["EvalOptions", "evaluate"]

ConfigLike = EngineConfig | Mapping[str, Any] | str | Path | None
CONFORMAL_KINDS = ("beir", "multihop", "locomo")
"""Kinds that support ``alphas`` (conformal passes)."""
HOLDOUT_KINDS = ("beir", "multihop")
"""Kinds that support ``unanswerable`` (LoCoMo has category 5 instead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalOptions:
    """How to run an evaluation.

    Attributes:
        kind: one of :data:`~engramdb.eval.datasets.KINDS`; inferred from the path when
            ``None`` (the book probes must be named).
        channels: channels compared side by side; ``<channel>+rerank`` (LambdaRank,
            ``rerank`` extra) and ``<channel>+mmr`` are the channel reranked.
        rerank: rerankers (``"lambdarank"``, ``"mmr"``) to add as channels: each plain
            channel reranked by each of them (see :func:`~engramdb.eval.runner.rerank_channels`).
        steps: recall in steps: each channel without a step count is also run as
            ``<channel>@steps`` (see :func:`~engramdb.eval.runner.step_channels`).
        clues: the clue kinds of the ``<channel>@N`` channels (``"phrases"``, ``"terms"``,
            ``"centroid"``, ``"llm"``); empty for recall's default.
        alphas: conformal error rates; each adds a recall pass per channel with
            ``coverage=1-α`` and ``metrics[channel]["conformal"][str(α)]`` (beir,
            multihop, locomo).
        unanswerable: how many judged queries to make unanswerable by leaving their
            relevant documents out of the store, for ``metrics[channel]["abstention"]``
            (beir, multihop); 0 for none.
        limit: cap on queries or probe items (see each kind); ``None`` for all.
        seed: seed of every random choice.
        sizes: needle haystack sizes, SORT excerpt lengths or retention distractor counts.
        db: store file to use (and keep, so embeddings are cached across runs); a fresh
            temporary store when ``None``.
        config: engine configuration (an EngineConfig, a mapping or a TOML path).
        embed: ``[embed]`` overrides, e.g. ``{"model": "hash", "dim": 64}`` for tests.
        cluster: run on a cluster instead of one store: its Ray address (``"local"``
            starts or joins a Ray instance on this machine, ``"auto"``, ``"ray://HOST:PORT"``).
        shards: the number of shards of a new cluster (default 1; an existing one at
            ``db_root`` opens as it is).
        db_root: the cluster's folder (kept); a temporary one, removed afterwards, when
            ``None``.
        cluster_backend: ``"ray"``, or ``"local"`` for shards in this process (tests).

    Raises:
        InvalidInputError: an unknown kind, channel or reranker, a limit or size below 1,
            an α outside (0, 1) or a negative ``unanswerable``; ``shards`` or ``db_root``
            without ``cluster``, ``cluster`` with ``db``, or α on a cluster.
        MissingDependencyError: a LambdaRank channel without lightgbm (``rerank`` extra).
    """

    kind: str | None = None
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    rerank: tuple[str, ...] = ()
    steps: int | None = None
    clues: tuple[str, ...] = ()
    alphas: tuple[float, ...] = ()
    unanswerable: int = 0
    limit: int | None = None
    seed: int = 0
    sizes: tuple[int, ...] = ()
    db: str | Path | None = None
    config: ConfigLike = None
    embed: Mapping[str, Any] | None = None
    cluster: str | None = None
    shards: int | None = None
    db_root: str | Path | None = None
    cluster_backend: str = "ray"

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise InvalidInputError(f"unknown kind {self.kind!r}; valid: {', '.join(KINDS)}")
        channels = rerank_channels(check_channels(self.channels), self.rerank)
        channels = check_channels(step_channels(channels, self.steps))
        object.__setattr__(self, "clues", tuple(self.clues))
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "rerank", tuple(self.rerank))
        object.__setattr__(self, "alphas", check_alphas(self.alphas))
        if any(split_channel(c)[1] == "lambdarank" for c in channels):
            require("lightgbm", extra="rerank")
        if self.unanswerable < 0:
            raise InvalidInputError(f"unanswerable must be >= 0, got {self.unanswerable}")
        if self.limit is not None and self.limit < 1:
            raise InvalidInputError(f"limit must be >= 1, got {self.limit}")
        if any(s < 1 for s in self.sizes):
            raise InvalidInputError(f"sizes must be >= 1, got {list(self.sizes)}")
        self._check_cluster()

    def _check_cluster(self) -> None:
        if self.cluster is None:
            if self.shards is not None or self.db_root is not None:
                raise InvalidInputError("shards and db_root go with cluster (--cluster ADDR)")
            return
        if self.db is not None:
            raise InvalidInputError(
                "db is one store, cluster a sharded one: give one of them (the cluster's "
                "folder is db_root)"
            )
        if self.shards is not None and (isinstance(self.shards, bool) or self.shards < 1):
            raise InvalidInputError(f"shards must be >= 1, got {self.shards}")
        if self.alphas:
            raise InvalidInputError(
                "conformal runs (alphas) are not available on a cluster yet: a cluster "
                "keeps no conformal calibration"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Loaded:
    files: tuple[Path, ...]
    run: Callable[[RunContext], TaskResult]
    counts: dict[str, Any] = field(default_factory=dict)


def _load(kind: str, path: Path) -> _Loaded:
    """Read the data set (all checks happen here, before the store is touched)."""
    if kind in ("beir", "multihop"):
        data = load_beir(path) if kind == "beir" else load_multihop(path)
        if kind == "beir":
            return _Loaded(files=data.files, run=lambda ctx: evaluate_retrieval(ctx, data))
        return _Loaded(
            files=data.files, run=lambda ctx: evaluate_retrieval(ctx, data, MULTIHOP_METRICS)
        )
    if kind == "locomo":
        convs = load_locomo(path)
        return _Loaded(files=convs.files, run=lambda ctx: evaluate_locomo(ctx, convs))
    if kind == "longmemeval":
        long = load_longmemeval(path)
        return _Loaded(files=long.files, run=lambda ctx: evaluate_longmemeval(ctx, long))
    if kind == "updates":
        updates = load_updates(path)
        return _Loaded(files=updates.files, run=lambda ctx: evaluate_updates(ctx, updates))
    if kind == "tools":
        tools = load_tools(path)
        return _Loaded(files=tools.files, run=lambda ctx: evaluate_tools(ctx, tools))
    if kind == "recognition":
        sentences, source = load_sentences(path)
        return _Loaded(
            files=(source,), run=lambda ctx: evaluate_recognition(ctx, sentences, source)
        )
    corpus = load_books(path)
    task = {"needle": evaluate_needle, "sort": evaluate_sort, "retention": evaluate_retention}[kind]
    return _Loaded(files=corpus.files, run=lambda ctx: task(ctx, corpus))


def _overrides(options: EvalOptions) -> dict[str, Any]:
    """Config sections the run sets: the embedder, and the graph when a channel uses it."""
    out: dict[str, Any] = {"embed": dict(options.embed)} if options.embed else {}
    if uses_graph(options.channels) or "phrases" in options.clues:
        out["graph"] = {"enabled": True}
    return out


def _open_memory(path: str | Path, options: EvalOptions) -> Memory:
    return Memory.open(path, options.config, **_overrides(options))


def _open_cluster(root: str | Path, options: EvalOptions) -> ClusterMemory:
    assert options.cluster is not None
    overrides = _overrides(options)
    return ClusterMemory.open(
        options.cluster,
        root=root,
        shards=options.shards,
        config=options.config,
        backend=options.cluster_backend,
        home=False,
        **overrides,
    )


@contextmanager
def _open(options: EvalOptions) -> Iterator[Memory | ClusterMemory]:
    if options.cluster is not None:
        if options.db_root is not None:
            with _open_cluster(options.db_root, options) as cluster:
                yield cluster
            return
        with (
            tempfile.TemporaryDirectory(prefix="engram-eval-cluster-") as tmp,
            _open_cluster(tmp, options) as cluster,
        ):
            yield cluster
        return
    if options.db is not None:
        with _open_memory(options.db, options) as mem:
            yield mem
        return
    with (
        tempfile.TemporaryDirectory(prefix="engram-eval-") as tmp,
        _open_memory(Path(tmp) / "eval.db", options) as mem,
    ):
        yield mem


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _cluster(options: EvalOptions, memory: Memory | ClusterMemory) -> dict[str, Any] | None:
    """Where a cluster run ran: its address, shards, backend and kept folder."""
    if options.cluster is None or isinstance(memory, Memory):
        return None
    return {
        "address": options.cluster,
        "shards": len(memory.shards),
        "backend": options.cluster_backend,
        "db_root": str(options.db_root) if options.db_root else None,
    }


def _config(
    kind: str, options: EvalOptions, memory: Memory | ClusterMemory, params: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "channels": list(options.channels),
        "limit": options.limit,
        "seed": options.seed,
        "sizes": list(options.sizes),
        "alphas": list(options.alphas),
        "steps": options.steps,
        "clues": list(options.clues),
        "unanswerable": options.unanswerable,
        "db": str(options.db) if options.db else None,
        "cluster": _cluster(options, memory),
        "embedder": memory.stats().embedder,
        "engine": _plain(dataclasses.asdict(memory.config)),
        "graph": _graph_stats(options, memory),
        "params": dict(params),
    }


def _graph_stats(options: EvalOptions, memory: Memory | ClusterMemory) -> dict[str, Any] | None:
    """The graph's size (phrases, passages, edges) when a channel used it on one store."""
    if not uses_graph(options.channels) or not isinstance(memory, Memory):
        return None
    return dict(memory.graph.stats())


def _check_kind(kind: str, options: EvalOptions) -> None:
    if options.alphas and kind not in CONFORMAL_KINDS:
        raise InvalidInputError(
            f"alphas (conformal runs) need a kind among {', '.join(CONFORMAL_KINDS)}, not {kind}"
        )
    if options.unanswerable and kind not in HOLDOUT_KINDS:
        hint = {
            "locomo": " (LoCoMo's category 5 is unanswerable already)",
            "longmemeval": " (LongMemEval's _abs questions are unanswerable already)",
        }.get(kind, "")
        raise InvalidInputError(
            f"an unanswerable holdout needs a kind among {', '.join(HOLDOUT_KINDS)}, "
            f"not {kind}{hint}"
        )


def evaluate(
    path: str | Path, options: EvalOptions | None = None, *, progress: Progress | None = None
) -> Report:
    """Run one evaluation and return its report.

    The data set is read and checked first; then a store is opened (``options.db`` or a
    temporary one; with ``options.cluster``, a cluster of ``options.shards`` shards), the
    data ingested through :meth:`Memory.add_many`, and every query recalled once per
    channel.

    Args:
        path: the data set folder (or a LongMemEval ``.json`` file).
        options: what to run; defaults to every channel, all queries, seed 0.
        progress: optional ``(stage, done, total)`` callback.

    Raises:
        EvalDataError: the data set is missing, malformed or inconsistent (the message
            names the file and line).
        InvalidInputError: bad options (``alphas`` or ``unanswerable`` for a kind without
            them), or a reused ``db`` filled by a different run.
        ConfigError: a bad engine configuration.
    """
    options = options or EvalOptions()
    folder = Path(path)
    kind = options.kind or detect_kind(folder)
    _check_kind(kind, options)
    loaded = _load(kind, folder)
    digest, per_file = checksum(loaded.files, folder if folder.is_dir() else folder.parent)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with _open(options) as mem:
        ctx = RunContext(
            memory=mem,
            channels=options.channels,
            seed=options.seed,
            limit=options.limit,
            sizes=options.sizes,
            alphas=options.alphas,
            unanswerable=options.unanswerable,
            clues=options.clues,
            progress=progress,
        )
        result = loaded.run(ctx)
        config = _config(kind, options, mem, result.params)
    dataset = {
        "name": folder.resolve().name if folder.is_dir() else folder.stem,
        "path": str(folder),
        "sha256": digest,
        "files": per_file,
        "counts": result.info,
    }
    return Report(
        kind=kind,
        dataset=dataset,
        config=config,
        versions=versions(),
        metrics=result.metrics,
        latency_ms=result.latency_ms,
        ingest=result.ingest,
        series=result.series,
        per_query=result.per_query,
        created=started,
    )
