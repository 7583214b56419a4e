"""Context packing: dedup, merging, order modes, citations, budget, rendering."""

from __future__ import annotations

import json
import sys

import pytest

from engramdb.context import (
    Context,
    estimate_tokens,
    order_edges,
    pack,
    select_counter,
    tiktoken_counter,
)
from engramdb.errors import ConfigError, InvalidInputError, MissingDependencyError
from engramdb.types import Hit, Hits, Position


def hit(
    memory_id: int,
    text: str,
    *,
    source: str | None = "notes.md",
    document: str | None = None,
    ordinal: int | None = None,
    start: int | None = None,
    end: int | None = None,
    event_time: float | None = None,
    score: float = 1.0,
) -> Hit:
    return Hit(
        id=memory_id,
        score=score,
        text=text,
        namespace="default",
        source=source,
        position=Position(
            document=document if document is not None else f"doc{memory_id}",
            ordinal=ordinal,
            start=start,
            end=end,
        ),
        event_time=event_time,
        meta={},
        why={},
    )


def distinct(n: int) -> list[Hit]:
    return [hit(i, f"memory number {i} about topic {i}", score=1.0 / i) for i in range(1, n + 1)]


def test_relevance_order_keeps_input_rank() -> None:
    ctx = pack(distinct(4), budget_tokens=1000)
    assert [b.rank for b in ctx.blocks] == [1, 2, 3, 4]
    assert [b.ids for b in ctx.blocks] == [(1,), (2,), (3,), (4,)]


def test_edges_order_puts_best_at_both_ends() -> None:
    ctx = pack(distinct(6), budget_tokens=1000, order="edges")
    assert [b.rank for b in ctx.blocks] == [1, 3, 5, 6, 4, 2]
    assert order_edges([1, 2, 3, 4, 5]) == [1, 3, 5, 4, 2]
    assert order_edges([]) == []


def test_chronological_order_sorts_by_event_time_unknown_last() -> None:
    hits = [
        hit(1, "third thing happened", event_time=300.0),
        hit(2, "no time known"),
        hit(3, "first thing happened", event_time=100.0),
        hit(4, "second thing happened", event_time=200.0),
    ]
    ctx = pack(hits, budget_tokens=1000, order="chronological")
    assert [b.ids[0] for b in ctx.blocks] == [3, 4, 1, 2]


def test_overlapping_chunks_merge_into_their_union() -> None:
    doc = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota."
    a = doc[0:37]  # "Alpha beta gamma. Delta epsilon zeta."
    b = doc[18:]  # "Delta epsilon zeta. Eta theta iota."
    hits = [
        hit(7, b, document="d", ordinal=1, start=18, end=len(doc)),
        hit(5, a, document="d", ordinal=0, start=0, end=37),
    ]
    ctx = pack(hits, budget_tokens=1000)
    assert len(ctx.blocks) == 1
    block = ctx.blocks[0]
    assert block.text == doc
    assert block.ids == (7, 5)
    assert (block.citation.ordinal, block.citation.ordinal_end) == (0, 1)
    assert (block.citation.start, block.citation.end) == (0, len(doc))


def test_inconsistent_overlap_is_not_merged() -> None:
    hits = [
        hit(1, "aaaa bbbb", document="d", ordinal=0, start=0, end=9),
        hit(2, "cccc dddd", document="d", ordinal=1, start=5, end=14),
    ]
    assert len(pack(hits, budget_tokens=1000).blocks) == 2


def test_adjacent_turns_of_one_conversation_merge() -> None:
    turns = [
        hit(10, "Bob: see you Friday", document="c1", ordinal=4, start=0, end=19, event_time=2.0),
        hit(11, "Ann: when is the freeze?", document="c1", ordinal=3, start=0, end=24),
        hit(12, "Ann: unrelated turn", document="c1", ordinal=9, start=0, end=19),
    ]
    ctx = pack(turns, budget_tokens=1000)
    texts = [b.text for b in ctx.blocks]
    assert texts[0] == "Ann: when is the freeze?\nBob: see you Friday"
    assert ctx.blocks[0].citation.ordinal == 3 and ctx.blocks[0].citation.ordinal_end == 4
    assert ctx.blocks[0].rank == 1 and ctx.blocks[0].ids == (10, 11)
    assert texts[1] == "Ann: unrelated turn"


def test_turns_of_different_documents_do_not_merge() -> None:
    hits = [
        hit(1, "Ann: hi", document="c1", ordinal=1, start=0, end=7),
        hit(2, "Bob: yo", document="c2", ordinal=2, start=0, end=7),
    ]
    assert len(pack(hits, budget_tokens=1000).blocks) == 2


def test_repeated_text_costs_nothing_and_is_recorded() -> None:
    hits = [hit(1, "the same words here"), hit(2, "the same words here", source="b.md")]
    ctx = pack(hits, budget_tokens=1000)
    assert len(ctx.blocks) == 1 and ctx.blocks[0].ids == (1, 2)


def test_citation_carries_source_position_and_time() -> None:
    h = hit(1, "x y z", source="chat.json", document="c9", ordinal=3, event_time=1683553000.0)
    ctx = pack([h], budget_tokens=100)
    label = ctx.blocks[0].citation.label()
    assert "chat.json" in label and "doc c9" in label and "#3" in label
    assert "2023-05-08" in label
    assert ctx.text.startswith("[1] chat.json")
    assert ctx.text.endswith("x y z")


def test_budget_skips_what_does_not_fit_and_cuts_one_long_hit() -> None:
    long = hit(1, " ".join(f"word{i}" for i in range(400)))
    short = hit(2, "a short note")
    ctx = pack([long, short], budget_tokens=60)
    assert ctx.tokens <= 60
    assert ctx.blocks[0].truncated and ctx.blocks[0].text.endswith("…")
    assert ctx.blocks[0].text.startswith("word0 word1")
    assert estimate_tokens(ctx.text) == ctx.tokens


def test_budget_too_small_for_anything_gives_empty_context() -> None:
    ctx = pack(distinct(3), budget_tokens=3)
    assert ctx.blocks == () and ctx.text == "" and ctx.tokens == 0
    assert set(ctx.dropped) == {1, 2, 3}


def test_query_is_taken_from_hits_and_json_round_trips() -> None:
    ctx = pack(Hits("what topic?", tuple(distinct(2))), budget_tokens=200, order="edges")
    data = json.loads(ctx.to_json())
    assert data["query"] == "what topic?"
    assert data["order"] == "edges"
    assert [b["ids"] for b in data["blocks"]] == [[1], [2]]
    assert data["blocks"][0]["citation"]["source"] == "notes.md"
    assert data["tokens"] == ctx.tokens <= 200
    assert isinstance(ctx, Context)


@pytest.mark.parametrize("budget", [0, -5, True])
def test_bad_budget_raises(budget: int) -> None:
    with pytest.raises(InvalidInputError, match="budget_tokens"):
        pack(distinct(1), budget_tokens=budget)


def test_unknown_order_raises() -> None:
    with pytest.raises(InvalidInputError, match="chronological"):
        pack(distinct(1), budget_tokens=10, order="random")  # type: ignore[arg-type]


def test_custom_counter_is_used_and_named() -> None:
    def chars(text: str) -> int:
        return len(text)

    ctx = pack(distinct(5), budget_tokens=120, count_tokens=chars)
    assert ctx.counter == "chars"
    assert len(ctx.text) == ctx.tokens <= 120
    assert select_counter(chars) is chars


def test_estimate_counts_words_digits_and_punctuation() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("the cat") == 2
    assert estimate_tokens("1234567") == 3
    assert estimate_tokens("internationalization") == 5
    assert estimate_tokens("a, b.\n") == 5


def test_select_counter_names() -> None:
    assert select_counter(None) is estimate_tokens
    assert select_counter("estimate") is estimate_tokens
    with pytest.raises(ConfigError, match="tiktoken"):
        select_counter("words")


def test_tiktoken_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    with pytest.raises(MissingDependencyError) as info:
        tiktoken_counter()
    assert info.value.extra == "context"
