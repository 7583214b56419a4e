"""Conformance suite run against every AnnIndex: flat (the oracle) and SPANN.

SPANN is configured so that a query probes every list (small data, no pruning): it must then
return exactly what brute force returns, including ties broken by the smaller id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from engramdb.ann.base import AnnIndex
from engramdb.ann.flat import FlatIndex
from engramdb.ann.spann import SpannConfig, SpannIndex
from engramdb.errors import DimensionMismatchError

DIM = 16
SMALL = SpannConfig(
    posting_size=8,
    posting_limit=24,
    merge_threshold=2,
    max_probes=512,
    prune_eps=None,
    head_index="exact",
    kmeans_iters=2,
    calibration_queries=0,
)


def _flat(ids: npt.NDArray[np.int64], vecs: npt.NDArray[np.float32]) -> Any:
    index = FlatIndex(DIM)
    index.add(ids, vecs)
    return index


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[npt.NDArray[np.int64], npt.NDArray[np.float32]], Any]
    reopen: Callable[[Path], Any]


KINDS = [
    Kind("flat", _flat, FlatIndex.load),
    Kind("spann", lambda ids, vecs: SpannIndex.build(ids, vecs, SMALL), SpannIndex.open),
]


def unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(
    ids: npt.NDArray[np.int64], vecs: npt.NDArray[np.float32], q: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    out = np.full((q.shape[0], k), -1, dtype=np.int64)
    for i, row in enumerate(q @ vecs.T):
        order = np.lexsort((ids, -row))[:k]
        out[i, : order.size] = ids[order]
    return out


@pytest.fixture(params=KINDS, ids=lambda kind: kind.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def data() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    rng = np.random.default_rng(3)
    return np.arange(200, dtype=np.int64) * 7 + 5, unit(rng, 200)


@pytest.fixture
def index(kind: Kind, data: tuple[Any, Any]) -> Iterator[Any]:
    built = kind.build(*data)
    yield built
    built.close()


def test_is_an_ann_index(index: Any, data: tuple[Any, Any]) -> None:
    assert isinstance(index, AnnIndex)
    assert index.dim == DIM
    assert len(index) == data[0].size


def test_search_matches_brute_force(index: Any, data: tuple[Any, Any]) -> None:
    ids, vecs = data
    q = unit(np.random.default_rng(4), 25)
    got, scores = index.search(q, 10)
    assert got.shape == (25, 10) and got.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(got, brute(ids, vecs, q, 10))
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    expect = np.take_along_axis(q @ vecs.T, np.searchsorted(ids, got), axis=1)
    np.testing.assert_allclose(scores, expect, atol=1e-5)


def test_short_results_are_padded(kind: Kind) -> None:
    rng = np.random.default_rng(5)
    ids = np.array([3, 1, 2], dtype=np.int64)
    index = kind.build(ids, unit(rng, 3))
    got, scores = index.search(unit(rng, 2), 5)
    assert sorted(got[0, :3].tolist()) == [1, 2, 3]
    assert np.all(got[:, 3:] == -1) and np.all(np.isneginf(scores[:, 3:]))
    index.close()


def test_add_new_and_replace(index: Any, data: tuple[Any, Any]) -> None:
    ids, vecs = data
    rng = np.random.default_rng(6)
    new_ids = np.array([1000, 1001, ids[0]], dtype=np.int64)
    new_vecs = unit(rng, 3)
    index.add(new_ids, new_vecs)
    assert len(index) == ids.size + 2
    got, scores = index.search(new_vecs, 1)
    assert got[:, 0].tolist() == new_ids.tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    all_ids = np.concatenate([ids[1:], new_ids])
    all_vecs = np.concatenate([vecs[1:], new_vecs])
    order = np.argsort(all_ids)
    q = unit(rng, 10)
    np.testing.assert_array_equal(
        index.search(q, 10)[0], brute(all_ids[order], all_vecs[order], q, 10)
    )


def test_add_repeated_ids_last_wins(index: Any) -> None:
    rng = np.random.default_rng(7)
    vecs = unit(rng, 2)
    index.add(np.array([5000, 5000]), vecs)
    got, scores = index.search(vecs[1:], 1)
    assert got[0, 0] == 5000 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_delete_counts_and_ignores_missing(index: Any, data: tuple[Any, Any]) -> None:
    ids, _ = data
    assert index.delete(np.array([ids[0], ids[1], 999_999], dtype=np.int64)) == 2
    assert index.delete(np.array([ids[0]], dtype=np.int64)) == 0
    assert len(index) == ids.size - 2


def test_deleted_ids_are_never_returned(index: Any, data: tuple[Any, Any]) -> None:
    ids, vecs = data
    gone = ids[:120]
    index.delete(gone)
    got, _ = index.search(vecs[:120], 10)
    assert not np.isin(got, gone).any()
    np.testing.assert_array_equal(got, brute(ids[120:], vecs[120:], vecs[:120], 10))


def test_delete_everything(index: Any, data: tuple[Any, Any]) -> None:
    ids, vecs = data
    index.delete(ids)
    assert len(index) == 0
    got, scores = index.search(vecs[:3], 4)
    assert np.all(got == -1) and np.all(np.isneginf(scores))


def test_allow_restricts_results(index: Any, data: tuple[Any, Any]) -> None:
    ids, vecs = data
    allow = ids[::3]
    q = unit(np.random.default_rng(8), 6)
    got, _ = index.search(q, 5, allow=np.concatenate([allow, [123_456_789]]))
    np.testing.assert_array_equal(got, brute(allow, vecs[::3], q, 5))


def test_save_load_round_trip(
    kind: Kind, index: Any, data: tuple[Any, Any], tmp_path: Path
) -> None:
    ids, vecs = data
    index.delete(ids[:10])
    index.add(np.array([77_777]), vecs[:1])
    q = unit(np.random.default_rng(9), 12)
    before = index.search(q, 10)
    index.save(tmp_path / "idx")
    again = kind.reopen(tmp_path / "idx")
    assert len(again) == len(index) == ids.size - 9
    after = again.search(q, 10)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_allclose(after[1], before[1], atol=1e-6)
    again.close()


def test_bad_arguments(index: Any) -> None:
    with pytest.raises(ValueError):
        index.search(np.zeros((1, DIM), dtype=np.float32), 0)
    with pytest.raises(DimensionMismatchError):
        index.search(np.zeros((1, DIM + 1), dtype=np.float32), 3)
    with pytest.raises(DimensionMismatchError):
        index.add(np.array([1, 2]), np.zeros((3, DIM), dtype=np.float32))


def test_deny_excludes_ids_like_brute_force_without_them(index: Any, data: tuple[Any, Any]) -> None:
    ids, vecs = data
    q = unit(np.random.default_rng(5), 12)
    deny = ids[::3]
    keep = ~np.isin(ids, deny)
    got, _ = index.search(q, 10, deny=deny)
    np.testing.assert_array_equal(got, brute(ids[keep], vecs[keep], q, 10))
    allow = ids[:60]
    both, _ = index.search(q, 5, allow=allow, deny=deny)
    sub = np.isin(ids, allow) & keep
    np.testing.assert_array_equal(both, brute(ids[sub], vecs[sub], q, 5))


def test_contains_vectors_and_stats(index: Any, data: tuple[Any, Any]) -> None:
    ids, vecs = data
    probe = np.asarray([ids[0], ids[1], -5, 999_999], dtype=np.int64)
    np.testing.assert_array_equal(index.contains(probe), [True, True, False, False])
    got_ids, got_vecs = index.vectors()
    order = np.argsort(got_ids)
    np.testing.assert_array_equal(got_ids[order], np.sort(ids))
    np.testing.assert_allclose(got_vecs[order], vecs[np.argsort(ids)], atol=1e-6)
    assert index.stats()["count"] == ids.size
