"""SpannIndex beyond the AnnIndex contract: stats, copies, compaction, head graph, filters."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import engramdb.ann.spann.index as spann_index
from engramdb.ann.spann import SpannConfig, SpannIndex, read_manifest
from engramdb.errors import IndexFormatError, InvalidInputError, MissingDependencyError

DIM = 16
CFG = SpannConfig(
    posting_size=8,
    posting_limit=24,
    merge_threshold=2,
    max_probes=1000,
    prune_eps=None,
    head_index="exact",
    calibration_queries=0,
)


def unit(seed: int, n: int) -> npt.NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute(
    ids: npt.NDArray[np.int64], vecs: npt.NDArray[np.float32], q: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    return ids[np.argsort(-(q @ vecs.T), axis=1, kind="stable")[:, :k]]


def test_build_rejects_empty_and_repeated_ids() -> None:
    with pytest.raises(InvalidInputError):
        SpannIndex.build(np.empty(0, dtype=np.int64), np.empty((0, DIM), dtype=np.float32))
    with pytest.raises(InvalidInputError):
        SpannIndex.build(np.array([1, 1]), unit(0, 2))


def test_build_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(IndexFormatError, match="refusing"):
        SpannIndex.build(np.arange(10), unit(0, 10), CFG, path=tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_stats_and_manifest(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    with SpannIndex.build(np.arange(300), unit(1, 300), CFG, path=path, store_version=4) as idx:
        stats = idx.stats()
        assert stats["count"] == 300 and stats["dim"] == DIM and stats["heads"] >= 300 // 24
        assert stats["head_index"] == "exact" and 1.0 <= stats["replication"] <= CFG.replicas
        assert stats["list_size"]["max"] <= CFG.limit
        assert idx.store_version == 4 and idx.path == path
    manifest = read_manifest(path)
    assert manifest["store_version"] == 4 and manifest["count"] == 300
    assert manifest["config"]["posting_size"] == 8


def test_save_elsewhere_is_a_compacted_copy_that_becomes_home(tmp_path: Path) -> None:
    ids, vecs = np.arange(400), unit(2, 400)
    idx = SpannIndex.build(ids, vecs, CFG)
    temp = idx.path
    idx.delete(ids[:200])
    idx.add(ids[:50], unit(3, 50))
    q = unit(4, 20)
    before = idx.search(q, 10)[0]
    rows_before = idx.stats()["file_rows"]
    idx.save(tmp_path / "copy", store_version=9)
    assert not temp.exists() and idx.path == tmp_path / "copy"
    np.testing.assert_array_equal(idx.search(q, 10)[0], before)
    assert idx.stats()["file_rows"] < rows_before
    idx.add(np.array([10_000]), q[:1])
    idx.save()
    idx.close()
    with SpannIndex.open(tmp_path / "copy") as again:
        assert again.store_version == 9 and len(again) == 251
        assert again.search(q[:1], 1)[0][0, 0] == 10_000


def test_heavy_churn_is_compacted_on_save(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    idx = SpannIndex.build(np.arange(200), unit(5, 200), CFG, path=path)
    for round_ in range(8):
        ids = np.arange(1000 * (round_ + 1), 1000 * (round_ + 1) + 200)
        idx.add(ids, unit(10 + round_, 200))
        idx.delete(ids - 1000 if round_ else np.arange(200))
        idx.save()
    files = sorted(p.name for p in path.iterdir())
    assert any(name.startswith("vectors.e") and name != "vectors.e1.f32" for name in files)
    stats = idx.stats()
    assert stats["file_rows"] < 3 * stats["used_rows"] + 8192
    live = np.arange(8000, 8200)
    q = unit(99, 10)
    np.testing.assert_array_equal(idx.search(q, 5)[0], brute(live, unit(17, 200), q, 5))
    idx.close()


def test_rebuild_keeps_live_vectors(tmp_path: Path) -> None:
    idx = SpannIndex.build(
        np.arange(300), unit(6, 300), CFG, path=tmp_path / "idx", store_version=2
    )
    idx.delete(np.arange(100))
    fresh = idx.rebuild()
    assert len(fresh) == 200 and fresh.store_version == 2
    q = unit(7, 5)
    np.testing.assert_array_equal(
        fresh.search(q, 5)[0], brute(np.arange(100, 300), unit(6, 300)[100:], q, 5)
    )
    fresh.close()


def test_allow_mask_path_matches_the_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    ids, vecs = np.arange(500), unit(8, 500)
    allow = ids[ids % 3 == 0]
    q = unit(9, 10)
    with SpannIndex.build(ids, vecs, CFG) as idx:
        exact = idx.search(q, 7, allow=allow)[0]
        monkeypatch.setattr(spann_index, "_EXACT_ALLOW", 0)
        masked = idx.search(q, 7, allow=allow)[0]
    np.testing.assert_array_equal(exact, masked)
    np.testing.assert_array_equal(exact, brute(allow, vecs[allow], q, 7))


def test_head_graph_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("hnswlib")
    cfg = SpannConfig(posting_size=8, head_index="hnsw", calibration_queries=64)
    path = tmp_path / "idx"
    ids, vecs = np.arange(2000), unit(10, 2000)
    with SpannIndex.build(ids, vecs, cfg, path=path) as idx:
        assert idx.stats()["head_index"] == "hnsw"
        idx.add(np.arange(5000, 5100), unit(11, 100))
        idx.save()
        q = unit(12, 30)
        before = idx.search(q, 10)[0]
    with SpannIndex.open(path) as again:
        assert again.stats()["head_index"] == "hnsw"
        np.testing.assert_array_equal(again.search(q, 10)[0], before)


def test_hnsw_heads_need_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hnswlib", None)
    with pytest.raises(MissingDependencyError, match="ann"):
        SpannIndex.build(np.arange(50), unit(13, 50), SpannConfig(head_index="hnsw"))
    auto = SpannConfig(posting_size=2, hnsw_min_heads=4)
    with SpannIndex.build(np.arange(50), unit(13, 50), auto) as idx:
        assert idx.stats()["head_index"] == "exact"
