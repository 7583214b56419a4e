"""Unit tests of SPANN's parts: clustering, replica selection, id map, posting files, config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from engramdb.ann.spann import SpannConfig
from engramdb.ann.spann._assign import select_replicas, soar_replicas
from engramdb.ann.spann._cluster import bisect, kmeans, nearest_heads, top_m_smallest, two_means
from engramdb.ann.spann._heads import HeadIndex
from engramdb.ann.spann._ids import IdMap
from engramdb.ann.spann._postings import PostingFile, pack, unpack_version, unpack_vid
from engramdb.ann.spann._search import prune
from engramdb.errors import ConfigError, IndexFormatError


def unit(rng: np.random.Generator, n: int, d: int = 16) -> npt.NDArray[np.float32]:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("h", "m"), [(5, 3), (64, 1), (1000, 16), (997, 64), (300, 300)])
def test_top_m_smallest_matches_a_full_sort(h: int, m: int) -> None:
    rng = np.random.default_rng(h)
    d2 = rng.random((40, h)).astype(np.float32)
    d2[:, ::7] = 0.5  # ties
    idx, vals = top_m_smallest(d2, m)
    want = np.sort(d2, axis=1)[:, :m]
    np.testing.assert_array_equal(vals, want)
    np.testing.assert_array_equal(np.take_along_axis(d2, idx, axis=1), want)
    assert all(len(set(row)) == len(row) for row in idx.tolist())


def test_nearest_heads_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    x, heads = unit(rng, 300), unit(rng, 50)
    idx, d2 = nearest_heads(x, heads, np.einsum("ij,ij->i", heads, heads), 5)
    full = ((x[:, None, :] - heads[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1)[:, :5])
    np.testing.assert_allclose(d2, np.sort(full, axis=1)[:, :5], atol=1e-5)


def test_two_means_is_balanced_and_bisect_gives_k_centres() -> None:
    rng = np.random.default_rng(2)
    x = unit(rng, 400)
    x[:380] = x[0] + 0.01 * x[:380]  # one dense blob and a few outliers
    _, labels = two_means(x)
    assert min(labels.sum(), (1 - labels).sum()) >= 100
    centres = bisect(x, 25)
    assert centres.shape == (25, 16)


def test_kmeans_on_isotropic_blobs_does_not_starve_centres() -> None:
    # Random-point seeding leaves most centres with one point on such data; bisecting does not.
    rng = np.random.default_rng(3)
    x = np.concatenate([c + 0.5 * unit(rng, 500, 32) for c in 3 * unit(rng, 4, 32)])
    centres = kmeans(x, 40, iters=3)
    labels = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    sizes = np.bincount(labels, minlength=40)
    assert np.percentile(sizes, 10) >= 20


def test_select_replicas_closure_and_rng() -> None:
    heads = np.array([[0.0, 0.0], [2.0, 0.0], [-2.0, 0.0], [2.05, 0.0], [0.0, 2.0]], np.float32)
    cand = np.array([[0, 1, 3, 2, 4]])
    d2 = np.array([[1.0, 1.1, 1.15, 1.18, 1.5]], dtype=np.float32)
    keep = select_replicas(cand, d2, heads, replicas=8, closure_eps=0.2, rng_factor=1.0)
    # Heads 1, 3 and 2 pass the closure test (d² <= 1.2); 3 sits right behind 1
    # (d²(c3, c1) = 0.0025 < 1.15): the RNG rule drops it; 4 is outside the closure.
    assert keep.tolist() == [[True, True, False, True, False]]
    keep = select_replicas(cand, d2, heads, replicas=2, closure_eps=0.2, rng_factor=1.0)
    assert keep.sum() == 2
    keep = select_replicas(cand, d2, heads, replicas=8, closure_eps=0.0, rng_factor=1.0)
    assert keep.tolist() == [[True, False, False, False, False]]


@pytest.mark.parametrize(("replicas", "lam"), [(2, 1.0), (3, 1.0), (4, 4.0)])
def test_soar_replicas_match_the_loss_on_vectors(replicas: int, lam: float) -> None:
    # Oracle: SOAR's loss computed on the vectors themselves, one row at a time.
    rng = np.random.default_rng(replicas)
    x, heads = unit(rng, 200), unit(rng, 30)
    idx, d2 = nearest_heads(x, heads, np.einsum("ij,ij->i", heads, heads), 8)
    keep = soar_replicas(idx, d2, heads, replicas=replicas, lam=lam)
    for i in range(200):
        chosen = [0]
        while len(chosen) < replicas:
            res = [x[i] - heads[idx[i, a]] for a in chosen]
            loss = [
                np.inf
                if j in chosen
                else float(
                    (x[i] - heads[idx[i, j]]) @ (x[i] - heads[idx[i, j]])
                    + lam * sum(((x[i] - heads[idx[i, j]]) @ r) ** 2 / (r @ r) for r in res)
                )
                for j in range(8)
            ]
            chosen.append(int(np.argmin(loss)))
        assert sorted(chosen) == np.flatnonzero(keep[i]).tolist()


def test_soar_spills_to_an_orthogonal_residual_not_the_next_nearest() -> None:
    # x sits between c0 and c1 on a line; c2 is a little farther but off the line, so its
    # residual is orthogonal to x's primary residual.
    heads = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 1.1]], dtype=np.float32)
    cand = np.array([[0, 1, 2]])
    d2 = np.array([[0.81, 1.21, 1.21 + 0.01]], dtype=np.float32)  # x = (0.9, 0)
    assert soar_replicas(cand, d2, heads, replicas=2, lam=1.0).tolist() == [[True, False, True]]
    assert soar_replicas(cand, d2, heads, replicas=2, lam=0.0).tolist() == [[True, True, False]]
    missing = np.array([[0.81, np.inf, np.inf]], dtype=np.float32)  # one candidate only
    assert soar_replicas(cand, missing, heads, replicas=3, lam=1.0).tolist() == [
        [True, False, False]
    ]


def test_prune_keeps_the_nearest_and_respects_the_ratio() -> None:
    idx = np.array([[4, 2, 9, -1], [1, 3, 5, 7]])
    d2 = np.array([[1.0, 1.05, 1.3, np.inf], [0.0, 0.1, 0.2, 0.3]], dtype=np.float32)
    assert prune(idx, d2, 0.1).tolist() == [[True, True, False, False], [True] + [False] * 3]
    assert prune(idx, d2, None).tolist() == [[True, True, True, False], [True] * 4]


def test_id_map_against_a_dict() -> None:
    rng = np.random.default_rng(4)
    model: dict[int, int] = {}
    ids = IdMap(np.empty(0, dtype=np.int64), np.empty(0, dtype=bool))
    next_vid = 0
    for _ in range(60):
        new = np.setdiff1d(
            rng.integers(0, 20_000, size=int(rng.integers(1, 600))),
            np.array(list(model), dtype=np.int64),
        )
        vids = np.arange(next_vid, next_vid + new.size)
        next_vid += new.size
        ids.insert(new, vids)
        model.update(zip(new.tolist(), vids.tolist(), strict=True))
        gone = rng.integers(0, 20_000, size=100)
        ids.remove(gone)
        for g in gone.tolist():
            model.pop(g, None)
        probe = rng.integers(0, 20_000, size=300)
        want = [model.get(p, -1) for p in probe.tolist()]
        assert ids.lookup(probe).tolist() == want


def test_posting_file_alignment_round_trip_and_torn_detection(tmp_path: Path) -> None:
    dim = 24
    post = PostingFile(tmp_path, dim, 0, create=True)
    starts = [post.alloc(n) for n in (3, 10, 1)]
    assert all(s * 4 * dim % 4096 == 0 for s in starts)
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((10, dim)).astype(np.float32)
    ents = pack(np.arange(10), np.full(10, 7, dtype=np.uint8))
    post.write(starts[1], vecs, ents)
    np.testing.assert_array_equal(post.vectors[starts[1] : starts[1] + 10], vecs)
    assert unpack_vid(post.entries[starts[1] : starts[1] + 10]).tolist() == list(range(10))
    assert set(unpack_version(post.entries[starts[1] : starts[1] + 10]).tolist()) == {7}
    end = post.end
    post.trim()
    post.sync()
    post.close()
    PostingFile(tmp_path, dim, end).close()
    with pytest.raises(IndexFormatError, match="torn"):
        PostingFile(tmp_path, dim, end + 1000)


def test_head_index_kill_replace_add() -> None:
    rng = np.random.default_rng(6)
    heads = HeadIndex(unit(rng, 20))
    q = heads.vectors[3:4].copy()
    assert heads.search(q, 1)[0][0, 0] == 3
    heads.kill(3)
    assert heads.search(q, 20)[0][0, -1] == -1 and 3 not in heads.search(q, 20)[0]
    slot = heads.add(q)
    assert slot.tolist() == [20] and heads.search(q, 1)[0][0, 0] == 20
    heads.replace(5, q[0])
    assert set(heads.search(q, 2)[0][0].tolist()) == {5, 20}


def test_head_index_graph_agrees_with_exact() -> None:
    pytest.importorskip("hnswlib")
    rng = np.random.default_rng(7)
    vecs = unit(rng, 500)
    exact, graph = HeadIndex(vecs), HeadIndex(vecs, hnsw=(16, 100, 64))
    q = unit(rng, 30)
    hits = [
        len(set(a) & set(b))
        for a, b in zip(
            exact.search(q, 10)[0].tolist(), graph.search(q, 10)[0].tolist(), strict=True
        )
    ]
    assert np.mean(hits) >= 9.5
    graph.kill(int(graph.search(q[:1], 1)[0][0, 0]))
    assert graph.live_count == 499


def test_config_validation_and_round_trip() -> None:
    cfg = SpannConfig(posting_size=32, prune_eps=0.2)
    assert SpannConfig.from_dict({**cfg.to_dict(), "unknown": 1}) == cfg
    assert cfg.limit == 96
    with pytest.raises(ConfigError):
        SpannConfig(posting_size=0)
    with pytest.raises(ConfigError):
        SpannConfig(prune_eps=-1.0)
    with pytest.raises(ConfigError):
        SpannConfig(head_index="faiss")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        SpannConfig(posting_limit=3, merge_threshold=2)
