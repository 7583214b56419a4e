"""Build a SPANN index from scratch: heads, closure replicas, posting files, calibration."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._assign import select_replicas
from engramdb.ann.spann._cluster import kmeans
from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._heads import HeadIndex
from engramdb.ann.spann._persist import compacted
from engramdb.ann.spann._postings import PostingFile, pack
from engramdb.ann.spann._search import Scan, prune
from engramdb.ann.spann._state import State
from engramdb.ann.spann._update import merge_small, split_oversize
from engramdb.types import Matrix

__all__ = ["build_state", "calibrate", "graph_params"]

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
        keep = select_replicas(
            np.maximum(cand, 0),
            d2,
            heads.vectors,
            replicas=cfg.replicas,
            closure_eps=cfg.closure_eps,
            rng_factor=cfg.rng_factor,
        ) & (cand >= 0)
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

    Lists are first laid out in epoch-0 posting files, split and merged there (which leaves
    moved lists behind as garbage), then copied compactly into epoch 1 (the first commit
    removes epoch 0).
    """
    n, dim = vectors.shape
    centres = _heads(vectors, cfg)
    heads = HeadIndex(centres, hnsw=graph_params(cfg, centres.shape[0]))
    heads_of, vids = _pairs(vectors, heads, cfg)
    post = PostingFile(folder, dim, 0, epoch=0, create=True)
    directory = _write(post, vectors, heads_of, vids, cfg, centres.shape[0])
    loc = np.zeros(n, dtype=np.int64)
    order = np.argsort(heads_of, kind="stable")
    counts = directory[:, 1]
    rank = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    loc[vids[order]] = np.repeat(directory[:, 0], counts) + rank
    state = State(post, heads, directory, (ids.copy(), np.zeros(n, dtype=np.uint8), loc), cfg.slack)
    split_oversize(state, cfg)
    merge_small(state, cfg)
    final = compacted(state, cfg, folder, reuse_heads=True, epoch=1)
    post.close()
    return final


def calibrate(state: State, vectors: Matrix, cfg: SpannConfig) -> dict[str, Any]:
    """Choose ε2 on held-out rows so that recall@10 reaches ``target_recall``.

    The calibration queries are ``calibration_queries`` random stored vectors; their own id is
    excluded from both the exact and the approximate top-10. The smallest ε2 on a grid whose
    recall meets the target is kept; if none does, pruning is off (``prune_eps = None``).
    """
    n = vectors.shape[0]
    k = 10
    if cfg.prune_eps != "auto" or n <= 2 * k:
        eps = None if cfg.prune_eps == "auto" else cfg.prune_eps
        return {"prune_eps": eps, "calibrated": False}
    rng = np.random.default_rng(cfg.seed + 1)
    pick = rng.choice(n, size=min(cfg.calibration_queries, n), replace=False)
    queries = np.ascontiguousarray(vectors[pick])
    exact = _exact_top(queries, vectors, pick, k)
    probes, d2 = state.heads.search(queries, cfg.max_probes)
    lists = state.lists()
    results: list[dict[str, float]] = []
    for eps in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, None):
        keep = prune(probes, d2, eps)
        got, _ = Scan(lists, k + 1).run(queries, probes, keep)
        hits = [
            len(set(g[g != state.ext[p]][:k].tolist()) & set(e.tolist()))
            for g, e, p in zip(got, state.ext[exact], pick, strict=True)
        ]
        recall = float(np.mean(hits)) / k
        results.append(
            {
                "eps": -1.0 if eps is None else eps,
                "recall": recall,
                "mean_probes": float(keep.sum(axis=1).mean()),
            }
        )
        if recall >= cfg.target_recall:
            return {"prune_eps": eps, "calibrated": True, "recall": recall, "grid": results}
    return {"prune_eps": None, "calibrated": True, "recall": results[-1]["recall"], "grid": results}


def _exact_top(queries: Matrix, vectors: Matrix, self_rows: _Ints, k: int) -> _Ints:
    """Rows of the exact top-``k`` inner products, each query's own row excluded."""
    best_s = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.empty((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, vectors.shape[0], _CHUNK):
        s = queries @ vectors[start : start + _CHUNK].T
        inside = (self_rows >= start) & (self_rows < start + s.shape[1])
        s[np.flatnonzero(inside), self_rows[inside] - start] = -np.inf
        cols = np.argpartition(-s, k - 1, axis=1)[:, :k] if s.shape[1] > k else None
        if cols is None:
            cols = np.broadcast_to(np.arange(s.shape[1]), s.shape)
        cand_s = np.concatenate([best_s, np.take_along_axis(s, cols, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, cols + start], axis=1)
        top = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, top, axis=1)
        best_i = np.take_along_axis(cand_i, top, axis=1)
    return best_i
