"""Facts that change, proposed by a judge (:meth:`Memory.propose_changes`).

The write-time detector (:mod:`engramdb.engine._validity`) finds a new value only when two
texts differ in a value span. Here a :class:`~engramdb.recognize.judge.Judge` (an LLM) is
asked about pairs that may state one fact in other words, and its verdicts become
*proposals*: conflict links with origin ``"judge"``. A proposal never sets ``valid_to`` and
never deletes; :meth:`Memory.supersede` accepts one (and resolves its conflict link).

Candidate pairs: two memories of one namespace, both valid now (``valid_to`` NULL), with
the same ``speaker`` in their metadata (or both without one), whose cached embeddings
have cosine similarity ≥ ``min_similarity``, and which no link joins yet (either way, of
any kind, undone ones too). The ``limit`` most similar are asked, the older memory (by
valid-from time, then id) first.

Three steps, so that the judge's requests never hold the write lock:

1. **read**, in one snapshot: the candidate pairs and their texts (every pair among at most
   :data:`MAX_COMPARED` memories, in blocks of rows: memory stays bounded);
2. **ask** the judge, one pair at a time, outside any transaction;
3. **write**, in one transaction: each ``"supersede"`` or ``"conflict"`` verdict becomes a
   link, after checking again that both memories still exist, are still valid and are
   still unlinked. A judge that fails part-way still has its earlier verdicts recorded.

Verdicts of ``"unrelated"`` are kept in ``judged_pairs``: a later call does not ask about
those pairs again (it goes on to less similar ones).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engramdb.errors import InvalidInputError, ModelError
from engramdb.recognize.judge import Judge, Verdict
from engramdb.store.sqlite import SQLiteStore
from engramdb.store.validity import add_link, judged_unrelated, links_of, mark_unrelated
from engramdb.types import Matrix, Supersession

__all__ = ["MAX_COMPARED", "Pair", "ask", "candidate_pairs", "propose", "record"]

logger = logging.getLogger(__name__)

MAX_COMPARED = 50_000
"""The most currently valid memories of a namespace compared pairwise in one call."""
_BLOCK = 64
"""Rows of the similarity matrix computed at once."""
_PAGE = 900
_VERDICTS = ("supersede", "conflict", "unrelated")

Write = Callable[[Callable[[], list[Supersession]]], list[Supersession]]
"""Runs a function inside a write transaction and returns its result."""


@dataclass(frozen=True, slots=True)
class Pair:
    """Two memories the judge is asked about: ``older`` (by valid-from time) and ``newer``."""

    older: int
    newer: int
    similarity: float
    subject: str | None
    older_text: str
    newer_text: str


def _check(limit: int, min_similarity: float) -> None:
    """Raises:
    InvalidInputError: ``limit < 1`` or ``min_similarity`` outside [-1, 1]."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"limit must be a whole number >= 1, got {limit!r}")
    if isinstance(min_similarity, bool) or not -1.0 <= float(min_similarity) <= 1.0:
        raise InvalidInputError(
            f"min_similarity is a cosine similarity, from -1 to 1; got {min_similarity!r}"
        )


def _speakers(store: SQLiteStore, ids: Sequence[int]) -> dict[int, tuple[str | None, float]]:
    """``{id: (speaker, valid-from time)}``, read a page at a time."""
    out: dict[int, tuple[str | None, float]] = {}
    for start in range(0, len(ids), _PAGE):
        for r in store.get_many(ids[start : start + _PAGE]):
            speaker = r.meta.get("speaker")
            out[r.id] = (speaker if isinstance(speaker, str) else None, r.valid_from)
    return out


def _linked(store: SQLiteStore, ids: Sequence[int]) -> dict[int, set[int]]:
    """``{id: ids linked to it}`` by any link, undone ones included, or judged unrelated."""
    out: dict[int, set[int]] = {}
    for link in links_of(store.conn, ids, undone=True):
        if link.new is not None:
            out.setdefault(link.old, set()).add(link.new)
            out.setdefault(link.new, set()).add(link.old)
    for old, new in judged_unrelated(store.conn, ids):
        out.setdefault(old, set()).add(new)
        out.setdefault(new, set()).add(old)
    return out


def _unit(vectors: Matrix) -> Matrix:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def _top(
    sims: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The ``k`` largest similarities with their row and column positions."""
    if len(sims) <= k:
        return sims, rows, cols
    keep = np.argpartition(-sims, k - 1)[:k]
    return sims[keep], rows[keep], cols[keep]


def _group_pairs(
    ids: npt.NDArray[np.int64],
    vectors: Matrix,
    linked: dict[int, set[int]],
    *,
    limit: int,
    min_similarity: float,
) -> list[tuple[float, int, int]]:
    """The ``limit`` most similar unlinked pairs of one speaker's memories, at or above
    ``min_similarity``: ``(similarity, id, id)``; blocks of rows against the rows after them."""
    position = {int(i): p for p, i in enumerate(ids)}
    best_s = np.empty(0, dtype=np.float32)
    best_r = best_c = np.empty(0, dtype=np.int64)
    for start in range(0, len(ids) - 1, _BLOCK):
        stop = min(start + _BLOCK, len(ids))
        sims = vectors[start:stop] @ vectors[start:].T  # (rows, columns from start)
        sims[np.tril_indices(stop - start, 0, sims.shape[1])] = -np.inf  # each pair once
        for row in range(start, stop):
            for other in linked.get(int(ids[row]), ()):
                col = position.get(other)
                if col is not None and col > row:
                    sims[row - start, col - start] = -np.inf
        flat = sims.ravel()
        keep = np.argpartition(-flat, limit - 1)[:limit] if flat.size > limit else None
        keep = np.flatnonzero(flat >= min_similarity) if keep is None else keep
        keep = keep[flat[keep] >= min_similarity]
        r, c = np.divmod(keep, sims.shape[1])
        best_s, best_r, best_c = _top(
            np.concatenate([best_s, flat[keep]]),
            np.concatenate([best_r, r + start]),
            np.concatenate([best_c, c + start]),
            limit,
        )
    return [
        (float(s), int(ids[r]), int(ids[c])) for s, r, c in zip(best_s, best_r, best_c, strict=True)
    ]


def candidate_pairs(
    store: SQLiteStore, model: str, *, namespace: str, limit: int, min_similarity: float
) -> list[Pair]:
    """Inside a read snapshot: the pairs to ask about, most similar first (module docstring).

    Memories with no cached vector for ``model`` are left out.

    Raises:
        InvalidInputError: bad ``limit`` or ``min_similarity``, or more than
            :data:`MAX_COMPARED` valid memories in ``namespace``.
    """
    _check(limit, min_similarity)
    valid = store.select_ids("m.namespace = ? AND m.valid_to IS NULL", (namespace,))
    if len(valid) > MAX_COMPARED:
        raise InvalidInputError(
            f"namespace {namespace!r} has {len(valid):,} valid memories; proposals compare "
            f"every pair of at most {MAX_COMPARED:,}: split it into smaller namespaces"
        )
    ids, vectors, missing = store.vectors_of(model, valid.tolist())
    if missing:
        logger.info("%d memories have no cached vector for %s: not compared", len(missing), model)
    if vectors is None or len(ids) < 2:
        return []
    about = _speakers(store, ids.tolist())
    linked = _linked(store, ids.tolist())
    vectors = _unit(vectors)
    groups: dict[str | None, list[int]] = {}
    for p, memory_id in enumerate(ids.tolist()):
        groups.setdefault(about[memory_id][0], []).append(p)
    found: list[tuple[float, int, int]] = []
    for rows in groups.values():
        if len(rows) > 1:
            found += _group_pairs(
                ids[rows], vectors[rows], linked, limit=limit, min_similarity=min_similarity
            )
    found.sort(key=lambda t: (-t[0], min(t[1], t[2]), max(t[1], t[2])))
    found = found[:limit]
    texts = store.texts(sorted({i for _, a, b in found for i in (a, b)}))
    pairs: list[Pair] = []
    for similarity, a, b in found:
        older, newer = sorted((a, b), key=lambda i: (about[i][1], i))
        pairs.append(
            Pair(
                older=older,
                newer=newer,
                similarity=similarity,
                subject=about[a][0],
                older_text=texts[older],
                newer_text=texts[newer],
            )
        )
    return pairs


def ask(
    judge: Judge, pairs: Sequence[Pair]
) -> tuple[list[tuple[Pair, Verdict]], ModelError | None]:
    """The judge's verdict on each pair, in order, until it fails: ``(verdicts, error)``."""
    judged: list[tuple[Pair, Verdict]] = []
    for pair in pairs:
        try:
            verdict = judge.judge(pair.older_text, pair.newer_text, subject=pair.subject)
        except ModelError as exc:
            return judged, exc
        if not isinstance(verdict, Verdict) or verdict.kind not in _VERDICTS:
            return judged, ModelError(f"the judge returned {verdict!r}, not a Verdict")
        judged.append((pair, verdict))
    return judged, None


def _joined(store: SQLiteStore, a: int, b: int) -> bool:
    """Whether any link (undone ones too) joins ``a`` and ``b``."""
    return any({link.old, link.new} == {a, b} for link in links_of(store.conn, [a], undone=True))


def record(
    store: SQLiteStore, judged: Sequence[tuple[Pair, Verdict]], *, now: float
) -> list[Supersession]:
    """Inside a write transaction: a conflict link (origin ``"judge"``) for each
    ``"supersede"`` or ``"conflict"`` verdict whose memories are still valid and unlinked.
    Returns the links made, in order."""
    mark_unrelated(
        store.conn,
        [(p.older, p.newer) for p, v in judged if v.kind == "unrelated"],
        now=now,
    )
    wanted = [(pair, verdict) for pair, verdict in judged if verdict.kind != "unrelated"]
    ids = sorted({i for pair, _ in wanted for i in (pair.older, pair.newer)})
    records = {r.id: r for r in store.get_many(ids)}
    made: list[int] = []
    for pair, verdict in wanted:
        old, new = records.get(pair.older), records.get(pair.newer)
        if old is None or new is None or old.valid_to is not None or new.valid_to is not None:
            continue  # forgotten or superseded while the judge was asked
        if _joined(store, old.id, new.id):
            continue
        made.append(
            add_link(
                store.conn,
                old=old.id,
                new=new.id,
                kind="conflict",
                origin="judge",
                at=new.valid_from,
                recorded=now,
                detail={"proposal": verdict.kind, "reason": verdict.reason},
            )  # fmt: skip
        )
    if not made:
        return []
    by_id = {link.id: link for link in links_of(store.conn, ids)}
    return [by_id[i] for i in made]


def propose(  # noqa: PLR0913 - the store, its writer, the judge and the call's options
    store: SQLiteStore,
    model: str,
    judge: Judge,
    *,
    write: Write,
    namespace: str,
    limit: int,
    min_similarity: float,
) -> list[Supersession]:
    """Read the candidate pairs, ask ``judge``, record its proposals through ``write``.

    Args:
        store: the store.
        model: the embedder's model id (whose cached vectors are compared).
        judge: the judge.
        write: runs a function inside a write transaction (the engine's writer).
        namespace: the namespace whose memories are paired.
        limit: the most pairs asked.
        min_similarity: the least cosine similarity of a pair asked.

    Raises:
        InvalidInputError: bad ``limit`` or ``min_similarity``, or too many memories.
        StoreError: the store is open read-only (found before the judge is asked).
        ModelError: the judge failed; the proposals it made before were recorded.
    """
    _check(limit, min_similarity)
    store.conn_write  # noqa: B018 - raises on a read-only store, before any request
    with store.reading():
        pairs = candidate_pairs(
            store, model, namespace=namespace, limit=limit, min_similarity=min_similarity
        )
    judged, failure = ask(judge, pairs)
    now = time.time()
    made = write(lambda: record(store, judged, now=now)) if judged else []
    if failure is not None:
        raise ModelError(
            f"{failure} (after {len(judged)} of {len(pairs)} pairs; the {len(made)} "
            "proposal(s) made before were recorded)"
        ) from failure
    return made
