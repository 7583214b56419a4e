"""Pack hits into a token-budgeted, deduplicated, ordered and cited context block.

:func:`pack` is pure: hits in, :class:`Context` out. Steps:

1. Walk the hits best first. A hit whose text repeats a kept block's text is folded into
   that block (its id is recorded; no tokens are spent).
2. Pieces of one document are joined: chunks whose character spans overlap (chunking
   repeats a few sentences) merge into their union, and neighbours (consecutive ordinals:
   adjacent chunks, or consecutive chat turns) merge into one block with one citation.
3. A block is kept only if the whole rendered context still fits ``budget_tokens``; a hit
   that does not fit is skipped (a later, shorter one may), except that the first hit that
   does not fit is cut at a word boundary when enough budget remains for a useful piece.
4. Blocks are ordered by ``order``: ``"relevance"`` (best first), ``"edges"`` (best at
   both ends: d1, d3, d5, …, d4, d2, against lost-in-the-middle) or ``"chronological"``
   (by event time, then document position).

The rendered ``Context.text`` is guaranteed to count at most ``budget_tokens`` with the
counter used: the final text is counted whole and blocks are dropped, weakest first, until
it fits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from engramdb.context.budget import TokenCounter, estimate_tokens
from engramdb.errors import InvalidInputError
from engramdb.types import Hit

__all__ = ["ORDERS", "Block", "Citation", "Context", "Order", "order_edges", "pack"]

Order = Literal["relevance", "edges", "chronological"]
ORDERS: tuple[str, ...] = ("relevance", "edges", "chronological")
MIN_PIECE_TOKENS = 24
"""A hit is cut to fit only when at least this many tokens of budget remain."""
_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Citation:
    """Where a block comes from.

    Attributes:
        source: the source (file, URI or channel) of its first memory.
        document: the document within the source.
        ordinal: the first ordinal (chunk index or turn number) covered, if known.
        ordinal_end: the last ordinal covered (equal to ``ordinal`` for a single piece).
        start: character offset of the block in the document, when known.
        end: character offset of the block's end, when known.
        event_time: the earliest event time (UTC epoch seconds) of its memories.
    """

    source: str | None
    document: str | None
    ordinal: int | None
    ordinal_end: int | None
    start: int | None
    end: int | None
    event_time: float | None

    def label(self) -> str:
        """A one-line human citation, e.g. ``notes.md · #3-4 · chars 120-480 · 2024-05-01``."""
        parts = [self.source or "(no source)"]
        if self.document is not None and self.document != self.source:
            parts.append(f"doc {self.document}")
        if self.ordinal is not None:
            same = self.ordinal_end in (None, self.ordinal)
            parts.append(f"#{self.ordinal}" if same else f"#{self.ordinal}-{self.ordinal_end}")
        if self.start is not None and self.end is not None and self.start > 0:
            parts.append(f"chars {self.start}-{self.end}")
        if self.event_time is not None:
            when = datetime.fromtimestamp(self.event_time, tz=UTC)
            parts.append(when.strftime("%Y-%m-%d %H:%M UTC"))
        return " · ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """One cited piece of context: one memory, or several merged neighbours.

    Attributes:
        text: the text handed to the reader.
        ids: the memory ids it covers (best first).
        citation: where it comes from.
        rank: the best 1-based rank among its hits in the input.
        score: the best score among its hits.
        relevance: the best calibrated relevance among its hits, if any was given.
        tokens: tokens of the block as rendered (citation line and text).
        truncated: the text was cut to fit the budget.
    """

    text: str
    ids: tuple[int, ...]
    citation: Citation
    rank: int
    score: float
    relevance: float | None
    tokens: int
    truncated: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """A packed context: blocks in reading order, their rendering and what was left out.

    Attributes:
        query: the query the hits answer, if known.
        blocks: the blocks in reading order.
        order: the order mode used.
        budget_tokens: the budget.
        tokens: tokens of :attr:`text` by ``counter``; never above ``budget_tokens``.
        counter: the token counter's name.
        text: the rendering: ``[n] <citation>`` then the block text, blocks separated by a
            blank line.
        dropped: ids of hits left out for lack of budget.
    """

    query: str | None
    blocks: tuple[Block, ...]
    order: Order
    budget_tokens: int
    tokens: int
    counter: str
    text: str
    dropped: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "query": self.query,
            "order": self.order,
            "budget_tokens": self.budget_tokens,
            "tokens": self.tokens,
            "counter": self.counter,
            "blocks": [
                {
                    "n": n,
                    "text": b.text,
                    "ids": list(b.ids),
                    "rank": b.rank,
                    "score": b.score,
                    "relevance": b.relevance,
                    "tokens": b.tokens,
                    "truncated": b.truncated,
                    "citation": {
                        "source": b.citation.source,
                        "document": b.citation.document,
                        "ordinal": b.citation.ordinal,
                        "ordinal_end": b.citation.ordinal_end,
                        "start": b.citation.start,
                        "end": b.citation.end,
                        "event_time": b.citation.event_time,
                        "label": b.citation.label(),
                    },
                }
                for n, b in enumerate(self.blocks, start=1)
            ],
            "dropped": list(self.dropped),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """The context as a JSON string (see :meth:`as_dict`)."""
        return json.dumps(self.as_dict(), indent=indent, ensure_ascii=False)


# -- segments: blocks under construction ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Segment:
    key: tuple[str, str | None, str | None]
    text: str
    ids: tuple[int, ...]
    first: int | None
    last: int | None
    start: int | None
    end: int | None
    event_time: float | None
    rank: int
    score: float
    relevance: float | None
    truncated: bool = False


def _segment(hit: Hit, rank: int) -> _Segment:
    pos = hit.position
    start, end = pos.start, pos.end
    if start is None or end is None or end - start != len(hit.text):
        start = end = None  # offsets do not describe this text: never merge by span
    return _Segment(
        key=(hit.namespace, hit.source, pos.document),
        text=hit.text,
        ids=(hit.id,),
        first=pos.ordinal,
        last=pos.ordinal,
        start=start,
        end=end,
        event_time=hit.event_time,
        rank=rank,
        score=hit.score,
        relevance=hit.relevance,
    )


def _whole(seg: _Segment) -> bool:
    """The segment is a whole record (a chat turn, an unchunked note), not a chunk."""
    return seg.start == 0 and seg.end == len(seg.text)


def _joined_text(a: _Segment, b: _Segment) -> str | None:
    """The text of ``a`` followed by ``b`` (``a`` first in the document), or None."""
    if a.key != b.key:
        return None
    spans = None not in (a.start, a.end, b.start, b.end)
    if spans and not (_whole(a) and _whole(b)):
        assert a.start is not None and a.end is not None
        assert b.start is not None and b.end is not None
        if b.start < a.end:  # overlapping pieces of one text: check, then take the union
            cut = min(a.end, b.end)
            if a.text[b.start - a.start : cut - a.start] != b.text[: cut - b.start]:
                return None
            return a.text + b.text[a.end - b.start :] if b.end > a.end else a.text
    neighbours = a.last is not None and b.first is not None and b.first == a.last + 1
    if not neighbours:
        return None
    if spans and not (_whole(a) and _whole(b)):
        assert a.end is not None and b.start is not None
        return a.text + (" " if b.start - a.end <= 1 else "\n") + b.text
    return a.text + "\n" + b.text


def _doc_order(seg: _Segment) -> tuple[int, int]:
    return (seg.first if seg.first is not None else -1, seg.start or 0)


def _merge(a: _Segment, b: _Segment) -> _Segment | None:
    """``a`` and ``b`` as one segment, when they overlap or neighbour in one document."""
    lo, hi = sorted((a, b), key=_doc_order)
    text = _joined_text(lo, hi)
    if text is None:
        return None
    ends = [e for e in (lo.end, hi.end) if e is not None]
    times = [t for t in (lo.event_time, hi.event_time) if t is not None]
    best = a if a.rank <= b.rank else b
    other = b if best is a else a
    relevances = [r for r in (a.relevance, b.relevance) if r is not None]
    records = _whole(lo) and _whole(hi) and lo.first != hi.first  # turns: no common offsets
    return replace(
        lo,
        text=text,
        ids=best.ids + tuple(i for i in other.ids if i not in best.ids),
        last=hi.last if hi.last is not None else lo.last,
        end=max(ends) if len(ends) == 2 and not records else None,
        start=lo.start if lo.start is not None and hi.start is not None and not records else None,
        event_time=min(times) if times else None,
        rank=best.rank,
        score=max(a.score, b.score),
        relevance=max(relevances) if relevances else None,
        truncated=a.truncated or b.truncated,
    )


def _absorb(segments: list[_Segment], new: _Segment) -> list[_Segment]:
    """``segments`` with ``new`` added, merging every segment it joins (transitively)."""
    rest = list(segments)
    changed = True
    while changed:
        changed = False
        for i, seg in enumerate(rest):
            merged = _merge(seg, new)
            if merged is not None:
                new = merged
                del rest[i]
                changed = True
                break
    rest.append(new)
    return rest


# -- rendering and ordering -------------------------------------------------------------------


def _citation(seg: _Segment) -> Citation:
    return Citation(
        source=seg.key[1],
        document=seg.key[2],
        ordinal=seg.first,
        ordinal_end=seg.last,
        start=seg.start,
        end=seg.end,
        event_time=seg.event_time,
    )


def _render_one(n: int, seg: _Segment) -> str:
    return f"[{n}] {_citation(seg).label()}\n{seg.text}"


def _cost(segments: Sequence[_Segment], count: TokenCounter) -> int:
    """Tokens of the rendering, counted block by block (numbers padded to the widest)."""
    width = len(str(max(len(segments), 1)))
    pad = int("9" * width)
    sep = count(_SEPARATOR) if len(segments) > 1 else 0
    return sum(count(_render_one(pad, s)) for s in segments) + sep * (len(segments) - 1)


def _memo(count: TokenCounter) -> TokenCounter:
    """``count`` remembering its answers for one packing (blocks are re-counted often)."""
    seen: dict[str, int] = {}

    def counted(text: str) -> int:
        if text not in seen:
            seen[text] = count(text)
        return seen[text]

    return counted


def order_edges(items: Sequence[Any]) -> list[Any]:
    """Best items at both ends: ranks 1, 3, 5, … then …, 6, 4, 2 (input is best first).

    Example:
        >>> order_edges(["d1", "d2", "d3", "d4", "d5"])
        ['d1', 'd3', 'd5', 'd4', 'd2']
    """
    return list(items[0::2]) + list(items[1::2])[::-1]


def _ordered(segments: Sequence[_Segment], order: Order) -> list[_Segment]:
    by_rank = sorted(segments, key=lambda s: s.rank)
    if order == "edges":
        return order_edges(by_rank)
    if order == "chronological":
        return sorted(
            by_rank,
            key=lambda s: (
                s.event_time is None,
                s.event_time or 0.0,
                s.key[1] or "",
                s.key[2] or "",
                _doc_order(s),
            ),
        )
    return by_rank


def _truncate(seg: _Segment, room: int, count: TokenCounter) -> _Segment | None:
    """The longest word-boundary prefix of ``seg`` whose block costs at most ``room``."""
    words = seg.text.split(" ")
    lo, hi = 0, len(words) - 1  # the largest fitting prefix length lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        cand = replace(seg, text=" ".join(words[:mid]) + " …", truncated=True)
        if _cost([cand], count) <= room:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return None
    text = " ".join(words[:lo]) + " …"
    end = seg.start + len(text) - 2 if seg.start is not None else None
    return replace(seg, text=text, end=end, last=seg.first, truncated=True)


# -- packing ----------------------------------------------------------------------------------


def _check(budget_tokens: int, order: str) -> None:
    if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 1:
        raise InvalidInputError(f"budget_tokens must be a positive integer, got {budget_tokens!r}")
    if order not in ORDERS:
        raise InvalidInputError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")


def _repeats(hit: Hit, seg: _Segment) -> bool:
    """``hit`` says nothing new: same text, or a piece of a kept block of its document."""
    if hit.text == seg.text:
        return True
    return seg.key == (hit.namespace, hit.source, hit.position.document) and hit.text in seg.text


def _with_neighbours(
    segments: list[_Segment],
    around: Sequence[Hit],
    rank: int,
    budget: int,
    count: TokenCounter,
) -> list[_Segment]:
    """``segments`` with each of a hit's neighbours that is not in yet and fits the budget."""
    for other in around:
        if any(other.id in s.ids for s in segments):
            continue
        trial = _absorb(segments, _segment(other, rank))
        if _cost(trial, count) <= budget:
            segments = trial
    return segments


def _select(
    hits: Sequence[Hit],
    budget: int,
    count: TokenCounter,
    around: Mapping[int, Sequence[Hit]],
) -> tuple[list[_Segment], list[int]]:
    segments: list[_Segment] = []
    dropped: list[int] = []
    cut_tried = False
    for rank, hit in enumerate(hits, start=1):
        same = next((s for s in segments if _repeats(hit, s)), None)
        if same is not None:  # the reader already has this text: spend nothing
            segments[segments.index(same)] = replace(same, ids=same.ids + (hit.id,))
            continue
        trial = _absorb(segments, _segment(hit, rank))
        if _cost(trial, count) <= budget:
            segments = _with_neighbours(trial, around.get(hit.id, ()), rank, budget, count)
            continue
        room = budget - _cost(segments, count) - (count(_SEPARATOR) if segments else 0)
        piece = None
        if not cut_tried and room >= MIN_PIECE_TOKENS:
            cut_tried = True
            piece = _truncate(_segment(hit, rank), room, count)
        if piece is not None and _cost([*segments, piece], count) <= budget:
            segments = [*segments, piece]
        else:
            dropped.append(hit.id)
    return segments, dropped


def pack(
    hits: Sequence[Hit],
    *,
    budget_tokens: int,
    order: Order = "relevance",
    count_tokens: TokenCounter = estimate_tokens,
    query: str | None = None,
    around: Mapping[int, Sequence[Hit]] | None = None,
) -> Context:
    """Pack ``hits`` (best first) into at most ``budget_tokens`` tokens; see the module doc.

    Args:
        hits: the hits, best first (a :class:`~engramdb.types.Hits` or any sequence).
        budget_tokens: the most tokens :attr:`Context.text` may count.
        order: ``"relevance"``, ``"edges"`` or ``"chronological"``.
        count_tokens: the token counter (default: :func:`estimate_tokens`).
        query: the query, recorded in the context; taken from ``hits.query`` when omitted.
        around: each hit's neighbours (by hit id; e.g. the turns before and after a turn),
            packed with it, merged into its block, when they fit the budget; a neighbour
            that does not fit is left out without counting as dropped.

    Returns:
        The packed context (possibly with no blocks).

    Raises:
        InvalidInputError: a non-positive budget or an unknown order.
    """
    _check(budget_tokens, order)
    if query is None:
        query = getattr(hits, "query", None)
    segments, dropped = _select(list(hits), budget_tokens, _memo(count_tokens), around or {})
    ordered = _ordered(segments, order)
    text = _SEPARATOR.join(_render_one(n, s) for n, s in enumerate(ordered, start=1))
    while ordered and count_tokens(text) > budget_tokens:  # exact check of the whole text
        weakest = max(ordered, key=lambda s: s.rank)
        ordered.remove(weakest)
        dropped.extend(weakest.ids)
        text = _SEPARATOR.join(_render_one(n, s) for n, s in enumerate(ordered, start=1))
    blocks = tuple(
        Block(
            text=s.text,
            ids=s.ids,
            citation=_citation(s),
            rank=s.rank,
            score=s.score,
            relevance=s.relevance,
            tokens=count_tokens(_render_one(n, s)),
            truncated=s.truncated,
        )
        for n, s in enumerate(ordered, start=1)
    )
    return Context(
        query=query,
        blocks=blocks,
        order=order,
        budget_tokens=budget_tokens,
        tokens=count_tokens(text) if text else 0,
        counter=getattr(count_tokens, "__name__", "custom"),
        text=text,
        dropped=tuple(dropped),
    )
