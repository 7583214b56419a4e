"""Bad and extreme input: huge tokens and lines, BOM-less UTF-16, symlink loops, deep JSON."""

from __future__ import annotations

import codecs
import json
import logging
import os
import struct
import tracemalloc
from pathlib import Path

import pytest

from engramdb.config import ChunkConfig
from engramdb.errors import IngestError
from engramdb.ingest import (
    MAX_CHARS_PER_TOKEN,
    MAX_JSON_DEPTH,
    MAX_UNCHUNKED_CHARS,
    chunk_text,
    estimate_tokens,
    load_path,
    load_records,
    normalize_text,
)
from engramdb.ingest import loaders as loaders_module
from engramdb.types import Chunk

needs_symlinks = pytest.mark.skipif(os.name != "posix", reason="POSIX symbolic links")


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def ingest_error(path: Path) -> IngestError:
    with pytest.raises(IngestError) as info:
        load_path(path)
    return info.value


def check_bounded(text: str, chunks: list[Chunk], config: ChunkConfig) -> None:
    """Every chunk is within the token and character budget; all text is covered."""
    assert chunks
    for i, chunk in enumerate(chunks):
        assert chunk.index == i and text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
        assert estimate_tokens(chunk.text) <= config.max_tokens
        assert len(chunk.text) <= config.max_tokens * MAX_CHARS_PER_TOKEN
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    assert all(covered[i] or ch.isspace() for i, ch in enumerate(text))


# --- 1. huge tokens, lines and files -------------------------------------------------------


def test_a_text_without_whitespace_is_cut_into_bounded_chunks() -> None:
    text = "a" * 200_000
    config = ChunkConfig()
    chunks = chunk_text(text, config)
    check_bounded(text, chunks, config)
    assert "".join(c.text for c in chunks) == text  # pieces of one word never overlap
    assert all(len(c.text) == 800 for c in chunks[:-1])  # 200 tokens of 4 letters


@pytest.mark.parametrize(
    "text",
    [
        "!?#" * 50_000,  # punctuation only: one token per character
        "." * 100_000 + "a",  # a run of periods that is not a sentence end
        "\n" * 100_000 + "last line",  # many blank lines (not normalized)
        "word " + " " * 100_000 + "word",  # a huge whitespace run inside one sentence
        "x\u0301" * 30_000,  # combining marks
        "\u4f60" * 30_000,  # CJK: one token per character
        ". " * 30_000,  # many one-character sentences
    ],
    ids=["punctuation", "periods", "newlines", "spaces", "combining", "cjk", "tiny-sentences"],
)
def test_token_and_whitespace_free_text_chunks_are_bounded(text: str) -> None:
    config = ChunkConfig(max_tokens=50, overlap_tokens=10)
    check_bounded(text, chunk_text(text, config), config)


def test_a_whitespace_heavy_sentence_is_split_by_characters() -> None:
    gap = " " * 1000
    text = gap.join(["alpha", "beta", "gamma", "delta"])  # 4 tokens, 3,022 characters
    config = ChunkConfig(max_tokens=100, overlap_tokens=50)  # at most 1,600 characters
    chunks = chunk_text(text, config)
    assert [c.text for c in chunks] == ["alpha" + gap + "beta", "gamma" + gap + "delta"]


def test_a_long_word_cut_with_a_custom_counter() -> None:
    def chars(s: str) -> int:
        return len(s)

    text = "start " + "z" * 10_000 + " end"
    config = ChunkConfig(max_tokens=64, overlap_tokens=8)
    chunks = chunk_text(text, config, count_tokens=chars)
    assert all(len(c.text) <= 64 for c in chunks)
    assert "".join(c.text for c in chunks[1:-1]) == "z" * 10_000
    assert (chunks[0].text, chunks[-1].text) == ("start", "end")


def test_a_word_within_the_character_limit_is_kept_whole() -> None:
    url = "https://example.org/" + "p" * 300  # 80 tokens, 320 characters
    chunks = chunk_text(f"See {url} now.", ChunkConfig(max_tokens=50, overlap_tokens=0))
    assert url in [c.text for c in chunks]


def test_a_one_token_file_loads_as_one_record_with_bounded_chunks(tmp_path: Path) -> None:
    size = 2_000_000
    path = write(tmp_path / "blob.txt", "Q" * size)
    tracemalloc.start()
    try:
        [record] = load_path(path)
        chunks = chunk_text(record.text, ChunkConfig())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(record.text) == size and record.chunk
    assert len(chunks) == size // 800 and max(len(c.text) for c in chunks) == 800
    assert peak < 4 * size  # bytes, text and chunks; no per-character structures


def test_a_one_line_file_of_words_chunks_like_prose(tmp_path: Path) -> None:
    path = write(tmp_path / "line.txt", "lorem ipsum dolor sit amet " * 20_000)
    [record] = load_path(path)
    config = ChunkConfig()
    chunks = chunk_text(record.text, config)
    check_bounded(record.text, chunks, config)
    assert "\n" not in record.text and len(chunks) == 500


def test_a_file_over_the_size_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert loaders_module.MAX_FILE_BYTES == 128 * 1024 * 1024
    monkeypatch.setattr(loaders_module, "MAX_FILE_BYTES", 1_000)
    write(tmp_path / "ok.txt", "x" * 1_000)
    big = write(tmp_path / "big.txt", "x" * 1_001)
    error = ingest_error(big)
    assert error.path == str(big.resolve())
    assert "file too large: 1,001 bytes" in str(error) and "1,000 bytes" in str(error)
    assert "MAX_FILE_BYTES" in str(error)
    assert "too large" in str(ingest_error(tmp_path))  # a directory names the file too
    [record] = load_path(tmp_path / "ok.txt")
    assert len(record.text) == 1_000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a\r\r\nb", "a\n\nb"),
        ("a\r\n\r\nb\rc", "a\n\nb\nc"),
        ("one two  three\t four\u00a0five", "one two three four five"),
        ("a \nb\n c \n d", "a\nb\nc\nd"),
    ],
)
def test_normalize_keeps_its_rules_on_line_and_space_runs(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


# --- 2. UTF-16 without a byte-order mark ---------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_decoded(tmp_path: Path, encoding: str) -> None:
    text = "Caf\u00e9 notes.\nThe deploy freeze is on Friday. \u4e00 item.\n"
    data = text.encode(encoding)
    assert not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    [record] = load_path(write(tmp_path / "notes.txt", data))
    assert record.text == normalize_text(text)


def test_utf16_without_bom_json(tmp_path: Path) -> None:
    data = json.dumps([{"text": "first"}, {"text": "second"}]).encode("utf-16-le")
    assert [r.text for r in load_path(write(tmp_path / "r.json", data))] == ["first", "second"]


def test_single_character_utf16_without_bom(tmp_path: Path) -> None:
    [record] = load_path(write(tmp_path / "a.txt", "A".encode("utf-16-le")))
    assert record.text == "A"


@pytest.mark.parametrize(
    "content",
    [
        struct.pack("<512H", *range(512)),  # little-endian integers: NULs at odd offsets
        struct.pack(">512H", *(i % 200 for i in range(512))),  # big-endian ones
        b"\x01\x00" * 400,  # decodes to control characters
        "odd length".encode("utf-16-le") + b"x",
        "ends in U+0000".encode("utf-16-le") + b"\x00\x00",
        b"\x00" * 64,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ],
    ids=["le-ints", "be-ints", "controls", "odd-length", "nul-char", "zeros", "png"],
)
def test_binary_files_with_nul_bytes_are_still_refused(tmp_path: Path, content: bytes) -> None:
    assert "binary file" in str(ingest_error(write(tmp_path / "data.txt", content)))


# --- 3. symbolic links ----------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    write(root / "a.txt", "A text.")
    write(root / "sub" / "b.md", "B text.")
    (root / "self.txt").symlink_to("self.txt")  # a loop of one
    (root / "x.md").symlink_to("y.md")  # a loop of two
    (root / "y.md").symlink_to("x.md")
    (root / "gone.txt").symlink_to("missing.txt")  # dangling
    (root / "sub" / "up").symlink_to("..")  # a directory cycle
    (root / "sub" / "here").symlink_to(".")
    (root / "alias.txt").symlink_to("a.txt")  # a link to a file loads
    return root


@needs_symlinks
def test_symlink_loops_and_dangling_links_are_skipped_with_a_warning(
    linked: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engramdb.ingest.loaders"):
        records = load_path(linked)
    assert [r.text for r in records] == ["A text.", "A text.", "B text."]
    assert {r.source for r in records} == {
        str((linked / "a.txt").resolve()),
        str((linked / "sub" / "b.md").resolve()),
    }
    warned = "\n".join(caplog.messages)
    for name in ("self.txt", "x.md", "y.md", "up", "here"):
        assert f"{name}: symbolic link loop, skipped" in warned
    assert "gone.txt: broken symbolic link, skipped" in warned


@needs_symlinks
def test_a_symlink_to_an_outside_directory_is_not_followed(tmp_path: Path) -> None:
    write(tmp_path / "outside" / "o.txt", "Outside.")
    write(tmp_path / "root" / "r.txt", "Inside.")
    (tmp_path / "root" / "ext").symlink_to(tmp_path / "outside")
    assert [r.text for r in load_path(tmp_path / "root")] == ["Inside."]


@needs_symlinks
def test_a_folder_of_only_broken_links_has_no_loadable_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "loop.txt").symlink_to("loop.txt")
    assert "no loadable files" in str(ingest_error(tmp_path / "d"))


@needs_symlinks
def test_a_looping_or_dangling_link_named_explicitly(linked: Path) -> None:
    loop = ingest_error(linked / "self.txt")
    assert loop.path == str(linked / "self.txt") and "symbolic link loop" in str(loop)
    assert "broken symbolic link" in str(ingest_error(linked / "gone.txt"))
    assert "no such file" in str(ingest_error(linked / "nothing.txt"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_is_skipped_in_a_folder_and_refused_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path / "d" / "a.txt", "A text.")
    os.mkfifo(tmp_path / "d" / "pipe.txt")
    with caplog.at_level(logging.WARNING, logger="engramdb.ingest.loaders"):
        assert [r.text for r in load_path(tmp_path / "d")] == ["A text."]
    assert "pipe.txt: not a regular file, skipped" in caplog.text
    assert "not a regular file" in str(ingest_error(tmp_path / "d" / "pipe.txt"))


# --- 4. deeply nested JSON ------------------------------------------------------------------


def nested(depth: int) -> str:
    """A record whose metadata nests ``depth`` levels in all (the record is level 1)."""
    return '{"text": "deep", "meta": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


@pytest.mark.parametrize(
    "content",
    ["[" * 10_000 + "]" * 10_000, '{"a": ' * 10_000 + "1" + "}" * 10_000, nested(1_000_000)],
    ids=["arrays", "objects", "million"],
)
def test_deep_json_is_an_ingest_error_not_a_recursion_error(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "deep.json", content)
    error = ingest_error(path)
    assert error.path == str(path.resolve()) and error.line is None
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in str(error)


def test_deep_jsonl_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.jsonl", '{"text": "ok"}\n\n' + nested(10_000) + "\n")
    error = ingest_error(path)
    assert error.line == 3 and str(error).startswith(f"{path.resolve()}:3: JSON nested more")


def test_json_at_the_depth_limit_loads(tmp_path: Path) -> None:
    [record] = load_path(write(tmp_path / "ok.jsonl", nested(MAX_JSON_DEPTH)))
    assert record.text == "deep"
    assert "nested more" in str(ingest_error(write(tmp_path / "no.jsonl", nested(101))))


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    text = "[" * 500 + "{" * 500
    [record] = load_path(write(tmp_path / "s.json", json.dumps({"text": text})))
    assert record.text == text


def test_load_records_refuses_deep_metadata() -> None:
    meta: list[object] = []
    for _ in range(10_000):
        meta = [meta]
    with pytest.raises(
        IngestError, match=f"record 0: metadata is nested more than {MAX_JSON_DEPTH}"
    ):
        load_records([{"text": "x", "meta": meta}])


def test_a_huge_chat_turn_is_chunked(tmp_path: Path) -> None:
    turns = [
        {"role": "user", "content": "short"},
        {"role": "assistant", "content": "word " * (MAX_UNCHUNKED_CHARS // 5 + 2)},
    ]
    short, long = load_path(write(tmp_path / "chat.json", json.dumps(turns)))
    assert len(long.text) > MAX_UNCHUNKED_CHARS
    assert (short.chunk, long.chunk) == (False, True)
    assert long.ordinal == 1 and long.meta == {"role": "assistant"}
