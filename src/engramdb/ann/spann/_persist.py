"""Folders, commits, loading and compaction of SPANN index state."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
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
    read_manifest,
)
from engramdb.ann.spann._manifest import (
    commit as write_commit,
)
from engramdb.ann.spann._postings import PostingFile, posting_names
from engramdb.ann.spann._state import DELETED, State
from engramdb.errors import IndexFormatError

__all__ = [
    "commit",
    "compacted",
    "load",
    "needs_compaction",
    "replace_folder",
    "stats",
    "work_folder",
]

_ARRAYS = ("heads", "alive", "directory", "ext", "version", "loc")
_Ints = npt.NDArray[np.int64]


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


def commit(folder: Path, state: State, cfg: SpannConfig, meta: dict[str, Any]) -> None:
    """Sync the posting files, then write generation ``meta["generation"]`` and its manifest."""
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
    write_commit(folder, manifest, arrays, extra)
    keep = posting_names(state.post.epoch)
    for old in [*folder.glob("vectors.e*.f32"), *folder.glob("entries.e*.i64")]:
        if old.name not in keep:
            old.unlink(missing_ok=True)


def needs_compaction(state: State) -> bool:
    """Whether over half of the posting files is garbage (moved or merged lists)."""
    used = int(state.rows[: state.heads.n][state.heads.alive].sum())
    return state.post.end > 2 * used + 4096


def load(folder: Path) -> tuple[State, SpannConfig, dict[str, Any]]:
    """The committed state in ``folder``.

    Raises:
        IndexFormatError: missing, torn, corrupt or inconsistent files.
    """
    manifest = read_manifest(folder)
    arr = load_arrays(folder, manifest, _ARRAYS)
    dim, end, vids = int(manifest["dim"]), int(manifest["end"]), int(manifest["vids"])
    directory = arr["directory"].astype(np.int64)
    heads = arr["heads"].astype(np.float32)
    ok = (
        heads.ndim == 2
        and heads.shape[1] == dim
        and directory.shape == (heads.shape[0], 3)
        and arr["alive"].shape == (heads.shape[0],)
        and all(arr[name].shape == (vids,) for name in ("ext", "version", "loc"))
        and bool(np.all(directory[:, 0] + directory[:, 1] <= end))
        and bool(np.all(arr["loc"][arr["version"] != DELETED] < max(end, 1)))
    )
    if not ok:
        raise IndexFormatError(f"{folder}: arrays do not match the manifest; rebuild the index")
    cfg = SpannConfig.from_dict(manifest.get("config", {}))
    head_index = HeadIndex(heads, arr["alive"].astype(bool))
    if manifest.get("graph"):
        head_index.load_graph(folder / manifest["graph"], max(cfg.hnsw_ef, 2 * cfg.max_probes))
    post = PostingFile(folder, dim, end, epoch=int(manifest.get("epoch", 0)))
    vid_arrays = (
        arr["ext"].astype(np.int64, copy=False),
        arr["version"].astype(np.uint8, copy=False),
        arr["loc"].astype(np.int64, copy=False),
    )
    state = State(post, head_index, directory, vid_arrays, cfg.slack)
    if state.n_live != int(manifest["count"]):
        post.close()
        raise IndexFormatError(f"{folder}: live count does not match the manifest")
    return state, cfg, manifest


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
    post = PostingFile(work, state.post.dim, 0, epoch=epoch, create=True)
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
