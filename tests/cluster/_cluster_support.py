"""What the cluster tests share: the seeded SciFact subset and a small embedder."""

from __future__ import annotations

import json
from pathlib import Path

from engramdb import Record
from engramdb.cluster import Cluster

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


def held_ids(cluster: Cluster, shard: str | None = None) -> list[int]:
    """The memory ids a shard holds (``None``: every shard, each id checked held once)."""
    if shard is None:
        return cluster._count_ids()
    out: list[int] = []
    after = 0
    while True:
        found, _ = cluster._scatter("keys", {shard: (after, 1000)})
        if not found[shard]:
            return out
        out += [i for i, _, _ in found[shard]]
        after = out[-1]
