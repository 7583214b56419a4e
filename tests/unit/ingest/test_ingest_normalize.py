from __future__ import annotations

import hashlib
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.ingest import content_hash, normalize_for_hash, normalize_text

PROPERTY = settings(derandomize=True, deadline=None)
# Text rich in the characters normalization cares about.
messy_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(
            list(" \t\n\r\x0b\x0c\x85\u2028\u2029\u00a0\u200b\ufeff\x00\x07\x1f\u00ad")
        ),
        st.sampled_from(list("aAeE\u0301\u00e9\u00dfS\uff21\ufb01.,!?")),
        st.characters(),
    ),
    max_size=60,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Cafe\u0301", "Caf\u00e9"),  # NFC composes
        ("  padded \n", "padded"),
        ("a  \t b", "a b"),
        ("a\u00a0\u00a0b", "a b"),  # no-break spaces are horizontal whitespace
        ("one\ntwo", "one\ntwo"),  # single line breaks stay
        ("one \n  two", "one\ntwo"),  # lines are stripped
        ("p1\n\n\n\n  \np2", "p1\n\np2"),  # paragraph breaks collapse to one blank line
        ("a\r\nb\rc", "a\nb\nc"),
        ("a\u2028b\u2029c", "a\nb\n\nc"),
        ("bell\x07 nul\x00 esc\x1b", "bell nul esc"),  # control characters dropped
        ("\ufeffBOM", "BOM"),
        ("zero\u200bwidth", "zero\u200bwidth"),  # visible-text form keeps format characters
        ("", ""),
        (" \n\t ", ""),
    ],
)
def test_normalize_text_examples(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello  World", "hello world"),
        ("Stra\u00dfe", "strasse"),  # casefold, not lower
        ("\uff21\uff22\uff23", "abc"),  # NFKC folds full-width forms
        ("\ufb01ne", "fine"),  # and ligatures
        ("line\n\nbreaks\tand tabs", "line breaks and tabs"),
        ("zero\u200bwidth soft\u00adhyphen", "zerowidth softhyphen"),
        ("Cafe\u0301", "caf\u00e9"),
    ],
)
def test_normalize_for_hash_examples(raw: str, expected: str) -> None:
    assert normalize_for_hash(raw) == expected


@given(messy_text)
@PROPERTY
def test_normalize_text_is_idempotent_and_clean(raw: str) -> None:
    once = normalize_text(raw)
    assert normalize_text(once) == once
    assert once == once.strip()
    assert unicodedata.is_normalized("NFC", once)
    assert "\r" not in once and "\t" not in once and "\n\n\n" not in once
    assert "  " not in once
    assert not re.search(r" \n|\n ", once)
    assert all(ch == "\n" or unicodedata.category(ch) != "Cc" for ch in once)


@given(messy_text)
@PROPERTY
def test_normalize_for_hash_is_idempotent(raw: str) -> None:
    once = normalize_for_hash(raw)
    assert normalize_for_hash(once) == once
    assert not re.search(r"\s\s|[\n\t]", once)


@given(messy_text)
@PROPERTY
def test_hash_survives_storage_normalization(raw: str) -> None:
    assert content_hash(normalize_text(raw)) == content_hash(raw)


def test_content_hash_is_sha256_of_the_folded_text() -> None:
    expected = hashlib.sha256(b"hello world").hexdigest()
    assert content_hash("  Hello\n\nWORLD ") == expected
    assert re.fullmatch(r"[0-9a-f]{64}", content_hash("x"))


def test_content_hash_separates_different_texts() -> None:
    assert content_hash("deploy on Friday") != content_hash("deploy on Monday")
    assert content_hash("a b") != content_hash("ab")


def test_content_hash_handles_lone_surrogates() -> None:
    assert content_hash("bad \udc80 byte") == content_hash("bad  byte")
