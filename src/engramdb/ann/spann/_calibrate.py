"""Calibrate query-aware pruning (ε2) and the probe cap K on held-out vectors.

SPANN's pruning ratio depends on the embedding model: for unit-norm text embeddings the useful
ε2 is 0.1–0.3, not the paper's 7 (SIFT). At build time, ``calibration_queries`` random stored
vectors serve as queries (each one's own id excluded); for each query and each true neighbour
the rank of the first probed list that holds it is computed once, so that the recall of any
(K, ε2) pair is a cheap count. The smallest K among ``max_probes · (1, 1.5, 2, 3, 4)`` and then the
smallest ε2 on a grid whose recall reaches ``target_recall + calibration_margin`` are kept.

With ``prefilter="auto"`` the sign-bit prefilter is calibrated on the same queries at the chosen
(K, ε2): the smallest fraction on :data:`PREFILTER_GRID` whose kept rows (the nearest by
Hamming distance of their sign bits) lose at most :data:`PREFILTER_LOSS` of recall@10 against
all the candidates; ``0`` (no prefilter) when none does. Sign bits carry little on some data
(e.g. tight isotropic clusters), so this is measured, not assumed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._postings import unpack_vid
from engramdb.ann.spann._quant import kernel, signs
from engramdb.ann.spann._search import FLOOR as _FLOOR
from engramdb.ann.spann._search import prune
from engramdb.ann.spann._state import State
from engramdb.types import Matrix

__all__ = ["EPS_GRID", "PREFILTER_GRID", "PREFILTER_LOSS", "calibrate"]

EPS_GRID = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
PREFILTER_GRID = (0.05, 0.1, 0.2, 0.3)
PREFILTER_LOSS = 0.0025
"""Recall@10 the prefilter may lose against scanning every candidate's int8 code."""
_CAP_STEPS = (1, 1.5, 2, 3, 4)
_K = 10
_CHUNK = 65_536

_Ints = npt.NDArray[np.int64]


def calibrate(state: State, vectors: Matrix, cfg: SpannConfig) -> dict[str, Any]:
    """The calibration record: ``prune_eps``, ``max_probes``, the recall reached and the grid.

    ``vectors`` are the build's rows (row ``i`` is vid ``i``). Without ``prune_eps="auto"``
    (or with too little data) the configured values are recorded as they are.
    """
    n = vectors.shape[0]
    if cfg.prune_eps != "auto" or n <= 2 * _K or cfg.calibration_queries < 1:
        eps = None if cfg.prune_eps == "auto" else cfg.prune_eps
        return {
            "prune_eps": eps,
            "max_probes": cfg.max_probes,
            "calibrated": False,
            "prefilter": 0.0,
        }
    rng = np.random.default_rng(cfg.seed + 1)
    pick = rng.choice(n, size=min(cfg.calibration_queries, n), replace=False)
    queries = np.ascontiguousarray(vectors[pick])
    truth = _exact_top(queries, vectors, pick)
    probes, d2 = state.heads.search(queries, cfg.max_probes * _CAP_STEPS[-1])
    record = _probes(state, probes, d2, truth, cfg)
    if cfg.prefilter == "auto":
        keep = prune(
            probes[:, : record["max_probes"]], d2[:, : record["max_probes"]], record["prune_eps"]
        )
        record.update(
            _prefilter(state, queries, truth, probes[:, : record["max_probes"]], keep, cfg)
        )
    return record


def _probes(
    state: State, probes: _Ints, d2: Matrix, truth: _Ints, cfg: SpannConfig
) -> dict[str, Any]:
    """The (K, ε2) part of the record."""
    first = _first_ranks(state, probes, truth)
    goal = min(1.0, cfg.target_recall + cfg.calibration_margin)
    grid: list[dict[str, float]] = []
    for cap in (int(cfg.max_probes * step) for step in _CAP_STEPS):
        for eps in (*EPS_GRID, None):
            kept = prune(probes[:, :cap], d2[:, :cap], eps).sum(axis=1)
            recall = float((first < kept[:, None]).mean())
            grid.append(
                {
                    "max_probes": cap,
                    "eps": -1.0 if eps is None else eps,
                    "recall": recall,
                    "mean_probes": float(kept.mean()),
                }
            )
            if recall >= goal:
                return {
                    "prune_eps": eps,
                    "max_probes": cap,
                    "calibrated": True,
                    "recall": recall,
                    "grid": grid,
                }
    return {
        "prune_eps": None,
        "max_probes": cfg.max_probes * _CAP_STEPS[-1],
        "calibrated": True,
        "recall": grid[-1]["recall"],
        "grid": grid,
    }


def _prefilter(
    state: State,
    queries: Matrix,
    truth: _Ints,
    probes: _Ints,
    keep: npt.NDArray[np.bool_],
    cfg: SpannConfig,
) -> dict[str, Any]:
    """The prefilter part of the record: the fraction chosen and each one's recall."""
    post, module = state.post, kernel()
    if post.signs is None or post.centre is None or module is None:
        return {"prefilter": 0.0}
    floor = _FLOOR * (_K + 2 * _K * cfg.replicas + 16 + cfg.rescore)
    found = np.zeros(len(PREFILTER_GRID) + 1)
    bits = signs(queries, post.centre)
    for i in range(queries.shape[0]):
        heads = probes[i][keep[i]]
        rows = np.concatenate(
            [np.arange(state.start[h], state.start[h] + state.rows[h]) for h in heads.tolist()]
            or [np.empty(0, dtype=np.int64)]
        )
        if rows.size == 0:
            continue
        vids = unpack_vid(post.entries[rows])
        order = np.argsort(
            np.asarray(module.hamming(bits[i], post.signs[rows], "bin8")), kind="stable"
        )
        for j, frac in enumerate((*PREFILTER_GRID, 1.0)):
            take = max(int(frac * rows.size), floor)
            found[j] += np.isin(truth[i], vids[order[:take]]).sum()
    recall = found / truth.size
    chosen = next(
        (
            f
            for f, r in zip(PREFILTER_GRID, recall, strict=False)
            if recall[-1] - r <= PREFILTER_LOSS
        ),
        0.0,
    )
    return {
        "prefilter": chosen,
        "prefilter_recall": dict(
            zip(map(str, (*PREFILTER_GRID, 1.0)), recall.tolist(), strict=True)
        ),
    }


def _first_ranks(state: State, probes: _Ints, truth: _Ints) -> _Ints:
    """``(q, k)``: the rank of the first probed list holding each true neighbour (big if none)."""
    never = probes.shape[1] + 1
    out = np.full(truth.shape, never, dtype=np.int64)
    for i in range(probes.shape[0]):
        heads = probes[i][probes[i] >= 0]
        parts = [unpack_vid(state.list_rows(int(h))[1]) for h in heads.tolist()]
        if not parts:
            continue
        vids = np.concatenate(parts)
        ranks = np.repeat(np.arange(heads.size), [p.size for p in parts])
        hit = np.isin(vids, truth[i])
        best = dict.fromkeys(truth[i].tolist(), never)
        for vid, rank in zip(vids[hit].tolist(), ranks[hit].tolist(), strict=True):
            best[vid] = min(best[vid], rank)
        out[i] = [best[v] for v in truth[i].tolist()]
    return out


def _exact_top(queries: Matrix, vectors: Matrix, self_rows: _Ints) -> _Ints:
    """Rows of the exact top-10 inner products, each query's own row excluded."""
    best_s = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.empty((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, vectors.shape[0], _CHUNK):
        s = queries @ vectors[start : start + _CHUNK].T
        inside = (self_rows >= start) & (self_rows < start + s.shape[1])
        s[np.flatnonzero(inside), self_rows[inside] - start] = -np.inf
        take = min(_K, s.shape[1])
        cols = np.argpartition(-s, take - 1, axis=1)[:, :take]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, cols, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, cols + start], axis=1)
        top = np.argsort(-cand_s, axis=1, kind="stable")[:, :_K]
        best_s = np.take_along_axis(cand_s, top, axis=1)
        best_i = np.take_along_axis(cand_i, top, axis=1)
    return best_i
