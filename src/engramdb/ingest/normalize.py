"""Text normalization: one form for storage, a stricter one for content hashes.

``normalize_text`` keeps what a reader sees (case, line and paragraph structure) and
removes what only encodings and editors add (decomposed accents, stray control
characters, ragged whitespace). ``normalize_for_hash`` folds everything that should
not make two memories different (compatibility forms, case, any whitespace).

Both are idempotent: ``f(f(s)) == f(s)``.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_for_hash", "normalize_text"]

# Line and paragraph separators that become "\n" (U+2029 becomes a paragraph break).
_LINE_BREAKS = {
    "\r\n": "\n",
    "\r": "\n",
    "\x0b": "\n",
    "\x0c": "\n\n",
    "\x85": "\n",
    "\u2028": "\n",
}
_LINE_BREAK_RE = re.compile("|".join(re.escape(k) for k in _LINE_BREAKS) + "|\u2029")
# Horizontal whitespace (any whitespace character except "\n") that is not already a
# single space. The patterns below match only what changes, so that a large text with
# millions of spaces or lines is not cut into millions of pieces by ``re.sub``.
_HSPACE_RE = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
_SPACE_AROUND_NEWLINE_RE = re.compile(r" \n ?|\n ")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_ANY_SPACE_RE = re.compile(r"\s+")
# Control characters that are not whitespace, lone surrogates, byte-order marks.
_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff\ufeff]")
_NON_LATIN1_RE = re.compile("[^\x00-\xff]")


def _replace_break(match: re.Match[str]) -> str:
    return _LINE_BREAKS.get(match.group(), "\n\n")


def _drop_format_char(match: re.Match[str]) -> str:
    ch = match.group()
    return "" if unicodedata.category(ch) == "Cf" else ch


def _drop_invisible(text: str, *, drop_format: bool) -> str:
    """Remove control characters other than whitespace, lone surrogates and BOMs.

    With ``drop_format`` every format character (zero-width space and joiners, soft
    hyphen, direction marks) goes too.
    """
    text = _CONTROL_RE.sub("", text)
    if drop_format:
        text = _NON_LATIN1_RE.sub(_drop_format_char, text.replace("\xad", ""))
    return text


def normalize_text(text: str) -> str:
    """Normalize text for storage.

    Applies Unicode NFC; turns ``\\r\\n``, ``\\r`` and Unicode line separators into
    ``\\n``; drops control characters other than ``\\n`` and ``\\t``, lone surrogates
    and byte-order marks; collapses runs of spaces and tabs (and other horizontal
    whitespace such as no-break spaces) into one space; strips every line; keeps
    single line breaks and paragraph breaks, collapsing three or more line breaks into
    one blank line; strips the whole text.

    Args:
        text: any string.

    Returns:
        The normalized text (``""`` for blank input).

    Example:
        >>> normalize_text("  Caf\\u0065\\u0301  au\\tlait \\r\\n\\n\\n\\nNext ")
        'Café au lait\\n\\nNext'
    """
    text = _drop_invisible(text, drop_format=False)
    # "\r\n" and lone "\r" both become "\n"; plain replaces avoid a match per line.
    text = _LINE_BREAK_RE.sub(_replace_break, text.replace("\r\n", "\r").replace("\r", "\n"))
    text = _HSPACE_RE.sub(" ", unicodedata.normalize("NFC", text))
    text = _SPACE_AROUND_NEWLINE_RE.sub("\n", text)
    text = _BLANK_LINES_RE.sub("\n\n", text)
    return text.strip()


def normalize_for_hash(text: str) -> str:
    """Normalize text for content hashing: two texts a reader would call the same agree.

    Applies NFKC case folding (NFKC, ``str.casefold``, NFKC again), drops control and
    format characters (zero-width spaces, soft hyphens, byte-order marks), and collapses
    all whitespace, line breaks included, into single spaces.

    Args:
        text: any string.

    Returns:
        The folded text.

    Example:
        >>> normalize_for_hash("Stra\\u00dfe\\n\\n  \\uff21BC")
        'strasse abc'
    """
    text = unicodedata.normalize("NFKC", _drop_invisible(text, drop_format=True))
    text = unicodedata.normalize("NFKC", text.casefold())
    return _ANY_SPACE_RE.sub(" ", text).strip()
