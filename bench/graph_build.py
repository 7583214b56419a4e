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

``--no-ner`` adds a third store per collection, built with ``graph.ner`` off (noun chunks
only, see :class:`engramdb.config.GraphConfig`), in the same run so its ratio to the same
plain ingest compares. ``--limit N`` keeps the first N records of each collection (a sample).

``--components N`` instead times spaCy's extraction on the first N SciFact abstracts: the
process CPU seconds of the tokenizer, of each pipeline component and of the phrase
collection, then of the whole ``SpacyExtractor.extract`` with NER on and off at each
``--spacy-batch`` size.

Usage::

    PYTHONPATH=src python bench/graph_build.py --out bench/results/graph_build.json
    PYTHONPATH=src python bench/graph_build.py --sets musique-300 musique
    PYTHONPATH=src python bench/graph_build.py --sets musique scifact --no-ner
    PYTHONPATH=src python bench/graph_build.py --components 500 --spacy-batch 64 256
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engramdb import Memory, Record
from engramdb.graph.extract import SpacyExtractor, _sentence_phrases

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


def records_of(name: str, limit: int | None = None) -> list[Record]:
    if name == "musique-300":
        return musique(300)[:limit]
    if name == "musique":
        return musique(limit)
    if name == "scifact":
        return scifact()[:limit]
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS)}")


VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"enabled": False},
    "graph": {"enabled": True},
    "graph_no_ner": {"enabled": True, "ner": False},
}


def ingest(
    path: Path, records: Sequence[Record], *, graph: dict[str, Any], batch: int
) -> dict[str, Any]:
    """Add ``records`` to a new store at ``path``; time it (models loaded beforehand)."""
    with Memory.open(path, **BUILD, graph=graph) as mem:
        mem.embedder.embed_documents(["warm up"])  # not through the store: its cache stays cold
        if graph["enabled"]:
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
        if graph["enabled"]:
            channel = mem.graph
            out["extractor"] = channel.extractor.name
            out["graph_parts_s"] = {
                k: round(v, 2) for k, v in sorted(getattr(channel, "seconds", {}).items())
            }
            out["graph"] = channel.store.counts()
    return out


def run_set(
    name: str, batch: int, graph_first: bool, *, no_ner: bool, limit: int | None
) -> dict[str, Any]:
    records = records_of(name, limit)
    labels = ["plain", "graph", *(["graph_no_ner"] if no_ner else [])]
    order = labels[::-1] if graph_first else labels
    log(f"{name}: {len(records)} records, order {', '.join(order)}")
    result: dict[str, Any] = {"records": len(records), "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        for label in order:
            result[label] = ingest(
                Path(tmp) / f"{label}.db", records, graph=VARIANTS[label], batch=batch
            )
            log(name, label, result[label])
    plain = result["plain"]
    for label in labels[1:]:
        suffix = "" if label == "graph" else label[len("graph") :]
        run = result[label]
        result[f"ratio_wall{suffix}"] = round(run["wall_s"] / plain["wall_s"], 3)
        result[f"ratio_cpu{suffix}"] = round(run["cpu_s"] / plain["cpu_s"], 3)
        log(
            name,
            label,
            "ratio wall",
            result[f"ratio_wall{suffix}"],
            "cpu",
            result[f"ratio_cpu{suffix}"],
        )
    result["passages_per_s"] = {
        label: round(len(records) / result[label]["wall_s"], 1) for label in labels
    }
    return result


def components(n: int, batch_sizes: Sequence[int]) -> dict[str, Any]:
    """CPU seconds of each spaCy step on the first ``n`` SciFact abstracts."""
    texts = [r.text for r in scifact()[:n]]
    extractor = SpacyExtractor()
    nlp = extractor.nlp
    extractor.extract(["Warm up the parser."])
    lines = [line for t in texts for line in t[: extractor.max_chars].splitlines() if line.strip()]
    parts: Counter[str] = Counter()
    step = extractor.batch_size
    for start in range(0, len(lines), step):
        cpu = time.process_time()
        docs = [nlp.make_doc(line) for line in lines[start : start + step]]
        parts["tokenizer"] += time.process_time() - cpu
        for label, proc in nlp.pipeline:
            cpu = time.process_time()
            docs = list(proc.pipe(docs, batch_size=step))
            parts[label] += time.process_time() - cpu
        cpu = time.process_time()
        for doc in docs:
            if extractor._pos is not None:  # noqa: SLF001 - the emulated attribute ruler
                extractor._pos.tag(doc)  # noqa: SLF001
            _sentence_phrases(doc, [], [])
        parts["phrases"] += time.process_time() - cpu
    log("components", dict(parts))
    out: dict[str, Any] = {
        "abstracts": len(texts),
        "lines": len(lines),
        "components_cpu_s": {k: round(v, 2) for k, v in parts.items()},
        "components_total_cpu_s": round(sum(parts.values()), 2),
        "extract": {},
    }
    for ner in (True, False):
        for size in batch_sizes:
            ex = SpacyExtractor(ner=ner, batch_size=size)
            ex.extract(["Warm up the parser."])
            cpu, wall = time.process_time(), time.perf_counter()
            found = ex.extract(texts)
            row = {
                "cpu_s": round(time.process_time() - cpu, 2),
                "wall_s": round(time.perf_counter() - wall, 2),
                "phrases": len({p for e in found for p in e.phrases}),
                "named": len({p for e in found for p in e.named}),
                "mentions": sum(sum(e.phrases.values()) for e in found),
            }
            out["extract"][f"{ex.name} batch {size}"] = row
            log(ex.name, size, row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--batch", type=int, default=256, help="records per add_many call")
    ap.add_argument("--limit", type=int, default=None, help="first N records of each set")
    ap.add_argument("--no-ner", action="store_true", help="also build with graph.ner off")
    ap.add_argument("--components", type=int, default=0, metavar="N")
    ap.add_argument("--spacy-batch", type=int, nargs="+", default=[64])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if args.components:
        report["components"] = components(args.components, args.spacy_batch)
    else:
        report["target"] = "graph build time <= 2x plain ingest of the same texts"
        for number, name in enumerate(args.sets):
            report[name] = run_set(
                name,
                args.batch,
                graph_first=number % 2 == 1,
                no_ner=args.no_ner,
                limit=args.limit,
            )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
