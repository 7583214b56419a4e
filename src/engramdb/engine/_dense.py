"""The engine's dense index: exact vectors for small stores, SPANN beside the store file.

Which index (``[ann]``, :class:`~engramdb.config.AnnConfig`):

* ``":memory:"`` stores and ``kind = "flat"`` always search exactly (vectors in RAM), filled
  from the store's cached vectors on open.
* ``kind = "auto"`` uses SPANN once the store holds more than ``spann_threshold`` memories or
  a SPANN index exists for it (``engram index build``); ``kind = "spann"`` always does.

Readers search published, immutable :class:`~engramdb.engine._views.DenseView` snapshots,
each for one position of the store's change log (``changes``, filled by triggers in the
same transaction as the memories). A reader asks for the view of its own read snapshot
(:meth:`DenseIndex.view`): when another process has committed since, the view catches up
incrementally from the log (the ids added and deleted since, with their cached vectors),
never by a rebuild. A write of this process stages its view inside its transaction and
publishes it as it commits (:meth:`DenseIndex.publishing`), so a reader sees the new
memories on every channel or on none.

The SPANN index lives in ``<store>.spann/<model>-<hash>.v2/``, one folder per embedder
model id (a model change finds no index and builds one; the other folders are removed).
Its manifest records the change-log position it reflects (``store_version``). On open, a
folder that is missing, torn, built with other settings or for another dimension is rebuilt;
one that is merely behind is caught up from the log. Changes are folded into the folder on
the write path (:meth:`DenseIndex.maintain`) once ``_FOLD_MIN`` have gathered, under an
exclusive file lock (``<store>.spann/.lock``) that other processes take shared while opening
it. A fold costs what it changes (the index commits a record to its write-ahead log), so the
changes held beside the index stay few at any store size.

Another process that folded leaves its commits in the folder's log: a process whose view
lags by more than a fold's worth of changes follows that log (the commits are applied to
its SPANN index in place, :meth:`SpannIndex.refresh`) and takes only the rest from the
change log, instead of fetching every changed vector from the store or reopening the index;
a process about to fold does the same first, from a fresh read snapshot.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann import SpannIndex, read_manifest
from engramdb.config import AnnConfig
from engramdb.embed.base import Embedder
from engramdb.engine._spann_folder import (
    folder_lock,
    manifest_summary,
    spann_config,
    spann_folder,
    sweep_leftovers,
)
from engramdb.engine._views import DenseView, FlatBase, RWLock, SpannBase, StaleViewError
from engramdb.errors import IndexFormatError, InvalidInputError, StoreError
from engramdb.store.sqlite import SQLiteStore
from engramdb.types import IdMatrix, IndexStats, Matrix

__all__ = ["DenseIndex", "spann_config", "spann_folder"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

_Ints = npt.NDArray[np.int64]
_NO_INDEX = "no SPANN index yet"
_AHEAD = "it is further ahead"
_HISTORY = 16  # recent views kept for readers whose snapshot is a little older
_ATTEMPTS = 5  # read snapshots tried before giving up on a view
_FOLD_MIN = 2048  # changes gathered before a fold (into flat arrays: an eighth of them, if more)
_RETAIN = 100_000  # change-log rows kept for processes that lag behind
_FOLD_SLICE = 1024  # vectors folded into SPANN per exclusive hold


class DenseIndex:
    """The Memory's dense index and its lifecycle (see the module docstring).

    Attributes:
        config: the ``[ann]`` settings.
        spann_config: the SPANN settings new builds use.
        path: the SPANN folder (``None`` for an in-memory store).
        last_build: why this Memory last built or rebuilt the SPANN index (``None``: never).
    """

    def __init__(self, store: SQLiteStore, embedder: Embedder, config: AnnConfig):
        self._store = store
        self._embedder = embedder
        self.config = config
        self.spann_config = spann_config(config)
        self.dim = embedder.dim
        self.path = spann_folder(store.path, embedder.model_id)
        self._lock = threading.RLock()  # catch-up and publishing
        self._rw = RWLock()  # SPANN searches (shared) against folds (exclusive)
        self._folding = threading.Lock()  # held while a fold or build changes the base
        self._views: OrderedDict[int, DenseView] = OrderedDict()
        self._view: DenseView | None = None
        self._pending: DenseView | None = None
        self.last_build: str | None = None

    # -- reading ----------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"flat"`` or ``"spann"``: the index in use."""
        return self._current().base.kind

    def __len__(self) -> int:
        return len(self._current())

    def _current(self) -> DenseView:
        if self._view is None:
            raise StoreError("the dense index is not loaded (the Memory is closed)")
        return self._view

    def view(self, seq: int) -> DenseView | None:
        """The view at change-log position ``seq``; call inside ``store.reading()`` whose
        snapshot is at ``seq``. ``None``: the snapshot is older than every view kept (read
        again with a fresh snapshot)."""
        found = self._views.get(seq)  # the common case: no lock (a dict read is atomic)
        if found is not None:
            return found
        with self._lock:
            current = self._current()
            found = self._views.get(seq)
            if found is not None:
                return found
            if seq < current.seq:
                return None
            view = self._catch_up(current, seq)
            self._publish(view)
            return view

    def at_snapshot(self, read: Callable[[DenseView], T]) -> T:
        """``read(view)`` inside a read snapshot of the store, with the view at its position
        (``read`` may query the store too: it sees the same state).

        Raises:
            StoreError: no view could be had for the snapshot (an enclosing
                ``store.reading()`` is older than the views kept, or folds kept overtaking
                the read).
        """
        stale = False
        for attempt in range(_ATTEMPTS):
            # folds kept overtaking this read: the last attempt holds them off (a fold only
            # changes a SPANN base, whose stores never take the write lock to read)
            hold = stale and attempt == _ATTEMPTS - 1
            folds = self._folding if hold else contextlib.nullcontext()
            with folds, self._store.reading() as seq:
                view = self.view(seq)
                if view is None:  # older than every view kept: read again, later
                    continue
                try:
                    return read(view)
                except StaleViewError:  # a fold changed the base under the view
                    stale = True
            with self._folding:  # wait for the fold to install its view, then read again
                pass
        raise StoreError(
            "the dense index has no view for this read snapshot: it was taken before "
            f"{_HISTORY}+ writes or a fold; read again outside the enclosing snapshot"
        )

    def search(
        self, queries: Matrix, k: int, *, allow: _Ints | None = None
    ) -> tuple[IdMatrix, Matrix]:
        """The ``k`` best ids per query as of now; ``allow`` restricts results to those ids."""
        q = np.asarray(queries, dtype=np.float32)
        return self.at_snapshot(lambda view: view.search(q, k, allow=allow))

    def vectors(self) -> tuple[_Ints, Matrix]:
        """Every ``(ids, vectors)`` held, as of now."""
        return self.at_snapshot(lambda view: view.vectors())

    def _catch_up(self, view: DenseView, seq: int) -> DenseView:
        """``view`` brought to ``seq`` from the change log (read in the caller's snapshot)."""
        if seq == view.seq:
            return view
        changes = self._store.changes_since(view.seq)
        many = changes is None or view.pending + changes[0].size > self._fold_at(view)
        if many and isinstance(view.base, SpannBase):
            followed = self._follow(view, seq)  # another process folded them: take its log
            if followed is not None:
                if followed.base is view.base:  # changed in place: the views kept are stale
                    self._views.clear()
                return followed
        if changes is None and view.base.kind == "spann":
            fresh = self._reopen(seq)
            if fresh is not None:
                return fresh
        if changes is None:
            logger.info("the change log no longer reaches position %d: reloading", view.seq)
            return self._flat_view(seq, cache=False)
        return view.apply(changes[0], changes[1], seq, self._vectors_of)

    def _follow(self, view: DenseView, seq: int, *, locked: bool = False) -> DenseView | None:
        """The view at ``seq`` after applying to ``view``'s SPANN index, in place, the commits
        other processes made to its folder since (those up to ``seq``), with the rest taken
        from the change log; or the folder opened anew when its history cannot be followed.
        ``None``: the folder holds nothing newer (or cannot be opened): ``view`` stands. Every
        view made before on the same base is stale once this returns one on that base
        (``locked``: the caller holds the folder lock already)."""
        base = view.base
        if not isinstance(base, SpannBase) or self.path is None:
            return None
        if not base.index.changed_on_disk():  # the common case, without waiting for a fold
            return None
        lock = (
            contextlib.nullcontext() if locked else folder_lock(self.path.parent, exclusive=False)
        )
        with lock:
            if not base.index.changed_on_disk():
                return None
            try:
                if not base.follow(seq):  # rebuilt, compacted or checkpointed twice since
                    return self._reopen(seq, locked=True)
                followed = self._rebased(base, seq)
            except (IndexFormatError, InvalidInputError, OSError) as exc:
                logger.warning("cannot follow the SPANN index at %s (%s)", self.path, exc)
                followed = None
            if followed is None:  # the base may be half-changed: start anew
                fresh = self._reopen(seq, locked=True)
                return fresh if fresh is not None else self._flat_view(seq, cache=False)
        logger.info("followed the SPANN index at %s to %d", self.path, followed.base_seq)
        return followed

    def _rebased(self, base: SpannBase, seq: int) -> DenseView | None:
        """The view at ``seq`` of ``base`` as it is now, with the changes logged since its
        store version (``None``: it is ahead of ``seq`` or the log no longer reaches it)."""
        base_seq = base.index.store_version
        if base_seq is None or base_seq > seq:
            return None
        changes = self._store.changes_since(base_seq)
        if changes is None:
            return None
        view = DenseView(base, base_seq, base_seq, self.dim)
        return view.apply(changes[0], changes[1], seq, self._vectors_of)

    def _reopen(self, seq: int, *, locked: bool = False) -> DenseView | None:
        """The SPANN folder as another process left it, caught up to ``seq``, if usable
        (``locked``: the caller holds the folder lock already; flock would wait on it)."""
        return self._open_spann(seq, locked=locked)[0]

    def _vectors_of(self, ids: _Ints) -> tuple[_Ints, Matrix]:
        found, vectors, missing = self._store.vectors_of(self._embedder.model_id, ids.tolist())
        if vectors is None:
            vectors = np.empty((0, self.dim), dtype=np.float32)
        if missing:  # no cached vector (another engramdb, or a model change): embed, keep in RAM
            fresh = self._embedder.embed_documents([text for _, _, text in missing])
            found = np.concatenate([found, np.asarray([i for i, _, _ in missing], np.int64)])
            vectors = np.concatenate([vectors, np.asarray(fresh, dtype=np.float32)])
        return found, vectors

    def _publish(self, view: DenseView) -> None:
        """Make ``view`` the newest (when it is) and keep it for readers at its position."""
        current = self._view
        if current is None or view.seq >= current.seq:
            self._view = view
        self._views[view.seq] = view
        while len(self._views) > _HISTORY:
            self._views.popitem(last=False)

    # -- writing ----------------------------------------------------------------------------

    def stage(self, known: dict[int, np.ndarray[Any, Any]] | None = None) -> None:
        """Inside a write transaction: prepare the view of the state about to be committed
        (``known``: vectors of the memories just added, to save reading them back)."""
        seq = self._store.change_seq()
        known = known or {}
        with self._lock:
            base = self._current()
            if seq == base.seq:
                self._pending = None
                return
            changes = self._store.changes_since(base.seq)

            def source(ids: _Ints) -> tuple[_Ints, Matrix]:
                have = np.asarray([i for i in ids.tolist() if i in known], dtype=np.int64)
                found, vectors = self._vectors_of(np.setdiff1d(ids, have))
                if not have.size:
                    return found, vectors
                just_added = np.stack([known[i] for i in have.tolist()])
                return np.concatenate([found, have]), np.concatenate([vectors, just_added])

            if changes is None:
                self._pending = self._flat_view(seq, cache=False)
            else:
                self._pending = base.apply(changes[0], changes[1], seq, source)

    @contextmanager
    def publishing(self) -> Iterator[None]:
        """Around the COMMIT of a write: readers wait, then see the staged view with it."""
        with self._lock:
            try:
                yield
            except BaseException:
                self._pending = None
                raise
            if self._pending is not None:
                self._publish(self._pending)
                self._pending = None

    def maintain(self) -> None:
        """After a write: switch to SPANN past the threshold, fold gathered changes into the
        base, prune the change log. Runs on the write path (other writes of this process
        wait), never inside a read; readers go on with the current views meanwhile."""
        if self._store.readonly:
            return
        with self._store.exclusive(), self._folding:
            view = self._current()
            new: DenseView | None = None
            if view.base.kind == "flat":
                if self.path is not None and len(view) and self._wants_spann(len(view)):
                    try:
                        new = self._build(view, self._switch_reason(len(view)))
                    except OSError as exc:  # stay flat; the next write tries again
                        logger.error("cannot build the SPANN index at %s (%s)", self.path, exc)
                elif view.pending > self._fold_at(view):
                    new = DenseView(view.folded(), view.seq, view.seq, self.dim)
            elif view.pending > self._fold_at(view):
                new = self._fold(view)
            if new is not None:
                self._install_caught_up(new)
            self._prune()

    def _install_caught_up(self, view: DenseView) -> None:
        """Install a view made from an older state, caught up to the store as it is now."""
        with self._lock, self._store.reading() as seq:
            self._install(self._catch_up(view, seq))

    def _fold_at(self, view: DenseView) -> int:
        """Changes gathered before a fold: a fixed number into SPANN (a fold costs what it
        changes); into flat arrays, which a fold copies whole, an eighth of them."""
        if view.base.kind == "spann":
            return _FOLD_MIN
        return max(_FOLD_MIN, len(view.base) // 8)

    def _fold(self, view: DenseView) -> DenseView:
        """Write the view's changes into the SPANN folder; the view of it at ``view.seq``.

        The changes go in a slice at a time, each under the exclusive side of the base's
        lock, so searches pause only briefly; meanwhile a vector may be found both in the
        base and in a view's delta (searches drop the repeat)."""
        assert self.path is not None and isinstance(view.base, SpannBase)
        base = view.base
        with folder_lock(self.path.parent, exclusive=True):
            if base.index.changed_on_disk() or view.epoch != base.epoch:
                # another process folded (start from its commits, which a fresh snapshot
                # holds), or a reader here followed them already (the view is stale)
                with self._store.reading() as seq:
                    fresh = self._follow(view, seq, locked=True)
                    if fresh is None and not base.index.changed_on_disk():
                        fresh = self._rebased(base, seq)
                    if fresh is None:
                        fresh = self._reopen(seq, locked=True)
                if fresh is None or not isinstance(fresh.base, SpannBase):
                    reason = "the folder was changed by another process"
                    return self._build(fresh or view, reason, True)
                view, base = fresh, fresh.base
            try:
                with base.changing():
                    if view.dead.size:
                        base.index.delete(view.dead)
                if view.delta_ids.size and view.delta is not None:
                    for start in range(0, view.delta_ids.size, _FOLD_SLICE):
                        part = slice(start, start + _FOLD_SLICE)
                        with base.changing():
                            base.index.add(view.delta_ids[part], view.delta[part])
                with base.changing():
                    base.index.save(store_version=view.seq)
            except Exception as exc:  # the folder is half-updated: build it anew from the view
                logger.error("cannot update the SPANN index at %s (%s); rebuilding", self.path, exc)
                with self._store.reading() as seq:  # the view's base is half-changed too
                    flat = self._flat_view(seq, cache=False)
                return self._build(flat, f"an earlier update of the index failed ({exc})", True)
        return DenseView(base, view.seq, view.seq, self.dim)

    def _install(self, view: DenseView) -> None:
        """Replace every view by ``view`` (after its base changed)."""
        self._views.clear()
        self._view = None
        self._publish(view)

    def _prune(self) -> None:
        keep = _RETAIN
        view = self._current()
        if view.base.kind == "spann":
            keep = max(keep, view.seq - view.base_seq)
        first = self._store.oldest_change()
        if first is None or self._store.change_seq() - first < keep + _FOLD_MIN:
            return  # little to drop: no write transaction for it on every write
        with self._store.atomic(bump=False):
            self._store.prune_changes(keep)

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Choose the index and fill it (once, when the Memory opens)."""
        if self.path is not None and not self._store.readonly:
            swept = sweep_leftovers(self.path.parent)
            if swept:
                logger.info("removed %d folders left by interrupted index builds", swept)
        for attempt in range(_ATTEMPTS):
            if self._load(last=attempt == _ATTEMPTS - 1):
                return

    def _load(self, *, last: bool) -> bool:
        """:meth:`load` in one read snapshot; ``False``: the SPANN folder is ahead of it (a
        fold committed after it was taken: read again), unless ``last``."""
        with self._store.reading() as seq:
            count = self._memory_count()
            if not self._wants_spann(count):
                self._install(self._flat_view(seq, cache=not self._store.readonly))
                return True
            view, reason = self._open_spann(seq)
            if view is not None:
                self._install(view)
                return True
            if reason.startswith(_AHEAD) and not last:
                return False
            flat = self._flat_view(seq, cache=not self._store.readonly)
            if self._store.readonly:
                logger.warning("searching exactly: the SPANN index is unusable (%s)", reason)
                self._install(flat)
                return True
            self._install(self._build(flat, reason, warn=reason != _NO_INDEX))
            return True

    def _open_spann(self, seq: int, *, locked: bool = False) -> tuple[DenseView | None, str]:
        """The SPANN folder caught up to ``seq``, or why it must be rebuilt (``locked``:
        the caller holds the folder lock already)."""
        assert self.path is not None
        if not self.path.is_dir():
            others = self.path.parent.is_dir() and any(
                not p.name.startswith(".") for p in self.path.parent.iterdir()
            )
            return None, "built for another embedder model" if others else _NO_INDEX
        lock = (
            contextlib.nullcontext() if locked else folder_lock(self.path.parent, exclusive=False)
        )
        with lock:
            try:
                index = SpannIndex.open(self.path)
            except IndexFormatError as exc:
                return None, f"the index is torn or corrupt ({exc})"
        reason = self._unusable(index)
        base_seq = index.store_version
        changes = None
        if reason is None:
            if base_seq is not None and base_seq > seq:
                reason = f"{_AHEAD} ({base_seq}) than the change log ({seq})"
            elif base_seq is None:
                reason = "it records no position of the change log"
            else:
                changes = self._store.changes_since(base_seq)
                if changes is None:
                    reason = "it is older than the store's change log reaches"
        if reason is not None or changes is None:
            index.close()
            return None, reason or "stale"
        view = DenseView(SpannBase(index, self._rw), base_seq or 0, base_seq or 0, self.dim)
        view = view.apply(changes[0], changes[1], seq, self._vectors_of)
        if changes[0].size:
            logger.info("caught up %d changes since the SPANN index was saved", changes[0].size)
        return view, ""

    def _unusable(self, index: SpannIndex) -> str | None:
        if index.dim != self.dim:
            return f"it has dimension {index.dim}, the embedder {self.dim}"
        if index.config != self.spann_config:
            return "it was built with other [ann.spann] settings"
        return None

    def build(self) -> None:
        """Use SPANN from now on, building it now (even below ``spann_threshold``).

        Nothing is done when a SPANN index is in use already (its changes are folded in).

        Raises:
            InvalidInputError: an in-memory store, ``ann.kind = "flat"``, or no memories.
        """
        if self.path is None:
            raise InvalidInputError(
                "a SPANN index needs a store file; in-memory stores use the flat index"
            )
        if self.config.kind == "flat":
            raise InvalidInputError(
                "ann.kind is 'flat': set it to 'auto' or 'spann' to use a SPANN index"
            )
        with self._store.exclusive(), self._folding:
            view = self._catch_up_now()
            if view.base.kind == "spann":
                if view.pending:
                    self._install_caught_up(self._fold(view))
                return
            if not len(view):
                raise InvalidInputError("the store holds no memories to index")
            self._install_caught_up(self._build(view, "asked for (engram index build)"))

    def rebuild(self) -> None:
        """Rebuild the index in use from the store's cached vectors (embedding any missing).

        Raises:
            IndexFormatError: the SPANN folder cannot be written.
        """
        with self._store.exclusive(), self._folding:
            with self._store.reading() as seq:
                view = self._flat_view(seq, cache=True)
            if self._current().base.kind == "spann":
                view = self._build(view, "asked for (engram index rebuild)")
            self._install_caught_up(view)

    def _catch_up_now(self) -> DenseView:
        with self._lock, self._store.reading() as seq:
            view = self._catch_up(self._current(), seq)
            self._publish(view)
            return view

    def close(self) -> None:
        """Release the index (every fold was saved when it was made)."""
        with self._lock:
            view, self._view = self._view, None
            self._views.clear()
            if view is not None:
                view.base.close()

    # -- reporting --------------------------------------------------------------------------

    def stats(self) -> IndexStats:
        """What ``engram index stats`` shows: the index in use, its numbers and freshness."""
        with self._store.reading() as seq:
            view = self.view(seq) or self._current()
            memories = self._memory_count()
            spann: dict[str, Any] | None = None
            if isinstance(view.base, SpannBase):
                with self._rw.read():
                    spann = view.base.index.stats()
            elif self.path is not None and self.path.is_dir():
                spann = manifest_summary(self.path)
            return IndexStats(
                kind=view.base.kind,
                configured=self.config.kind,
                spann_threshold=self.config.spann_threshold,
                count=len(view),
                memories=memories,
                pending=view.pending,
                data_version=self._store.data_version,
                log_seq=seq,
                store_version=view.base_seq if view.base.kind == "spann" else None,
                stale=len(view) != memories,
                path=str(self.path) if self.path is not None else None,
                last_build=self.last_build,
                spann=spann,
            )

    # -- internals --------------------------------------------------------------------------

    def _memory_count(self) -> int:
        return int(self._store.conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0])

    def _wants_spann(self, count: int) -> bool:
        if self.path is None or self.config.kind == "flat":
            return False
        if self.config.kind == "spann":
            return True
        return count > self.config.spann_threshold or self.path.is_dir()

    def _switch_reason(self, count: int) -> str:
        if self.config.kind == "spann":
            return "ann.kind is 'spann'"
        if count > self.config.spann_threshold:
            return f"{count} memories > ann.spann_threshold = {self.config.spann_threshold}"
        return "a SPANN index exists for this store"

    def _store_vectors(self, *, cache: bool) -> tuple[_Ints, Matrix]:
        """Every memory's vector from the cache; missing ones are embedded (and cached when
        ``cache``: never on a read-only store or inside a read)."""
        store, model = self._store, self._embedder.model_id
        ids, vectors, missing = store.memory_vectors(model)
        if vectors is None:
            vectors = np.empty((0, self.dim), dtype=np.float32)
        if missing:
            logger.info("embedding %d memories with %s", len(missing), model)
            fresh = self._embedder.embed_documents([text for _, _, text in missing])
            if cache:
                with store.atomic(bump=False):
                    store.put_embeddings(model, [h for _, h, _ in missing], fresh)
            ids = np.concatenate([ids, np.asarray([i for i, _, _ in missing], dtype=np.int64)])
            vectors = np.concatenate([vectors, np.asarray(fresh, dtype=np.float32)])
        return ids, vectors

    def _flat_view(self, seq: int, *, cache: bool) -> DenseView:
        """Every memory's vector (as of the caller's snapshot at ``seq``) as a flat view."""
        ids, vectors = self._store_vectors(cache=cache)
        return DenseView(FlatBase(ids, vectors), seq, seq, self.dim)

    def _build(
        self, view: DenseView, reason: str, locked: bool = False, *, warn: bool = False
    ) -> DenseView:
        """Build SPANN over ``view``'s vectors (the folder lock held unless ``locked``); its
        view at ``view.seq`` (flat when there is nothing to build from)."""
        assert self.path is not None
        ids, vectors = view.vectors()
        lock = contextlib.nullcontext() if locked else folder_lock(self.path.parent, exclusive=True)
        with lock:
            self._clear_folder()
            if ids.size == 0:  # nothing to build from: flat until the first write
                shutil.rmtree(self.path, ignore_errors=True)
                return DenseView(FlatBase(ids, vectors), view.seq, view.seq, self.dim)
            logger.log(
                logging.WARNING if warn else logging.INFO,
                "building the SPANN index at %s (%d vectors): %s",
                self.path,
                ids.size,
                reason,
            )
            index = SpannIndex.build(
                ids, vectors, self.spann_config, path=self.path, store_version=view.seq
            )
        self.last_build = reason
        return DenseView(SpannBase(index, self._rw), view.seq, view.seq, self.dim)

    def _clear_folder(self) -> None:
        """Remove other models' indexes, leftovers of interrupted builds and a torn index."""
        assert self.path is not None
        parent = self.path.parent
        if not parent.is_dir():
            return
        for entry in parent.iterdir():
            if entry == self.path:
                try:
                    read_manifest(entry)
                except IndexFormatError:
                    shutil.rmtree(entry, ignore_errors=True)
            elif entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
