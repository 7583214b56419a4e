"""Ingest throughput next to the bare embedder's throughput on the same texts, same run.

    python bench/ingest.py --kind scifact --n 3000 --rounds 2 --out bench/results/ingest.json
    python bench/ingest.py --kind sentences --n 4000 --sequential --itemise
    python bench/ingest.py --kind document --n 3000
    python bench/ingest.py --kind scifact --n 1000 --graph

Kinds of input:

* ``scifact``: SciFact abstracts (title + text, ../shared/data/scifact), one memory each,
  added with ``Memory.add_many`` (``chunk=False``);
* ``sentences``: Gutenberg texts of every length, mostly short sentences
  (``_vectors.gutenberg_mix(1_001_000)[1000 : 1000 + n]``), one memory each, ``add_many``;
* ``document``: one long text file (the start of War and Peace, cut to give ``n`` chunks)
  added with ``Memory.ingest``, which chunks it.

Each round times (a) ``MiniLMEmbedder.embed_documents`` on the memories' texts (for a
document, its chunks) and (b) the ingest of the same input into a fresh store file (embedding
cache empty), and with ``--sequential`` (c) the same ingest with the embedding done in turn
on the calling thread after recognition instead of beside it (``Writer.pipeline = False``);
the order rotates between rounds so that machine noise hits each. Reports memories/s of
each, the ratio ingest/embedder (target >= 0.9), the write path's steps in microseconds per
memory (its ``Writer.timings``: everything outside the embedder, and the embedder's own
time), and the model's work for the groups the ingest gave the embedder against the bare
embedder's (padded tokens and attention of its batches: 1.0 is the same work). With
``--itemise``, the triggers a memory row fires (lexical index, change log, last id) are
timed apart by inserting the same rows with each one dropped (in a transaction rolled back).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engramdb import Memory, Record
from engramdb.config import load_config
from engramdb.embed import MiniLMEmbedder
from engramdb.embed.onnx import _batches
from engramdb.engine._write import chunk_items
from engramdb.ingest import chunk_text, load_path, normalize_text
from engramdb.store.sqlite import NewMemory

BENCH = Path(__file__).resolve().parent
SHARED = BENCH.parents[1] / "shared" / "data"
DATA = SHARED / "scifact" / "corpus.jsonl.gz"
BOOK = SHARED / "gutenberg" / "books" / "pg2600.txt.gz"  # War and Peace, 3.4 M characters
_EMBED_STEPS = ("embed", "embed_wait")


def load_texts(n: int, data: Path = DATA) -> list[tuple[str, str]]:
    out = []
    with gzip.open(data, "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            out.append((doc["_id"], f"{doc['title']} {doc['text']}".strip()))
            if len(out) >= n:
                break
    return out


class Input:
    """One kind of input: the texts the embedder gets, and the ingest of the same input."""

    def __init__(self, kind: str, n: int, data: Path, folder: Path):
        self.kind = kind
        if kind == "scifact":
            docs = load_texts(n, data)
            self.records = [
                Record(text=t, document=i, source="scifact", chunk=False) for i, t in docs
            ]
        elif kind == "sentences":
            sys.path.insert(0, str(BENCH))
            import _vectors

            texts = _vectors.gutenberg_mix(1_001_000)[1000 : 1000 + n]
            self.records = [Record(text=t, source="gutenberg", chunk=False) for t in texts]
        elif kind == "document":
            self.path = folder / "war-and-peace.txt"
            self.path.write_text(_book_prefix(n), encoding="utf-8")
            self.records = load_path(self.path)
        else:
            raise SystemExit(f"unknown --kind {kind!r}")
        items = chunk_items(self.records, "default", load_config(None))
        self.texts = [it.text for it in items]

    def ingest(self, mem: Memory) -> Any:
        if self.kind == "document":
            return mem.ingest([self.path])
        return mem.add_many(self.records)


def _book_prefix(chunks: int) -> str:
    """The start of the book that the default chunker cuts into ``chunks`` chunks."""
    with gzip.open(BOOK, "rt", encoding="utf-8") as fh:
        text = normalize_text(fh.read())
    pieces = chunk_text(text, load_config(None).chunk)
    if len(pieces) < chunks:
        raise SystemExit(f"the book gives {len(pieces)} chunks, {chunks} asked")
    return text[: pieces[chunks - 1].end]


def time_embedder(embedder: MiniLMEmbedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.embed_documents(texts)
    return time.perf_counter() - start


class _Recording:
    """The embedder, recording the groups of texts it is given."""

    def __init__(self, embedder: MiniLMEmbedder):
        self.inner = embedder
        self.model_id = embedder.model_id
        self.dim = embedder.dim
        self.calls: list[list[str]] = []

    def embed_documents(self, texts: Sequence[str]) -> Any:
        self.calls.append(list(texts))
        return self.inner.embed_documents(texts)

    def embed_queries(self, texts: Sequence[str]) -> Any:
        return self.inner.embed_queries(texts)


def time_ingest(
    embedder: MiniLMEmbedder, source: Input, *, pipeline: bool, graph: bool
) -> tuple[float, dict[str, float], Any, list[list[str]]]:
    """Seconds of one ingest into a fresh store, its steps (seconds), its result and the
    groups of texts it gave the embedder."""
    recording = _Recording(embedder)
    with (
        tempfile.TemporaryDirectory() as tmp,
        Memory.open(Path(tmp) / "b.db", embedder=recording, graph={"enabled": graph}) as mem,
    ):
        writer = mem._writer
        writer.pipeline = pipeline
        writer.timings.reset()
        start = time.perf_counter()
        result = source.ingest(mem)
        took = time.perf_counter() - start
        assert result.added + result.exact + result.near == len(source.texts), result
        return took, dict(writer.timings.seconds), result, recording.calls


def padding(embedder: MiniLMEmbedder, calls: list[list[str]], texts: list[str]) -> dict[str, float]:
    """The model's work for the groups an ingest made, against the bare embedder's on all
    the texts at once (1.0: the same): padded tokens, and padded tokens squared (attention),
    of the batches ``MiniLMEmbedder`` cuts. Noise-free, unlike the times."""
    encoded = embedder._tokenizer.encode_batch(texts)
    counts = {t: len(e.ids) for t, e in zip(texts, encoded, strict=True)}

    def cost(groups: list[list[str]]) -> tuple[int, int]:
        tokens = attention = 0
        for group in groups:
            lengths = [[0] * counts[t] for t in group]
            for rows in _batches(lengths, embedder.batch_size, embedder.max_batch_tokens):
                width = max(len(lengths[i]) for i in rows)
                tokens += len(rows) * width
                attention += len(rows) * width * width
        return tokens, attention

    own = [call for call in calls if all(t in counts for t in call)]  # not graph phrases
    (tokens, attention), (bare_tokens, bare_attention) = cost(own), cost([texts])
    return {
        "padded_tokens_vs_bare": round(tokens / bare_tokens, 4),
        "attention_vs_bare": round(attention / bare_attention, 4),
        "groups": len(own),
    }


def trigger_costs(texts: list[str]) -> dict[str, float]:
    """Microseconds per memory row of each trigger fired by inserting it: the same rows
    inserted with every trigger, and with each one dropped, in transactions rolled back."""
    triggers = {
        "fts5_trigger": "memories_fts_ai",
        "change_log_trigger": "memories_changes_ai",
        "last_id_trigger": "memories_last_id",
    }
    rows = [
        NewMemory(namespace="default", text=t, hash=f"{i:064x}", sighting=_sighting(i), meta={})
        for i, t in enumerate(texts)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        mem = Memory.open(Path(tmp) / "t.db", embed={"model": "hash", "dim": 8})
        try:
            timed = {name: _insert_rows(mem, rows, drop) for name, drop in triggers.items()}
            every = statistics.median(_insert_rows(mem, rows, None) for _ in range(3))
        finally:
            mem.close()
    out = {name: (every - took) / len(rows) * 1e6 for name, took in timed.items()}
    out["row_and_sighting_without_triggers"] = (
        every / len(rows) * 1e6 - sum(out.values()) if rows else 0.0
    )
    return out


def _sighting(i: int) -> Any:
    from engramdb.store.sqlite import NewSighting

    return NewSighting(
        source="bench", document="bench", ordinal=i, start=0, end=1, event_time=None,
        text_hash=f"{i:064x}",
    )  # fmt: skip


class _Rollback(Exception):
    pass


def _insert_rows(mem: Memory, rows: list[NewMemory], drop: str | None) -> float:
    store = mem.store
    took = 0.0
    try:
        with store.atomic():
            if drop is not None:
                store.conn.execute(f"DROP TRIGGER {drop}")
            start = time.perf_counter()
            for row in rows:
                store.insert_memory(row, now=0.0)
            took = time.perf_counter() - start
            raise _Rollback
    except _Rollback:
        pass
    return took


def _per_memory(steps: dict[str, float], n: int) -> dict[str, float]:
    return {k: round(v / n * 1e6, 1) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])}


def _median_steps(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for run in runs for k in run})
    return {k: statistics.median(run.get(k, 0.0) for run in runs) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kind", choices=("scifact", "sentences", "document"), default="scifact")
    parser.add_argument("--n", type=int, default=500, help="memories (for a document: chunks)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data", type=Path, default=DATA, help="SciFact corpus.jsonl.gz")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all)")
    parser.add_argument(
        "--sequential", action="store_true", help="also time the ingest without the pipeline"
    )
    parser.add_argument("--graph", action="store_true", help="with the memory graph on")
    parser.add_argument(
        "--itemise", action="store_true", help="also time each trigger of a memory row"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as folder:
        report = run(args, Input(args.kind, args.n, args.data, Path(folder)))
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


def run(args: argparse.Namespace, source: Input) -> dict[str, Any]:  # noqa: PLR0915 - one report
    """The rounds, and the report."""
    texts = source.texts
    n = len(texts)
    embedder = MiniLMEmbedder(threads=args.threads)
    embedder.embed_documents(texts[:16])  # warm up the session
    runs: dict[str, list[float]] = {"embedder": [], "ingest": []}
    steps: dict[str, list[dict[str, float]]] = {"ingest": []}
    jobs: list[tuple[str, Callable[[], float]]] = [
        ("embedder", lambda: time_embedder(embedder, texts))
    ]

    def ingest(name: str, pipeline: bool) -> Callable[[], float]:
        def job() -> float:
            took, timings, result, calls = time_ingest(
                embedder, source, pipeline=pipeline, graph=args.graph
            )
            steps[name].append(timings)
            groups[name] = calls
            added[name] = result.added
            return took

        return job

    added: dict[str, int] = {}
    groups: dict[str, list[list[str]]] = {}
    jobs.append(("ingest", ingest("ingest", True)))
    if args.sequential:
        runs["sequential"], steps["sequential"] = [], []
        jobs.append(("sequential", ingest("sequential", False)))
    for r in range(args.rounds):
        order = jobs[r % len(jobs) :] + jobs[: r % len(jobs)]
        for name, job in order:
            runs[name].append(job())
        print(
            f"round {r + 1}: "
            + ", ".join(f"{name} {n / runs[name][-1]:.1f}/s" for name, _ in jobs),
            flush=True,
        )
    e = statistics.median(runs["embedder"])
    report: dict[str, Any] = {
        "kind": args.kind,
        "n": n,
        "embedder_per_s": n / e,
        "ingest_per_s": n / statistics.median(runs["ingest"]),
        "ratio": e / statistics.median(runs["ingest"]),
        "rounds": args.rounds,
        "threads": args.threads,
        "graph": args.graph,
        "added": added["ingest"],
        "round_ratios": [
            round(a / b, 3) for a, b in zip(runs["embedder"], runs["ingest"], strict=True)
        ],
    }
    if args.sequential:
        s = statistics.median(runs["sequential"])
        report["sequential_per_s"] = n / s
        report["ratio_sequential"] = e / s
    for name, found in steps.items():
        median = _median_steps(found)
        outside = {k: v for k, v in median.items() if k not in _EMBED_STEPS}
        report[f"{name}_us_per_memory"] = {
            "outside_embedder": round(sum(outside.values()) / n * 1e6, 1),
            "embedder": round(median.get("embed", 0.0) / n * 1e6, 1),
            "waiting_for_embedder": round(median.get("embed_wait", 0.0) / n * 1e6, 1),
            "steps": _per_memory(outside, n),
        }
    report["embedder_work"] = padding(embedder, groups["ingest"], texts)
    if args.itemise:
        report["row_triggers_us_per_memory"] = {
            k: round(v, 1) for k, v in trigger_costs(texts).items()
        }
    return report


if __name__ == "__main__":
    main()
