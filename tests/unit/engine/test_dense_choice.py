"""The engine's dense index: flat for small stores, SPANN above the threshold, kept in sync
with the store across writes, reopens, crashes, torn folders and model changes."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engramdb import ConfigError, EngineConfig, InvalidInputError, Memory, load_config
from engramdb.ann.spann import SpannIndex, read_manifest
from engramdb.config import AnnConfig
from engramdb.engine._dense import spann_folder

HASH = {"model": "hash", "dim": 32}
SPANN = {
    "posting_size": 8,
    "posting_limit": 24,
    "merge_threshold": 2,
    "max_probes": 24,  # of about 38 lists at 300 vectors: not an exhaustive scan
    "prune_eps": None,
    "head_index": "exact",
    "calibration_queries": 0,
}
ANN = {"spann_threshold": 50, "spann": SPANN}
_SYLLABLES = [a + b for a in "bdfgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]


def texts(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences of made-up words (never near-duplicates of each other)."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(400)]
    return [f"{' '.join(rng.choices(words, k=10))} number {seed}-{i}." for i in range(n)]


@pytest.fixture
def opener(db_path: Path) -> Iterator[Any]:
    """Open Memories on ``db_path`` with the hash embedder and a tiny SPANN; closed after."""
    opened: list[Memory] = []

    def _open(path: Path = db_path, **kwargs: Any) -> Memory:
        kwargs.setdefault("embed", HASH)
        kwargs.setdefault("ann", ANN)
        mem = Memory.open(path, **kwargs)
        opened.append(mem)
        return mem

    yield _open
    for mem in opened:
        mem.close()


def dense_ids(mem: Memory, queries: list[str], k: int = 10) -> list[list[int]]:
    hits = mem.recall_many(queries, k=k, channels="dense")
    return [[h.id for h in hit] for hit in hits]


def all_ids(mem: Memory) -> set[int]:
    """Every id the dense index can return (an exhaustive search)."""
    vectors = mem.embedder.embed_queries(["anything at all"])
    ids, _ = mem.dense_index.search(vectors, max(len(mem.dense_index), 1) + 10)
    return {int(i) for i in ids[0] if i >= 0}


def manifest_version(mem: Memory) -> int:
    """The change-log position the SPANN folder reflects."""
    assert mem.dense_index.path is not None
    return int(read_manifest(mem.dense_index.path)["store_version"])


def caught_up(mem: Memory) -> bool:
    """The dense index holds exactly the store's memories, at the store's log position."""
    info = mem.dense_index.stats()
    return bool(info.count == info.memories and not info.stale) and (
        manifest_version(mem) <= mem.store.change_seq() if info.kind == "spann" else True
    )


def test_small_file_store_uses_flat_and_writes_no_folder(opener: Any, db_path: Path) -> None:
    mem = opener()
    mem.add_many(texts(30))
    assert mem.dense_index.kind == "flat"
    dense = mem.stats().dense
    assert (dense.kind, dense.count, dense.stale) == ("flat", 30, False)
    assert not Path(f"{db_path}.spann").exists()


def test_store_above_threshold_uses_spann(opener: Any, db_path: Path) -> None:
    mem = opener()
    mem.add_many(texts(80))
    assert mem.dense_index.kind == "spann"
    path = mem.dense_index.path
    assert path is not None and path.parent == Path(f"{db_path}.spann") and path.is_dir()
    dense = mem.stats().dense
    assert dense.kind == "spann" and dense.count == 80 and not dense.stale
    assert manifest_version(mem) == mem.store.change_seq() and caught_up(mem)


def test_growing_past_the_threshold_switches_at_the_next_write(opener: Any) -> None:
    mem = opener()
    corpus = texts(70)
    mem.add_many(corpus[:40])
    assert mem.dense_index.kind == "flat"
    mem.add_many(corpus[40:])
    assert mem.dense_index.kind == "spann"
    assert mem.dense_index.last_build is not None and "spann_threshold" in (
        mem.dense_index.last_build
    )
    assert len(mem.dense_index) == 70
    assert manifest_version(mem) == mem.store.change_seq() and caught_up(mem)


def test_spann_dense_channel_agrees_with_flat(opener: Any, tmp_path: Path) -> None:
    corpus = texts(300, seed=1)
    spann = opener(tmp_path / "spann.db")
    flat = opener(tmp_path / "flat.db", ann={"kind": "flat"})
    spann.add_many(corpus)
    flat.add_many(corpus)
    assert spann.dense_index.kind == "spann" and flat.dense_index.kind == "flat"
    parts = [" ".join(t.split()[2:7]) for t in corpus[:40]]  # a piece of a stored text
    for queries in (parts, texts(40, seed=7)):  # and other texts
        got, want = dense_ids(spann, queries), dense_ids(flat, queries)
        found = sum(len(set(g) & set(w)) for g, w in zip(got, want, strict=True))
        assert found / sum(len(w) for w in want) >= 0.95
    got, want = dense_ids(spann, parts, k=1), dense_ids(flat, parts, k=1)
    assert sum(g == w for g, w in zip(got, want, strict=True)) >= 38


def test_add_and_forget_keep_spann_in_sync(opener: Any) -> None:
    mem = opener()
    ids = list(mem.add_many(texts(90)).ids)
    gone = ids[::3]
    assert mem.forget(gone) == len(gone)
    assert caught_up(mem)
    assert all_ids(mem) == set(ids) - set(gone)
    more = mem.add_many(texts(20, seed=5)).ids
    assert all_ids(mem) == (set(ids) - set(gone)) | set(more)
    assert caught_up(mem)
    version = mem.store.data_version
    mem.add(texts(1, seed=5)[0])  # an exact duplicate at the same place: nothing changes
    assert caught_up(mem) and mem.store.data_version == version
    mem.dense_index.build()  # folds the gathered changes into the folder
    assert manifest_version(mem) == mem.store.change_seq()
    assert all_ids(mem) == (set(ids) - set(gone)) | set(more)
    for hits in mem.recall_many(texts(30), k=10, channels="dense"):
        assert not {h.id for h in hits} & set(gone)


def test_reopen_loads_without_rebuild_when_versions_match(opener: Any) -> None:
    mem = opener()
    mem.add_many(texts(80))
    before = dense_ids(mem, texts(5))
    mem.close()
    again = opener()
    assert again.dense_index.kind == "spann" and again.dense_index.last_build is None
    assert dense_ids(again, texts(5)) == before


class _Crash(BaseException):
    """Stands for the process dying."""


def test_a_store_ahead_of_its_index_is_caught_up_not_rebuilt(
    opener: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mem = opener()
    ids = list(mem.add_many(texts(80)).ids)
    saved = manifest_version(mem)

    def crash(self: SpannIndex, *args: Any, **kwargs: Any) -> None:
        raise _Crash

    monkeypatch.setattr(SpannIndex, "save", crash)
    mem.forget(ids[:10])  # the store commits; the folder is not touched
    assert mem.store.change_seq() > saved == manifest_version(mem)
    mem.close()
    monkeypatch.undo()
    again = opener()
    assert again.dense_index.last_build is None  # caught up from the change log
    assert all_ids(again) == set(ids[10:])
    assert again.dense_index.stats().pending == 10


def test_an_old_index_folder_put_back_is_caught_up(opener: Any, tmp_path: Path) -> None:
    mem = opener()
    ids = list(mem.add_many(texts(80)).ids)
    path = mem.dense_index.path
    assert path is not None
    shutil.copytree(path, tmp_path / "old")
    mem.forget(ids[:5])
    mem.add_many(texts(10, seed=9))
    mem.dense_index.build()
    mem.close()
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "old", path)
    again = opener()
    assert again.dense_index.last_build is None
    assert not all_ids(again) & set(ids[:5])
    assert len(again.dense_index) == again.stats().memories == 85


def test_an_index_older_than_the_change_log_is_rebuilt(opener: Any) -> None:
    mem = opener()
    ids = list(mem.add_many(texts(80)).ids)
    mem.forget(ids[:5])
    with mem.store.atomic(bump=False):
        mem.store.prune_changes(0)  # as if a long-gone writer had pruned the log
    mem.close()
    again = opener()
    assert again.dense_index.last_build == "it is older than the store's change log reaches"
    assert all_ids(again) == set(ids[5:])


@pytest.mark.parametrize("damage", ["manifest", "state", "postings"])
def test_a_torn_index_folder_is_rebuilt(opener: Any, damage: str) -> None:
    mem = opener()
    ids = set(mem.add_many(texts(80)).ids)
    path = mem.dense_index.path
    assert path is not None
    mem.close()
    if damage == "manifest":
        (path / "manifest.json").unlink()
    elif damage == "state":
        state = next(path.glob("state.g*.npz"))
        state.write_bytes(state.read_bytes()[:100])
    else:
        postings = next(path.glob("vectors.e*.f32"))
        postings.write_bytes(postings.read_bytes()[:64])
    again = opener()
    assert again.dense_index.kind == "spann"
    assert again.dense_index.last_build is not None
    assert again.dense_index.last_build.startswith("the index is torn or corrupt")
    assert all_ids(again) == ids
    assert read_manifest(path)["store_version"] == again.store.change_seq()


def test_model_change_rebuilds_and_drops_the_old_index(opener: Any) -> None:
    mem = opener()
    mem.add_many(texts(80))
    old = mem.dense_index.path
    mem.close()
    again = opener(embed={"model": "hash", "dim": 48})
    new = again.dense_index.path
    assert new is not None and old is not None and new != old
    assert again.dense_index.last_build == "built for another embedder model"
    assert again.dense_index.dim == 48 and len(again.dense_index) == 80
    assert new.is_dir() and not old.exists()


def test_other_spann_settings_rebuild(opener: Any) -> None:
    opener().add_many(texts(80))
    again = opener(ann={**ANN, "spann": {**SPANN, "replicas": 2}})
    assert again.dense_index.last_build == "it was built with other [ann.spann] settings"
    assert again.dense_index.spann_config.replicas == 2


def test_a_write_by_another_memory_is_caught_up(opener: Any) -> None:
    first = opener()
    ids = list(first.add_many(texts(80)).ids)
    second = opener()
    first.forget(ids[:4])
    assert not all_ids(second) & set(ids[:4])  # a read catches up, before any write
    added = second.add("a note from the second writer about zebras").ids
    assert second.dense_index.last_build is None
    assert set(added) <= all_ids(first)
    assert caught_up(first) and caught_up(second)


def test_a_failed_fold_rebuilds_the_folder(opener: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    mem = opener()
    mem.add_many(texts(80))
    mem.add_many(texts(10, seed=3))

    def fail(self: SpannIndex, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(SpannIndex, "add", fail)
    mem.dense_index.build()  # folds: the update fails, the folder is built anew
    monkeypatch.undo()
    assert mem.stats().memories == 90
    assert len(all_ids(mem)) == 90
    assert mem.dense_index.last_build is not None
    assert mem.dense_index.last_build.startswith("an earlier update of the index failed")


def test_build_forces_spann_below_the_threshold_and_sticks(opener: Any) -> None:
    mem = opener()
    mem.add_many(texts(20))
    assert mem.dense_index.kind == "flat"
    mem.dense_index.build()
    assert mem.dense_index.kind == "spann" and len(mem.dense_index) == 20
    mem.dense_index.build()  # fresh already: nothing to do
    mem.close()
    again = opener()
    assert again.dense_index.kind == "spann" and again.dense_index.last_build is None


def test_rebuild_and_stats(opener: Any) -> None:
    mem = opener()
    mem.add_many(texts(80))
    mem.dense_index.rebuild()
    assert mem.dense_index.last_build == "asked for (engram index rebuild)"
    stats = mem.dense_index.stats()
    assert stats.kind == "spann" and stats.count == stats.memories == 80
    assert stats.store_version == stats.log_seq and not stats.stale
    assert stats.spann is not None
    assert stats.spann["heads"] >= 1 and stats.spann["disk_bytes"] > 0
    assert "list_size" in stats.spann


def test_build_refuses_without_a_file_or_with_kind_flat(opener: Any, tmp_path: Path) -> None:
    with Memory.open(":memory:", embed=HASH, ann={"kind": "spann"}) as mem:
        mem.add_many(texts(60))
        assert mem.dense_index.kind == "flat" and mem.dense_index.path is None
        with pytest.raises(InvalidInputError, match="store file"):
            mem.dense_index.build()
    flat = opener(tmp_path / "flat.db", ann={"kind": "flat", "spann_threshold": 0})
    flat.add_many(texts(60))
    assert flat.dense_index.kind == "flat"
    with pytest.raises(InvalidInputError, match="'flat'"):
        flat.dense_index.build()
    empty = opener(tmp_path / "empty.db")
    with pytest.raises(InvalidInputError, match="no memories"):
        empty.dense_index.build()


def test_kind_spann_builds_at_the_first_write(opener: Any) -> None:
    mem = opener(ann={"kind": "spann", "spann": SPANN})
    assert mem.dense_index.kind == "flat"  # nothing to build from yet
    mem.add("the very first memory about otters")
    assert mem.dense_index.kind == "spann" and len(mem.dense_index) == 1
    mem.close()
    again = opener(ann={"kind": "spann", "spann": SPANN})
    assert again.dense_index.kind == "spann" and again.dense_index.last_build is None


def test_forgetting_everything_and_adding_again(opener: Any) -> None:
    mem = opener()
    ids = mem.add_many(texts(80)).ids
    mem.forget(list(ids))
    assert all_ids(mem) == set()
    assert mem.recall("anything", k=5, channels="dense").items == ()
    new = mem.add_many(texts(5, seed=3)).ids
    assert all_ids(mem) == set(new)
    mem.close()
    assert all_ids(opener()) == set(new)


def test_ann_config_validation_and_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ann.kind"):
        AnnConfig(kind="hnsw")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="spann_threshold"):
        AnnConfig(spann_threshold=-1)
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(ann={"threshold": 5})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) in \[ann.spann\]: bogus"):
        Memory.open(":memory:", embed=HASH, ann={"spann": {"bogus": 1}})
    with pytest.raises(ConfigError, match="posting_size"):
        Memory.open(":memory:", embed=HASH, ann={"spann": {"posting_size": 0}})
    assert EngineConfig().ann == AnnConfig(kind="auto", spann_threshold=50_000, spann={})
    toml = tmp_path / "engramdb.toml"
    toml.write_text(
        '[ann]\nkind = "spann"\nspann_threshold = 10\n[ann.spann]\nposting_size = 16\n',
        encoding="utf-8",
    )
    cfg = load_config(toml)
    assert cfg.ann.kind == "spann" and cfg.ann.spann_threshold == 10
    assert dict(cfg.ann.spann) == {"posting_size": 16}


def test_spann_folder_names() -> None:
    assert spann_folder(":memory:", "m") is None
    a = spann_folder("/x/notes.db", "http:text-embedding-3@https://api/v1")
    b = spann_folder("/x/notes.db", "http:text-embedding-3@https://api/v2")
    assert a is not None and b is not None and a != b
    assert a.parent == Path("/x/notes.db.spann") and "/" not in a.name and ":" not in a.name


def test_stats_of_the_whole_store_reports_the_dense_kind(opener: Any) -> None:
    mem = opener()
    mem.add_many(texts(80))
    ids, vectors = mem.dense_index.vectors()
    assert sorted(ids.tolist()) == sorted(all_ids(mem)) and vectors.shape == (80, 32)
    assert np.isfinite(vectors).all()
    assert mem.stats().dense.kind == "spann"


def test_folders_left_by_killed_builds_are_swept_on_open(opener: Any, db_path: Path) -> None:
    mem = opener()
    mem.add_many(texts(80))
    path = mem.dense_index.path
    assert mem.dense_index.kind == "spann" and path is not None
    parent = path.parent
    mem.close()
    (parent / f".{path.name}.tmp-0123456789ab").mkdir()
    (parent / f".{path.name}.old-0123456789ab").mkdir()
    again = opener()
    assert not [p for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert again.dense_index.kind == "spann" and again.dense_index.last_build is None


def test_the_change_log_is_pruned_in_batches(opener: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import engramdb.engine._dense as dense_module

    monkeypatch.setattr(dense_module, "_RETAIN", 10)
    monkeypatch.setattr(dense_module, "_FOLD_MIN", 4)
    mem = opener(ann={"kind": "flat"})
    for text in texts(40):
        mem.add(text)
        first = mem.store.oldest_change()
        assert first is not None
        span = mem.store.change_seq() - first
        assert span < 10 + 4  # at most the kept rows plus one batch of slack
    assert mem.store.oldest_change() != 1  # old rows were dropped
    assert len(mem.dense_index) == 40
