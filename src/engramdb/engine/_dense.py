"""The engine's dense index: exact flat search for small stores, SPANN beside the store file.

Which index (``[ann]``, :class:`~engramdb.config.AnnConfig`):

* ``":memory:"`` stores and ``kind = "flat"`` always use :class:`FlatIndex`, filled from the
  store's cached vectors on open.
* ``kind = "auto"`` uses SPANN once the store holds more than ``spann_threshold`` memories or
  a SPANN index exists for it (``engram index build``); ``kind = "spann"`` always does.

The SPANN index lives in ``<store>.spann/<model>-<hash>/``, one folder per embedder model id,
so a model change finds no index and builds one (the other models' folders are removed).
Its manifest records the store's ``data_version``. On open the index is rebuilt from the
store's cached vectors when the folder is missing, torn or corrupt, has another dimension,
count or settings, or reflects another store version. After every write that the Memory
commits, :meth:`DenseIndex.sync` saves the index with the store's new version; a crash
between the store's commit and that save leaves the old version in the manifest, so the
next open rebuilds: the index never answers for a store state it does not reflect.

A store that grows past the threshold switches from flat to SPANN in :meth:`sync`, at the
end of the write that crossed it. The index is never switched back to flat while open.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.ann.flat import FlatIndex
from engramdb.ann.spann import SpannConfig, SpannIndex, read_manifest
from engramdb.config import AnnConfig
from engramdb.embed.base import Embedder
from engramdb.errors import ConfigError, IndexFormatError, InvalidInputError
from engramdb.store.sqlite import SQLiteStore
from engramdb.types import IdMatrix, Matrix

__all__ = ["DenseIndex", "spann_config", "spann_folder"]

logger = logging.getLogger(__name__)

_Ints = npt.NDArray[np.int64]
SUFFIX = ".spann"
_NO_INDEX = "no SPANN index yet"
_FAILED = "an earlier update of the index failed"


def spann_config(config: AnnConfig) -> SpannConfig:
    """The :class:`SpannConfig` of ``config.spann``.

    Raises:
        ConfigError: an unknown setting or a bad value.
    """
    names = [f.name for f in dataclasses.fields(SpannConfig)]
    unknown = sorted(set(config.spann) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in [ann.spann]: {', '.join(unknown)}; valid: {', '.join(names)}"
        )
    try:
        return SpannConfig(**dict(config.spann))
    except TypeError as exc:
        raise ConfigError(f"bad value in [ann.spann]: {exc}") from exc


def spann_folder(store_path: str, model_id: str) -> Path | None:
    """Where the SPANN index of ``store_path`` for ``model_id`` lives (``None`` in memory)."""
    if store_path in ("", ":memory:"):
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._")[:64] or "model"
    digest = hashlib.blake2b(model_id.encode("utf-8"), digest_size=4).hexdigest()
    return Path(store_path + SUFFIX) / f"{slug}-{digest}"


class DenseIndex:
    """The Memory's dense index and its lifecycle (see the module docstring).

    Reads and writes go through :meth:`search`, :meth:`add` and :meth:`delete` like any
    :class:`~engramdb.ann.base.AnnIndex`; the Memory wraps each write in :meth:`writing`.

    Attributes:
        config: the ``[ann]`` settings.
        spann_config: the SPANN settings new builds use.
        path: the SPANN folder (``None`` for an in-memory store).
        last_build: why this Memory last built or rebuilt the SPANN index (``None``: never,
            e.g. a fresh index was opened as it was).
    """

    def __init__(
        self,
        store: SQLiteStore,
        embedder: Embedder,
        config: AnnConfig,
        *,
        lock: threading.RLock | None = None,
    ):
        self._store = store
        self._embedder = embedder
        self.config = config
        self.spann_config = spann_config(config)
        self.dim = embedder.dim
        self.path = spann_folder(store.path, embedder.model_id)
        self._lock = lock if lock is not None else threading.RLock()
        self._index: FlatIndex | SpannIndex = FlatIndex(embedder.dim)
        self._version: int | None = None  # the store version a SPANN index reflects
        self.last_build: str | None = None

    # -- the AnnIndex surface --------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"flat"`` or ``"spann"``: the index in use."""
        return "spann" if isinstance(self._index, SpannIndex) else "flat"

    def __len__(self) -> int:
        return len(self._index)

    def add(self, ids: _Ints, vectors: Matrix) -> None:
        """Add vectors (after the store committed them); an id already present is replaced."""
        self._index.add(ids, vectors)

    def delete(self, ids: _Ints) -> int:
        """Delete ids (after the store committed it); missing ids are ignored."""
        return self._index.delete(ids)

    def search(
        self, queries: Matrix, k: int, *, allow: _Ints | None = None
    ) -> tuple[IdMatrix, Matrix]:
        """The ``k`` best ids per query; ``allow`` restricts results to those ids."""
        if isinstance(self._index, SpannIndex) and self._version is None:
            self._rebuild(_FAILED)
        return self._index.search(queries, k, allow=allow)

    def vectors(self) -> tuple[_Ints, Matrix]:
        """Every ``(ids, vectors)`` held."""
        return self._index.vectors()

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Choose the index and fill it (once, when the Memory opens)."""
        count = self._memory_count() if self.path is not None and self.config.kind != "flat" else 0
        if not self._wants_spann(count):
            self._load_flat()
            return
        reason = self._open_spann(count)
        if reason is not None:
            self._rebuild(reason, warn=reason != _NO_INDEX)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Wrap one Memory write: catch up before it, :meth:`sync` after it commits."""
        before = None
        if isinstance(self._index, SpannIndex):
            before = self._store.data_version
            if self._version != before:
                self._rebuild(
                    _FAILED if self._version is None else "the store was changed by another writer"
                )
        try:
            yield
        except BaseException:
            if before is not None and self._store.data_version != before:
                self._version = None  # committed, but the index may lack part of it
            raise
        self.sync()

    def sync(self) -> None:
        """After a write committed: save SPANN at the store's version, or switch to it.

        A failed save is logged and the index is rebuilt before its next use (the store
        holds the data; the manifest keeps naming its older version).
        """
        if isinstance(self._index, FlatIndex):
            n = len(self._index)
            if n and self._wants_spann(n):
                try:  # from the store, not the flat index: it may miss another writer's changes
                    self._rebuild(self._switch_reason(n), warn=False)
                except OSError as exc:  # stay flat; the next write tries again
                    logger.error("cannot build the SPANN index at %s (%s)", self.path, exc)
            return
        version = self._store.data_version
        if version == self._version:
            return
        try:
            self._index.save(store_version=version)
        except OSError as exc:
            logger.error("cannot save the SPANN index at %s (%s); will rebuild", self.path, exc)
            self._version = None
            return
        self._version = version

    def build(self) -> None:
        """Use SPANN from now on, building it now (even below ``spann_threshold``).

        Nothing is done when a fresh SPANN index is in use already.

        Raises:
            InvalidInputError: an in-memory store, ``ann.kind = "flat"``, or no memories.
        """
        with self._lock:
            if self.path is None:
                raise InvalidInputError(
                    "a SPANN index needs a store file; in-memory stores use the flat index"
                )
            if self.config.kind == "flat":
                raise InvalidInputError(
                    "ann.kind is 'flat': set it to 'auto' or 'spann' to use a SPANN index"
                )
            if isinstance(self._index, SpannIndex):
                if self._stale_reason(self._index, self._memory_count()) is not None:
                    self._rebuild("asked for (the index was stale)", warn=False)
                return
            if self._memory_count() == 0:
                raise InvalidInputError("the store holds no memories to index")
            self._rebuild("asked for (engram index build)", warn=False)

    def rebuild(self) -> None:
        """Rebuild the index in use from the store's cached vectors (embedding any missing).

        Raises:
            IndexFormatError: the SPANN folder cannot be written.
        """
        with self._lock:
            if isinstance(self._index, SpannIndex):
                self._rebuild("asked for (engram index rebuild)", warn=False)
                return
            self._index.close()
            self._index = FlatIndex(self.dim)
            self._load_flat()

    def close(self) -> None:
        """Release the index (every change was saved by :meth:`sync`)."""
        self._index.close()

    # -- reporting --------------------------------------------------------------------------

    def summary(self, memories: int) -> dict[str, Any]:
        """The ``dense`` entry of :meth:`Memory.stats`."""
        count = len(self._index)
        if isinstance(self._index, FlatIndex):
            return {"kind": "flat", "vectors": count, "fresh": count == memories}
        version = self._store.data_version
        return {
            "kind": "spann",
            "vectors": count,
            "fresh": count == memories and self._version == version,
            "store_version": self._version,
            "path": str(self.path),
        }

    def stats(self) -> dict[str, Any]:
        """What ``engram index stats`` shows: the index in use, its numbers and freshness."""
        with self._lock:
            memories = self._memory_count()
            out: dict[str, Any] = {
                "kind": self.kind,
                "configured": self.config.kind,
                "spann_threshold": self.config.spann_threshold,
                "count": len(self._index),
                "memories": memories,
                "data_version": self._store.data_version,
                "store_version": None,
                "path": str(self.path) if self.path is not None else None,
                "last_build": self.last_build,
            }
            if isinstance(self._index, SpannIndex):
                out.update(self._index.stats())
                out["store_version"] = self._version
                out["stale"] = self._stale_reason(self._index, memories) is not None
            else:
                out["stale"] = out["count"] != memories
                if self.path is not None and self.path.is_dir():
                    out["spann_folder"] = _manifest_summary(self.path)
            return out

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

    def _store_vectors(self) -> tuple[_Ints, Matrix]:
        """Every memory's vector from the cache; missing ones are embedded and cached."""
        store, model = self._store, self._embedder.model_id
        ids, vectors, missing = store.memory_vectors(model)
        if vectors is None:
            vectors = np.empty((0, self.dim), dtype=np.float32)
        if missing:
            logger.info("embedding %d memories with %s", len(missing), model)
            fresh = self._embedder.embed_documents([text for _, _, text in missing])
            with store.atomic():
                store.put_embeddings(model, [h for _, h, _ in missing], fresh)
            ids = np.concatenate([ids, np.asarray([i for i, _, _ in missing], dtype=np.int64)])
            vectors = np.concatenate([vectors, np.asarray(fresh, dtype=np.float32)])
        return ids, vectors

    def _load_flat(self) -> None:
        ids, vectors = self._store_vectors()
        if ids.size:
            self._index.add(ids, vectors)

    def _open_spann(self, count: int) -> str | None:
        """Open the SPANN folder if it is usable as is; else the reason to rebuild it."""
        assert self.path is not None
        if not self.path.is_dir():
            others = self.path.parent.is_dir() and any(
                not p.name.startswith(".") for p in self.path.parent.iterdir()
            )
            return "built for another embedder model" if others else _NO_INDEX
        try:
            index = SpannIndex.open(self.path)
        except IndexFormatError as exc:
            return f"the index is torn or corrupt ({exc})"
        reason = self._stale_reason(index, count)
        if reason is not None:
            index.close()
            return reason
        self._index.close()
        self._index, self._version = index, index.store_version
        return None

    def _stale_reason(self, index: SpannIndex, count: int) -> str | None:
        version = self._store.data_version
        if index.dim != self.dim:
            return f"it has dimension {index.dim}, the embedder {self.dim}"
        if index.store_version != version:
            return (
                f"stale: it reflects store version {index.store_version}, the store is at {version}"
            )
        if len(index) != count:
            return f"it holds {len(index)} vectors for {count} memories"
        if index.config != self.spann_config:
            return "it was built with other [ann.spann] settings"
        return None

    def _rebuild(self, reason: str, *, warn: bool = True) -> None:
        ids, vectors = self._store_vectors()
        self._install(ids, vectors, reason, warn=warn)

    def _install(self, ids: _Ints, vectors: Matrix, reason: str, *, warn: bool = False) -> None:
        """Build SPANN over ``ids``/``vectors`` (the store as of now) and use it (flat if
        there is nothing to build from)."""
        assert self.path is not None
        self._clear_folder()
        if ids.size == 0:  # nothing to build from: flat until the first write
            self._index.close()
            self._index, self._version = FlatIndex(self.dim), None
            shutil.rmtree(self.path, ignore_errors=True)
            return
        logger.log(
            logging.WARNING if warn else logging.INFO,
            "building the SPANN index at %s (%d vectors): %s",
            self.path,
            ids.size,
            reason,
        )
        version = self._store.data_version
        index = SpannIndex.build(
            ids, vectors, self.spann_config, path=self.path, store_version=version
        )
        self._index.close()
        self._index, self._version = index, version
        self.last_build = reason

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


def _manifest_summary(path: Path) -> dict[str, Any]:
    """A SPANN folder's manifest in brief (for a store using the flat index)."""
    try:
        manifest = read_manifest(path)
    except IndexFormatError as exc:
        return {"path": str(path), "error": str(exc)}
    return {
        "path": str(path),
        "count": manifest.get("count"),
        "store_version": manifest.get("store_version"),
    }
