"""Oracles for the ranking parts: BM25, the usage features, the logistic fit."""

from __future__ import annotations

import math

import numpy as np

from engramdb.lexical.bm25 import K1, B, idf
from engramdb.lexical.tokenize import query_terms, tokenize
from engramdb.tools.rank import (
    FEATURES,
    Fusion,
    LexicalIndex,
    Usage,
    features,
    fit_fusion,
    fit_logistic,
)

TEXTS = [
    "weather forecast for a city",
    "send an email message to a person",
    "weather radar images",
    "convert currency amounts",
]


def _bm25(texts: list[str], query: str) -> list[float]:
    docs = [tokenize(t) for t in texts]
    avgdl = sum(map(len, docs)) / len(docs)
    out = []
    for doc in docs:
        score = 0.0
        for term in query_terms(query):
            tf = doc.count(term)
            if tf:
                n = sum(term in d for d in docs)
                norm = K1 * (1 - B + B * len(doc) / avgdl)
                score += idf(len(docs), n) * tf * (K1 + 1) / (tf + norm)
        out.append(score)
    return out


def test_lexical_index_matches_the_formula() -> None:
    index = LexicalIndex(TEXTS)
    for query in ("weather in a city", "email", "nothing here", "weather weather radar"):
        assert np.allclose(index.scores(query), _bm25(TEXTS, query))


def _unit(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_usage_features_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    tools, requests = _unit(rng, 4), _unit(rng, 6)
    pairs = [(0, 0), (1, 0), (2, 1), (3, 1), (3, 2), (4, 2), (5, 0)]
    texts = ["a", "b", "c", "d", "e", "a"]
    usage = Usage.build(requests, pairs, texts, 4)
    query = _unit(rng, 1)[0]
    for exclude in ([], [0, 5], [2]):
        x = features(query, "weather", tools, LexicalIndex(TEXTS), usage, exclude=exclude)
        for t in range(4):
            rows = [r for r, tt in pairs if tt == t and r not in exclude]
            if not rows:  # never called: its text stands for its usage
                assert x[t, 2] == x[t, 3] == x[t, 0] and x[t, 4] == 0
                continue
            best = max(float(requests[r] @ query) for r in rows)
            assert math.isclose(x[t, 2], best, abs_tol=1e-5)
            mean = requests[rows].sum(axis=0)
            cos = float(mean @ query / np.linalg.norm(mean))
            assert math.isclose(x[t, 3], cos, abs_tol=1e-5)
            assert x[t, 4] == 1.0
        assert np.allclose(x[:, 0], tools @ query, atol=1e-6)
    assert usage.same_text("  A ") == [0, 5]


def test_logistic_fit_reaches_a_zero_gradient() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    logits = x @ np.array([2.0, -1.0, 0.5]) - 0.3
    y = rng.random(400) < 1 / (1 + np.exp(-logits))
    l2 = 1e-3
    w, b = fit_logistic(x, y, l2=l2)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    grad_w = x.T @ (p - y) + l2 * len(x) * w
    assert np.abs(grad_w).max() < 1e-6 and abs(float((p - y).sum())) < 1e-6
    assert np.sign(w).tolist() == [1.0, -1.0, 1.0]


def test_fit_fusion_learns_that_usage_helps_when_it_does() -> None:
    """Tools whose text says nothing and whose usage says everything: the fitted weight of
    ``matched`` is positive and ranks the called tool first."""
    rng = np.random.default_rng(2)
    n_tools, per = 6, 5
    tools = _unit(rng, n_tools)
    centres = _unit(rng, n_tools)
    reqs = []
    pairs = []
    for t in range(n_tools):
        for _ in range(per):
            v = centres[t] + 0.15 * rng.normal(size=8)
            reqs.append(v / np.linalg.norm(v))
            pairs.append((len(reqs) - 1, t))
    vectors = np.asarray(reqs, dtype=np.float32)
    texts = [f"request {i}" for i in range(len(reqs))]
    usage = Usage.build(vectors, pairs, texts, n_tools)
    lexical = LexicalIndex(["tool"] * n_tools)
    fusion = fit_fusion(
        ("dense", "matched"),
        tools,
        lexical,
        usage,
        requests=[(vectors[r], texts[r], [t]) for r, t in pairs],
    )
    assert fusion.weights[1] > 1.0 and fusion.fitted_on == len(pairs)
    x = features(centres[3], "q", tools, lexical, usage)
    assert int(np.argmax(fusion.logits(x))) == 3
    assert set(fusion.as_dict()["features"]) <= set(FEATURES)  # type: ignore[arg-type]


def test_fusion_relevance_is_the_sigmoid_of_its_logits() -> None:
    fusion = Fusion(use=("lexical",), weights=(2.0,), bias=-1.0)
    x = np.zeros((2, len(FEATURES)))
    x[:, 1] = [0.0, 1.0]
    assert np.allclose(fusion.relevance(x), 1 / (1 + np.exp(-np.array([-1.0, 1.0]))))
