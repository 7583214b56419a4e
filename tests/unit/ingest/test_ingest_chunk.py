from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.config import ChunkConfig
from engramdb.ingest import chunk_text, estimate_tokens, normalize_text, split_sentences
from engramdb.types import Chunk

PROPERTY = settings(derandomize=True, deadline=None)
TOKENIZER = Path(__file__).parents[3] / "src" / "engramdb" / "embed" / "data" / "tokenizer.json"


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


# --- sentence splitting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        ("Dr. Smith met Mrs. Jones.", ["Dr. Smith met Mrs. Jones."]),
        (
            "Use a tool, e.g. a hammer. Or i.e. Nails.",
            ["Use a tool, e.g. a hammer.", "Or i.e. Nails."],
        ),
        ("Pi is 3.14. It is irrational.", ["Pi is 3.14.", "It is irrational."]),
        ("It cost $2.50 today.", ["It cost $2.50 today."]),
        ("See No. 5 and Fig. 3 now.", ["See No. 5 and Fig. 3 now."]),
        ("I said no. Then I left.", ["I said no.", "Then I left."]),
        ("J. K. Rowling wrote it.", ["J. K. Rowling wrote it."]),
        ("Wait... what? Fine... Go.", ["Wait... what?", "Fine...", "Go."]),
        ("Hmm\u2026 Right.", ["Hmm\u2026", "Right."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ('"Really?" she asked. Yes.', ['"Really?" she asked.', "Yes."]),
        ("(It works.) Next one.", ["(It works.)", "Next one."]),
        ("Wow! that was fast.", ["Wow!", "that was fast."]),
        ("approx. three apples.", ["approx. three apples."]),
        ("no terminal punctuation", ["no terminal punctuation"]),
        ("Para one\n\npara two", ["Para one", "para two"]),
        ("# Title\nBody text here.", ["# Title", "Body text here."]),
        ("Items:\n- one\n- two\n1. three", ["Items:", "- one", "- two", "1. three"]),
        (
            "a wrapped line of prose that runs on for quite a while\nand continues here.",
            ["a wrapped line of prose that runs on for quite a while\nand continues here."],
        ),
        ("  \n ", []),
        ("", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_split_sentences_spans_are_trimmed_and_ordered() -> None:
    text = "  First one.   Second one.\n\n Third. "
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == ["First one.", "Second one.", "Third."]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


# --- token estimate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   ", 0),
        ("hello world", 2),
        ("Hello, world!", 4),
        ("don't", 3),  # don ' t
        ("2023-05-08", 5),
        ("abcdefg", 1),  # 7 letters: one piece
        ("internationalization", 5),  # 20 letters: ceil(20 / 4)
        ("\u4f60\u597d\u4e16\u754c", 4),  # one per CJK character
        ("snake_case", 3),
    ],
)
def test_estimate_tokens(text: str, expected: int) -> None:
    assert estimate_tokens(text) == expected


@given(st.text(max_size=40), st.text(max_size=40))
@PROPERTY
def test_estimate_tokens_adds_up_over_whitespace(a: str, b: str) -> None:
    assert estimate_tokens(a + " " + b) == estimate_tokens(a) + estimate_tokens(b)


def test_estimate_tracks_the_real_wordpiece_count() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    if not TOKENIZER.exists():
        pytest.skip("bundled tokenizer.json not present")
    tok = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    tok.no_padding()
    tok.no_truncation()
    texts = [
        "Hey Mel! Good to see you! How have you been?",
        "I went to a LGBTQ support group yesterday and it was so powerful.",
        "Threonine dehydrogenase converts threonine to aminoketobutyric acid in E. coli K-12.",
        "It was the best of times, it was the worst of times, it was the age of wisdom.",
        "The deploy freeze moved to Friday; ping #infra (or email ops@example.org) with questions.",
    ]
    for text in texts:
        real = len(tok.encode(text, add_special_tokens=False).ids)
        assert 0.85 * real <= estimate_tokens(text) <= 1.35 * real, text


# --- chunking ------------------------------------------------------------------------------


def test_short_text_is_one_chunk() -> None:
    text = "The deploy freeze moved to Friday. Bob agreed."
    assert chunk_text(text, ChunkConfig()) == [Chunk(text=text, start=0, end=len(text), index=0)]


def test_blank_text_has_no_chunks() -> None:
    assert chunk_text("", ChunkConfig()) == []
    assert chunk_text(" \n\n ", ChunkConfig()) == []


def test_chunks_pack_sentences_and_carry_overlap() -> None:
    # Each sentence is 5 tokens: "Part", "N", "is", "here", ".".
    text = " ".join(f"Part {i} is here." for i in range(6))
    config = ChunkConfig(max_tokens=10, overlap_tokens=5)
    chunks = chunk_text(text, config)
    assert [c.text for c in chunks] == [
        "Part 0 is here. Part 1 is here.",
        "Part 1 is here. Part 2 is here.",
        "Part 2 is here. Part 3 is here.",
        "Part 3 is here. Part 4 is here.",
        "Part 4 is here. Part 5 is here.",
    ]
    assert [c.index for c in chunks] == [0, 1, 2, 3, 4]


def test_no_overlap_partitions_sentences() -> None:
    text = " ".join(f"Part {i} is here." for i in range(6))
    chunks = chunk_text(text, ChunkConfig(max_tokens=10, overlap_tokens=0))
    assert len(chunks) == 3
    assert " ".join(c.text for c in chunks) == text


def test_overlap_never_repeats_a_whole_chunk() -> None:
    text = "Tiny. " + "This second sentence is long enough to need its own chunk entirely."
    chunks = chunk_text(text, ChunkConfig(max_tokens=16, overlap_tokens=15))  # 2 + 15 tokens
    assert [c.text for c in chunks] == [
        "Tiny.",
        "This second sentence is long enough to need its own chunk entirely.",
    ]


def test_long_sentence_splits_at_word_boundaries() -> None:
    text = " ".join(f"w{i}" for i in range(50))  # 50 one-token words, no punctuation
    chunks = chunk_text(text, ChunkConfig(max_tokens=8, overlap_tokens=2))
    assert all(estimate_tokens(c.text) <= 8 for c in chunks)
    assert " ".join(c.text for c in chunks) == text  # pieces are not carried as overlap
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_a_word_longer_than_the_budget_is_its_own_chunk() -> None:
    word = "x" * 100  # 25 estimated tokens
    text = f"Before it. {word} after it."
    chunks = chunk_text(text, ChunkConfig(max_tokens=8, overlap_tokens=0))
    assert [c.text for c in chunks] == ["Before it.", word, "after it."]


def test_custom_token_counter() -> None:
    def words(s: str) -> int:
        return len(s.split())

    text = "Aa bb cc. Dd ee ff. Gg hh ii."
    chunks = chunk_text(text, ChunkConfig(max_tokens=8, overlap_tokens=0), count_tokens=words)
    assert [c.text for c in chunks] == ["Aa bb cc. Dd ee ff.", "Gg hh ii."]


# --- properties ----------------------------------------------------------------------------

words = st.sampled_from(
    ["the", "Dr.", "e.g.", "3.14", "Alice", "internationalization", "x" * 45, "wait...",
     '"Stop."', "(yes)", "no.", "U.S.", "\u4f60\u597d", "end!", "why?", "#", "-", "1."]
)  # fmt: skip
separators = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\t", ". "])
structured_text = st.lists(st.tuples(words, separators), max_size=120).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)
configs = st.builds(
    lambda m, frac: ChunkConfig(max_tokens=m, overlap_tokens=int(frac * m)),
    st.integers(min_value=8, max_value=60),
    st.floats(min_value=0.0, max_value=0.9),
)


def check_chunks(text: str, config: ChunkConfig) -> list[Chunk]:
    chunks = chunk_text(text, config)
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text and chunk.text == chunk.text.strip()
        tokens = estimate_tokens(chunk.text)
        assert tokens <= config.max_tokens or len(chunk.text.split()) == 1, chunk
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert prev.start < nxt.start and prev.end < nxt.end
        if nxt.start < prev.end:  # the overlap is whole trailing sentences within the budget
            assert estimate_tokens(text[nxt.start : prev.end]) <= config.overlap_tokens
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))
    return chunks


@given(structured_text, configs)
@PROPERTY
def test_chunk_properties_on_sentence_like_text(text: str, config: ChunkConfig) -> None:
    chunks = check_chunks(text, config)
    if text.strip() and estimate_tokens(text) <= config.max_tokens:
        assert len(chunks) == 1


@given(st.text(max_size=300), configs)
@PROPERTY
def test_chunk_properties_on_arbitrary_text(text: str, config: ChunkConfig) -> None:
    check_chunks(text, config)


@given(structured_text)
@PROPERTY
def test_chunking_normalized_text_keeps_every_character(text: str) -> None:
    text = normalize_text(text)
    chunks = check_chunks(text, ChunkConfig(max_tokens=1000, overlap_tokens=0))
    assert [c.text for c in chunks] == ([text] if text else [])


def test_chunk_budget_against_the_default_config() -> None:
    text = " ".join(["The quick brown fox jumps over the lazy dog."] * 200)
    config = ChunkConfig()
    chunks = check_chunks(text, config)
    assert len(chunks) >= math.ceil(estimate_tokens(text) / config.max_tokens)
