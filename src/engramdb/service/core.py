"""MemoryService: the verbs of a shared memory, each checked against the caller's scope.

One service per process and store. The REST server, the MCP server and the CLI's service
commands are thin adapters over it: they turn a request into a call with a :class:`Scope`
and the result into their format. The scope is applied here, before the store is touched:
a read covers only the scope's namespaces (a namespace outside it reads as empty), an id
outside it is "not found", and a write outside it is refused the same way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engramdb.config import EngineConfig
from engramdb.context import Context, Order
from engramdb.engine import Memory
from engramdb.errors import ForbiddenError, InvalidInputError, NotFoundError
from engramdb.filter import parse_filter
from engramdb.ingest import MAX_FILE_BYTES
from engramdb.service._cluster import ClusterMemory
from engramdb.service.jobs import Job, JobQueue, Upload
from engramdb.service.keys import KeyRing
from engramdb.service.scope import Scope, host_name, is_loopback
from engramdb.types import (
    AddResult,
    History,
    Hits,
    MemoryRecord,
    Recognition,
    Record,
    Stats,
    Supersession,
)

__all__ = ["MemoryService", "ServiceStats"]

RecordLike = Record | Mapping[str, Any] | str
_RANK = {"exact": 2, "near": 1, "new": 0}


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStats:
    """What a caller may know of the store.

    Attributes:
        namespaces: the caller's namespaces that hold memories, with their counts.
        memories: how many memories those hold.
        embedder: the embedding model's id.
        store: the whole store's statistics, for a caller that holds every namespace.
    """

    namespaces: Mapping[str, int]
    memories: int
    embedder: str
    store: Stats | None = None


def _no_memory(memory_id: int) -> NotFoundError:
    return NotFoundError(f"no memory with id {memory_id}")


class MemoryService:
    """A store shared by many callers.

    Args:
        memory: the open store (closed with the service when ``own``), or a cluster seen
            as one (:class:`ClusterMemory`; verbs it does not offer raise
            :class:`InvalidInputError`).
        spool: where uploaded files wait for their ingest job (default: beside the store,
            ``<store>.jobs``).
        own: close ``memory`` on :meth:`close`.
    """

    def __init__(
        self,
        memory: Memory | ClusterMemory,
        *,
        spool: str | os.PathLike[str] | None = None,
        own: bool = True,
    ):
        self._memory = memory
        self._own = own
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if spool is None:
            if memory.store.memory:
                self._tmp = tempfile.TemporaryDirectory(prefix="engramdb-jobs-")
                spool = self._tmp.name
            else:
                spool = Path(memory.store.path).with_name(Path(memory.store.path).name + ".jobs")
        self.keys = KeyRing(memory)
        self.jobs = JobQueue(memory, Path(spool).resolve())

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        config: EngineConfig | Mapping[str, Any] | str | Path | None = None,
        *,
        create: bool = True,
        readonly: bool = False,
        spool: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> MemoryService:
        """Open (or create) the store at ``path`` as a service; see :meth:`Memory.open`."""
        memory = Memory.open(path, config, create=create, readonly=readonly, **overrides)
        return cls(memory, spool=spool)

    @property
    def memory(self) -> Memory | ClusterMemory:
        """The store (for maintenance and tests; callers go through the verbs)."""
        return self._memory

    def close(self) -> None:
        """Stop the job runner and close the store (when owned)."""
        self.jobs.stop()
        if self._own:
            self._memory.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> MemoryService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- who is asking ----------------------------------------------------------------------

    def authenticate(self, key: str | None, *, host: str | None = None) -> Scope:
        """The scope of a request: that of its key when the store has keys, else a local
        caller's (every namespace).

        Args:
            key: the key the request presents.
            host: the request's ``Host`` header, for HTTP requests. Without keys, only a
                loopback host (``localhost``, ``127.0.0.1``, ``[::1]``) is served, so that a
                web page whose domain was re-pointed at 127.0.0.1 (DNS rebinding) cannot
                read the memories through the visitor's browser (browsers always send a
                ``Host``; ``None`` or ``""``: not an HTTP request, or one without a host).

        Raises:
            UnauthorizedError: keys exist and ``key`` is missing, unknown or revoked.
            ForbiddenError: no keys exist and ``host`` is not a loopback name.
        """
        if not self.keys.any():
            if host and not is_loopback(host_name(host)):
                raise ForbiddenError(
                    f"without keys this server answers requests for localhost only (Host: "
                    f"{host[:100]!r}); make a key with `engram keys add` to serve others"
                )
            return Scope.local()
        return self.keys.scope(key)

    # -- writing ----------------------------------------------------------------------------

    def remember(
        self, scope: Scope, records: Sequence[RecordLike], *, namespace: str | None = None
    ) -> AddResult:
        """Add records in one transaction (see :meth:`Memory.add_many`).

        Raises:
            NotFoundError: the namespace is outside the scope.
            ForbiddenError: the key is read-only.
            InvalidInputError: a bad record.
        """
        target = scope.writable(namespace)
        return self._memory.add_many(records, namespace=target)

    def delete(self, scope: Scope, memory_id: int) -> None:
        """Forget one memory by id.

        Raises:
            NotFoundError: no such memory in the scope.
            ForbiddenError: the key is read-only.
        """
        record = self.get(scope, memory_id)
        scope.writable(record.namespace)
        if not self._memory.forget([memory_id]):
            raise _no_memory(memory_id)

    def history(self, scope: Scope, memory_id: int) -> History:
        """The chain of a memory's fact (see :meth:`Memory.history`); a chain lives in one
        namespace.

        Raises:
            NotFoundError: no such memory in the scope.
        """
        self.get(scope, memory_id)
        return self._memory.history(memory_id)

    def supersede(
        self, scope: Scope, old: int, new: int, *, at: float | str | None = None
    ) -> Supersession:
        """Record that ``new`` supersedes ``old`` (see :meth:`Memory.supersede`).

        Raises:
            NotFoundError: either memory is not in the scope.
            ForbiddenError: the key is read-only.
            InvalidInputError: the link is not possible (see :meth:`Memory.supersede`).
        """
        for memory_id in (old, new):
            scope.writable(self.get(scope, memory_id).namespace)
        return self._memory.supersede(old, new, at=at)

    def unsupersede(self, scope: Scope, old: int) -> Supersession:
        """Undo ``old``'s supersession (see :meth:`Memory.unsupersede`).

        Raises:
            NotFoundError: no such memory in the scope, or it is not superseded.
            ForbiddenError: the key is read-only.
        """
        scope.writable(self.get(scope, old).namespace)
        return self._memory.unsupersede(old)

    def forget(
        self,
        scope: Scope,
        *,
        source: str | None = None,
        where: Any = None,
        namespace: str | None = None,
    ) -> int:
        """Forget by source or by filter, in ``namespace`` or in every namespace of the scope.

        Returns:
            The number of memories removed.

        Raises:
            InvalidInputError: neither or both of ``source`` and ``where``.
            InvalidFilterError: a malformed filter.
            NotFoundError: the namespace is outside the scope.
            ForbiddenError: the key is read-only.
        """
        if (source is None) == (where is None):
            raise InvalidInputError("forget needs exactly one of: source, where")
        if where is not None:
            parse_filter(where)  # a bad filter fails whether or not anything matches
        if namespace is not None:
            targets: tuple[str, ...] | None = (scope.writable(namespace),)
        else:
            for ns in scope.namespaces or (scope.default_namespace,):
                scope.writable(ns)
            targets = scope.namespaces
        if targets is None:
            if source is not None:
                return self._memory.forget(source=source)
            return self._memory.forget(where=where)
        existing = self._memory.namespaces()
        removed = 0
        for ns in targets:
            if ns not in existing:
                continue
            if source is not None:
                removed += self._memory.forget(source=source, namespace=ns)
            else:
                removed += self._memory.forget(namespace=ns, where=where)
        return removed

    def submit_ingest(
        self,
        scope: Scope,
        uploads: Sequence[Upload],
        *,
        namespace: str | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> Job:
        """Queue files for a bulk ingest job; returns once they are safely on disk.

        Raises:
            NotFoundError: the namespace is outside the scope.
            ForbiddenError: the key is read-only.
            TooLargeError: a file is over the size limit.
        """
        target = scope.writable(namespace)
        return self.jobs.submit(
            uploads, namespace=target, key=scope.key, max_file_bytes=max_file_bytes
        )

    def job(self, scope: Scope, job_id: str) -> Job:
        """A job of the scope's namespaces.

        Raises:
            NotFoundError: no such job in the scope.
        """
        return self.jobs.get(job_id, namespaces=scope.namespaces)

    def list_jobs(self, scope: Scope, *, limit: int = 50) -> list[Job]:
        """The scope's latest jobs, newest first."""
        return self.jobs.list(namespaces=scope.namespaces, limit=limit)

    # -- reading ----------------------------------------------------------------------------

    def get(self, scope: Scope, memory_id: int) -> MemoryRecord:
        """One memory with its sightings.

        Raises:
            NotFoundError: no such memory in the scope.
        """
        try:
            record = self._memory.get(memory_id)
        except NotFoundError:
            raise _no_memory(memory_id) from None
        if not scope.holds(record.namespace):
            raise _no_memory(memory_id)
        return record

    @property
    def graph(self) -> bool:
        """Whether the memory graph is on (memories then have phrase neighbours)."""
        return self._memory.config.graph.enabled

    def neighbours(
        self, scope: Scope, memory_id: int, *, k: int = 10
    ) -> list[tuple[MemoryRecord, tuple[str, ...]]]:
        """The scope's memories that share the most specific phrases with a memory of the
        scope, with the phrases shared (none when the graph is off).

        Raises:
            NotFoundError: no such memory in the scope.
        """
        self.get(scope, memory_id)
        return self._memory.related(memory_id, k=k, namespaces=scope.namespaces)

    def _where(self, scope: Scope, namespace: str | None, where: Any) -> tuple[bool, Any]:
        """``(visible, filter)``: whether the read can see anything, and its filter with the
        scope's namespaces folded in."""
        covered = scope.readable(namespace)
        if covered is None:
            return True, where
        if not covered:
            if where is not None:
                parse_filter(where)  # a bad filter is an error wherever it is aimed
            return False, where
        clause = {"namespace": {"$in": list(covered)}}
        return True, clause if where is None else {"$and": [clause, where]}

    def recall(  # noqa: PLR0913 - keyword-only options of the main read verb
        self,
        scope: Scope,
        query: str,
        *,
        k: int = 10,
        namespace: str | None = None,
        where: Any = None,
        channels: Sequence[str] | str | None = None,
        min_relevance: float | None = None,
        coverage: float | None = None,
        rerank: str | None = None,
        as_of: float | str | None = None,
        include_superseded: bool = False,
        now: float | str | None = None,
        steps: int | None = None,
        clues: Sequence[str] | str | None = None,
    ) -> Hits:
        """Recall within the scope (see :meth:`Memory.recall`); a namespace outside the
        scope finds nothing."""
        visible, condition = self._where(scope, namespace, where)
        hits = self._memory.recall(
            query,
            k=k,
            where=condition,
            channels=channels,
            min_relevance=min_relevance,
            coverage=coverage,
            rerank=rerank,
            as_of=as_of,
            include_superseded=include_superseded,
            now=now,
            steps=steps,
            clues=clues,
        )
        if visible:
            return hits
        return Hits(query=hits.query, items=(), abstain=False, reason=None)

    def context(  # noqa: PLR0913 - keyword-only options
        self,
        scope: Scope,
        query: str,
        *,
        budget_tokens: int = 1000,
        order: Order = "relevance",
        k: int = 20,
        namespace: str | None = None,
        where: Any = None,
        **recall: Any,
    ) -> Context:
        """A packed, cited context block from the scope's memories (see :meth:`Memory.context`)."""
        hits = self.recall(scope, query, k=k, namespace=namespace, where=where, **recall)
        return self._memory.context(list(hits), budget_tokens=budget_tokens, order=order)

    def recognize(self, scope: Scope, text: str, *, namespace: str | None = None) -> Recognition:
        """Exact, near or new among the scope's memories (in ``namespace`` when given)."""
        covered = scope.readable(namespace)
        if covered is None:
            return self._memory.recognize(text, namespace=None)
        best = None
        for ns in covered or (scope.default_namespace,):
            found = self._memory.recognize(text, namespace=ns)
            if not covered:  # checked the text; a namespace outside the scope holds nothing
                found = Recognition(kind="new", score=0.0, match=None)
            if best is None or (_RANK[found.kind], found.score) > (_RANK[best.kind], best.score):
                best = found
        assert best is not None
        return best

    def stats(self, scope: Scope) -> ServiceStats:
        """Counts of the scope's namespaces; the whole store's statistics only for a caller
        that holds every namespace."""
        if scope.namespaces is None:
            full = self._memory.stats()
            return ServiceStats(
                namespaces=dict(full.namespaces),
                memories=full.memories,
                embedder=full.embedder,
                store=full,
            )
        counts = self._memory.namespaces()
        mine = {ns: counts[ns] for ns in scope.namespaces if ns in counts}
        return ServiceStats(
            namespaces=mine, memories=sum(mine.values()), embedder=self._memory.embedder.model_id
        )

    def ids(self, scope: Scope, *, namespace: str | None = None, where: Any = None) -> list[int]:
        """The ids of the scope's memories (in ``namespace``, matching ``where``), in id order."""
        visible, condition = self._where(scope, namespace, where)
        if not visible:
            return []
        return self._memory.ids(where=condition)

    def export(
        self, scope: Scope, *, namespace: str | None = None, vectors: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The scope's memories as export records (see :meth:`Memory.export`)."""
        covered = scope.readable(namespace)
        if covered is None:
            yield from self._memory.export(namespace=None, vectors=vectors)
            return
        existing = self._memory.namespaces()
        for ns in covered:
            if ns in existing:
                with contextlib.suppress(NotFoundError):  # forgotten meanwhile
                    yield from self._memory.export(namespace=ns, vectors=vectors)
