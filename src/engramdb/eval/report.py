"""The evaluation report: JSON that later runs compare with, and its Markdown summary.

A report holds, at least::

    {"metrics": {"<channel>": {"ndcg@10": ..., "recall@5": ...}},
     "latency_ms": {"<channel>": {"p50": ..., "p99": ...}},
     "config": {...}}

plus the data set checksum, versions, ingest throughput, plot series and per-query rows.
A metric may be a group of numbers, e.g. ``"abstention": {"precision": ..., "recall": ...,
"f1": ...}``; tables and comparisons show it flattened (``abstention/precision``).
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from engramdb import __version__
from engramdb.eval.datasets import EvalDataError, read_json

__all__ = [
    "FORMAT",
    "Comparison",
    "Delta",
    "Report",
    "compare_reports",
    "comparison_markdown",
    "flat_metrics",
    "load_report",
    "to_markdown",
    "versions",
]

FORMAT = 1
"""Version of the report layout."""
_REQUIRED = ("kind", "metrics", "latency_ms", "config")


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """One evaluation run.

    Attributes:
        kind: ``beir``, ``multihop``, ``locomo``, ``longmemeval``, ``updates``, ``needle``,
            ``sort``, ``recognition`` or ``retention``.
        dataset: name, path, ``sha256`` over the files read, per-file digests and counts.
        config: the run's options, the engine configuration and the embedder.
        versions: engramdb, Python, numpy and the model runtime.
        metrics: ``{channel: {metric: value}}``; ``None`` where a metric is undefined; a
            value may be a nested mapping (``abstention``, ``conformal``), see
            :func:`flat_metrics`.
        latency_ms: ``{channel: {"p50", "p99", "mean", "max", "n"}}`` per query.
        ingest: records, memories and seconds of ingest, and records per second.
        series: data for plots (recall@k curves, needle grid, retention curve).
        per_query: ``{channel: [row, ...]}`` with each query's metrics and top ids.
        created: ISO-8601 UTC time of the run.
    """

    kind: str
    dataset: Mapping[str, Any]
    config: Mapping[str, Any]
    versions: Mapping[str, Any]
    metrics: Mapping[str, Mapping[str, Any]]
    latency_ms: Mapping[str, Mapping[str, float | None]]
    ingest: Mapping[str, Any] = field(default_factory=dict)
    series: Mapping[str, Any] = field(default_factory=dict)
    per_query: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    created: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return {
            "format": FORMAT,
            "kind": self.kind,
            "created": self.created,
            "dataset": dict(self.dataset),
            "config": dict(self.config),
            "versions": dict(self.versions),
            "metrics": {c: _plain(m) for c, m in self.metrics.items()},
            "latency_ms": {c: dict(m) for c, m in self.latency_ms.items()},
            "ingest": dict(self.ingest),
            "series": dict(self.series),
            "per_query": {c: list(rows) for c, rows in self.per_query.items()},
        }

    def save(self, path: str | Path) -> Path:
        """Write the report as JSON (parent folders are created)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            json.dumps(self.as_dict(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: str | Path | None = None) -> Report:
        """A report from its JSON data.

        Raises:
            EvalDataError: a required field is missing or ``metrics`` is not a mapping.
        """
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise EvalDataError(f"not an eval report: missing {', '.join(missing)}", path=path)
        if not isinstance(data["metrics"], Mapping) or not all(
            isinstance(m, Mapping) for m in data["metrics"].values()
        ):
            raise EvalDataError("'metrics' must map each channel to its metrics", path=path)
        return cls(
            kind=str(data["kind"]),
            dataset=data.get("dataset", {}),
            config=data["config"],
            versions=data.get("versions", {}),
            metrics=data["metrics"],
            latency_ms=data["latency_ms"],
            ingest=data.get("ingest", {}),
            series=data.get("series", {}),
            per_query=data.get("per_query", {}),
            created=str(data.get("created", "")),
        )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def flat_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """One channel's metrics with nested groups flattened, for display and comparison.

    ``{"ndcg@10": 0.5, "abstention": {"precision": 0.8}}`` →
    ``{"ndcg@10": 0.5, "abstention/precision": 0.8}``.
    """
    return _flat(metrics, sep="/")


def load_report(path: str | Path) -> Report:
    """Read a report written by :meth:`Report.save`.

    Raises:
        EvalDataError: the file is missing, not JSON, or not a report.
    """
    data = read_json(Path(path))
    if not isinstance(data, Mapping):
        raise EvalDataError("not an eval report: expected a JSON object", path=path)
    return Report.from_dict(data, path=path)


def versions() -> dict[str, str]:
    """Versions of engramdb, Python, the platform and the numeric/model runtimes."""
    out = {
        "engramdb": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for package in ("numpy", "onnxruntime", "tokenizers"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


# -- Markdown ----------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _metric_rows(report: Report, channels: Sequence[str]) -> list[list[str]]:
    flat = {c: flat_metrics(report.metrics.get(c, {})) for c in channels}
    names = list(dict.fromkeys(name for c in channels for name in flat[c]))
    rows = [[name] + [_fmt(flat[c].get(name)) for c in channels] for name in names]
    for stat in ("p50", "p99"):
        if any(stat in report.latency_ms.get(c, {}) for c in channels):
            rows.append(
                [f"latency {stat} (ms)"]
                + [_fmt(report.latency_ms.get(c, {}).get(stat), 2) for c in channels]
            )
    return rows


def _header(report: Report) -> list[str]:
    data, cfg = report.dataset, report.config
    digest = str(data.get("sha256", ""))[:12]
    counts = ", ".join(
        f"{k} {_fmt(v)}"
        for k, v in data.get("counts", {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    lines = [f"## engram eval: {report.kind} on {data.get('name', '?')}", ""]
    where = f"- data set: `{data.get('path', '?')}` (sha256 {digest}…)"
    lines.append(where + (f"; {counts}" if counts else ""))
    channels = ", ".join(cfg.get("channels", []))
    lines.append(
        f"- embedder `{cfg.get('embedder', '?')}`; channels {channels}; seed {cfg.get('seed')}; "
        f"limit {_fmt(cfg.get('limit'))}; sizes {cfg.get('sizes') or 'default'}"
    )
    graph = cfg.get("graph")
    if isinstance(graph, Mapping):
        sizes = ", ".join(
            f"{k} {_fmt(v)}"
            for k, v in graph.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
        lines.append(f"- graph `{graph.get('extractor', '?')}`: {sizes}")
    cluster = cfg.get("cluster")
    if isinstance(cluster, Mapping):
        lines.append(
            f"- cluster: {_fmt(cluster.get('shards'))} shards at `{cluster.get('address')}` "
            f"({cluster.get('backend')} backend)"
        )
    ing = report.ingest
    if ing:
        lines.append(
            f"- ingest: {_fmt(ing.get('records'))} records → "
            f"{_fmt(ing.get('memories'))} memories in "
            f"{_fmt(ing.get('seconds'), 1)} s ({_fmt(ing.get('records_per_s'), 1)} records/s; "
            f"{_fmt(ing.get('embedded'))} embedded, {_fmt(ing.get('merged'))} merged)"
        )
    return lines + [""]


def _needle_tables(report: Report) -> list[str]:
    grid = report.series.get("needle")
    if not isinstance(grid, Mapping):
        return []
    lines: list[str] = []
    depths = [f"d={d:.1f}" for d in grid.get("depths", [])]
    for channel in report.metrics:
        cells = grid.get(channel)
        if not isinstance(cells, list):
            continue
        rows = [
            [f"N={_fmt(n)}"] + [_fmt(v, 2) for v in row]
            for n, row in zip(grid.get("sizes", []), cells, strict=False)
        ]
        lines += [f"Needle recall@1, {channel} (rows: haystack size; columns: depth bin)", ""]
        lines += _table(["size", *depths], rows) + [""]
    return lines


BREAKDOWNS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "locomo": ("by_category", "cat{}", "category", ("recall@1", "recall@5", "recall@10", "mrr@10")),
    "longmemeval": (
        "by_type",
        "{}",
        "question type",
        ("recall_any@5", "recall_all@5", "ndcg@10", "turn-recall@10"),
    ),
}
"""Per kind: the count of queries per group in ``dataset.counts``, the group's metric
prefix, its label and the metrics its table shows for each channel."""


def _breakdown_table(report: Report) -> list[str]:
    """Rows: the groups (LoCoMo categories, LongMemEval question types); columns: each
    channel's few headline metrics in that group."""
    if report.kind not in BREAKDOWNS:
        return []
    counts_key, prefix, label, names = BREAKDOWNS[report.kind]
    counts = report.dataset.get("counts", {}).get(counts_key)
    if not isinstance(counts, Mapping) or not counts:
        return []
    channels = list(report.metrics)
    header = [label, "n", *(f"{c} {n}" for c in channels for n in names)]
    rows = [
        [str(group), _fmt(count)]
        + [
            _fmt(report.metrics[c].get(f"{prefix.format(group)}/{n}"))
            for c in channels
            for n in names
        ]
        for group, count in counts.items()
    ]
    return [f"Per {label}", ""] + _table(header, rows) + [""]


def to_markdown(report: Report) -> str:
    """A Markdown summary: the run header, one metrics table (channels side by side),
    a per-group table (LoCoMo categories, LongMemEval question types), and the needle
    depth x size grid when there is one."""
    channels = list(report.metrics)
    lines = _header(report)
    lines += _table(["metric", *channels], _metric_rows(report, channels)) + [""]
    lines += _breakdown_table(report)
    lines += _needle_tables(report)
    if report.kind == "sort":
        lines.append(
            "Reference (Book-SORT, LLM readers): in-context 77–95%, vanilla RAG 55–67%, "
            "humans 56–64%, chance 50%."
        )
        lines.append("")
    return "\n".join(lines)


# -- comparison --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Delta:
    """One metric of one channel in two reports; ``delta = b - a`` when both exist."""

    channel: str
    metric: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        """``b - a``, or ``None`` when either side is missing."""
        if self.a is None or self.b is None:
            return None
        return self.b - self.a


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """Metric and latency deltas between two reports, and what makes them incomparable."""

    a: str
    b: str
    rows: tuple[Delta, ...]
    warnings: tuple[str, ...]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


_COMPARED: dict[str, Any] = {
    "embedder": None,
    "seed": None,
    "limit": None,
    "sizes": None,
    "unanswerable": 0,
}
"""Run options whose difference makes two reports incomparable (value when absent)."""


def _warnings(a: Report, b: Report) -> list[str]:
    out = []
    if a.kind != b.kind:
        out.append(f"different kinds: {a.kind} vs {b.kind}")
    if a.dataset.get("sha256") != b.dataset.get("sha256"):
        out.append("different data set checksums: the runs read different data")
    for key, default in _COMPARED.items():
        va, vb = a.config.get(key, default), b.config.get(key, default)
        if va != vb:
            out.append(f"different {key}: {va!r} vs {vb!r}")
    ea, eb = _flat(a.config.get("engine", {})), _flat(b.config.get("engine", {}))
    for key in sorted(set(ea) | set(eb)):
        if ea.get(key) != eb.get(key):
            out.append(f"different engine setting {key}: {ea.get(key)!r} vs {eb.get(key)!r}")
    return out


def _flat(value: Any, prefix: str = "", *, sep: str = ".") -> dict[str, Any]:
    """``{"recall": {"fusion": "rrf"}}`` -> ``{"recall.fusion": "rrf"}``."""
    if not isinstance(value, Mapping):
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(_flat(inner, f"{prefix}{sep}{key}" if prefix else str(key), sep=sep))
    return out


def compare_reports(a: Report, b: Report, *, a_name: str = "A", b_name: str = "B") -> Comparison:
    """Every metric and latency percentile of both reports, channel by channel.

    Nested metric groups are compared number by number under their flattened names
    (:func:`flat_metrics`). Rows follow ``a``'s order; metrics only in ``b`` come last.
    Differences in data set checksum, kind, embedder, seed, limit, sizes, unanswerable
    holdout or any engine setting are returned as warnings.
    """
    rows: list[Delta] = []
    channels = list(dict.fromkeys([*a.metrics, *b.metrics]))
    for channel in channels:
        ma, mb = flat_metrics(a.metrics.get(channel, {})), flat_metrics(b.metrics.get(channel, {}))
        for name in dict.fromkeys([*ma, *mb]):
            rows.append(
                Delta(
                    channel=channel, metric=name, a=_number(ma.get(name)), b=_number(mb.get(name))
                )
            )
        la, lb = a.latency_ms.get(channel, {}), b.latency_ms.get(channel, {})
        for stat in ("p50", "p99"):
            if stat in la or stat in lb:
                rows.append(
                    Delta(
                        channel=channel,
                        metric=f"latency_ms.{stat}",
                        a=_number(la.get(stat)),
                        b=_number(lb.get(stat)),
                    )
                )
    return Comparison(a=a_name, b=b_name, rows=tuple(rows), warnings=tuple(_warnings(a, b)))


def comparison_markdown(comparison: Comparison) -> str:
    """The comparison as a Markdown table (``Δ = B - A``), warnings first."""
    lines = [f"> warning: {w}" for w in comparison.warnings]
    if lines:
        lines.append("")
    rows = []
    for row in comparison.rows:
        delta = row.delta
        shown = "–" if delta is None else f"{delta:+.4f}"
        rows.append([row.channel, row.metric, _fmt(row.a), _fmt(row.b), shown])
    lines += _table(["channel", "metric", comparison.a, comparison.b, "Δ"], rows)
    return "\n".join(lines) + "\n"
