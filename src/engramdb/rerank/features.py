"""Per-candidate features for learned reranking, relative to the query's own candidates.

Everything comes from the hits themselves (``Hit.why``, ``Hit.score``, text) and the query
text, so features cost well under a millisecond per candidate and need no model. Each
feature is a rank, a ratio or a difference *within one query's candidate list*, never a raw
score: a BM25 score's scale depends on the store (its size, its documents' lengths, how rare
the query's words are there) and a collection's typical lengths and similarities differ from
another's, so raw values learned on one collection mislead on the next.

What a feature depends on:

* ``fused_*``, ``<channel>_rank_log``, ``overlap``, ``dense_gap``: the hit and the top
  candidate only. Extra unrelated memories in the store that rank below the hit leave them
  unchanged (``dense_gap`` is a difference of cosines, which the store does not affect).
* ``lexical_rel``: BM25 score over the top BM25 score; BM25's IDF grows with the store's size,
  so the ratio moves a little when unrelated memories are added (every query word gets
  rarer by the same count), not with the score's scale.
* ``*_z``, ``z_sum`` (the channels' standardised scores averaged: score fusion),
  ``overlap_idf``, ``overlap_rel``, ``len_ratio_log``: normalised over the whole
  candidate list (mean and spread, how many candidates hold a query word, the best overlap,
  the median length), so they move when the candidate list itself changes.

Channels a hit was not found by read as absent: present 0, rank past the candidate depth,
score the lowest score that channel gave.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from engramdb.types import Hit, Matrix

__all__ = ["FEATURES", "MONOTONE", "RANKED_CHANNELS", "candidate_features", "terms"]

ABSENT_RANK = 200
RANKED_CHANNELS: tuple[str, ...] = ("lexical", "dense")
"""The channels whose ranks and scores are features (the default hybrid recall's)."""
_WORD_RE = re.compile(r"[^\W_]+")
_STOP_WORDS = (
    "a an and are as at be but by for from has have how in is it its of on or that the "
    "their there these this to was were what when where which who why will with did does do "
    "you your i me my we our he she his her they them not no can"
)
_STOP = frozenset(_STOP_WORDS.split())
_STEM = 5

FEATURES: tuple[str, ...] = (
    "fused_rank_log",
    "fused_rel",
    *(f"{c}_{f}" for c in RANKED_CHANNELS for f in ("present", "rank_log", "rel", "z")),
    "z_sum",
    "dense_gap",
    "overlap",
    "overlap_idf",
    "overlap_rel",
    "len_ratio_log",
    "agreement",
    "lexical_margin",
    "dense_margin",
)
"""Feature names, in column order."""

MONOTONE: dict[str, int] = {
    "fused_rank_log": -1,
    "fused_rel": 1,
    "lexical_rank_log": -1,
    "dense_rank_log": -1,
    "lexical_rel": 1,
    "dense_rel": 1,
    "z_sum": 1,
    "dense_gap": -1,
    "overlap": 1,
    "overlap_idf": 1,
}
"""Features a candidate's score may only rise (1) or only fall (-1) with."""


def terms(text: str) -> set[str]:
    """Content words of ``text``, lower-cased and cut to their first five letters.

    The cut is a crude stemmer: "suppressing" and "suppression" both read ``"suppr"``.
    """
    return {w[:_STEM] for w in _WORD_RE.findall(text.lower()) if w not in _STOP}


def _channel(hits: Sequence[Hit], channel: str) -> np.ndarray:
    """Columns present, rank_log, rel (score / top score), z (standardised score); and the
    score itself (used for ``dense_gap``, not a feature)."""
    n = len(hits)
    out = np.zeros((n, 5), dtype=np.float64)
    seen = [h.why.get(channel) for h in hits]
    found = [s is not None and math.isfinite(s.score) for s in seen]
    if not any(found):
        out[:, 1] = math.log1p(ABSENT_RANK)
        return out
    scores = np.asarray([s.score for s, f in zip(seen, found, strict=True) if f and s])
    top, low = float(scores.max()), float(scores.min())
    mean, spread = float(scores.mean()), float(scores.std())
    for i, (cs, f) in enumerate(zip(seen, found, strict=True)):
        score, rank = (cs.score, cs.rank) if f and cs is not None else (low, ABSENT_RANK)
        out[i] = (
            float(f),
            math.log1p(rank),
            score / top if top > 0 else 0.0,
            (score - mean) / spread if spread > 0 else 0.0,
            score,
        )
    return out


def _margin(hits: Sequence[Hit], channel: str) -> float:
    """(top − second) / top of a channel's scores among the candidates."""
    ranked = sorted(
        (cs.score for h in hits if (cs := h.why.get(channel)) is not None), reverse=True
    )
    if len(ranked) < 2 or ranked[0] <= 0:
        return 0.0
    return (ranked[0] - ranked[1]) / ranked[0]


def _agreement(hits: Sequence[Hit], depth: int = 10) -> float:
    """Share of the lexical top ``depth`` that is also in the dense top ``depth``."""
    tops = [
        {h.id for h in hits if (cs := h.why.get(c)) is not None and cs.rank <= depth}
        for c in RANKED_CHANNELS
    ]
    return len(tops[0] & tops[1]) / depth


def _text_columns(qterms: set[str], hits: Sequence[Hit]) -> np.ndarray:
    """Columns overlap, overlap_idf, overlap_rel, len_ratio_log."""
    n = len(hits)
    words = [_WORD_RE.findall(h.text.lower()) for h in hits]
    bags = [{w[:_STEM] for w in ws} for ws in words]
    q = sorted(qterms)
    has = np.asarray([[t in bag for t in q] for bag in bags], dtype=np.float64).reshape(n, len(q))
    if q:
        df = has.sum(axis=0)
        weight = np.log((n + 1) / (df + 0.5))
        overlap = has.mean(axis=1)
        overlap_idf = has @ weight / weight.sum() if weight.sum() > 0 else overlap
    else:
        overlap = overlap_idf = np.zeros(n)
    best = float(overlap_idf.max()) if n else 0.0
    overlap_rel = overlap_idf / best if best > 0 else np.zeros(n)
    lengths = np.asarray([len(ws) + 1 for ws in words], dtype=np.float64)
    len_ratio = np.log(lengths / float(np.median(lengths)))
    return np.column_stack([overlap, overlap_idf, overlap_rel, len_ratio])


def candidate_features(query: str, hits: Sequence[Hit]) -> Matrix:
    """Feature matrix of ``hits`` for ``query``, shape ``(len(hits), len(FEATURES))``.

    Args:
        query: the query text.
        hits: the candidates, best first by fused score.
    """
    n = len(hits)
    if n == 0:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    fused = np.asarray([h.score for h in hits], dtype=np.float64)
    top = float(fused.max())
    cols = [
        np.log1p(np.arange(1, n + 1, dtype=np.float64))[:, None],
        (fused / top if top > 0 else np.zeros(n))[:, None],
    ]
    channels = {c: _channel(hits, c) for c in RANKED_CHANNELS}
    cols += [channels[c][:, :4] for c in RANKED_CHANNELS]
    z = np.column_stack([channels[c][:, 3] for c in RANKED_CHANNELS])
    cols.append(z.mean(axis=1, keepdims=True))
    dense = channels["dense"]
    dense_top = float(dense[dense[:, 0] > 0, 4].max()) if dense[:, 0].any() else 0.0
    cols.append((dense_top - dense[:, 4])[:, None])
    cols.append(_text_columns(terms(query), hits))
    per_query = [_agreement(hits), _margin(hits, "lexical"), _margin(hits, "dense")]
    cols.append(np.tile(per_query, (n, 1)))
    return np.hstack(cols).astype(np.float32)
