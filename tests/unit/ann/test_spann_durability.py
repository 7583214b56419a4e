"""SPANN durability: kill a writer mid-update, reopen, verify; detect torn or corrupt files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

import engramdb
from engramdb.ann.spann import SpannConfig, SpannIndex, read_manifest
from engramdb.errors import IndexFormatError

DIM = 8
CFG = SpannConfig(
    posting_size=4,
    posting_limit=10,
    merge_threshold=2,
    max_probes=10_000,
    prune_eps=None,
    head_index="exact",
    kmeans_iters=2,
    calibration_queries=0,
)

# Step i adds ids [100 i, 100 i + 40) and deletes the ids added two steps before, then commits
# with store_version=i. The model of step s is rebuilt here from the same seeds.
WRITER = """
import sys, numpy as np
from engramdb.ann.spann import SpannIndex
def vecs(i):
    x = np.random.default_rng(i).standard_normal((40, 8)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
index = SpannIndex.open(sys.argv[1])
for i in range(1, 10_000):
    index.add(np.arange(100 * i, 100 * i + 40), vecs(i))
    index.delete(np.arange(100 * (i - 2), 100 * (i - 2) + 40))
    index.save(store_version=i)
    print(i, flush=True)
"""


def vecs(i: int) -> npt.NDArray[np.float32]:
    x = np.random.default_rng(i).standard_normal((40, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def model(step: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    keep = [i for i in range(step + 1) if i > step - 2]
    ids = np.concatenate([np.arange(100 * i, 100 * i + 40) for i in keep])
    return ids, np.concatenate([vecs(i) for i in keep])


def check_matches(index: SpannIndex, step: int) -> None:
    ids, vectors = model(step)
    assert len(index) == ids.size
    q = vecs(10_000)
    got, _ = index.search(q, 5)
    order = np.argsort(ids)
    exact = q @ vectors[order].T
    want = ids[order][np.argsort(-exact, axis=1, kind="stable")[:, :5]]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.13])
def test_kill_during_updates_leaves_a_committed_state(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "idx"
    SpannIndex.build(np.arange(0, 40), vecs(0), CFG, path=path, store_version=0).close()
    env = dict(os.environ, PYTHONPATH=str(Path(engramdb.__file__).parents[1]))
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        for _ in range(3):
            proc.stdout.readline()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    with SpannIndex.open(path) as index:
        step = index.store_version
        assert step is not None and step >= 3
        check_matches(index, step)


def test_uncommitted_changes_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    SpannIndex.build(np.arange(0, 40), vecs(0), CFG, path=path, store_version=0).close()
    index = SpannIndex.open(path)
    index.add(np.arange(100, 140), vecs(1))
    index.delete(np.arange(0, 40))
    index.close()
    with SpannIndex.open(path) as again:
        assert again.store_version == 0
        check_matches(again, 0)


def test_build_replaces_the_folder_atomically(tmp_path: Path) -> None:
    path = tmp_path / "idx"
    SpannIndex.build(np.arange(0, 40), vecs(0), CFG, path=path, store_version=1).close()
    SpannIndex.build(np.arange(100, 140), vecs(1), CFG, path=path, store_version=2).close()
    assert read_manifest(path)["store_version"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def _built(tmp_path: Path) -> Path:
    path = tmp_path / "idx"
    index = SpannIndex.build(np.arange(0, 40), vecs(0), CFG, path=path)
    index.add(np.arange(100, 140), vecs(1))
    index.save()
    index.close()
    return path


def test_flipped_byte_in_state_is_detected(tmp_path: Path) -> None:
    path = _built(tmp_path)
    state = next(path.glob("state.g*.npz"))
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum"):
        SpannIndex.open(path)


def test_truncated_postings_are_detected(tmp_path: Path) -> None:
    path = _built(tmp_path)
    vectors = next(p for p in path.iterdir() if p.name.startswith("vectors"))
    os.truncate(vectors, vectors.stat().st_size // 2)
    with pytest.raises(IndexFormatError, match="torn"):
        SpannIndex.open(path)


def test_missing_or_foreign_manifest_is_detected(tmp_path: Path) -> None:
    path = _built(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 999
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="rebuild"):
        SpannIndex.open(path)
    (path / "manifest.json").unlink()
    with pytest.raises(IndexFormatError):
        SpannIndex.open(path)
    with pytest.raises(IndexFormatError):
        SpannIndex.open(tmp_path / "nowhere")
