"""One graph from several: a sharded store's graph, phrase nodes global.

Each shard keeps the graph of its own memories (phrase nodes, mentions, pairs, and the
synonym edges among its own phrases). :func:`merge_snapshots` joins their snapshots into
the graph one store holding every memory would have: a phrase is one node wherever it is
mentioned, mentions and pair supports add up, and synonym edges are found again over all
phrases, so that two shards' phrases with close meanings are linked too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engramdb.graph.sqlite import GraphSnapshot, synonym_pairs

__all__ = ["merge_snapshots"]


def merge_snapshots(
    parts: Sequence[GraphSnapshot], *, synonym_threshold: float, min_synonym_chars: int
) -> GraphSnapshot:
    """The union of graphs over disjoint sets of memories.

    Phrases are ordered by first appearance (shard order, then each shard's node order),
    passages by memory id. A synonym edge links every pair of eligible phrases (at least
    ``min_synonym_chars`` alphanumeric characters, with a vector) whose cosine exceeds
    ``synonym_threshold``, as one store's graph records them.
    """
    index: dict[str, int] = {}
    for part in parts:
        for phrase in part.phrases:
            index.setdefault(phrase, len(index))
    phrases = tuple(index)
    dim = max((p.vectors.shape[1] for p in parts if p.vectors.size), default=0)
    vectors = np.zeros((len(phrases), dim), dtype=np.float32)
    every = [p.memory_ids for p in parts]
    memory_ids = np.unique(np.concatenate(every)) if every else np.empty(0, dtype=np.int64)
    memory_ids = memory_ids.astype(np.int64)
    passage = {int(m): i for i, m in enumerate(memory_ids.tolist())}
    mentions: list[np.ndarray] = []
    pair_weight: dict[tuple[int, int], float] = {}
    for part in parts:
        remap = np.asarray([index[p] for p in part.phrases], dtype=np.int64)
        if part.vectors.size:
            vectors[remap] = part.vectors
        if len(part.mentions):
            rows = part.mentions.copy()
            rows[:, 0] = remap[rows[:, 0]]
            rows[:, 1] = [passage[int(part.memory_ids[j])] for j in rows[:, 1].tolist()]
            mentions.append(rows)
        for (a, b), weight in zip(part.pairs.tolist(), part.pair_weights.tolist(), strict=True):
            key = (min(remap[a], remap[b]), max(remap[a], remap[b]))
            pair_weight[key] = pair_weight.get(key, 0.0) + float(weight)
    eligible = np.asarray(
        [
            i
            for i, p in enumerate(phrases)
            if sum(ch.isalnum() for ch in p) >= min_synonym_chars and vectors[i].any()
        ],
        dtype=np.int64,
    )
    found = (
        synonym_pairs(vectors[eligible], vectors[eligible], threshold=synonym_threshold)
        if len(eligible)
        else []
    )
    pairs = sorted(pair_weight)
    return GraphSnapshot(
        phrases=phrases,
        vectors=vectors,
        memory_ids=memory_ids,
        mentions=(np.concatenate(mentions) if mentions else np.empty((0, 4))).astype(np.int64),
        pairs=np.asarray(pairs, dtype=np.int64).reshape(-1, 2),
        pair_weights=np.asarray([pair_weight[p] for p in pairs], dtype=np.float32),
        synonyms=np.asarray(
            [(eligible[i], eligible[j]) for i, j, _ in found], dtype=np.int64
        ).reshape(-1, 2),
        synonym_scores=np.asarray([s for _, _, s in found], dtype=np.float32),
    )
