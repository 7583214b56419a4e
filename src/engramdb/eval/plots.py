"""PNG plots of a report (the ``plots`` extra: matplotlib).

``write_plots`` draws whatever the report holds: recall@k curves per channel, latency
histograms per channel, the needle depth x size grid, the SORT accuracy by distance and
the retention (interference) curve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engramdb._optional import require
from engramdb.eval.report import Report

__all__ = ["require_matplotlib", "write_plots"]


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend.

    Raises:
        MissingDependencyError: matplotlib is not installed (``pip install "engramdb[plots]"``).
    """
    matplotlib = require("matplotlib", extra="plots")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", extra="plots")


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _recall_curves(plt: Any, report: Report, out: Path) -> list[Path]:
    curves = report.series.get("recall@k")
    if not isinstance(curves, Mapping) or not curves:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    for channel, points in curves.items():
        ks = [int(k) for k in points]
        ax.plot(ks, [points[str(k)] for k in ks], marker="o", label=channel)
    ax.set_xscale("log")
    ticks = sorted({int(k) for points in curves.values() for k in points})
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_title(f"{report.kind}: recall@k by channel")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return [_save(plt, fig, out / "recall_at_k.png")]


def _latency(plt: Any, report: Report, out: Path) -> list[Path]:
    samples = {
        channel: [float(r["ms"]) for r in rows if isinstance(r.get("ms"), (int, float))]
        for channel, rows in report.per_query.items()
    }
    samples = {c: s for c, s in samples.items() if s}
    if not samples:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    every = [v for values in samples.values() for v in values]
    span = (min(every), max(every))
    for channel, values in samples.items():
        ax.hist(values, bins=40, range=span, alpha=0.5, label=channel)
    ax.set_xlabel("latency per query (ms)")
    ax.set_ylabel("queries")
    ax.set_title(f"{report.kind}: latency by channel")
    ax.legend()
    return [_save(plt, fig, out / "latency.png")]


def _needle(plt: Any, report: Report, out: Path) -> list[Path]:
    grid = report.series.get("needle")
    if not isinstance(grid, Mapping):
        return []
    channels = [c for c in report.metrics if isinstance(grid.get(c), list)]
    if not channels:
        return []
    fig, axes = plt.subplots(
        1, len(channels), figsize=(4 * len(channels) + 1, 3.2), squeeze=False, layout="constrained"
    )
    sizes: Sequence[int] = grid.get("sizes", [])
    for ax, channel in zip(axes[0], channels, strict=True):
        cells = [[v if v is not None else float("nan") for v in row] for row in grid[channel]]
        image = ax.imshow(cells, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(
            range(len(grid.get("depths", []))), [f"{d:.1f}" for d in grid["depths"]], fontsize=7
        )
        ax.set_yticks(range(len(sizes)), [f"{n:,}" for n in sizes])
        ax.set_xlabel("depth")
        ax.set_title(f"needle recall@1: {channel}")
    axes[0][0].set_ylabel("haystack size")
    fig.colorbar(image, ax=axes[0].tolist())
    fig.savefig(out / "needle_grid.png", dpi=120)
    plt.close(fig)
    return [out / "needle_grid.png"]


def _lines(
    plt: Any, report: Report, out: Path, key: str, spec: tuple[str, str, str, str]
) -> list[Path]:
    series = report.series.get(key)
    if not isinstance(series, Mapping):
        return []
    x_key, xlabel, ylabel, name = spec
    xs = series.get(x_key, [])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, ys in series.items():
        if label == x_key or not isinstance(ys, list):
            continue
        ax.plot(
            range(len(xs)),
            [y if y is not None else float("nan") for y in ys],
            marker="o",
            label=label,
        )
    ax.set_xticks(
        range(len(xs)), [f"{x:,}" if isinstance(x, int) else str(x) for x in xs], fontsize=8
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return [_save(plt, fig, out / name)]


def write_plots(report: Report, directory: str | Path) -> list[Path]:
    """Draw every plot the report has data for into ``directory``.

    Returns:
        The PNG files written.

    Raises:
        MissingDependencyError: matplotlib is not installed (``pip install "engramdb[plots]"``).
    """
    plt = require_matplotlib()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = (
        _recall_curves(plt, report, out) + _latency(plt, report, out) + _needle(plt, report, out)
    )
    written += _lines(
        plt,
        report,
        out,
        "retention",
        ("distractors", "distractors added", "cued recall@1 / recognition AUC", "retention.png"),
    )
    written += _lines(
        plt, report, out, "sort", ("bins", "distance between segments", "accuracy", "sort.png")
    )
    return written
