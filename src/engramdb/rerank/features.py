"""Per-candidate features for learned reranking, from the channels' ranks and scores.

Everything comes from the hits themselves (``Hit.why``, ``Hit.score``, text) and the query
text, so features cost microseconds and need no model. Missing channels read as absent
(present flag 0, rank set past the candidate depth).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from engramdb.config import CHANNELS
from engramdb.types import Hit, Matrix

__all__ = ["FEATURES", "candidate_features", "terms"]

ABSENT_RANK = 200
_WORD_RE = re.compile(r"[^\W_]+")
_STOP_WORDS = (
    "a an and are as at be but by for from has have how in is it its of on or that the "
    "their there these this to was were what when where which who why will with"
)
_STOP = frozenset(_STOP_WORDS.split())

FEATURES: tuple[str, ...] = (
    "fused_score",
    "fused_rank_log",
    *(f"{c}_{f}" for c in CHANNELS for f in ("score", "rank_log", "present", "rel", "gap")),
    "doc_len_log",
    "overlap",
    "query_len",
    "lexical_margin",
    "dense_margin",
    "agreement",
    "dense_top",
)
"""Feature names, in column order."""


def terms(text: str) -> set[str]:
    """Lower-cased content words of ``text`` (stop words dropped)."""
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOP}


def _finder(qterms: set[str]) -> Callable[[str], list[str]]:
    """A function listing the query terms that occur as whole words in a lower-cased text."""
    if not qterms:
        return lambda text: []
    alternatives = "|".join(re.escape(t) for t in sorted(qterms, key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])").findall


def _channel(hits: Sequence[Hit], channel: str) -> np.ndarray:
    """Columns score, rank_log, present, rel (score / top), gap (top − score)."""
    n = len(hits)
    out = np.zeros((n, 5), dtype=np.float64)
    seen = [h.why.get(channel) for h in hits]
    scores = [s.score for s in seen if s is not None and math.isfinite(s.score)]
    if not scores:
        out[:, 1] = math.log1p(ABSENT_RANK)
        return out
    top, low = max(scores), min(scores)
    for i, cs in enumerate(seen):
        if cs is None or not math.isfinite(cs.score):
            out[i] = (low, math.log1p(ABSENT_RANK), 0.0, 0.0, top - low)
        else:
            rel = cs.score / top if top > 0 else 0.0
            out[i] = (cs.score, math.log1p(cs.rank), 1.0, rel, top - cs.score)
    return out


def _margin(hits: Sequence[Hit], channel: str) -> float:
    ranked = sorted(
        (cs.score for h in hits if (cs := h.why.get(channel)) is not None), reverse=True
    )
    if len(ranked) < 2:
        return 0.0
    return (ranked[0] - ranked[1]) / abs(ranked[0]) if ranked[0] else 0.0


def _agreement(hits: Sequence[Hit], depth: int = 10) -> float:
    tops = [
        {h.id for h in hits if (cs := h.why.get(c)) is not None and cs.rank <= depth}
        for c in ("lexical", "dense")
    ]
    return len(tops[0] & tops[1]) / depth


def candidate_features(query: str, hits: Sequence[Hit]) -> Matrix:
    """Feature matrix of ``hits`` for ``query``, shape ``(len(hits), len(FEATURES))``.

    Args:
        query: the query text.
        hits: the candidates, best first by fused score.
    """
    n = len(hits)
    if n == 0:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    qterms = terms(query)
    found = _finder(qterms)
    fused = np.asarray([h.score for h in hits], dtype=np.float64)
    cols = [fused[:, None], np.log1p(np.arange(1, n + 1, dtype=np.float64))[:, None]]
    cols += [_channel(hits, c) for c in CHANNELS]
    dense = [cs.score for h in hits if (cs := h.why.get("dense")) is not None]
    per_hit = np.asarray(
        [
            (
                math.log1p(len(h.text.split())),
                len(set(found(h.text.lower()))) / len(qterms) if qterms else 0.0,
            )
            for h in hits
        ],
        dtype=np.float64,
    )
    per_query = np.tile(
        [
            float(len(qterms)),
            _margin(hits, "lexical"),
            _margin(hits, "dense"),
            _agreement(hits),
            max(dense) if dense else 0.0,
        ],
        (n, 1),
    )
    return np.hstack([*cols, per_hit, per_query]).astype(np.float32)
