"""Ingest throughput next to the bare embedder's throughput on the same texts, same run.

    python bench/ingest.py --n 500 --rounds 2 --out bench/results/ingest.json

Texts are SciFact abstracts (title + text) from ../shared/data/scifact. Each round times
(a) ``MiniLMEmbedder.embed_documents`` on the texts and (b) ``Memory.add_many`` of the same
texts into a fresh store (embedding cache empty), alternating the order between rounds so
that machine noise hits both. Reports memories/s for each and the ratio (target ≥ 0.8).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

from engramdb import Memory, Record
from engramdb.embed import MiniLMEmbedder

DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact" / "corpus.jsonl.gz"
)


def load_texts(n: int, data: Path = DATA) -> list[tuple[str, str]]:
    out = []
    with gzip.open(data, "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            out.append((doc["_id"], f"{doc['title']} {doc['text']}".strip()))
            if len(out) >= n:
                break
    return out


def time_embedder(embedder: MiniLMEmbedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.embed_documents(texts)
    return time.perf_counter() - start


def time_ingest(embedder: MiniLMEmbedder, docs: list[tuple[str, str]]) -> float:
    records = [Record(text=t, document=i, source="scifact", chunk=False) for i, t in docs]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Memory.open(Path(tmp) / "b.db", embedder=embedder) as mem,
    ):
        start = time.perf_counter()
        result = mem.add_many(records)
        took = time.perf_counter() - start
        assert result.added == len(docs), result
    return took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--data", type=Path, default=DATA, help="SciFact corpus.jsonl.gz")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all)")
    args = parser.parse_args()
    docs = load_texts(args.n, args.data)
    texts = [t for _, t in docs]
    embedder = MiniLMEmbedder(threads=args.threads)
    embedder.embed_documents(texts[:16])  # warm up the session
    emb, ing = [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            emb.append(time_embedder(embedder, texts))
            ing.append(time_ingest(embedder, docs))
        else:
            ing.append(time_ingest(embedder, docs))
            emb.append(time_embedder(embedder, texts))
        print(
            f"round {r + 1}: embedder {len(texts) / emb[-1]:.1f}/s, "
            f"ingest {len(texts) / ing[-1]:.1f}/s"
        )
    e, i = statistics.median(emb), statistics.median(ing)
    report = {
        "n": len(texts),
        "embedder_per_s": len(texts) / e,
        "ingest_per_s": len(texts) / i,
        "ratio": e / i,
        "rounds": args.rounds,
        "threads": args.threads,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
