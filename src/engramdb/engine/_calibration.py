"""Conformal calibrations of a Memory's scopes: made on request, read by recall, never made
inside a recall (a read never writes)."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from typing import Any

from engramdb.calibrate import (
    ConformalCalibration,
    is_stale,
    load_calibration,
    sample_cues,
    save_calibration,
)
from engramdb.engine._precision import source_scores
from engramdb.errors import InvalidInputError
from engramdb.store.sqlite import SQLiteStore
from engramdb.types import Hits

__all__ = ["Calibrations"]

logger = logging.getLogger(__name__)

ScopeSQL = Callable[[str | None, Any], tuple[str | None, list[object]]]
RecallMany = Callable[..., list[Hits]]


class Calibrations:
    """The stored calibrations of one store for one embedder.

    Args:
        store: the store (calibrations live in it).
        model: the embedder's model id (a calibration made with another is stale).
        scope_sql: the SQL condition of a namespace (raises for an unknown one).
        recall_many: the Memory's recall, to score the cues.
    """

    def __init__(
        self, store: SQLiteStore, model: str, scope_sql: ScopeSQL, recall_many: RecallMany
    ):
        self._store = store
        self._model = model
        self._scope_sql = scope_sql
        self._recall_many = recall_many
        self._made: dict[str, ConformalCalibration] = {}  # made here on a read-only store

    def calibrate(self, namespace: str | None, *, cues: int, seed: int) -> ConformalCalibration:
        """Draw ``cues`` memories of the scope, recall a cue made from each, and store the
        source memories' relevance scores (see :meth:`Memory.calibrate`)."""
        store = self._store
        with store.reading():
            sql, params = self._scope_sql(namespace, None)
            ids = store.select_ids(sql or "1", params).tolist()
            drawn = random.Random(seed).sample(ids, min(len(ids), 2 * cues))
            pairs = sample_cues(sorted(store.texts(drawn).items()), n=cues, seed=seed)
            version = store.data_version
        queries: Sequence[str] = [c for _, c in pairs]
        results = self._recall_many(queries, k=10, namespace=namespace) if pairs else []
        cal = ConformalCalibration.from_scores(
            source_scores(results, [i for i, _ in pairs]),
            scope=namespace or "*",
            data_version=version,
            memories=len(ids),
            model=self._model,
        )
        if store.readonly:
            self._made[cal.scope] = cal
        else:
            with store.atomic(bump=False):
                save_calibration(store.conn, cal)
        return cal

    def get(self, namespace: str | None) -> ConformalCalibration:
        """The stored calibration of a scope; a stale one is used with a warning.

        Raises:
            InvalidInputError: the scope was never calibrated.
        """
        store = self._store
        scope = namespace or "*"
        with store.reading():
            cal = load_calibration(store.conn, scope) or self._made.get(scope)
            if cal is None:
                raise InvalidInputError(
                    f"coverage needs a calibration of {scope!r}, and there is none yet: run "
                    f"engram calibrate{'' if namespace is None else ' --namespace ' + namespace}"
                    " (or Memory.calibrate()) once; recall never calibrates"
                )
            counts = store.namespaces()
        memories = counts.get(namespace, 0) if namespace is not None else sum(counts.values())
        if is_stale(cal, model=self._model, memories=memories):
            logger.warning(
                "the calibration of %r is stale (made at %d memories, now %d): run engram "
                "calibrate to refresh it",
                scope,
                cal.memories,
                memories,
            )
        return cal
