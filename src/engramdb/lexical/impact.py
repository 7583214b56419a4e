"""Exact BM25 top-k over postings arrays, ranking as FTS5's ``bm25()`` does.

A :class:`PostingsView` is the lexical state at one position of the store's change log:
segments (a large base and small recent ones, see ``engramdb.lexical.postings``) and the
slots of rows deleted since each was made. Its totals (rows, tokens) and document
frequencies are those of the live rows, which are FTS5's own numbers for the same state.

A query is answered in two passes (:func:`top_k`):

1. **Approximate sums.** For every query phrase, its idf times each posting's impact is
   added into a per-thread float32 accumulator (``np.add.at``, a few nanoseconds a
   posting). An impact was computed at the segment's mean length ``a0``; at today's
   ``avgdl = a`` a posting's exact weight lies within ``[w0 * min(1, a/a0), w0 * max(1,
   a/a0)]`` (the weight is monotone in ``dl / avgdl``), and float32 rounding of impacts,
   idfs and sums adds a relative error below ``eps`` (computed per query). So each row's
   exact score lies between known lower and upper bounds of its sum.
2. **Exact candidates.** ``theta``, the k-th largest lower bound among live rows, is at
   most the true k-th score; only rows whose upper bound reaches ``theta`` can be in the
   top k. Those few are scored exactly, with FTS5's formula evaluated in the order
   ``fts5Bm25Function`` uses (phrase by phrase, in query order), so their scores are the
   very doubles ``bm25()`` returns, and ranked by ``(-score, id)``.

Rows tied with the k-th score are all candidates, so ties break by smaller id exactly as
FTS5's ``ORDER BY bm25(), rowid`` does.

With a filter (:class:`RowFilter`), rows are asked about in bands of falling upper bounds,
the first holding the unfiltered top k, until the k-th lower bound among the rows that
pass reaches the band's edge; when few pass and the filter lets fewer rows through than
are left to ask about, the ranking is made among its rows alone.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engramdb.lexical.bm25 import K1, B
from engramdb.lexical.postings import Segment

__all__ = ["PostingsView", "Ranked", "RowFilter", "top_k"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

_F32_EPS = 2.0**-24  # float32's relative rounding error
_REFINE = 8  # candidates beyond this many times k: tighten theta on them first
_SEED = 4  # rows of the rarest phrases read for a first theta, in multiples of k
_SAMPLE = 64  # rows checked to tell a selective filter from a broad one


@dataclass(frozen=True, slots=True, eq=False)
class PostingsView:
    """The lexical postings at one change-log position (immutable; shared by threads).

    Attributes:
        seq: the change-log position the view reflects.
        segments: the segments, largest first.
        dead: per segment, the slots of its rows deleted since (sorted, int64).
        rows: live rows.
        tokens: tokens in live rows.
    """

    seq: int
    segments: tuple[Segment, ...]
    dead: tuple[Ints, ...]
    rows: int
    tokens: int

    @classmethod
    def of(cls, seq: int, segments: Sequence[Segment], dead: Sequence[Ints]) -> PostingsView:
        """A view of ``segments`` less ``dead``, with its totals counted."""
        rows = tokens = 0
        for segment, gone in zip(segments, dead, strict=True):
            rows += len(segment) - int(gone.size)
            lengths = segment.lengths
            tokens += int(lengths.sum(dtype=np.int64)) - int(lengths[gone].sum(dtype=np.int64))
        return cls(seq, tuple(segments), tuple(dead), rows, tokens)

    @property
    def slots(self) -> int:
        """Slots over all segments, dead ones included (the accumulator's size)."""
        return sum(len(s) for s in self.segments)

    def starts(self) -> list[int]:
        """Each segment's first slot in the view's numbering."""
        out, at = [], 0
        for segment in self.segments:
            out.append(at)
            at += len(segment)
        return out

    def hits(self, token: str) -> int:
        """Live rows holding ``token`` (a term's document frequency)."""
        total = 0
        for segment, gone in zip(self.segments, self.dead, strict=True):
            a, b = segment.span(token)
            if b > a:
                total += (b - a) - _dead_in(segment.rows[a:b], gone)
        return total

    def locate(self, ids: Ints) -> tuple[list[Ints], list[Ints]]:
        """Per segment: which of ``ids`` it holds alive (their positions in ``ids``) and
        their slots."""
        where: list[Ints] = []
        slots: list[Ints] = []
        for segment, gone in zip(self.segments, self.dead, strict=True):
            slot, found = segment.slots(ids)
            if gone.size:
                found &= ~np.isin(slot, gone)
            where.append(np.flatnonzero(found))
            slots.append(slot[found])
        return where, slots


def _dead_in(rows: npt.NDArray[np.int32], gone: Ints) -> int:
    """How many of the sorted ``rows`` are in the sorted ``gone``."""
    if gone.size == 0 or rows.size == 0:
        return 0
    if gone.size * 24 < rows.size:  # binary searches beat reading the whole list
        needles = gone.astype(rows.dtype)  # wider needles would copy the whole list
        pos = np.minimum(np.searchsorted(rows, needles), rows.size - 1)
        return int(np.count_nonzero(rows[pos] == needles))
    return int(np.count_nonzero(np.isin(rows, gone, assume_unique=True)))


class RowFilter(Protocol):
    """A filter on memory ids that :func:`top_k` asks as it needs (SQL, in practice)."""

    def passing(self, ids: Ints) -> Mask:
        """Which of ``ids`` pass, in order."""
        ...

    def allowed(self, limit: int) -> Ints | None:
        """Every id that passes, when fewer than ``limit`` do; else ``None`` (reading
        them all would cost more than checking ``limit`` candidates)."""
        ...


@dataclass(frozen=True, slots=True)
class Ranked:
    """Rows ranked by exact BM25, best first, ties by smaller id.

    Attributes:
        ids: memory ids, int64.
        scores: their scores (FTS5's ``-bm25()`` doubles).
    """

    ids: Ints
    scores: Floats


_EMPTY = Ranked(np.zeros(0, np.int64), np.zeros(0, np.float64))


class _Scratch(threading.local):
    acc: npt.NDArray[np.float32]

    def __init__(self) -> None:
        self.acc = np.zeros(0, dtype=np.float32)

    def accumulator(self, size: int) -> npt.NDArray[np.float32]:
        if self.acc.size < size:
            self.acc = np.zeros(max(size, int(self.acc.size * 1.25)), dtype=np.float32)
        return self.acc[:size]


_SCRATCH = _Scratch()


@dataclass(frozen=True, slots=True)
class _List:
    """One phrase's postings in one segment."""

    segment: int
    start: int
    end: int


def top_k(  # noqa: PLR0913 - the parts of one scoring
    view: PostingsView,
    phrases: Sequence[str],
    idfs: Sequence[float],
    avgdl: float,
    k: int,
    where: RowFilter | None = None,
) -> Ranked:
    """The best ``k`` live rows for a query by BM25 (see the module docstring).

    Args:
        view: the postings.
        phrases: the query's phrases in query order, each one FTS5 token (repeats count
            again, as in FTS5).
        idfs: each phrase's idf.
        avgdl: the mean row length to score with.
        k: rows wanted.
        where: only rows passing it may be returned (``None``: all).

    Returns:
        The best ``k`` rows (fewer when fewer match), ranked.
    """
    lists = [_lists(view, token) for token in phrases]
    if not any(lists) or view.rows == 0:
        return _EMPTY
    query = _Query(view, phrases, lists, idfs, avgdl, _SCRATCH.accumulator(view.slots))
    try:
        query.accumulate()
        if where is None:
            return query.best(k)
        return query.filtered(k, where)
    finally:
        query.acc.fill(0.0)


def _lists(view: PostingsView, token: str) -> list[_List]:
    found = []
    for g, segment in enumerate(view.segments):
        a, b = segment.span(token)
        if b > a:
            found.append(_List(g, a, b))
    return found


class _Query:
    """One query's scoring over one view, with its accumulator of approximate sums."""

    def __init__(  # noqa: PLR0913 - the parts of one scoring
        self,
        view: PostingsView,
        phrases: Sequence[str],
        lists: Sequence[Sequence[_List]],
        idfs: Sequence[float],
        avgdl: float,
        acc: npt.NDArray[np.float32],
    ):
        self.view = view
        self.phrases = phrases
        self.lists = lists
        self.idfs = idfs
        self.avgdl = avgdl
        self.acc = acc
        self.starts = np.asarray(view.starts(), dtype=np.int64)
        eps = (len(lists) + 8) * _F32_EPS  # rounding of impacts, idfs and the sums
        low, high = [], []
        for segment in view.segments:  # from an approximate sum to bounds of the exact one
            ratio = avgdl / segment.avgdl
            low.append(min(1.0, ratio) * (1.0 - eps))
            high.append(max(1.0, ratio) * (1.0 + eps))
        self.low = np.asarray(low)
        self.high = np.asarray(high)

    def accumulate(self) -> None:
        """Sum each live row's approximate score (dead rows are left at 0)."""
        for parts, weight in zip(self.lists, self.idfs, strict=True):
            factor = np.float32(weight)
            for part in parts:
                segment = self.view.segments[part.segment]
                start = int(self.starts[part.segment])
                impact = np.multiply(
                    segment.impact[part.start : part.end], factor, dtype=np.float32
                )
                rows = segment.rows[part.start : part.end]
                np.add.at(self.acc[start : start + len(segment)], rows, impact)
        for start, gone in zip(self.starts.tolist(), self.view.dead, strict=True):
            if gone.size:
                self.acc[start + gone] = 0.0

    def owner(self, slots: Ints) -> Ints:
        """Each slot's segment."""
        return np.searchsorted(self.starts, slots, side="right") - 1

    def best(self, k: int) -> Ranked:
        """The top ``k`` of the rows with a positive sum."""
        theta = self.seed_theta(k)
        candidates = self.candidates(theta)
        if candidates.size > _REFINE * k:
            low = self.acc[candidates] * self.low[self.owner(candidates)]
            theta = max(theta, _kth(low, k))
            candidates = self.candidates(theta)
        return self.ranked(candidates)

    def seed_theta(self, k: int) -> float:
        """A first lower bound on the k-th score: the k-th lower bound among the rows of
        the rarest phrases (any set of rows gives one; these are likely near the top)."""
        sizes = [sum(p.end - p.start for p in parts) for parts in self.lists]
        taken: list[Ints] = []
        total = 0
        for j in np.argsort(sizes, kind="stable").tolist():
            for part in self.lists[j]:
                rows = self.view.segments[part.segment].rows[part.start : part.end]
                taken.append(rows.astype(np.int64) + self.starts[part.segment])
            total += sizes[j]
            if total >= _SEED * k:
                break
        seed = np.unique(np.concatenate(taken)) if taken else np.zeros(0, np.int64)
        return _kth(self.acc[seed] * self.low[self.owner(seed)], k)

    def candidates(self, theta: float) -> Ints:
        """Slots whose upper bound reaches ``theta`` (every positive sum when it is 0)."""
        found: list[Ints] = []
        for start, segment, factor in zip(
            self.starts.tolist(), self.view.segments, self.high.tolist(), strict=True
        ):
            part = self.acc[start : start + len(segment)]
            if theta > 0.0:
                cut = np.nextafter(np.float32(theta / factor), np.float32(0.0))
                hits = np.flatnonzero(part >= cut)
            else:
                hits = np.flatnonzero(part > 0.0)
            found.append(hits + start)
        return np.concatenate(found) if found else np.zeros(0, np.int64)

    def ranked(self, slots: Ints) -> Ranked:
        """``slots`` scored exactly and ranked."""
        scores = self.exact(slots)
        ids = self.ids(slots)
        order = np.lexsort((ids, -scores))
        return Ranked(ids[order], scores[order])

    def filtered(self, k: int, where: RowFilter) -> Ranked:
        """The top ``k`` of the rows that pass ``where``.

        Rows are checked in bands of falling upper bounds, the first band holding the
        unfiltered top ``k``, until the k-th best lower bound among the rows passing
        reaches the band's lower edge: no row left unchecked can beat it, and the passing
        rows whose upper bounds reach it are scored exactly. When few pass and fewer rows
        pass the filter than are left to check, the top ``k`` is taken among the filter's
        rows alone."""
        checked = np.zeros(self.acc.size, dtype=np.bool_)
        passing: list[Ints] = []
        cut = self.seed_theta(k)
        band = self.candidates(cut)
        if band.size > _REFINE * k:  # any edge will do: start near the unfiltered top k
            cut = max(cut, _kth(self.acc[band] * self.low[self.owner(band)], k))
        asked = False
        size = 0
        while True:
            band = self.candidates(cut)
            band = band[~checked[band]]
            checked[band] = True
            ok = where.passing(self.ids(band))
            passing.append(band[ok])
            pool = np.concatenate(passing)
            lower = self.acc[pool] * self.low[self.owner(pool)]
            theta = _kth(lower, k)
            if cut <= 0.0 or (theta > 0.0 and theta >= cut):
                # every row that can be in the top k passed and was checked
                return self.ranked(self._reaching(pool, theta))
            if theta > 0.0:
                cut = theta
                continue
            if not asked:
                asked = True
                left = int(np.count_nonzero(self.acc)) - int(np.count_nonzero(checked))
                if self._selectivity(where) * self.view.rows < left:
                    allowed = where.allowed(left)  # fewer rows pass than are left to check
                    if allowed is not None:
                        return self.among(allowed, k)
            size = max(size * 4, _SEED * k)
            cut = self._next_edge(checked, size)

    def _next_edge(self, checked: npt.NDArray[np.bool_], size: int) -> float:
        """The edge of a band of about ``size`` unchecked rows (0: all of them)."""
        slots = self.candidates(0.0)
        slots = slots[~checked[slots]]
        if slots.size <= size:
            return 0.0
        upper = self.acc[slots] * self.high[self.owner(slots)]
        return float(np.partition(upper, upper.size - size)[upper.size - size])

    def _selectivity(self, where: RowFilter) -> float:
        """The share of rows passing ``where``, estimated on a sample (a little high)."""
        rng = np.random.default_rng(len(self.view.segments))
        sample = np.unique(rng.integers(0, self.acc.size, size=_SAMPLE))
        passed = int(np.count_nonzero(where.passing(self.ids(sample))))
        return (passed + 1) / (sample.size + 2)

    def _reaching(self, slots: Ints, theta: float) -> Ints:
        """Those of ``slots`` whose upper bound reaches ``theta``."""
        if theta <= 0.0:
            return slots
        upper = self.acc[slots].astype(np.float64) * self.high[self.owner(slots)]
        reaching: Ints = slots[upper >= theta * (1 - _F32_EPS)]
        return reaching

    def among(self, ids: Ints, k: int) -> Ranked:
        """The top ``k`` of the rows ``ids`` (sorted), read from their sums alone."""
        _, slots = self.view.locate(ids)
        allowed = np.concatenate(
            [start + found for start, found in zip(self.starts.tolist(), slots, strict=True)]
        )
        allowed = allowed[self.acc[allowed] > 0.0]
        owner = self.owner(allowed)
        values = self.acc[allowed].astype(np.float64)
        theta = _kth(values * self.low[owner], k)
        reaching: Ints = allowed[values * self.high[owner] >= theta * (1 - _F32_EPS)]
        return self.ranked(reaching)

    def exact(self, slots: Ints) -> Floats:
        """FTS5's BM25 of each slot, phrase by phrase in query order."""
        n = slots.size
        scores = np.zeros(n, dtype=np.float64)
        if n == 0:
            return scores
        owner = self.owner(slots)
        local = slots - self.starts[owner]
        dl = np.empty(n, dtype=np.float64)
        members: list[Ints] = []
        for g, segment in enumerate(self.view.segments):
            mine = np.flatnonzero(owner == g)
            members.append(mine)
            dl[mine] = segment.lengths[local[mine]]
        norm = K1 * (1 - B + B * dl / self.avgdl)
        for token, parts, weight in zip(self.phrases, self.lists, self.idfs, strict=True):
            f = np.zeros(n, dtype=np.float64)
            for part in parts:
                mine = members[part.segment]
                if mine.size:
                    segment = self.view.segments[part.segment]
                    f[mine] = _frequencies(segment, token, local[mine])
            # the operations and their order are fts5Bm25Function's: the doubles are its own
            scores += weight * ((f * (K1 + 1.0)) / (f + norm))
        return scores

    def ids(self, slots: Ints) -> Ints:
        """The memory ids of ``slots``."""
        owner = self.owner(slots)
        ids = np.empty(slots.size, dtype=np.int64)
        for g, segment in enumerate(self.view.segments):
            mine = np.flatnonzero(owner == g)
            ids[mine] = segment.ids[slots[mine] - self.starts[g]]
        return ids


def _kth(values: Floats, k: int) -> float:
    """The k-th largest of ``values`` that is positive, or 0."""
    positive = values[values > 0]
    if positive.size < k:
        return 0.0
    return float(np.partition(positive, positive.size - k)[positive.size - k])


def _frequencies(segment: Segment, token: str, slots: Ints) -> Floats:
    """The tf of ``token`` in each of one segment's ``slots``, 0 where absent."""
    found, pos = segment.find(token, slots)
    out = np.zeros(slots.size, dtype=np.float64)
    out[found] = segment.frequencies(pos[found])
    return out
