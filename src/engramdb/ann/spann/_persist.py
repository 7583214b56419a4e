"""Folders, commits (log records and checkpoints), loading and compaction of SPANN state.

A commit appends a record of what changed to the folder's log (:mod:`._wal`): a few hundred
bytes for a small write, where a checkpoint re-saves every array. :func:`load` reads the
last checkpoint and replays the log after it; :func:`follow` applies to a state in RAM the
records another process appended since (it follows the log across one checkpoint when that
checkpoint was logged first, i.e. it holds exactly the state after its own record).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._heads import HeadIndex
from engramdb.ann.spann._manifest import (
    FORMAT,
    FORMAT_VERSION,
    load_arrays,
    read_checkpoint,
    read_manifest,
)
from engramdb.ann.spann._manifest import (
    commit as write_commit,
)
from engramdb.ann.spann._postings import PostingFile, posting_names
from engramdb.ann.spann._state import DELETED, State, rows_crc
from engramdb.ann.spann._wal import Batch, LogWriter, log_name, read_log
from engramdb.errors import IndexFormatError

__all__ = [
    "LogPosition",
    "append",
    "read_checkpoint",
    "checkpoint",
    "compacted",
    "follow",
    "load",
    "needs_compaction",
    "replace_folder",
    "stats",
    "work_folder",
]

_ARRAYS = ("heads", "alive", "directory", "ext", "version", "loc")
_Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class LogPosition:
    """Where an index stands in its folder's history.

    Attributes:
        lineage: the build the folder descends from (a rebuild starts another).
        checkpoint: the generation of the checkpoint the log follows.
        generation: the generation of the last commit (the checkpoint's, or a record's).
        offset: the log's length up to that commit.
        checkpoint_bytes: the size of the checkpoint's files (the log is bounded by it).
    """

    lineage: str
    checkpoint: int
    generation: int
    offset: int
    checkpoint_bytes: int

    def writer(self, folder: Path) -> LogWriter:
        """A writer appending after this position."""
        return LogWriter(folder / log_name(self.checkpoint), self.offset)


def work_folder(target: Path | None) -> Path:
    """A fresh folder to build in: next to ``target`` (same file system) or a temp folder.

    Raises:
        IndexFormatError: ``target`` exists and is neither empty nor a SPANN index (it would
            be replaced).
    """
    if target is None:
        return Path(tempfile.mkdtemp(prefix="engramdb-spann-"))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        try:
            read_manifest(target)
        except IndexFormatError as exc:
            raise IndexFormatError(
                f"{target} exists and is not a SPANN index; refusing to replace it"
            ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    work.mkdir()
    return work


def replace_folder(src: Path, target: Path) -> None:
    """Atomically put folder ``src`` at ``target`` (an old ``target`` is removed after)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
        os.replace(target, old)
        os.replace(src, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, target)


def checkpoint(
    folder: Path, state: State, cfg: SpannConfig, meta: dict[str, Any], keep: tuple[str, ...] = ()
) -> int:
    """Sync the posting files, then write checkpoint ``meta["generation"]`` (arrays, head
    graph, manifest) and start its empty log; returns the checkpoint's size in bytes.

    ``keep``: files of the previous checkpoint to leave in place (its log, for a reader that
    follows it here); everything else of older generations is removed.
    """
    state.post.trim()
    state.post.sync()
    gen = int(meta["generation"])
    n = state.n_vids
    arrays: dict[str, npt.NDArray[Any]] = {
        "heads": state.heads.vectors,
        "alive": state.heads.alive,
        "directory": state.directory(),
        "ext": state.ext[:n],
        "version": state.version[:n],
        "loc": state.loc[:n],
    }
    extra: tuple[str, ...] = ()
    graph = folder / f"heads.g{gen}.hnsw"
    if state.heads.save_graph(graph):
        extra = (graph.name,)
    (folder / log_name(gen)).unlink(missing_ok=True)  # left by a checkpoint that never published
    manifest = dict(
        meta,
        format=FORMAT,
        format_version=FORMAT_VERSION,
        dim=state.post.dim,
        count=state.n_live,
        vids=n,
        end=state.post.end,
        config=cfg.to_dict(),
        updated=time.time(),
        epoch=state.post.epoch,
        graph=extra[0] if extra else None,
    )
    write_commit(folder, manifest, arrays, extra, keep)
    keep_posts = posting_names(state.post.epoch)
    for name in posting_names(0):  # every epoch's files of each kind
        for old in folder.glob(name.replace(".e0.", ".e*.")):
            if old.name not in keep_posts:
                old.unlink(missing_ok=True)
    state.clean()
    return sum((folder / name).stat().st_size for name in (f"state.g{gen}.npz", *extra))


def append(
    writer: LogWriter, state: State, generation: int, store_version: int | None, *, sync: bool
) -> None:
    """Commit ``state``'s changes as log record ``generation`` (synced); ``sync``: the posting
    files are synced first, else the record's checksum of the rows it wrote stands for them
    (see :mod:`._wal`). The files are cut to the rows in use first, as a checkpoint does, so
    that they are as long as the record says."""
    state.post.trim()
    if sync:
        state.post.sync()
    writer.append(state.changes(generation, store_version, synced=sync))
    state.clean()


def needs_compaction(state: State) -> bool:
    """Whether over half of the posting files is garbage (moved or merged lists)."""
    used = int(state.rows[: state.heads.n][state.heads.alive].sum())
    return state.post.end > 2 * used + 4096


def load(folder: Path) -> tuple[State, SpannConfig, dict[str, Any], LogPosition]:
    """The committed state in ``folder``: its last checkpoint with the log replayed; the
    manifest as of the last commit; and where the log stands.

    Raises:
        IndexFormatError: missing, torn, corrupt or inconsistent files.
    """
    manifest = read_checkpoint(folder)
    arr = load_arrays(folder, manifest, _ARRAYS)
    gen = int(manifest["generation"])
    batch = read_log(folder / log_name(gen), after=gen)  # never None from offset 0
    assert batch is not None
    dim, epoch = int(manifest["dim"]), int(manifest.get("epoch", 0))
    batch = _within_files(folder, batch, dim, epoch)
    end = int(batch.last("end") or 0) if len(batch) else int(manifest["end"])
    directory = arr["directory"].astype(np.int64)
    heads = arr["heads"].astype(np.float32)
    vids = int(manifest["vids"])
    ok = (
        heads.ndim == 2
        and heads.shape[1] == dim
        and directory.shape == (heads.shape[0], 3)
        and arr["alive"].shape == (heads.shape[0],)
        and all(arr[name].shape == (vids,) for name in ("ext", "version", "loc"))
        and bool(np.all(batch.header[:, 6] == epoch))
        and all(h[1].shape[1] == dim and h[3].shape[1] == dim for h in batch.heads)
    )
    if not ok:
        raise IndexFormatError(f"{folder}: arrays do not match the manifest; rebuild the index")
    cfg = SpannConfig.from_dict(manifest.get("config", {}))
    head_index = HeadIndex(heads, arr["alive"].astype(bool))
    if manifest.get("graph"):
        head_index.load_graph(folder / manifest["graph"], max(cfg.hnsw_ef, 2 * cfg.max_probes))
    post = PostingFile(folder, dim, end, epoch=epoch)
    batch = _intact(post, batch)
    if len(batch):
        post.end = end = int(batch.last("end") or 0)
    else:
        post.end = end = int(manifest["end"])
    offset = int(batch.ends[-1]) if len(batch) else 0
    vid_arrays = (
        arr["ext"].astype(np.int64, copy=False),
        arr["version"].astype(np.uint8, copy=False),
        arr["loc"].astype(np.int64, copy=False),
    )
    state = State(post, head_index, directory, vid_arrays, cfg.slack)
    state.replay(batch)
    count = int(batch.last("count") or 0) if len(batch) else int(manifest["count"])
    if state.n_live != count or not _consistent(state):
        post.close()
        raise IndexFormatError(f"{folder}: the state does not match the manifest; rebuild it")
    if len(batch):
        manifest = dict(
            manifest,
            generation=batch.last("generation"),
            store_version=batch.last("store_version"),
            count=count,
            vids=batch.last("vids"),
            end=end,
        )
    position = LogPosition(
        lineage=str(manifest.get("lineage", "")),
        checkpoint=gen,
        generation=int(manifest["generation"]),
        offset=offset,
        checkpoint_bytes=sum(int(f["size"]) for f in manifest.get("files", {}).values()),
    )
    return state, cfg, manifest, position


def _unsynced(batch: Batch) -> int:
    """The first record after the last one written with the posting files synced."""
    synced = np.flatnonzero(batch.synced)
    return int(synced[-1]) + 1 if synced.size else 0


def _within_files(folder: Path, batch: Batch, dim: int, epoch: int) -> Batch:
    """``batch`` up to the first unsynced record whose rows lie past the end of the vector
    or entry file (lost with the page cache)."""
    names = posting_names(epoch)
    try:
        rows = min(
            (folder / names[0]).stat().st_size // (4 * dim), (folder / names[1]).stat().st_size // 8
        )
    except OSError:
        return batch  # PostingFile reports it
    ends = batch.header[:, 4]
    past = np.flatnonzero(ends[_unsynced(batch) :] > rows)
    return batch.prefix(_unsynced(batch) + int(past[0])) if past.size else batch


def _intact(post: PostingFile, batch: Batch) -> Batch:
    """``batch`` up to the first record after the last synced one whose posting rows do not
    match its checksum."""
    for j in range(_unsynced(batch), len(batch)):
        if rows_crc(post, batch.ranges(j)) != int(batch.rows_crc[j]):
            return batch.prefix(j)
    return batch


def _consistent(state: State) -> bool:
    """Every list lies inside the used rows, and so does every live vid's row."""
    end, n = state.post.end, state.heads.n
    live = state.version[: state.n_vids] != DELETED
    return bool(
        np.all(state.start[:n] + state.rows[:n] <= end)
        and np.all(state.loc[: state.n_vids][live] < max(end, 1))
    )


def follow(
    folder: Path, state: State, at: LogPosition, upto: int | None
) -> tuple[LogPosition, int | None] | None:
    """Apply to ``state`` (committed at ``at``, unchanged since) the records appended to the
    folder's log since, up to the last whose store version is at most ``upto`` (``None``:
    all); the new position and the store version of the last record applied (``None``: none
    was). ``None``: the history cannot be followed (another lineage, or more than one
    checkpoint, or a compacting one, happened since); ``state`` is unchanged.

    Raises:
        IndexFormatError: a record is malformed, or the posting files are torn.
    """
    latest = read_checkpoint(folder)
    if latest.get("lineage") != at.lineage:
        return None
    batches: list[Batch] = []
    pos = at
    while True:
        found = _read_upto(folder, pos, upto)
        if found is None:
            return None
        batch, stopped = found
        if len(batch):
            batches.append(batch)
            gen, end = int(batch.header[-1, 0]), int(batch.ends[-1])
            pos = LogPosition(pos.lineage, pos.checkpoint, gen, end, pos.checkpoint_bytes)
        if stopped or int(latest["generation"]) == pos.checkpoint:
            break
        nxt = _next_log(latest, pos)
        if nxt is None:
            return None
        pos = nxt
    if any(np.any(b.header[:, 6] != state.post.epoch) for b in batches):
        return None
    if not batches:
        return pos, None
    _extend(folder, state, int(batches[-1].last("end") or 0))
    for batch in batches:
        state.replay(batch)
    return pos, batches[-1].last("store_version")


def _next_log(latest: dict[str, Any], pos: LogPosition) -> LogPosition | None:
    """The start of the log after checkpoint ``latest`` when that checkpoint holds exactly
    the state at ``pos`` (its record is the last of ``pos``'s log), else ``None``."""
    gen = int(latest["generation"])
    if not latest.get("logged") or latest.get("base") != pos.checkpoint:
        return None
    if pos.generation != gen:
        return None
    size = sum(int(f["size"]) for f in latest.get("files", {}).values())
    return LogPosition(pos.lineage, gen, gen, 0, size)


def _read_upto(folder: Path, pos: LogPosition, upto: int | None) -> tuple[Batch, bool] | None:
    """The records of ``pos``'s log after it, up to the last whose store version is at most
    ``upto``, and whether a later one was left out (``None``: the log is gone)."""
    batch = read_log(folder / log_name(pos.checkpoint), after=pos.generation, offset=pos.offset)
    if batch is None or upto is None:
        return None if batch is None else (batch, False)
    store = batch.header[:, 1]
    over = np.flatnonzero((store >= 0) & (store > upto))
    if not over.size:
        return batch, False
    return batch.prefix(int(over[0])), True


def _extend(folder: Path, state: State, end: int) -> None:
    """Let ``state`` read the posting rows up to ``end`` (written by another process)."""
    post = state.post
    if end > post.vectors.shape[0]:
        state.post = PostingFile(folder, post.dim, end, epoch=post.epoch)
        post.close()
    state.post.end = end


def compacted(
    state: State, cfg: SpannConfig, work: Path, *, reuse_heads: bool = False, epoch: int = 0
) -> State:
    """A copy of ``state`` in ``work`` holding only live heads' current rows, laid out in
    head order with each list's slack (the old state stays usable unless ``reuse_heads``)."""
    n = state.n_vids
    alive = state.heads.alive
    if reuse_heads:
        heads = state.heads
    else:
        graph = (cfg.hnsw_m, cfg.hnsw_ef_construction, max(cfg.hnsw_ef, 2 * cfg.max_probes))
        heads = HeadIndex(
            state.heads.vectors.copy(), alive, hnsw=graph if state.heads.uses_graph else None
        )
    post = PostingFile(work, state.post.dim, 0, epoch=epoch, create=True, centre=state.post.centre)
    empty = np.zeros((heads.n, 3), dtype=np.int64)
    fresh = State(
        post,
        heads,
        empty,
        (state.ext[:n].copy(), state.version[:n].copy(), state.loc[:n].copy()),
        cfg.slack,
    )
    for h in np.flatnonzero(alive).tolist():
        vecs, ents = state.list_rows(h)
        ok = state.valid(ents)
        fresh.write_list(h, np.asarray(vecs[ok]), np.asarray(ents[ok]))
    fresh.loc[: fresh.n_vids][fresh.version[: fresh.n_vids] == DELETED] = 0
    post.trim()
    return fresh


def stats(
    state: State, folder: Path, calibration: dict[str, Any], counts: Callable[[State], _Ints]
) -> dict[str, Any]:
    """The numbers ``engram index stats`` shows."""
    live = counts(state)
    alive = state.heads.alive
    sizes = live[alive]
    disk = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    used_rows = int(state.rows[: state.heads.n][alive].sum())
    return {
        "path": str(folder),
        "count": state.n_live,
        "dim": state.post.dim,
        "heads": int(alive.sum()),
        "head_index": "hnsw" if state.heads.uses_graph else "exact",
        "replication": float(sizes.sum() / max(state.n_live, 1)),
        "list_size": {
            "mean": float(sizes.mean()) if sizes.size else 0.0,
            "p50": float(np.percentile(sizes, 50)) if sizes.size else 0.0,
            "p99": float(np.percentile(sizes, 99)) if sizes.size else 0.0,
            "max": int(sizes.max()) if sizes.size else 0,
        },
        "file_rows": int(state.post.end),
        "unused_rows": int(state.post.end - int(live.sum())),
        "used_rows": used_rows,
        "disk_bytes": disk,
        "ram_bytes": int(
            state.heads.vectors.nbytes
            + state.ext.nbytes
            + state.version.nbytes
            + state.loc.nbytes
            + 4 * state.start.nbytes
        ),
        "deleted_vids": int((state.version[: state.n_vids] == DELETED).sum()),
        "prune_eps": calibration.get("prune_eps"),
    }
