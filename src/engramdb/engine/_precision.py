"""The precision stage of recall: calibrate → rerank → filter by relevance → cut (may abstain).

Recall with any of ``min_relevance``, ``coverage`` or ``rerank`` fetches the whole fused
candidate list, gives every candidate its calibrated relevance (the query features describe
that list), reranks the top candidates if asked, keeps the hits whose relevance reaches the
threshold, and cuts to ``k``. When a threshold was asked for and nothing reaches it, the
result is empty with ``abstain=True`` and a reason.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from engramdb.calibrate import ConformalCalibration, RelevanceModel
from engramdb.config import RERANKERS
from engramdb.errors import ConfigError, InvalidInputError
from engramdb.rerank import Candidates, LambdaRankReranker, MMRReranker, Reranker
from engramdb.types import Hit, Hits, Matrix

__all__ = ["Precision", "RerankLike", "apply_precision", "check_precision", "make_reranker"]

RerankLike = Reranker | str | None
VectorsFor = Callable[[Sequence[Hit]], Matrix]


@dataclass(frozen=True, slots=True, kw_only=True)
class Precision:
    """What one recall asked of the precision stage.

    Attributes:
        min_relevance: keep hits whose calibrated relevance is at least this.
        alpha: keep hits above the store's conformal threshold for error rate ``alpha``.
        reranker: the reranker to apply to the candidates, if any.
    """

    min_relevance: float | None = None
    alpha: float | None = None
    reranker: Reranker | None = None

    @property
    def filters(self) -> bool:
        """Whether a relevance threshold was asked for (so recall may abstain)."""
        return self.min_relevance is not None or self.alpha is not None


def make_reranker(rerank: RerankLike) -> Reranker | None:
    """A reranker from an instance or a name (``"mmr"``, ``"lambdarank"``).

    Raises:
        InvalidInputError: an unknown reranker name.
        ConfigError: the named reranker cannot be built (e.g. no bundled model).
    """
    if rerank is None or isinstance(rerank, Reranker):
        return rerank
    if rerank not in RERANKERS:
        raise InvalidInputError(
            f"unknown reranker {rerank!r}; valid: {', '.join(RERANKERS)} or a Reranker instance"
        )
    return _named_reranker(rerank)


@functools.cache
def _named_reranker(name: str) -> Reranker:
    """One shared instance per name, so a model file is parsed once per process."""
    return MMRReranker() if name == "mmr" else LambdaRankReranker()


def check_precision(
    min_relevance: float | None, coverage: float | None, rerank: RerankLike
) -> Precision:
    """Validate recall's precision arguments.

    Raises:
        InvalidInputError: ``min_relevance`` outside [0, 1], ``coverage`` outside (0, 1), or
            an unknown reranker name.
        ConfigError: a named reranker cannot be built.
    """
    if min_relevance is not None and not 0.0 <= min_relevance <= 1.0:
        raise InvalidInputError(f"min_relevance must be in [0, 1], got {min_relevance!r}")
    if coverage is not None and not 0.0 < coverage < 1.0:
        raise InvalidInputError(f"coverage must be in (0, 1), e.g. 0.9 for 90%, got {coverage!r}")
    alpha = None if coverage is None else 1.0 - coverage
    return Precision(min_relevance=min_relevance, alpha=alpha, reranker=make_reranker(rerank))


def with_relevance(model: RelevanceModel, hits: Hits) -> list[Hit]:
    """``hits`` (the whole fused candidate list) with their calibrated relevance set."""
    p = model.relevance(hits.query, list(hits))
    return [replace(h, relevance=float(v)) for h, v in zip(hits, p, strict=True)]


def _threshold(precision: Precision, cal: ConformalCalibration | None) -> float:
    cut = -math.inf
    if precision.min_relevance is not None:
        cut = precision.min_relevance
    if precision.alpha is not None:
        if cal is None:
            raise ConfigError("coverage= needs a conformal calibration of the store")
        cut = max(cut, cal.threshold(precision.alpha))
    return cut


def apply_precision(
    hits: Hits,
    precision: Precision,
    *,
    k: int,
    model: RelevanceModel,
    calibration: ConformalCalibration | None = None,
    vectors_for: VectorsFor | None = None,
) -> Hits:
    """Calibrate, rerank, filter and cut one query's fused candidates.

    Raises:
        ConfigError: ``coverage`` asked for without a calibration.
        InvalidInputError: a reranker that needs vectors and no way to get them.
    """
    scored = with_relevance(model, hits)
    if precision.reranker is not None and scored:
        vectors = None
        if precision.reranker.needs_vectors:
            if vectors_for is None:
                raise InvalidInputError(f"reranker {precision.reranker.name!r} needs vectors")
            vectors = vectors_for(scored)
        cands = Candidates(query=hits.query, hits=scored, vectors=vectors)
        scored = precision.reranker.rerank(cands, k=len(scored))
    if not precision.filters:
        return Hits(hits.query, tuple(scored[:k]))
    cut = _threshold(precision, calibration)
    kept = [h for h in scored if h.relevance is not None and h.relevance >= cut][:k]
    if kept:
        return Hits(hits.query, tuple(kept))
    if not scored:
        return Hits(hits.query, (), abstain=True, reason="no memory matched the query")
    best = max(h.relevance or 0.0 for h in scored)
    return Hits(
        hits.query,
        (),
        abstain=True,
        reason=(
            f"no memory reaches the relevance threshold {cut:.3f} "
            f"(best candidate: {best:.3f}); the store likely holds nothing relevant"
        ),
    )


def source_scores(results: Sequence[Hits], sources: Sequence[int]) -> list[float]:
    """Conformity score per cue: the relevance of its source memory (0 when not recalled)."""
    out = []
    for hits, source in zip(results, sources, strict=True):
        found = [h.relevance or 0.0 for h in hits if h.id == source]
        out.append(float(found[0]) if found else 0.0)
    return out


def stack(vectors: Sequence[np.ndarray], dim: int) -> Matrix:
    """Rows as one float32 matrix (zeros for a missing row)."""
    out = np.zeros((len(vectors), dim), dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None and v.shape == (dim,):
            out[i] = v
    return out
