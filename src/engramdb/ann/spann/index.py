"""SpannIndex: heads in RAM, posting lists on disk, updated in place (SPANN + SPFresh).

Typical use::

    index = SpannIndex.build(ids, vectors, SpannConfig(), path="vec.spann", store_version=7)
    ids, scores = index.search(queries, 10)
    index.add(new_ids, new_vectors); index.delete(old_ids)
    index.save(store_version=8)           # commit in place: a log record, cheap, atomic
    index.close()

    index = SpannIndex.open("vec.spann")  # IndexFormatError if torn or corrupt
    if index.store_version != store.version:
        ...                               # stale: replay the store's changes, or rebuild

Durability: every change is in RAM (directory, version map) or in posting rows that no
commit references, until :meth:`save` commits it: as one record appended to the folder's
write-ahead log (a few hundred bytes for a small write), or, once the log has grown past
half the size of the last checkpoint, as a new checkpoint of every array (so the cost of
re-saving them is spread over many commits). A crash before or during a commit leaves the
previous commit intact: :meth:`open` checks the checkpoint's files against the manifest and
replays the log's records up to the last whole one (a record holds the checksum of the
posting rows it wrote, which are synced only now and then: one whose rows did not reach the
disk ends the replay). Another process's commits to the same folder are followed with
:meth:`refresh`.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from engramdb.ann.flat import top_k
from engramdb.ann.spann import _persist
from engramdb.ann.spann._build import build_state
from engramdb.ann.spann._calibrate import calibrate
from engramdb.ann.spann._config import SpannConfig
from engramdb.ann.spann._persist import LogPosition
from engramdb.ann.spann._search import Scan, prune
from engramdb.ann.spann._state import DELETED, State
from engramdb.ann.spann._update import live_counts, merge_small, place, split_oversize
from engramdb.errors import DimensionMismatchError, IndexFormatError, InvalidInputError
from engramdb.types import IdMatrix, Matrix

__all__ = ["SpannIndex"]

_Ints = npt.NDArray[np.int64]
_EXACT_ALLOW = 4096
_LOG_MIN = 1 << 20  # log bytes always allowed before a checkpoint
_LOG_RATIO = 0.5  # ... else a checkpoint once the log outgrows this share of the last one
_SYNC_BYTES = 1 << 20  # log bytes between commits that sync the posting files


class SpannIndex:
    """A SPANN vector index over int64 ids, inner-product scores (cosine on unit vectors).

    Create one with :meth:`build` or :meth:`open`; it implements
    :class:`engramdb.ann.base.AnnIndex`. Not thread-safe: one writer, no concurrent readers;
    processes sharing a folder take turns (each calls :meth:`refresh` before it changes it).

    Attributes:
        dim: vector dimension.
        config: the settings it was built with.
        store_version: the store version this index reflects (set by the caller; saved in the
            manifest).
        calibration: the ε2 calibration record (``prune_eps``, recall, grid).
    """

    def __init__(
        self,
        folder: Path,
        state: State,
        config: SpannConfig,
        meta: dict[str, Any],
        position: LogPosition | None = None,
    ):
        self._folder, self._state, self.config = folder, state, config
        self.dim = state.post.dim
        self.store_version: int | None = meta.get("store_version")
        self.calibration: dict[str, Any] = meta.get("calibration", {})
        self._temp = bool(meta.get("temp", False))
        self._built = float(meta.get("built", time.time()))
        self._lineage = str(meta.get("lineage") or uuid.uuid4().hex)
        self._at = position or LogPosition(self._lineage, 0, 0, 0, 0)
        self._log = self._at.writer(folder)
        self._must_checkpoint = position is None
        self._unsynced = _SYNC_BYTES  # log bytes since the posting files were last synced

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def build(
        cls,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        config: SpannConfig | None = None,
        *,
        path: str | Path | None = None,
        store_version: int | None = None,
    ) -> SpannIndex:
        """Build an index over ``vectors`` (unit-length float32 rows) under distinct ``ids``.

        Args:
            ids: int64 ids, one per row, all distinct.
            vectors: ``(n, d)`` vectors, ``n >= 1``.
            config: settings (defaults: :class:`SpannConfig`).
            path: folder to build into (replaced atomically when done); ``None`` builds in a
                temporary folder removed by :meth:`close` (call :meth:`save` to keep it).
            store_version: the store version the vectors reflect.

        Raises:
            DimensionMismatchError: ``vectors`` is not 2-D or does not match ``ids``.
            InvalidInputError: no vectors, or repeated ids.
        """
        cfg = config or SpannConfig()
        id_arr, vecs = _check_rows(ids, vectors, None)
        if id_arr.size == 0:
            raise InvalidInputError("SpannIndex.build needs at least one vector")
        if np.unique(id_arr).size != id_arr.size:
            raise InvalidInputError("SpannIndex.build got repeated ids")
        target = Path(path) if path is not None else None
        work = _persist.work_folder(target)
        started = time.perf_counter()
        state = build_state(work, id_arr, vecs, cfg)
        meta: dict[str, Any] = {"store_version": store_version, "temp": target is None}
        meta["calibration"] = calibrate(state, vecs, cfg)
        meta["build_s"] = time.perf_counter() - started
        index = cls(work, state, cfg, meta)
        index._commit(meta["build_s"])
        if target is not None:
            index._move_to(target)
        return index

    @classmethod
    def open(cls, path: str | Path) -> SpannIndex:
        """Open the index saved at ``path`` as of its last commit.

        Compare :attr:`store_version` with the store to detect a stale index.

        Raises:
            IndexFormatError: missing, torn or corrupt files, or another format version.
        """
        folder = Path(path)
        state, config, meta, position = _persist.load(folder)
        return cls(folder, state, config, meta, position)

    def save(self, path: str | Path | None = None, *, store_version: int | None = None) -> None:
        """Commit the index: in place (``path`` omitted or its own folder), else a compacted copy
        at ``path`` that becomes the index's folder. Both are atomic.

        In place, the lists the changes touched are merged when they fell under
        ``merge_threshold`` and the changes are appended to the log; every list is checked
        at the next checkpoint, and the files are compacted when over half of them is garbage.

        Args:
            path: target folder.
            store_version: record this store version (else keep the current one).
        """
        if store_version is not None:
            self.store_version = store_version
        if path is None or Path(path).resolve() == self._folder.resolve():
            self._commit()
            return
        self._rewrite(Path(path))

    def refresh(self, *, upto: int | None = None) -> bool:
        """Catch up with the commits another process made to this index's folder since this
        one last committed or opened it, by replaying their log records (only those up to
        the last with a store version at most ``upto``, when given).

        Returns ``False``, changing nothing, when that history cannot be followed: the folder
        was rebuilt, compacted, or checkpointed more than once since; reopen it then.

        Raises:
            InvalidInputError: this index has uncommitted changes.
            IndexFormatError: the folder is torn or corrupt.
        """
        if self._state.dirty:
            raise InvalidInputError("SpannIndex.refresh: commit or drop the changes first")
        if not self.changed_on_disk():
            return True
        followed = _persist.follow(self._folder, self._state, self._at, upto)
        if followed is None:
            return False
        position, store_version = followed
        if position != self._at:
            self._set_position(position)
            self._unsynced = _SYNC_BYTES  # what was followed may not be on disk yet
            self.store_version = store_version if store_version is not None else self.store_version
        return True

    def changed_on_disk(self) -> bool:
        """Whether another process committed to the folder since this index last committed
        or opened it (cheap: the manifest and the log's size)."""
        try:
            latest = _persist.read_checkpoint(self._folder)
        except IndexFormatError:
            return True
        try:
            size = self._log.path.stat().st_size
        except FileNotFoundError:
            size = 0
        return bool(
            latest.get("lineage") != self._lineage
            or int(latest["generation"]) != self._at.checkpoint
            or size != self._at.offset
        )

    def close(self) -> None:
        """Release the files (uncommitted changes are dropped); a temporary folder is removed."""
        self._state.post.close()
        self._log.close()
        if self._temp:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> SpannIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """The folder holding the index."""
        return self._folder

    @property
    def generation(self) -> int:
        """The generation of the last commit (made or followed): every commit adds one."""
        return self._at.generation

    # ------------------------------------------------------------------ AnnIndex
    def __len__(self) -> int:
        return self._state.n_live

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add vectors under ``ids``; an id already present is replaced (last one wins).

        Raises:
            DimensionMismatchError: wrong shape.
        """
        id_arr, vecs = _check_rows(ids, vectors, self.dim)
        if id_arr.size == 0:
            return
        _, last = np.unique(id_arr[::-1], return_index=True)
        keep = np.sort(id_arr.size - 1 - last)
        id_arr, vecs = id_arr[keep], np.ascontiguousarray(vecs[keep])
        st = self._state
        old = st.ids.lookup(id_arr)
        st.kill_vids(old[old >= 0])
        vids = st.new_vids(id_arr)
        place(st, self.config, vids, vecs)
        split_oversize(st, self.config)

    def delete(self, ids: npt.ArrayLike) -> int:
        """Tombstone ``ids``; missing ones are ignored. Returns how many were deleted.

        Lists that held the deleted vectors and fall under ``merge_threshold`` live vectors
        are merged away.
        """
        st = self._state
        vids = st.ids.lookup(np.asarray(ids, dtype=np.int64).reshape(-1))
        vids = np.unique(vids[vids >= 0])
        lists = st.lists_of(vids)
        st.kill_vids(vids)
        lists = np.unique(lists[lists >= 0])
        if lists.size:
            merge_small(st, self.config, lists)
        return int(vids.size)

    def search(
        self,
        queries: npt.ArrayLike,
        k: int,
        *,
        allow: npt.ArrayLike | None = None,
        deny: npt.ArrayLike | None = None,
        max_probes: int | None = None,
        prune_eps: float | None | Literal["default"] = "default",
    ) -> tuple[IdMatrix, Matrix]:
        """The ``k`` best ids per query by inner product, best first, ``-1``/``-inf`` padded.

        Args:
            queries: ``(n, d)`` float32.
            k: results per query.
            allow: only these ids may be returned (small sets are searched exactly).
            deny: these ids may not be returned (e.g. deleted since a snapshot was taken).
            max_probes: lists scanned per query at most (default: the calibrated cap, else
                ``config.max_probes``).
            prune_eps: ε2 override; ``None`` disables pruning; ``"default"``: the index's
                value (calibrated at build unless the config fixed it).

        Raises:
            DimensionMismatchError: wrong query shape.
            InvalidInputError: ``k < 1``.
        """
        if k < 1:
            raise InvalidInputError(f"k must be >= 1, got {k}")
        _, q = _check_rows(None, queries, self.dim)
        st = self._state
        mask = None
        if allow is not None:
            allowed = np.asarray(allow, dtype=np.int64).reshape(-1)
            if deny is not None:
                allowed = np.setdiff1d(allowed, np.asarray(deny, dtype=np.int64))
            vids = st.ids.lookup(allowed)
            vids = np.unique(vids[vids >= 0])
            if vids.size <= max(_EXACT_ALLOW, 4 * k):
                return _exact(q, st, vids, k)
            mask = np.zeros(st.n_vids, dtype=bool)
            mask[vids] = True
        elif deny is not None and np.asarray(deny).size:
            vids = st.ids.lookup(np.asarray(deny, dtype=np.int64).reshape(-1))
            mask = np.ones(st.n_vids, dtype=bool)
            mask[vids[vids >= 0]] = False
        eps = self.calibration.get("prune_eps") if prune_eps == "default" else prune_eps
        cap = max_probes or int(self.calibration.get("max_probes") or self.config.max_probes)
        probes, d2 = st.heads.search(q, cap, coarse=True)
        keep = prune(probes, d2, None if eps is None else float(eps))
        spare = 2 * k * self.config.replicas + 16
        post, cfg = st.post, self.config
        lists = dataclasses.replace(
            st.lists(), codes=post.code_rows, signs=post.signs, centre=post.centre
        )
        rescore = cfg.rescore if cfg.quantized else None
        pre = cfg.prefilter
        prefilter = float(self.calibration.get("prefilter") or 0.0) if pre == "auto" else pre
        return Scan(lists, k, mask, spare, rescore, prefilter).run(q, probes, keep)

    # ------------------------------------------------------------------ extras
    def contains(self, ids: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` are live in the index."""
        vids = self._state.ids.lookup(np.asarray(ids, dtype=np.int64).reshape(-1))
        return np.asarray(vids >= 0)

    def vectors(self) -> tuple[_Ints, Matrix]:
        """Every live ``(ids, vectors)`` (a copy), e.g. to rebuild."""
        st = self._state
        live = np.flatnonzero(st.version[: st.n_vids] != DELETED)
        return st.ext[live].copy(), st.vectors_of(live)

    def rebuild(self, config: SpannConfig | None = None) -> SpannIndex:
        """A freshly built index over the live vectors, at this index's folder."""
        ids, vecs = self.vectors()
        path, temp, version = self._folder, self._temp, self.store_version
        self.close()
        return SpannIndex.build(
            ids, vecs, config or self.config, path=None if temp else path, store_version=version
        )

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: live vectors, heads, rows, replication, bytes on disk and in RAM,
        the store version, the calibration, and the commit history (``generation`` of the
        last commit, ``checkpoint`` under it and its size, ``log_bytes`` since)."""
        out = _persist.stats(self._state, self._folder, self.calibration, live_counts)
        out.update(
            store_version=self.store_version,
            generation=self._at.generation,
            checkpoint=self._at.checkpoint,
            checkpoint_bytes=self._at.checkpoint_bytes,
            log_bytes=self._at.offset,
        )
        return out

    def compact(self) -> None:
        """Copy the live lists into new posting files (dropping moved and stale rows); the old
        files are removed by the next commit. :meth:`save` does this when over half of the
        files is garbage."""
        old = self._state
        self._state = _persist.compacted(
            old, self.config, self._folder, reuse_heads=True, epoch=old.post.epoch + 1
        )
        old.post.close()
        self._must_checkpoint = True  # the log's records refer to the old files

    # ------------------------------------------------------------------ internals
    def _meta(self, build_s: float | None) -> dict[str, Any]:
        meta = {
            "store_version": self.store_version,
            "calibration": self.calibration,
            "generation": self._at.generation + 1,
            "built": self._built,
            "lineage": self._lineage,
        }
        if build_s is not None:
            meta["build_s"] = build_s
        return meta

    def _commit(self, build_s: float | None = None) -> None:
        """Commit the changes since the last commit: a log record, or a checkpoint when one
        is due (the first commit, after a compaction, or once the log outgrew its bound)."""
        st, cfg = self._state, self.config
        bound = max(_LOG_MIN, int(_LOG_RATIO * self._at.checkpoint_bytes))
        due = self._must_checkpoint or self._log.offset >= bound
        if due:
            merge_small(st, cfg)
        else:
            touched = st.touched_heads()
            if touched.size:
                merge_small(st, cfg, touched)
        if _persist.needs_compaction(st):
            self.compact()
            st = self._state
        if not due and not self._must_checkpoint:
            self._append()
            return
        meta = self._meta(build_s)
        keep: tuple[str, ...] = ()
        if not self._must_checkpoint:  # log the checkpoint's state first: readers follow it
            self._append()
            meta.update(generation=self._at.generation, logged=True, base=self._at.checkpoint)
            keep = (self._log.path.name,)
        size = _persist.checkpoint(self._folder, st, cfg, meta, keep)
        gen = int(meta["generation"])
        self._set_position(LogPosition(self._lineage, gen, gen, 0, size))
        self._must_checkpoint = False
        self._unsynced = 0

    def _append(self) -> None:
        gen = self._at.generation + 1
        sync = self._unsynced >= _SYNC_BYTES
        before = self._log.offset
        _persist.append(self._log, self._state, gen, self.store_version, sync=sync)
        self._unsynced = 0 if sync else self._unsynced + self._log.offset - before
        at = self._at
        self._at = LogPosition(
            at.lineage, at.checkpoint, gen, self._log.offset, at.checkpoint_bytes
        )

    def _set_position(self, position: LogPosition) -> None:
        if position.checkpoint != self._at.checkpoint:
            self._log.close()
            self._log = position.writer(self._folder)
        else:
            self._log.offset = position.offset
        self._at = position

    def _move_to(self, target: Path) -> None:
        self._state.post.close()
        self._log.close()
        _persist.replace_folder(self._folder, target)
        self._folder, self._temp = target, False
        self._state, _, _, position = _persist.load(target)
        self._at = position
        self._log = position.writer(target)

    def _rewrite(self, target: Path) -> None:
        work = _persist.work_folder(target)
        fresh = _persist.compacted(self._state, self.config, work)
        self._state.post.close()
        self._log.close()
        if self._temp:
            shutil.rmtree(self._folder, ignore_errors=True)
        self._folder, self._state, self._temp = work, fresh, True
        self._lineage = uuid.uuid4().hex
        self._at = LogPosition(self._lineage, 0, self._at.generation, 0, 0)
        self._log = self._at.writer(work)
        self._must_checkpoint = True
        self._commit()
        self._move_to(target)


def _check_rows(
    ids: npt.ArrayLike | None, vectors: npt.ArrayLike, dim: int | None
) -> tuple[_Ints, Matrix]:
    vecs = np.asarray(vectors, dtype=np.float32)
    if vecs.ndim != 2 or (dim is not None and vecs.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, d)"
        raise DimensionMismatchError(f"expected vectors of shape {want}, got {vecs.shape}")
    if ids is None:
        return np.empty(0, dtype=np.int64), vecs
    id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if id_arr.shape[0] != vecs.shape[0]:
        raise DimensionMismatchError(f"{id_arr.shape[0]} ids for {vecs.shape[0]} vectors")
    return id_arr, vecs


def _exact(q: Matrix, st: State, vids: _Ints, k: int) -> tuple[IdMatrix, Matrix]:
    vecs = st.vectors_of(vids)
    return top_k(q @ vecs.T, st.ext[vids], k)
