"""Build a SPANN index from scratch: heads, closure replicas, posting files, calibration."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._assign import replicas_for
from engramdb.ann.spann._cluster import kmeans
from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._heads import HeadIndex
from engramdb.ann.spann._persist import compacted
from engramdb.ann.spann._postings import PostingFile, pack
from engramdb.ann.spann._state import State
from engramdb.ann.spann._update import merge_small, split_oversize
from engramdb.types import Matrix

__all__ = ["build_state", "graph_params"]

_Ints = npt.NDArray[np.int64]
_CHUNK = 65_536


def graph_params(cfg: SpannConfig, n_heads: int) -> tuple[int, int, int] | None:
    """HNSW parameters for the head index, or ``None`` for exact search."""
    if cfg.head_index == "exact":
        return None
    auto = cfg.head_index == "auto"
    if auto and (n_heads < cfg.hnsw_min_heads or importlib.util.find_spec("hnswlib") is None):
        return None
    return (cfg.hnsw_m, cfg.hnsw_ef_construction, max(cfg.hnsw_ef, 2 * cfg.max_probes))


def _heads(vectors: Matrix, cfg: SpannConfig) -> Matrix:
    n = vectors.shape[0]
    k = max(1, math.ceil(n / cfg.posting_size))
    rng = np.random.default_rng(cfg.seed)
    size = min(n, cfg.kmeans_sample * k)
    sample = np.sort(rng.choice(n, size=size, replace=False)) if size < n else np.arange(n)
    return kmeans(
        np.ascontiguousarray(vectors[sample]),
        k,
        iters=cfg.kmeans_iters,
        balance=cfg.balance,
        seed=cfg.seed,
    )


def _pairs(vectors: Matrix, heads: HeadIndex, cfg: SpannConfig) -> tuple[_Ints, _Ints]:
    """``(head, vid)`` of every replica, in vid order."""
    head_parts, vid_parts = [], []
    for start in range(0, vectors.shape[0], _CHUNK):
        block = vectors[start : start + _CHUNK]
        cand, d2 = heads.search(block, cfg.candidates, threads=-1)
        keep = replicas_for(np.maximum(cand, 0), d2, heads.vectors, cfg) & (cand >= 0)
        r, c = np.nonzero(keep)
        head_parts.append(cand[r, c])
        vid_parts.append(r.astype(np.int64) + start)
    return np.concatenate(head_parts), np.concatenate(vid_parts)


def _write(
    post: PostingFile, vectors: Matrix, heads_of: _Ints, vids: _Ints, cfg: SpannConfig, n_heads: int
) -> _Ints:
    """Lay the lists out head by head; returns the ``(h, 3)`` directory."""
    order = np.argsort(heads_of, kind="stable")
    counts = np.bincount(heads_of, minlength=n_heads).astype(np.int64)
    caps = -(-(counts + (counts * cfg.slack).astype(np.int64) + 1) // post.align) * post.align
    starts = post.alloc(int(caps.sum())) + np.cumsum(caps) - caps
    row_vid = np.full(int(caps.sum()), -1, dtype=np.int64)
    rank = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    row_vid[np.repeat(starts - starts[0], counts) + rank] = vids[order]
    zero = np.zeros(1, dtype=np.uint8)
    for a in range(0, row_vid.size, _CHUNK):
        rv = row_vid[a : a + _CHUNK]
        block = vectors[np.maximum(rv, 0)]
        block[rv < 0] = 0.0
        ents = np.where(rv >= 0, pack(np.maximum(rv, 0), np.broadcast_to(zero, rv.shape)), -1)
        post.write(int(starts[0]) + a, block, ents)
    return np.stack([starts, counts, caps], axis=1)


def build_state(folder: Path, ids: _Ints, vectors: Matrix, cfg: SpannConfig) -> State:
    """Cluster, assign replicas, split and merge lists, and write compact posting files.

    Lists are first laid out in epoch-0 posting files, split (until none is over the limit) and
    merged there (which leaves moved lists behind as garbage), then copied compactly into
    epoch 1 (the first commit removes epoch 0).
    """
    n, dim = vectors.shape
    centres = _heads(vectors, cfg)
    heads = HeadIndex(centres, hnsw=graph_params(cfg, centres.shape[0]))
    heads_of, vids = _pairs(vectors, heads, cfg)
    post = PostingFile(folder, dim, 0, epoch=0, create=True, centre=vectors.mean(axis=0))
    directory = _write(post, vectors, heads_of, vids, cfg, centres.shape[0])
    loc = np.zeros(n, dtype=np.int64)
    order = np.argsort(heads_of, kind="stable")
    counts = directory[:, 1]
    rank = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    loc[vids[order]] = np.repeat(directory[:, 0], counts) + rank
    state = State(post, heads, directory, (ids.copy(), np.zeros(n, dtype=np.uint8), loc), cfg.slack)
    split_oversize(state, cfg)
    merge_small(state, cfg)
    while split_oversize(state, cfg):  # vectors a split reassigned may fill another list
        pass
    final = compacted(state, cfg, folder, reuse_heads=True, epoch=1)
    post.close()
    return final
