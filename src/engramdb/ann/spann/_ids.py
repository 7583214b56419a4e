"""External id → internal vid map in compact arrays (no per-id Python objects).

A sorted ``(keys, vids)`` pair answers bulk lookups with ``searchsorted``; recent inserts wait
in a small dict and are merged into the arrays once it grows. Removed ids get vid ``-1``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["IdMap"]

_Ints = npt.NDArray[np.int64]
_MERGE_AT = 4096


class IdMap:
    """Maps int64 external ids to int64 vids.

    Args:
        ext: external id per vid.
        live: which vids are live (only those are mapped).
    """

    def __init__(self, ext: _Ints, live: npt.NDArray[np.bool_]):
        vids = np.flatnonzero(live).astype(np.int64)
        order = np.argsort(ext[vids], kind="stable")
        self._keys = ext[vids][order]
        self._vids = vids[order]
        self._pending: dict[int, int] = {}

    def lookup(self, ids: _Ints) -> _Ints:
        """The vid of each id, ``-1`` where absent."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.full(ids.shape, -1, dtype=np.int64)
        if self._keys.size:
            pos = np.minimum(np.searchsorted(self._keys, ids), self._keys.size - 1)
            hit = self._keys[pos] == ids
            out[hit] = self._vids[pos[hit]]
        if self._pending:
            for j, key in enumerate(ids.tolist()):
                vid = self._pending.get(key)
                if vid is not None:
                    out[j] = vid
        return out

    def remove(self, ids: _Ints) -> None:
        """Forget ``ids`` (absent ones are ignored)."""
        ids = np.asarray(ids, dtype=np.int64)
        for key in ids.tolist():
            self._pending.pop(key, None)
        if self._keys.size:
            pos = np.minimum(np.searchsorted(self._keys, ids), self._keys.size - 1)
            hit = self._keys[pos] == ids
            self._vids[pos[hit]] = -1

    def insert(self, ids: _Ints, vids: _Ints) -> None:
        """Map ``ids`` to ``vids`` (ids must be absent)."""
        if ids.size >= _MERGE_AT:
            self._merge(ids, vids)
            return
        self._pending.update(zip(ids.tolist(), vids.tolist(), strict=True))
        if len(self._pending) >= _MERGE_AT:
            self._merge(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))

    def _merge(self, ids: _Ints, vids: _Ints) -> None:
        pend_k = np.fromiter(self._pending.keys(), dtype=np.int64, count=len(self._pending))
        pend_v = np.fromiter(self._pending.values(), dtype=np.int64, count=len(self._pending))
        live = self._vids >= 0
        keys = np.concatenate([self._keys[live], pend_k, ids])
        vals = np.concatenate([self._vids[live], pend_v, vids])
        order = np.argsort(keys, kind="stable")
        self._keys, self._vids = keys[order], vals[order]
        self._pending = {}
