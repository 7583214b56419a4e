"""Packing never exceeds its budget and never loses a citation, whatever the hits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engramdb.context import ORDERS, estimate_tokens, pack
from engramdb.types import Hit, Position

WORDS = ["alpha", "beta", "gamma", "delta", "internationalisation", "42", "1999-12-31", "x,", "é"]


@st.composite
def documents_and_hits(draw: st.DrawFn) -> list[Hit]:
    """Hits cut from a few documents: overlapping chunks, whole turns and repeats."""
    hits: list[Hit] = []
    n_docs = draw(st.integers(1, 3))
    for d in range(n_docs):
        words = draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=60))
        text = " ".join(words)
        chunked = draw(st.booleans())
        for _ in range(draw(st.integers(1, 6))):
            if chunked:
                a = draw(st.integers(0, len(text) - 1))
                b = draw(st.integers(a + 1, len(text)))
                piece, start, end = text[a:b], a, b
            else:
                piece = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12)))
                start, end = 0, len(piece)
            if not piece.strip():
                continue
            hits.append(
                Hit(
                    id=len(hits) + 1,
                    score=draw(st.floats(0, 1)),
                    text=piece,
                    namespace="n",
                    source=f"s{d}",
                    position=Position(
                        document=f"d{d}", ordinal=draw(st.integers(0, 8)), start=start, end=end
                    ),
                    event_time=draw(st.none() | st.floats(0, 1e9)),
                    meta={},
                    why={},
                )
            )
    return hits


@given(
    hits=documents_and_hits(),
    budget=st.integers(1, 400),
    order=st.sampled_from(ORDERS),
)
def test_packing_never_exceeds_budget_and_keeps_citations(
    hits: list[Hit], budget: int, order: str
) -> None:
    ctx = pack(hits, budget_tokens=budget, order=order)  # type: ignore[arg-type]
    assert ctx.tokens <= budget
    assert estimate_tokens(ctx.text) == ctx.tokens
    by_id = {h.id: h for h in hits}
    seen: list[int] = []
    for n, block in enumerate(ctx.blocks, start=1):
        assert f"[{n}] {block.citation.label()}\n{block.text}" in ctx.text
        members = [by_id[i] for i in block.ids]
        assert block.rank == min(hits.index(m) for m in members) + 1
        first = by_id[block.ids[0]]
        assert block.citation.source in {m.source for m in members}
        assert block.citation.document == first.position.document
        if not block.truncated:  # every member's text is present in its block
            assert all(m.text in block.text or m.text in ctx.text for m in members)
        seen.extend(block.ids)
    assert len(seen) == len(set(seen))
    assert set(seen) | set(ctx.dropped) == set(by_id)
