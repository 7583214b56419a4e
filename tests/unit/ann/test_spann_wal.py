"""SPANN's write-ahead log: commits append records, opening replays them, checkpoints bound
the log, another process's commits are followed, and a writer killed at any moment leaves
exactly its last commit (no id lost, none deleted come back)."""

from __future__ import annotations

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
import engramdb.ann.spann.index as spann_index
from engramdb.ann.spann import SpannConfig, SpannIndex, read_manifest
from engramdb.ann.spann._manifest import read_checkpoint
from engramdb.ann.spann._state import DELETED
from engramdb.ann.spann._wal import Record, log_name, read_log
from engramdb.errors import IndexFormatError, InvalidInputError

DIM = 8
CFG = SpannConfig(
    posting_size=4,
    posting_limit=10,
    merge_threshold=3,
    replicas=3,
    closure_eps=0.3,
    soar=0.0,
    candidates=6,
    max_probes=10_000,
    prune_eps=None,
    head_index="exact",
    kmeans_iters=2,
    reassign_lists=4,
    calibration_queries=0,
)


def unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    x[:, 0] += 1.0
    out: npt.NDArray[np.float32] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def same_state(a: SpannIndex, b: SpannIndex) -> None:
    """Two indexes hold the same committed state (ids, versions, rows, lists, heads)."""
    sa, sb = a._state, b._state
    n = sa.n_vids
    assert (n, sa.n_live, sa.post.end, sa.heads.n) == (
        sb.n_vids,
        sb.n_live,
        sb.post.end,
        sb.heads.n,
    )
    np.testing.assert_array_equal(sa.ext[:n], sb.ext[:n])
    np.testing.assert_array_equal(sa.version[:n], sb.version[:n])
    live = sa.version[:n] != DELETED
    np.testing.assert_array_equal(sa.loc[:n][live], sb.loc[:n][live])
    np.testing.assert_array_equal(sa.directory(), sb.directory())
    np.testing.assert_array_equal(sa.heads.alive, sb.heads.alive)
    np.testing.assert_array_equal(
        sa.heads.vectors[sa.heads.alive], sb.heads.vectors[sb.heads.alive]
    )
    assert a.store_version == b.store_version
    ids = np.arange(-5, 400)
    np.testing.assert_array_equal(a.contains(ids), b.contains(ids))


Model = dict[int, npt.NDArray[np.float32]]


def exact_top(model: Model, q: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    keys = np.array(sorted(model), dtype=np.int64)
    scores = q @ np.stack([model[i] for i in keys]).T
    top: npt.NDArray[np.int64] = keys[np.argsort(-scores, axis=1, kind="stable")[:, :k]]
    return top


def churn(index: SpannIndex, model: Model, rng: np.random.Generator) -> None:
    """One random add (some ids replaced) or delete, mirrored in ``model``."""
    ids = rng.integers(0, 300, size=int(rng.integers(1, 12)))
    if rng.random() < 0.65:
        vecs = unit(rng, ids.size)
        index.add(ids, vecs)
        model.update(zip(ids.tolist(), vecs, strict=True))
    else:
        index.delete(ids)
        for i in ids.tolist():
            model.pop(i, None)


def built(tmp_path: Path, rng: np.random.Generator) -> tuple[SpannIndex, Model]:
    ids = np.arange(0, 120, 2)
    vecs = unit(rng, ids.size)
    index = SpannIndex.build(ids, vecs, CFG, path=tmp_path / "idx", store_version=0)
    return index, dict(zip(ids.tolist(), vecs, strict=True))


def test_record_round_trip_and_a_torn_or_flipped_tail_is_ignored(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    records = [
        Record(
            generation=g,
            store_version=None if g == 3 else 10 * g,
            n_vids=g,
            n_heads=2,
            end=64 * g,
            count=g - 1,
            epoch=1,
            written=np.arange(2 * (g % 3), dtype=np.int64).reshape(-1, 2),
            rows_crc=1000 + g,
            synced=g == 4,
            vids=np.arange(g, dtype=np.int64),
            ext=np.arange(g, dtype=np.int64) * 7,
            version=np.full(g, g, dtype=np.uint8),
            loc=np.arange(g, dtype=np.int64) + 3,
            slots=np.array([g % 2], dtype=np.int64),
            directory=np.array([[g, g + 1, g + 2]], dtype=np.int64),
            new_heads=unit(rng, g % 2),
            moved=np.array([0], dtype=np.int64),
            moved_heads=unit(rng, 1),
            killed=np.arange(g % 3, dtype=np.int64),
        )
        for g in range(2, 7)
    ]
    blobs = [r.encode() for r in records]
    path = tmp_path / log_name(1)
    path.write_bytes(b"".join(blobs))
    got = read_log(path, after=1)
    assert got is not None and len(got) == 5
    np.testing.assert_array_equal(got.header[:, 0], [2, 3, 4, 5, 6])
    assert got.ends[-1] == path.stat().st_size
    assert [got.prefix(2).last("store_version"), got.prefix(1).last("store_version")] == [None, 20]
    assert got.last("end") == 64 * 6 and got.last("count") == 5 and got.last("epoch") == 1
    np.testing.assert_array_equal(got.rows_crc, [1002, 1003, 1004, 1005, 1006])
    np.testing.assert_array_equal(got.synced, [False, False, True, False, False])
    for j, r in enumerate(records):
        np.testing.assert_array_equal(got.ranges(j), r.written)
    for name in ("vids", "ext", "version", "loc", "slots", "directory", "written"):
        want = np.concatenate([getattr(r, name) for r in records])
        np.testing.assert_array_equal(getattr(got, name), want)
        half = got.prefix(2)
        np.testing.assert_array_equal(
            getattr(half, name), np.concatenate([getattr(r, name) for r in records[:2]])
        )
    changed = [(j, r) for j, r in enumerate(records) if r.new_heads.size or r.moved.size]
    assert [h[0] for h in got.heads] == [j for j, _ in changed]
    for (_, new_heads, moved, moved_heads, killed), (_, r) in zip(got.heads, changed, strict=True):
        np.testing.assert_array_equal(new_heads, r.new_heads)
        np.testing.assert_array_equal(moved, r.moved)
        np.testing.assert_array_equal(moved_heads, r.moved_heads)
        np.testing.assert_array_equal(killed, r.killed)
    whole = b"".join(blobs)
    for cut in rng.integers(1, len(whole), size=40).tolist():
        path.write_bytes(whole[:cut])
        got = read_log(path, after=1)
        assert got is not None
        complete = sum(1 for end in np.cumsum([len(b) for b in blobs]) if end <= cut)
        assert len(got) == complete
    flipped = bytearray(whole)
    flipped[len(blobs[0]) + len(blobs[1]) // 2] ^= 0x40
    path.write_bytes(bytes(flipped))
    assert [
        len(b) if b is not None else None
        for b in (
            read_log(path, after=1),
            read_log(path, after=2),  # not the next generation
            read_log(tmp_path / "missing.log", after=1),
            read_log(tmp_path / "missing.log", after=1, offset=10),  # the log read before is gone
        )
    ] == [1, 0, 0, None]


def test_a_commit_appends_a_record_and_opening_replays_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    index, model = built(tmp_path, rng)
    path = index.path
    checkpoint = next(path.glob("state.g*.npz"))
    for step in range(1, 150):
        churn(index, model, rng)
        if step % 3 == 0:
            index.save(store_version=step)
            assert read_manifest(path)["store_version"] == step
            with SpannIndex.open(path) as again:
                same_state(index, again)
                q = unit(rng, 3)
                np.testing.assert_array_equal(again.search(q, 5)[0], index.search(q, 5)[0])
    assert sorted(index.vectors()[0].tolist()) == sorted(model)
    stats = index.stats()
    assert stats["log_bytes"] > 0 and stats["generation"] > stats["checkpoint"]
    if stats["checkpoint"] == 1:  # no compaction happened: the arrays were never re-saved
        assert next(path.glob("state.g*.npz")) == checkpoint
    q = unit(rng, 4)
    np.testing.assert_array_equal(index.search(q, 6)[0], exact_top(model, q, 6))
    index.close()


def test_the_log_is_checkpointed_once_it_outgrows_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spann_index, "_LOG_MIN", 2048)
    monkeypatch.setattr(spann_index, "_LOG_RATIO", 0.0)
    rng = np.random.default_rng(2)
    index, model = built(tmp_path, rng)
    checkpoints = set()
    for step in range(1, 120):
        churn(index, model, rng)
        index.save(store_version=step)
        stats = index.stats()
        assert stats["log_bytes"] < 2048 + 4096  # one record past the bound at most
        checkpoints.add(stats["checkpoint"])
        logs = sorted(p.name for p in index.path.glob("wal.g*.log"))
        assert len(logs) <= 2 and len(list(index.path.glob("state.g*.npz"))) == 1
    assert len(checkpoints) > 3
    with SpannIndex.open(index.path) as again:
        same_state(index, again)
        q = unit(rng, 4)
        np.testing.assert_array_equal(again.search(q, 6)[0], exact_top(model, q, 6))
    index.close()


@pytest.mark.parametrize("damage", ["rows", "short"])
def test_rows_lost_with_the_page_cache_end_the_replay_before_their_record(
    tmp_path: Path, damage: str
) -> None:
    """Posting rows are synced now and then, not with every commit: when rows a record
    wrote did not reach the disk (power lost), the index opens as of the commit before."""
    rng = np.random.default_rng(8)
    index, model = built(tmp_path, rng)
    path = tmp_path / "idx"
    checkpoint_end = int(read_checkpoint(path)["end"])
    models = {0: dict(model)}
    for step in range(1, 200):  # until a commit needed rows past the checkpoint's
        churn(index, model, rng)
        index.save(store_version=step)
        models[step] = dict(model)
        if step >= 6 and index.stats()["file_rows"] > checkpoint_end:
            break
    index.close()
    assert int(read_checkpoint(path)["generation"]) == 1  # no checkpoint since the build
    batch = read_log(next(path.glob("wal.g*.log")), after=1)
    assert batch is not None and len(batch) == step
    assert not batch.synced.any()  # the build's checkpoint synced the files: none since
    vectors = next(path.glob("vectors.e*.f32"))
    if damage == "rows":  # the rows written by the commit of step 4 are zeros on disk
        (start, n), *_ = batch.ranges(3).tolist()
        with vectors.open("r+b") as fh:
            fh.seek(start * 4 * DIM)
            fh.write(bytes(n * 4 * DIM))
        lost = 4
    else:  # the file lost its growth past the rows of the checkpoint
        os.truncate(vectors, checkpoint_end * 4 * DIM)
        lost = int(np.flatnonzero(batch.header[:, 4] > checkpoint_end)[0]) + 1
    with SpannIndex.open(path) as again:
        assert again.store_version == lost - 1
        want = models[lost - 1]
        assert sorted(again.vectors()[0].tolist()) == sorted(want)
        q = unit(rng, 4)
        np.testing.assert_array_equal(again.search(q, 6)[0], exact_top(want, q, 6))
        churn(again, want, rng)  # and it goes on from there, over the lost records
        again.save(store_version=lost)
    with SpannIndex.open(path) as third:
        assert third.store_version == lost
        assert sorted(third.vectors()[0].tolist()) == sorted(want)


def test_uncommitted_changes_are_dropped_and_the_next_commit_follows_the_last(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    index, model = built(tmp_path, rng)
    churn(index, model, rng)
    index.save(store_version=1)
    kept = dict(model)
    for _ in range(5):
        churn(index, model, rng)
    index.close()  # the changes after the commit are lost
    again = SpannIndex.open(tmp_path / "idx")
    assert again.store_version == 1
    assert sorted(again.vectors()[0].tolist()) == sorted(kept)
    churn(again, kept, rng)
    again.save(store_version=2)
    again.close()
    with SpannIndex.open(tmp_path / "idx") as third:
        assert third.store_version == 2
        assert sorted(third.vectors()[0].tolist()) == sorted(kept)


def caught_up(index: SpannIndex, counts: dict[str, int]) -> SpannIndex:
    """``index`` refreshed (incrementally when it can be), else reopened."""
    if index.refresh():
        counts["followed"] += 1
        assert not index.changed_on_disk()
        return index
    counts["reopened"] += 1
    path = index.path
    index.close()
    return SpannIndex.open(path)


def test_refresh_follows_another_writers_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spann_index, "_LOG_MIN", 4096)
    monkeypatch.setattr(spann_index, "_LOG_RATIO", 0.0)
    rng = np.random.default_rng(4)
    first, model = built(tmp_path, rng)
    second = SpannIndex.open(first.path)
    assert second.refresh() and not second.changed_on_disk()
    counts = {"followed": 0, "reopened": 0}
    step = 0
    for _ in range(16):  # the two take turns writing; each catches up before it writes
        for _ in range(int(rng.integers(1, 5))):
            step += 1
            churn(first, model, rng)
            first.save(store_version=step)
        assert second.changed_on_disk()
        second = caught_up(second, counts)
        same_state(first, second)
        q = unit(rng, 3)
        np.testing.assert_array_equal(second.search(q, 5)[0], exact_top(model, q, 5))
        first, second = second, first
    assert counts["followed"] >= 10, counts  # most catch-ups are incremental
    first.close()
    second.close()


def test_refresh_stops_at_a_store_version_and_refuses_with_changes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    writer, model = built(tmp_path, rng)
    reader = SpannIndex.open(writer.path)
    for step in (1, 2, 3):
        churn(writer, model, rng)
        writer.save(store_version=step)
    assert reader.refresh(upto=2) and reader.store_version == 2
    assert reader.changed_on_disk()
    assert reader.refresh() and reader.store_version == 3
    same_state(writer, reader)
    churn(reader, model, rng)
    with pytest.raises(InvalidInputError, match="commit"):
        reader.refresh()
    reader.close()
    writer.close()


def test_refresh_refuses_a_rebuilt_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    writer, _ = built(tmp_path, rng)
    reader = SpannIndex.open(writer.path)
    fresh = writer.rebuild()
    fresh.add(np.array([999]), unit(rng, 1))
    fresh.save(store_version=5)
    assert reader.changed_on_disk() and not reader.refresh()
    assert reader.store_version == 0  # unchanged
    fresh.close()
    reader.close()


def test_a_malformed_record_with_a_good_checksum_is_reported(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    index, model = built(tmp_path, rng)
    churn(index, model, rng)
    index.save(store_version=1)
    index.close()
    log = next((tmp_path / "idx").glob("wal.g*.log"))
    data = bytearray(log.read_bytes())
    payload = bytes(data[12:-1])  # one byte short: the arrays no longer add up
    import struct
    import zlib

    log.write_bytes(struct.pack("<4sII", b"SWAL", len(payload), zlib.crc32(payload)) + payload)
    with pytest.raises(IndexFormatError, match="malformed"):
        SpannIndex.open(tmp_path / "idx")


# The writer: step s applies the changes drawn from seed s to the model of step s - 1 and
# commits with store_version=s (printing s once save() returned). Checkpoints are frequent.
WRITER = """
import sys, numpy as np
import engramdb.ann.spann.index as spann_index
from engramdb.ann.spann import SpannIndex
spann_index._LOG_MIN = 16384
spann_index._LOG_RATIO = 0.0
sys.path.insert(0, sys.argv[2])
from test_spann_wal import step_changes
index = SpannIndex.open(sys.argv[1])
for s in range(1, 100_000):
    add_ids, add_vecs, del_ids = step_changes(s)
    index.add(add_ids, add_vecs)
    index.delete(del_ids)
    if s % 7 == 0:
        index.save(store_version=s)
        print(s, flush=True)
"""


def step_changes(
    s: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The adds (some replacing live ids) and deletes of writer step ``s``."""
    rng = np.random.default_rng(1000 + s)
    adds = rng.choice(400, size=int(rng.integers(1, 8)), replace=False).astype(np.int64)
    dels = rng.choice(400, size=int(rng.integers(0, 5)), replace=False).astype(np.int64)
    return adds, unit(rng, adds.size), dels


def model_at(step: int) -> Model:
    rng = np.random.default_rng(99)
    model = dict(zip(range(0, 120, 2), unit(rng, 60), strict=True))
    for s in range(1, step + 1):
        adds, vecs, dels = step_changes(s)
        model.update(zip(adds.tolist(), vecs, strict=True))
        for i in dels.tolist():
            model.pop(i, None)
    return model


@pytest.mark.parametrize("seed", range(6))
def test_a_writer_killed_at_a_random_moment_leaves_its_last_commit(
    tmp_path: Path, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path / "idx"
    start = model_at(0)
    ids = np.array(sorted(start), dtype=np.int64)
    SpannIndex.build(
        ids, np.stack([start[i] for i in ids]), CFG, path=path, store_version=0
    ).close()
    env = dict(os.environ, PYTHONPATH=str(Path(engramdb.__file__).parents[1]))
    here = str(Path(__file__).parent)
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), here], env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        printed = int(proc.stdout.readline())  # the writer is running and has committed
        time.sleep(float(rng.uniform(0.0, 0.8)))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        printed = max([printed, *(int(x) for x in out.split())])
    with SpannIndex.open(path) as index:
        step = index.store_version
        assert step is not None and step % 7 == 0
        assert printed <= step <= printed + 7  # the last commit may not have been printed
        model = model_at(step)
        got_ids, got_vecs = index.vectors()
        assert sorted(got_ids.tolist()) == sorted(model)  # none lost, none come back
        for i, v in zip(got_ids.tolist(), got_vecs, strict=True):
            np.testing.assert_array_equal(v, model[i])
        q = unit(rng, 8)
        np.testing.assert_array_equal(index.search(q, 10)[0], exact_top(model, q, 10))
        # the reopened index goes on from there
        index.add(np.array([5000]), q[:1])
        index.save(store_version=step + 1)
    with SpannIndex.open(path) as again:
        assert again.store_version == step + 1 and len(again) == len(model) + 1
