"""Query-side tokenization that mirrors SQLite FTS5's ``unicode61`` tokenizer.

FTS5 tokenizes stored text itself; engramdb tokenizes only queries, to drop stop words and
to quote every term so that no user text is read as FTS5 query syntax. The rules follow
``unicode61 remove_diacritics 2``:

* a token is a maximal run of letters (``L*``), numbers (``N*``), private-use characters
  (``Co``) and the combining diacritics used by precomposed Latin letters; everything else
  (punctuation, symbols, spaces, ``_``) separates tokens;
* tokens are lower-cased character by character (no context rules: ``Σ`` is ``σ`` even at
  the end of a word) and Latin diacritics are removed (``é`` → ``e``, ``ǘ`` → ``u``).

SQLite's character tables predate Python's, so characters added to Unicode after them can
split differently; that only changes how a query term is quoted, because FTS5 re-tokenizes
every quoted term with the table's own tokenizer.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["STOPWORDS_EN", "query_terms", "tokenize"]

# The combining marks unicode61 keeps inside a token (and then removes): the diacritics
# that occur in the canonical decompositions of Latin letters.
_DIACRITICS = "\u0300-\u0304\u0306-\u030c\u030f\u0311\u031b\u0323-\u0328\u032d\u032e\u0330\u0331"
_PRIVATE_USE = "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
_TOKEN = re.compile(rf"(?:[^\W_]|[{_DIACRITICS}{_PRIVATE_USE}])+")
_STRIP = re.compile(rf"[{_DIACRITICS}]")

# fmt: off
STOPWORDS_EN: frozenset[str] = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
})
# fmt: on
"""English stop words dropped from queries when ``LexicalConfig.stopwords`` is on."""


def _is_latin(ch: str) -> bool:
    return ch < "\u0250" or "\u1e00" <= ch < "\u1f00" or "\u2c60" <= ch < "\u2c80"


def _fold(token: str) -> str:
    if token.isascii():
        return token.lower()
    out: list[str] = []
    for ch in token:
        low = ch.casefold()
        if len(low) != 1:  # full folds such as ß -> ss; unicode61 folds one to one
            low = ch.lower()
        if _is_latin(low):
            base = unicodedata.normalize("NFD", low)
            # unicode61 folds only to ASCII base letters, and leaves ǡ alone.
            if base[0].isascii() and low != "\u01e1":
                low = unicodedata.normalize("NFC", _STRIP.sub("", base))
        out.append(low)
    return _STRIP.sub("", "".join(out))


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lower-cased, diacritic-free terms the way ``unicode61`` does.

    Args:
        text: any text.

    Returns:
        The terms in order, repeats included; empty when ``text`` has no token characters.
    """
    return [term for term in (_fold(m) for m in _TOKEN.findall(text)) if term]


def query_terms(text: str, *, stopwords: bool = True) -> list[str]:
    """The distinct terms of a query, in first-seen order.

    Args:
        text: the query text.
        stopwords: drop the words in :data:`STOPWORDS_EN`.

    Returns:
        The terms; empty when the query has no usable term.
    """
    seen: dict[str, None] = {}
    for term in tokenize(text):
        if not (stopwords and term in STOPWORDS_EN):
            seen.setdefault(term, None)
    return list(seen)
