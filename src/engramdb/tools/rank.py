"""Ranking tools by their text and their usage, and demonstrations by their request.

A tool is scored by features of ``(request, tool)`` (:data:`FEATURES`):

* ``dense``: cosine of the request and the tool's text (name, description, parameters);
* ``lexical``: BM25 of the request against that text, divided by the best BM25 of the request
  (so it lies in [0, 1] whatever the collection);
* ``matched``: the highest cosine of the request and a past request that called the tool
  (Tool2Vec's usage, matched individually);
* ``pooled``: cosine of the request and the mean of those past requests (Tool2Vec's usage
  vector);
* ``used``: 1 when the tool has past requests, else 0.

A tool no request called yet has its ``dense`` value as ``matched`` and ``pooled``: it is
represented by its text, so a new tool is neither pushed down nor up for lacking usage.

A :class:`Fusion` is a logistic regression over some of them; its output is the probability
that the tool is one the request calls. It is fitted from the store's own demonstrations, each
asked with itself (and every demonstration of the same request text) left out
(:func:`fit_fusion`), so the weights and the calibration come from use, not from a data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from engramdb.lexical.bm25 import K1, B, idf
from engramdb.lexical.tokenize import query_terms, tokenize
from engramdb.tools.hits import Demo

__all__ = [
    "DEFAULT_FUSION",
    "FEATURES",
    "Fusion",
    "LexicalIndex",
    "Usage",
    "features",
    "fit_fusion",
    "fit_logistic",
    "matvec",
    "normalize_request",
]

Floats = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]

FEATURES = ("dense", "lexical", "matched", "pooled", "used")


def matvec(matrix: npt.NDArray[np.floating], vector: npt.NDArray[np.floating]) -> Floats:
    """``matrix @ vector`` on this thread: a few thousand rows take a fraction of a
    millisecond, where BLAS's threads cost far more on a busy machine."""
    out: Floats = np.einsum("ij,j->i", matrix, vector).astype(np.float64)
    return out


normalize_request = Demo.request_key
"""The form in which two requests count as the same text (:meth:`Demo.request_key`)."""


class LexicalIndex:
    """BM25 over a few thousand short texts, in memory (FTS5's tokens and IDF)."""

    def __init__(self, texts: Sequence[str]):
        self.n = len(texts)
        postings: dict[str, dict[int, int]] = {}
        lengths = np.zeros(self.n, dtype=np.float64)
        for row, text in enumerate(texts):
            terms = tokenize(text)
            lengths[row] = len(terms)
            for term in terms:
                counts = postings.setdefault(term, {})
                counts[row] = counts.get(row, 0) + 1
        avgdl = float(lengths.mean()) if self.n and lengths.sum() > 0 else 1.0
        self._norm = K1 * (1.0 - B + B * lengths / avgdl)
        self._terms: dict[str, tuple[Ints, Floats, float]] = {}
        for term, counts in postings.items():
            rows = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            self._terms[term] = (rows, tf, idf(self.n, len(counts)))

    def scores(self, query: str) -> Floats:
        """BM25 of every text for ``query`` (0 where no term matches)."""
        out = np.zeros(self.n, dtype=np.float64)
        for term in query_terms(query):
            found = self._terms.get(term)
            if found is None:
                continue
            rows, tf, weight = found
            out[rows] += weight * tf * (K1 + 1.0) / (tf + self._norm[rows])
        return out


@dataclass(frozen=True, slots=True)
class Usage:
    """Past requests and the tools they called, grouped by tool.

    Attributes:
        vectors: the requests' unit vectors, ``(n_requests, dim)``.
        pairs_request: the request row of each (request, tool) pair, sorted by tool.
        pairs_tool: the tool row of each pair (ascending).
        texts: each request's :func:`normalize_request` form.
        sums: per tool, the sum of its requests' vectors, ``(n_tools, dim)``.
        norms: the length of each row of ``sums``.
    """

    vectors: Matrix
    pairs_request: Ints
    pairs_tool: Ints
    texts: tuple[str, ...]
    sums: Matrix
    norms: Floats

    @classmethod
    def build(
        cls, vectors: Matrix, pairs: Sequence[tuple[int, int]], texts: Sequence[str], n_tools: int
    ) -> Usage:
        """Usage from request vectors and ``(request row, tool row)`` pairs."""
        arr = np.asarray(sorted(set(pairs), key=lambda p: (p[1], p[0])), dtype=np.int64)
        arr = arr.reshape(-1, 2)
        sums = np.zeros((n_tools, vectors.shape[1]), dtype=np.float32)
        if arr.size:
            np.add.at(sums, arr[:, 1], vectors[arr[:, 0]])
        return cls(
            vectors=vectors,
            pairs_request=arr[:, 0].copy(),
            pairs_tool=arr[:, 1].copy(),
            texts=tuple(map(normalize_request, texts)),
            sums=sums,
            norms=np.linalg.norm(sums, axis=1).astype(np.float64),
        )

    def same_text(self, text: str) -> list[int]:
        """Rows of the requests with the same text as ``text``."""
        key = normalize_request(text)
        return [i for i, t in enumerate(self.texts) if t == key]


def _usage_features(out: Floats, query_vec: Matrix, usage: Usage, exclude: Sequence[int]) -> None:
    """Fill the ``matched``, ``pooled`` and ``used`` columns of ``out``."""
    sims = matvec(usage.vectors, query_vec)
    tools, rows = usage.pairs_tool, usage.pairs_request
    dots = matvec(usage.sums, query_vec)
    norms = usage.norms
    if exclude:
        sims[list(exclude)] = -np.inf
        gone = np.isin(rows, list(exclude))
        if gone.any():
            norms = norms.copy()
            for tool in np.unique(tools[gone]):
                keep = rows[(tools == tool) & ~gone]
                left = usage.vectors[keep].sum(axis=0) if keep.size else None
                dots[tool] = 0.0 if left is None else float(left @ query_vec)
                norms[tool] = 0.0 if left is None else float(np.linalg.norm(left))
    starts = np.flatnonzero(np.r_[True, tools[1:] != tools[:-1]])
    best = np.maximum.reduceat(sims[rows], starts)
    owners = tools[starts]
    used = np.isfinite(best)
    out[owners[used], 2] = best[used]
    out[owners[used], 4] = 1.0
    ok = norms > 1e-6
    out[ok, 3] = dots[ok] / norms[ok]


def features(  # noqa: PLR0913 - one request against the whole index
    query_vec: Matrix,
    query: str,
    tool_vecs: Matrix,
    lexical: LexicalIndex,
    usage: Usage,
    *,
    exclude: Sequence[int] = (),
) -> Floats:
    """The :data:`FEATURES` of every tool for one request, ``(n_tools, 5)``.

    Args:
        query_vec: the request's unit vector, ``(dim,)``.
        query: the request's text.
        tool_vecs: the tools' unit vectors.
        lexical: BM25 over the tools' texts.
        usage: past requests and their tools.
        exclude: rows of ``usage`` to leave out (the request's own demonstrations).
    """
    n = tool_vecs.shape[0]
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if n == 0:
        return out
    out[:, 0] = matvec(tool_vecs, query_vec)
    bm25 = lexical.scores(query)
    top = float(bm25.max())
    if top > 0:
        out[:, 1] = bm25 / top
    if usage.pairs_tool.size:
        _usage_features(out, query_vec, usage, exclude)
    unused = out[:, 4] == 0
    out[unused, 2] = out[unused, 0]  # a tool never called is represented by its text
    out[unused, 3] = out[unused, 0]
    return out


def fit_logistic(
    x: Floats, y: npt.NDArray[np.bool_], *, l2: float = 1e-4, iters: int = 50
) -> tuple[Floats, float]:
    """Weights and bias of an L2-regularised logistic regression (Newton's method).

    Raises:
        ValueError: ``x`` and ``y`` of different lengths, or no rows.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError("x and y need the same, non-zero number of rows")
    a = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(a.shape[1])
    t = y.astype(np.float64)
    reg = np.full(a.shape[1], l2 * x.shape[0])
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -30, 30)))
        grad = a.T @ (p - t) + reg * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w[:-1], float(w[-1])


@dataclass(frozen=True, slots=True)
class Fusion:
    """A logistic regression over some :data:`FEATURES`: probability that a tool is called.

    Attributes:
        use: the features it reads, by name.
        weights: one weight per feature in ``use``.
        bias: the intercept.
        fitted_on: how many requests it was fitted on (0: the built-in default).
    """

    use: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    fitted_on: int = 0

    FEATURES: ClassVar[tuple[str, ...]] = FEATURES

    @classmethod
    def default(cls) -> Fusion:
        """:data:`DEFAULT_FUSION`: what ranks tools while a namespace has too few
        demonstrations to fit one."""
        return DEFAULT_FUSION

    def logits(self, x: Floats) -> Floats:
        """The log-odds of each row of a :func:`features` matrix."""
        cols = [FEATURES.index(f) for f in self.use]
        out: Floats = matvec(x[:, cols], np.asarray(self.weights, dtype=np.float64)) + self.bias
        return out

    def relevance(self, x: Floats) -> Floats:
        """The probability of each row."""
        out: Floats = 1.0 / (1.0 + np.exp(-np.clip(self.logits(x), -30, 30)))
        return out

    def as_dict(self) -> dict[str, object]:
        """Plain form for reports."""
        return {
            "features": list(self.use),
            "weights": dict(zip(self.use, (round(w, 4) for w in self.weights), strict=True)),
            "bias": round(self.bias, 4),
            "fitted_on": self.fitted_on,
        }


DEFAULT_FUSION = Fusion(use=("dense", "lexical"), weights=(3.5, 6.0), bias=-7.2)
"""Used while a store has too few demonstrations to fit one (see :func:`fit_fusion`): the
description-only fusion as fitted on the BFCL tool set's demonstrations (MiniLM; rounded),
text features only, since usage fitted there did not help."""


def fit_fusion(  # noqa: PLR0913 - the index and how to sample it
    use: Sequence[str],
    tool_vecs: Matrix,
    lexical: LexicalIndex,
    usage: Usage,
    *,
    requests: Sequence[tuple[Matrix, str, Sequence[int]]],
    negatives: int = 20,
    l2: float = 1e-4,
) -> Fusion:
    """Fit a :class:`Fusion` over ``use`` from past requests, each asked with itself left out.

    Args:
        use: the features to combine.
        tool_vecs: the tools' unit vectors.
        lexical: BM25 over the tools' texts.
        usage: past requests and the tools they called.
        requests: ``(vector, text, tools called)`` of the requests to learn from; every
            usage row with the same text is left out while one is asked.
        negatives: how many of the best-scored tools that were not called count as
            negatives per request (by dense + lexical), besides the tools called.
        l2: regularisation strength.

    Raises:
        ValueError: an unknown feature, or no request with a called tool.
    """
    unknown = [f for f in use if f not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; valid: {FEATURES}")
    cols = [FEATURES.index(f) for f in use]
    xs: list[Floats] = []
    ys: list[npt.NDArray[np.bool_]] = []
    for vec, text, called in requests:
        if not called:
            continue
        x = features(vec, text, tool_vecs, lexical, usage, exclude=usage.same_text(text))
        label = np.zeros(x.shape[0], dtype=bool)
        label[list(called)] = True
        prior = x[:, 0] + x[:, 1]
        prior[label] = -np.inf
        order = np.argsort(-prior)[: min(negatives, int((~label).sum()))]
        rows = np.concatenate([np.flatnonzero(label), order])
        xs.append(x[rows][:, cols])
        ys.append(label[rows])
    if not xs:
        raise ValueError("no request with a called tool to fit on")
    w, b = fit_logistic(np.vstack(xs), np.concatenate(ys), l2=l2)
    return Fusion(use=tuple(use), weights=tuple(float(v) for v in w), bias=b, fitted_on=len(xs))
