"""Per-query calibrated relevance: fused scores → probabilities (after the Cosine Adapter).

Raw scores mean different things for different queries (a cosine of 0.55 is the best hit
for one query and a weak one for another), so one global cut-off on them is wrong. The
mapping here is monotone within a query, with parameters that depend on the query::

    p_i = σ( a(q) · s_i + c · r_i + b(q) )
    a(q) = softplus(w_a · z(q)) > 0,   b(q) = w_b · z(q),   c = softplus(γ) ≥ 0

* ``s_i`` — the hit's fused score relative to the best hit's (1 for the top hit);
* ``r_i = −ln(rank_i)`` — its 1-based position in fused order;
* ``z(q)`` — standardised query features (:data:`QUERY_FEATURES`): query length, the score
  distribution of the candidates (best cosine, margin, lift over the top ten, spread),
  the best BM25 score and margin, agreement of the channels, query-term overlap.

Both ``s_i`` and ``r_i`` fall along the fused order and their weights are positive, so the
probabilities never rise down the list: calibration keeps the ranking. Coefficients are
fitted by :func:`fit_relevance` (logistic loss, L2, full-batch Adam, numpy only) and
stored as JSON; the package ships a model fitted on SciFact's train queries.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.errors import ConfigError, IndexFormatError
from engramdb.types import Hit

__all__ = [
    "QUERY_FEATURES",
    "RelevanceModel",
    "fit_relevance",
    "hit_terms",
    "query_features",
]

F64 = npt.NDArray[np.float64]
BUNDLED = "relevance-scifact.json"
FORMAT = "engramdb.relevance/1"
QUERY_FEATURES: tuple[str, ...] = (
    "query_len",
    "dense_top",
    "dense_margin",
    "dense_lift",
    "dense_spread",
    "lexical_top",
    "lexical_margin",
    "agreement",
    "top_agree",
    "top_overlap",
)
"""Query features, in column order (a constant 1 is appended after standardising)."""

_WORD_RE = re.compile(r"[^\W_]+")
_STOP_WORDS = (
    "a an and are as at be but by can did do does for from had has have how i in is it "
    "its me my of on or our that the their there these this to was we were what when "
    "where which who why will with you your"
)
_STOP = frozenset(_STOP_WORDS.split())


def hit_terms(text: str) -> set[str]:
    """Lower-cased content words (stop words dropped)."""
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOP}


def _channel_scores(hits: Sequence[Hit], channel: str) -> list[float]:
    found = [cs.score for h in hits if (cs := h.why.get(channel)) is not None]
    return sorted((s for s in found if math.isfinite(s)), reverse=True)


def _top_agree(hits: Sequence[Hit]) -> float:
    if not hits:
        return 0.0
    why = hits[0].why
    return sum(1.0 for c in ("lexical", "dense") if (cs := why.get(c)) and cs.rank == 1) / 2


def query_features(query: str, hits: Sequence[Hit]) -> F64:
    """The :data:`QUERY_FEATURES` of a query's fused candidates (hits in fused order)."""
    qterms = hit_terms(query)
    dense = _channel_scores(hits, "dense")
    lexical = _channel_scores(hits, "lexical")
    top10 = dense[:10]
    lex10 = {h.id for h in hits if (cs := h.why.get("lexical")) and cs.rank <= 10}
    den10 = {h.id for h in hits if (cs := h.why.get("dense")) and cs.rank <= 10}
    overlap = len(qterms & hit_terms(hits[0].text)) / len(qterms) if hits and qterms else 0.0
    return np.asarray(
        [
            math.log1p(len(qterms)),
            dense[0] if dense else 0.0,
            dense[0] - dense[1] if len(dense) > 1 else 0.0,
            dense[0] - float(np.mean(top10)) if top10 else 0.0,
            float(np.std(top10)) if top10 else 0.0,
            math.log1p(max(lexical[0], 0.0)) if lexical else 0.0,
            (lexical[0] - lexical[1]) / lexical[0] if len(lexical) > 1 and lexical[0] > 0 else 0.0,
            len(lex10 & den10) / 10.0,
            _top_agree(hits),
            overlap,
        ],
        dtype=np.float64,
    )


def _hit_terms(hits: Sequence[Hit]) -> tuple[F64, F64]:
    """``(s, r)``: relative fused score and −ln(rank), both non-increasing along the list."""
    fused = np.asarray([h.score for h in hits], dtype=np.float64)
    top = fused[0] if len(fused) and fused[0] > 0 else 1.0
    s = np.clip(fused / top, 0.0, 1.0) if len(fused) else fused
    r = -np.log(np.arange(1, len(hits) + 1, dtype=np.float64))
    return s, r


def _softplus(x: F64 | float) -> Any:
    return np.logaddexp(0.0, x)


def _sigmoid(x: F64 | float) -> Any:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


@dataclass(frozen=True, slots=True, kw_only=True)
class RelevanceModel:
    """Coefficients of the per-query calibration (see the module docstring).

    Attributes:
        mean: feature means used for standardising.
        scale: feature standard deviations used for standardising.
        slope: ``w_a`` (one weight per feature, then the constant).
        bias: ``w_b`` (one weight per feature, then the constant).
        rank_weight: ``γ``; the rank term's weight is ``softplus(γ)``.
        trained_on: a note on the training data.
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    slope: tuple[float, ...]
    bias: tuple[float, ...]
    rank_weight: float
    trained_on: str = ""

    def __post_init__(self) -> None:
        d = len(QUERY_FEATURES)
        if (len(self.mean), len(self.scale), len(self.slope), len(self.bias)) != (
            d,
            d,
            d + 1,
            d + 1,
        ):
            raise IndexFormatError(
                f"relevance model has the wrong shape for {d} query features "
                f"({', '.join(QUERY_FEATURES)}); refit it with fit_relevance"
            )

    def _z(self, query: str, hits: Sequence[Hit]) -> F64:
        x = (query_features(query, hits) - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.append(x, 1.0)

    def relevance(self, query: str, hits: Sequence[Hit]) -> F64:
        """Calibrated probabilities of ``hits`` (in fused order), non-increasing.

        Args:
            query: the query text.
            hits: the fused candidates, best first; pass the whole candidate list (the
                query features describe it), then cut.
        """
        if not hits:
            return np.zeros(0)
        z = self._z(query, hits)
        s, r = _hit_terms(hits)
        a = _softplus(float(np.dot(self.slope, z)))
        b = float(np.dot(self.bias, z))
        p = _sigmoid(a * s + _softplus(self.rank_weight) * r + b)
        return np.asarray(np.minimum.accumulate(p), dtype=np.float64)  # exact ties stay ties

    def to_json(self) -> str:
        """The model as JSON (``format``, feature names and coefficients)."""
        return json.dumps(
            {
                "format": FORMAT,
                "features": list(QUERY_FEATURES),
                "mean": list(self.mean),
                "scale": list(self.scale),
                "slope": list(self.slope),
                "bias": list(self.bias),
                "rank_weight": self.rank_weight,
                "trained_on": self.trained_on,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> RelevanceModel:
        """Read a model written by :meth:`to_json`.

        Raises:
            IndexFormatError: not such a model, or one over other features.
        """
        try:
            data = json.loads(text)
            if data.get("format") != FORMAT or data.get("features") != list(QUERY_FEATURES):
                raise IndexFormatError(
                    f"not an {FORMAT} model over features {list(QUERY_FEATURES)}"
                )
            return cls(
                mean=tuple(map(float, data["mean"])),
                scale=tuple(map(float, data["scale"])),
                slope=tuple(map(float, data["slope"])),
                bias=tuple(map(float, data["bias"])),
                rank_weight=float(data["rank_weight"]),
                trained_on=str(data.get("trained_on", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexFormatError(f"malformed relevance model: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path | None = None) -> RelevanceModel:
        """Load a model file; ``None`` loads the bundled SciFact model.

        Raises:
            ConfigError: the file cannot be read.
            IndexFormatError: it is not a relevance model.
        """
        try:
            if path is None:
                text = (resources.files("engramdb.calibrate") / "data" / BUNDLED).read_text(
                    encoding="utf-8"
                )
            else:
                text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read relevance model {path or BUNDLED}: {exc}") from exc
        return cls.from_json(text)


# -- fitting ------------------------------------------------------------------------------------


def _design(
    groups: Sequence[tuple[str, Sequence[Hit], Sequence[int]]],
) -> tuple[F64, F64, F64, F64, npt.NDArray[np.int64]]:
    feats, s_all, r_all, y_all, owner = [], [], [], [], []
    for query, hits, labels in groups:
        if not hits:
            continue
        feats.append(query_features(query, hits))
        s, r = _hit_terms(hits)
        s_all.append(s)
        r_all.append(r)
        y_all.append(np.asarray(labels, dtype=np.float64) > 0)
        owner.append(np.full(len(hits), len(feats) - 1))
    if not feats:
        raise ConfigError("fit_relevance needs at least one query with candidates")
    return (
        np.vstack(feats),
        np.concatenate(s_all),
        np.concatenate(r_all),
        np.concatenate(y_all).astype(np.float64),
        np.concatenate(owner).astype(np.int64),
    )


def fit_relevance(
    groups: Sequence[tuple[str, Sequence[Hit], Sequence[int]]],
    *,
    l2: float = 1e-3,
    steps: int = 1500,
    trained_on: str = "",
) -> RelevanceModel:
    """Fit the calibration on judged queries by minimising the logistic loss.

    Args:
        groups: ``(query, fused candidates, labels)`` per query; a label > 0 is relevant.
        l2: L2 penalty on the weights (not on the constants).
        steps: Adam steps (full batch).
        trained_on: a note stored with the model.

    Raises:
        ConfigError: no query has candidates.
    """
    x, s, r, y, owner = _design(groups)
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    d = z.shape[1]
    theta = np.zeros(2 * d + 1)
    theta[d - 1 + d] = math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6))
    penalty = np.ones(2 * d + 1)
    penalty[[d - 1, 2 * d - 1, 2 * d]] = 0.0
    m = v = np.zeros_like(theta)
    for t in range(1, steps + 1):
        grad = _gradient(theta, z, s, r, y, owner) + l2 * penalty * theta
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        theta = theta - 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return RelevanceModel(
        mean=tuple(map(float, mean)),
        scale=tuple(map(float, scale)),
        slope=tuple(map(float, theta[:d])),
        bias=tuple(map(float, theta[d : 2 * d])),
        rank_weight=float(theta[2 * d]),
        trained_on=trained_on,
    )


def _gradient(theta: F64, z: F64, s: F64, r: F64, y: F64, owner: npt.NDArray[np.int64]) -> F64:
    """Gradient of the mean logistic loss with respect to ``(w_a, w_b, γ)``."""
    d = z.shape[1]
    w_a, w_b, gamma = theta[:d], theta[d : 2 * d], theta[2 * d]
    u = z @ w_a
    a, b = _softplus(u)[owner], (z @ w_b)[owner]
    p = _sigmoid(a * s + _softplus(gamma) * r + b)
    err = (p - y) / len(y)
    per_query_a = np.bincount(owner, weights=err * s, minlength=len(z)) * _sigmoid(u)
    per_query_b = np.bincount(owner, weights=err, minlength=len(z))
    return np.concatenate(
        [z.T @ per_query_a, z.T @ per_query_b, [float(np.sum(err * r)) * _sigmoid(gamma)]]
    )
