"""SPANN's quantised scans against exact search (FlatIndex) and its own float32 scan.

Seeded clustered data (the recall oracle's generator). The int8 scan picks a short list by
approximate scores and re-scores it with the float32 rows, so its ids must match exact search
wherever the lists hold the neighbours, and its scores must be exact. The sign-bit prefilter
drops most candidates before the int8 stage; at d=384 it must keep nearly all neighbours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

from engramdb.ann.flat import FlatIndex
from engramdb.ann.spann import SpannConfig, SpannIndex
from engramdb.ann.spann._quant import kernel

DIM = 96
CFG = SpannConfig(posting_size=24, merge_threshold=4, head_index="exact", seed=1)


def clustered(n: int, seed: int, dim: int = DIM) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim)).astype(np.float32) + 1.5
    weights = 1.0 / np.arange(1, 41)
    label = rng.choice(40, size=n, p=weights / weights.sum())
    x = centres[label] + 0.9 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall(got: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    hits = [len(set(g) & set(t)) for g, t in zip(got, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


class Built(NamedTuple):
    index: SpannIndex
    base: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def built() -> Iterator[Built]:
    assert kernel() is not None  # simsimd is a core dependency: the int8 scan must run
    x = clustered(5200, seed=21)
    with SpannIndex.build(np.arange(5000), x[:5000], CFG) as index:
        yield Built(index, x[:5000], x[5000:])


def exact(base: npt.NDArray[np.float32], q: npt.NDArray[np.float32]) -> tuple[Any, Any]:
    flat = FlatIndex(base.shape[1])
    flat.add(np.arange(base.shape[0]), base)
    return flat.search(q, 10)


def search(
    b: Built, q: npt.NDArray[np.float32], quantized: bool, prefilter: float = 0.0, **kw: Any
) -> tuple[Any, Any]:
    """Search with the int8 scan (``quantized``; signs first with ``prefilter``) or float32."""
    cfg = b.index.config
    b.index.config = dataclasses.replace(cfg, quantized=quantized, prefilter=prefilter)
    try:
        return b.index.search(q, 10, **kw)
    finally:
        b.index.config = cfg


def test_exhaustive_int8_scan_with_rescoring_is_exact_search(built: Built) -> None:
    base, queries = built.base, built.queries
    heads = built.index.stats()["heads"]
    want_ids, want_scores = exact(base, queries)
    got_ids, got_scores = search(built, queries, True, max_probes=heads, prune_eps=None)
    assert recall(got_ids, want_ids) >= 0.999
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)


def test_int8_scan_matches_the_float32_scan_and_exact_scores(built: Built) -> None:
    base, queries = built.base, built.queries
    truth, _ = exact(base, queries)
    for probes in (4, 8, 16):
        f_ids, _ = search(built, queries, False, max_probes=probes, prune_eps=None)
        q_ids, q_scores = search(built, queries, True, max_probes=probes, prune_eps=None)
        assert recall(q_ids, f_ids) >= 0.995  # the same candidates, ranked the same way
        assert recall(q_ids, truth) >= recall(f_ids, truth) - 0.005
        rows = np.take_along_axis(queries @ base.T, q_ids, axis=1)
        np.testing.assert_allclose(q_scores, rows, atol=1e-5)  # re-scored: exact
    q_ids, _ = search(built, queries, True)
    assert recall(q_ids, truth) >= 0.95


def test_one_query_at_a_time_and_batches_agree(built: Built) -> None:
    queries = built.queries
    batch = search(built, queries, True, max_probes=8, prune_eps=None)
    single = [
        search(built, queries[i : i + 1], True, max_probes=8, prune_eps=None) for i in range(50)
    ]
    np.testing.assert_array_equal(np.concatenate([s[0] for s in single]), batch[0][:50])
    np.testing.assert_allclose(np.concatenate([s[1] for s in single]), batch[1][:50], atol=1e-6)


def test_int8_scan_respects_allow_and_deny(built: Built) -> None:
    base, queries = built.base, built.queries
    allow = np.arange(0, 5000, 2)  # too many for the exact path: filtered scan
    got, _ = search(built, queries, True, allow=allow, max_probes=16, prune_eps=None)
    assert np.all((got % 2 == 0) | (got == -1))
    truth, _ = exact(base[allow], queries)
    assert recall(got, allow[truth]) >= 0.9
    deny = truth[:, 0]
    got, _ = search(built, queries, True, deny=allow[deny], max_probes=16, prune_eps=None)
    assert not np.isin(got, allow[deny]).any()


def lowrank(n: int, seed: int, dim: int = 384) -> npt.NDArray[np.float32]:
    """Vectors near a 24-d subspace plus noise and a shared offset (text-embedding-like)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((24, dim)).astype(np.float32)
    x = rng.standard_normal((n, 24)).astype(np.float32) @ basis
    x += 0.3 * np.sqrt(24) * rng.standard_normal((n, dim)).astype(np.float32)
    x += 0.5 * np.linalg.norm(x, axis=1).mean() * rng.standard_normal(dim).astype(np.float32) / 20
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def singles(b: Built, prefilter: float, **kw: Any) -> tuple[Any, Any]:
    """One query at a time (the prefilter is a single-query scan)."""
    got = [search(b, b.queries[i : i + 1], True, prefilter, **kw) for i in range(len(b.queries))]
    return np.concatenate([ids for ids, _ in got]), np.concatenate([sc for _, sc in got])


def test_calibrated_sign_prefilter_keeps_recall_and_exact_scores() -> None:
    x = lowrank(12_100, seed=5)
    base, queries = x[:12_000], x[12_000:]
    truth, want_scores = exact(base, queries)
    with SpannIndex.build(np.arange(12_000), base, CFG) as index:
        b = Built(index, base, queries)
        pre = index.calibration["prefilter"]
        assert pre > 0  # sign bits work on such data
        plain, _ = singles(b, 0.0)
        filtered, scores = singles(b, pre)
        assert recall(filtered, truth) >= recall(plain, truth) - 0.01
        rows = np.take_along_axis(queries @ base.T, filtered, axis=1)
        np.testing.assert_allclose(scores, rows, atol=1e-5)  # re-scored: exact
        # A filter: the prefilter picks among the rows the filter lets through. Deny each
        # query's 500 nearest: sign bits alone would keep mostly those (and lose the rest).
        everything = {"max_probes": index.stats()["heads"], "prune_eps": None}
        order = np.argsort(-(queries @ base.T), axis=1)
        denied = [
            search(b, q[None], True, pre, deny=o[:500], **everything)[0][0]
            for q, o in zip(queries[:30], order[:30], strict=True)
        ]
        assert recall(np.array(denied), order[:30, 500:510]) >= 0.8  # 0.54 if not masked
        # Every list: the int8 stage sees the calibrated fraction of the rows, by sign bits.
        got, got_scores = singles(b, pre, **everything)
        assert recall(got, truth) >= 0.97
        np.testing.assert_allclose(got_scores[:, 0], want_scores[:, 0], atol=1e-5)


def test_prefilter_is_calibrated_off_where_sign_bits_lose_neighbours() -> None:
    # Tight isotropic clusters: sign bits hardly separate a point's neighbours from its
    # cluster, so a fixed prefilter loses recall and the calibration turns it off.
    x = clustered(12_100, seed=31, dim=384)
    base, queries = x[:12_000], x[12_000:]
    truth, _ = exact(base, queries)
    with SpannIndex.build(np.arange(12_000), base, CFG) as index:
        b = Built(index, base, queries)
        cal = index.calibration
        assert cal["prefilter"] == 0.0
        assert cal["prefilter_recall"]["0.1"] < cal["prefilter_recall"]["1.0"] - 0.005
        forced, _ = singles(b, 0.1)
        plain, _ = singles(b, 0.0)
        assert recall(forced, truth) < recall(plain, truth) - 0.02  # what it would have cost
        default = np.concatenate([index.search(q[None, :], 10)[0] for q in queries])
        np.testing.assert_array_equal(default, plain)
