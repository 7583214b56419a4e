"""Graph build time against plain ingest of the same texts, same run (target: ratio <= 2).

For each collection, two fresh stores (so the embedding cache is cold for the texts) get the
same records through ``Memory.add_many`` in calls of ``--batch`` records (recognition off,
default MiniLM embedder): one with the graph off (plain ingest) and one with the graph on
(the graph is built at write time). The order of the two alternates between collections so
that machine noise hits both. Models are loaded before timing.

Reported per collection: wall seconds and process CPU seconds of each ingest and their
ratios (graph / plain), the graph's parts (``GraphChannel.seconds``: phrase extraction,
phrase embedding, node and edge rows, synonym search), the write path's steps
(``Writer.timings``) and the graph's counts.

Collections: ``musique-300`` (the first 300 MuSiQue passages), ``musique`` (all 1,890,
``shared/data/musique``) and ``scifact`` (5,183 abstracts, ``shared/data/scifact``).

Usage::

    PYTHONPATH=src python bench/graph_build.py --out bench/results/graph_build.json
    PYTHONPATH=src python bench/graph_build.py --sets musique-300 musique
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engramdb import Memory, Record

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BUILD: dict[str, Any] = {"recognize": {"enabled": False}}
SETS = ("musique-300", "musique", "scifact")


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


def musique(limit: int | None = None) -> list[Record]:
    rows = json.loads((DATA / "musique" / "musique_train_corpus.json").read_text("utf-8"))
    return [
        Record(text=f"{r['title']}\n{r['text']}", document=str(i), source="musique", chunk=False)
        for i, r in enumerate(rows[:limit])
    ]


def scifact() -> list[Record]:
    out = []
    with gzip.open(DATA / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            text = f"{row.get('title') or ''} {row['text']}".strip()
            out.append(Record(text=text, document=row["_id"], source="scifact", chunk=False))
    return out


def records_of(name: str) -> list[Record]:
    if name == "musique-300":
        return musique(300)
    if name == "musique":
        return musique()
    if name == "scifact":
        return scifact()
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")


def ingest(path: Path, records: Sequence[Record], *, graph: bool, batch: int) -> dict[str, Any]:
    """Add ``records`` to a new store at ``path``; time it (models loaded beforehand)."""
    with Memory.open(path, **BUILD, graph={"enabled": graph}) as mem:
        mem.embedder.embed_documents(["warm up"])  # not through the store: its cache stays cold
        if graph:
            mem.graph.extractor.extract(["Warm up the parser."])
        writer = mem._writer  # noqa: SLF001 - the write path's step timings
        writer.timings.reset()
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(records), batch):
            mem.add_many(records[start : start + batch], namespace="bench")
        out: dict[str, Any] = {
            "wall_s": round(time.perf_counter() - wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "memories": mem.stats().memories,
            "steps_s": {k: round(v, 2) for k, v in sorted(writer.timings.seconds.items())},
        }
        if graph:
            channel = mem.graph
            out["graph_parts_s"] = {
                k: round(v, 2) for k, v in sorted(getattr(channel, "seconds", {}).items())
            }
            out["graph"] = channel.store.counts()
    return out


def run_set(name: str, batch: int, graph_first: bool) -> dict[str, Any]:
    records = records_of(name)
    log(f"{name}: {len(records)} records, graph {'first' if graph_first else 'second'}")
    result: dict[str, Any] = {"records": len(records), "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        for graph in (True, False) if graph_first else (False, True):
            label = "graph" if graph else "plain"
            result[label] = ingest(Path(tmp) / f"{label}.db", records, graph=graph, batch=batch)
            log(name, label, result[label])
    plain, graph_run = result["plain"], result["graph"]
    result["ratio_wall"] = round(graph_run["wall_s"] / plain["wall_s"], 3)
    result["ratio_cpu"] = round(graph_run["cpu_s"] / plain["cpu_s"], 3)
    result["passages_per_s"] = {
        "plain": round(len(records) / plain["wall_s"], 1),
        "graph": round(len(records) / graph_run["wall_s"], 1),
    }
    log(name, "ratio wall", result["ratio_wall"], "cpu", result["ratio_cpu"])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--batch", type=int, default=256, help="records per add_many call")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "target": "graph build wall time <= 2x plain ingest of the same texts",
    }
    for number, name in enumerate(args.sets):
        report[name] = run_set(name, args.batch, graph_first=number % 2 == 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
