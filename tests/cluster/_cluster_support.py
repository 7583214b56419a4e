"""What the cluster tests share: the seeded SciFact subset and a small embedder."""

from __future__ import annotations

import json
from pathlib import Path

from engramdb import Record

SUBSET = Path(__file__).parents[1] / "data" / "eval" / "scifact_subset"
HASH = {"embed": {"model": "hash", "dim": 64}}


def scifact_records() -> list[Record]:
    """The subset's passages, one un-chunked memory each (as the eval harness adds them)."""
    out = []
    for line in (SUBSET / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        text = f"{doc['title']}. {doc['text']}" if doc.get("title") else doc["text"]
        out.append(Record(text=text, source=doc["_id"], chunk=False))
    return out


def scifact_queries() -> list[str]:
    lines = (SUBSET / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]
