"""GraphChannel: the memory graph as the engine sees it — prepare, write, recall, inspect.

The engine owns the transaction; this class splits the graph's work around it:

1. :meth:`GraphChannel.prepare` (before the transaction, slow): extract phrases and embed
   the ones the graph has not seen;
2. :meth:`GraphChannel.write` (inside the transaction): insert nodes, links and edges;
3. the in-memory PPR matrix is rebuilt on the next recall after any write (see
   :meth:`GraphChannel.index`).

Forgetting needs no call: the graph's rows cascade from the memories table (see
:mod:`engramdb.graph.sqlite`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from engramdb.config import GraphConfig
from engramdb.graph.extract import Extraction, Extractor, SpacyExtractor
from engramdb.graph.recall import GraphIndex, GraphRecall
from engramdb.graph.sqlite import SQLiteGraph

__all__ = ["GraphChannel", "PhraseEncoder", "Prepared", "create_extractor"]

Run = Sequence[tuple[int, float]]


class PhraseEncoder(Protocol):
    """What the graph needs from an embedder (any ``engramdb`` Embedder fits)."""

    model_id: str

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``(len(texts), d)`` unit-length float32 vectors."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """Extraction results and new-phrase vectors for a batch of passages."""

    extractions: tuple[Extraction, ...]
    vectors: dict[str, npt.NDArray[np.float32]]


def create_extractor(config: GraphConfig) -> Extractor:
    """The extractor ``config.extractor`` names (no model is loaded yet).

    Raises:
        MissingDependencyError: ``"llm"`` without httpx installed.
        ConfigError: ``"llm"`` without url or model.
    """
    offline = SpacyExtractor(config.spacy_model, ner=config.ner, batch_size=config.batch_size)
    if config.extractor == "spacy":
        return offline
    from engramdb.graph.openie import OpenIEExtractor

    return OpenIEExtractor(
        config.llm_url or "",
        model=config.llm_model or "",
        fallback=offline,
        api_key=os.environ.get(config.llm_api_key_env) or None,
        timeout=config.llm_timeout,
    )


class GraphChannel:
    """The graph channel of one Memory.

    Args:
        conn: the store's connection (autocommit mode, foreign keys on).
        config: graph settings.
        encoder: embeds phrases (the Memory's embedder).
        extractor: overrides the configured extractor (tests, custom pipelines).
    """

    def __init__(
        self,
        conn: sqlite3.Connection | Callable[[], sqlite3.Connection],
        config: GraphConfig,
        encoder: PhraseEncoder,
        *,
        extractor: Extractor | None = None,
    ) -> None:
        self._conn = conn
        self.config = config
        self.encoder = encoder
        self.extractor = extractor if extractor is not None else create_extractor(config)
        self.store = SQLiteGraph(
            conn,
            synonym_threshold=config.synonym_threshold,
            min_synonym_chars=config.min_synonym_chars,
        )
        self._seconds: dict[str, float] = {}
        self._index: GraphIndex | None = None
        self._seen_version: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection to use now (a callable source gives the calling thread's)."""
        return self._conn if isinstance(self._conn, sqlite3.Connection) else self._conn()

    def ensure(self) -> bool:
        """Create the graph tables (or rebuild them after a settings change).

        Returns:
            True when the graph is new or was emptied, so memories need adding.

        Raises:
            StoreError: SQLite failed.
        """
        fingerprint = {
            "extractor": self.extractor.name,
            "encoder": self.encoder.model_id,
            "synonym_threshold": repr(self.config.synonym_threshold),
            "min_synonym_chars": str(self.config.min_synonym_chars),
        }
        rebuilt = self.store.ensure(fingerprint)
        self.invalidate()
        return rebuilt

    # -- writing -----------------------------------------------------------------------

    def prepare(self, texts: Sequence[str]) -> Prepared:
        """Extract phrases and embed the new ones; run before the transaction.

        Raises:
            MissingDependencyError: spaCy or its model is not installed.
        """
        start = time.perf_counter()
        extractions = tuple(self.extractor.extract(list(texts))) if texts else ()
        self._spent("extract", start)
        new = self.store.missing_phrases(p for ex in extractions for p in ex.phrases)
        start = time.perf_counter()
        vectors = self._embed(new)
        self._spent("embed", start)
        return Prepared(extractions=extractions, vectors=vectors)

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds spent building the graph, by part, summed over every write: ``extract``
        (phrase extraction), ``embed`` (new phrases' vectors), and the store's ``nodes``,
        ``synonyms`` and ``links`` (see :attr:`SQLiteGraph.seconds`)."""
        return {**self._seconds, **self.store.seconds}

    def _spent(self, part: str, start: float) -> None:
        self._seconds[part] = self._seconds.get(part, 0.0) + time.perf_counter() - start

    def write(self, memory_ids: Sequence[int], prepared: Prepared) -> None:
        """Add prepared passages under their memory ids; run inside the transaction."""
        phrases = (p for ex in prepared.extractions for p in ex.phrases)
        late = [p for p in self.store.missing_phrases(phrases) if p not in prepared.vectors]
        start = time.perf_counter()
        vectors = {**prepared.vectors, **self._embed(late)} if late else prepared.vectors
        self._spent("embed", start)
        self.store.add(memory_ids, prepared.extractions, vectors)
        self.invalidate()

    def backfill(
        self,
        atomic: Callable[[], AbstractContextManager[Any]],
        *,
        batch: int = 256,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> int:
        """Add every memory that is not in the graph yet, ``batch`` per transaction.

        Returns:
            The number of memories added.

        Raises:
            MissingDependencyError: spaCy or its model is not installed.
        """
        todo = self.store.unindexed()
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            prepared = self.prepare([text for _, text in part])
            with atomic():
                self.write([memory_id for memory_id, _ in part], prepared)
            if progress is not None:
                progress("graph", min(start + batch, len(todo)), len(todo))
        return len(todo)

    def _embed(self, phrases: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        if not phrases:
            return {}
        vectors = self.encoder.embed_documents(list(phrases))
        return dict(zip(phrases, vectors, strict=True))

    def invalidate(self) -> None:
        """Drop the in-memory matrix; the next recall reloads it."""
        self._index = None

    # -- reading -----------------------------------------------------------------------

    def index(self, version: int | None = None) -> GraphIndex:
        """The current graph as a PPR-ready matrix, rebuilt after any write to the database.

        ``version``: the store's ``data_version`` as the caller's read snapshot sees it (the
        engine passes it, so that the matrix matches the snapshot). Without it, writes on
        this connection show in ``total_changes`` (a forget's cascades included, since the
        ``DELETE`` itself counts), commits by other connections in ``PRAGMA data_version``.
        """
        conn = self.conn
        key = (
            (version, -1)
            if version is not None
            else (int(conn.execute("PRAGMA data_version").fetchone()[0]), conn.total_changes)
        )
        with self._lock:
            if self._index is None or key != self._seen_version:
                self._index = GraphIndex(
                    self.store.snapshot(), max_synonyms=self.config.max_synonyms
                )
                self._seen_version = key
            return self._index

    def recall_many(
        self,
        queries: Sequence[str],
        dense: Sequence[Run],
        *,
        depth: int,
        allow: npt.NDArray[np.int64] | None = None,
        version: int | None = None,
    ) -> list[GraphRecall]:
        """Graph recall for each query, seeded by its phrases and its dense run.

        ``version``: the store version of the caller's read snapshot (see :meth:`index`).

        Raises:
            MissingDependencyError: spaCy or its model is not installed.
        """
        return self.recall_on(self.index(version), queries, dense, depth=depth, allow=allow)

    def recall_on(
        self,
        index: GraphIndex,
        queries: Sequence[str],
        dense: Sequence[Run],
        *,
        depth: int,
        allow: npt.NDArray[np.int64] | None = None,
    ) -> list[GraphRecall]:
        """Graph recall over a given graph (this store's, or a cluster's merged one).

        Raises:
            MissingDependencyError: spaCy or its model is not installed.
        """
        cfg = self.config
        phrases = [list(ex.phrases) for ex in self.extractor.extract(list(queries))]
        unknown = [
            p
            for p in dict.fromkeys(p for ps in phrases for p in ps)
            if index.phrase_index(p) is None
        ]
        vectors = self._embed(unknown)
        seeds = [
            index.link(
                ps,
                vectors,
                top_k=cfg.link_top_k,
                threshold=cfg.link_threshold,
                common_weight=cfg.common_phrase_weight,
            )
            for ps in phrases
        ]
        return index.recall_many(
            seeds,
            dense,
            depth=depth,
            damping=cfg.damping,
            passage_weight=cfg.passage_weight,
            allow=allow,
            epsilon=cfg.ppr_epsilon,
        )

    def related(
        self, memory_id: int, *, limit: int = 10, namespaces: Sequence[str] | None = None
    ) -> list[tuple[int, tuple[str, ...]]]:
        """Memories sharing the most specific phrases with ``memory_id``, with those phrases
        (see :meth:`SQLiteGraph.related`)."""
        return self.store.related(memory_id, limit=limit, namespaces=namespaces)

    def stats(self) -> dict[str, Any]:
        """Counts of the stored graph plus the extractor in use."""
        return {"kind": "phrase-graph", "extractor": self.extractor.name, **self.store.counts()}
