"""Token counting for context budgets: a documented estimate, or tiktoken when installed.

The default, :func:`estimate_tokens`, approximates the byte-pair encodings that chat models
use (``cl100k_base``/``o200k_base`` style) without any vocabulary file:

* a run of letters of length ``n`` counts ``1`` when ``n <= 6``, else ``ceil(n / 4)``
  (common words are one token; rare long words split into pieces of about four letters);
* a run of digits counts one token per three digits (these encodings split numbers into
  groups of at most three);
* every other non-space character (punctuation, symbols) counts ``1``;
* every CJK ideograph, kana or Hangul syllable counts ``1``;
* a newline counts ``1`` (spaces are absorbed into the following word's token).

It leans high on purpose: English prose comes out about 5-15% above ``cl100k_base``, so a
budget computed with it is rarely exceeded by the real tokenizer. Pass
:func:`tiktoken_counter` (``context`` extra) for exact counts, or any ``Callable[[str], int]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from engramdb._optional import require
from engramdb.errors import ConfigError

__all__ = ["TokenCounter", "estimate_tokens", "select_counter", "tiktoken_counter"]

TokenCounter = Callable[[str], int]
"""Counts the tokens of a text."""

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_PIECE_RE = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+|\d+|\n|[^\w\s]|_")
_SHORT_WORD = 6
_CHARS_PER_PIECE = 4
_DIGITS_PER_TOKEN = 3


def estimate_tokens(text: str) -> int:
    """Estimate the number of chat-model (BPE) tokens in ``text``; see the module docstring.

    Args:
        text: any string.

    Returns:
        The estimated count (0 for an empty or all-space text).

    Example:
        >>> estimate_tokens("Alice moved the deploy freeze to 2024-05-17.")
        13
    """
    count = 0
    for match in _PIECE_RE.finditer(text):
        piece = match.group()
        n = len(piece)
        if piece.isdigit():
            count += math.ceil(n / _DIGITS_PER_TOKEN)
        elif n <= _SHORT_WORD:
            count += 1
        else:
            count += math.ceil(n / _CHARS_PER_PIECE)
    return count


def tiktoken_counter(encoding: str = "cl100k_base") -> TokenCounter:
    """An exact counter for an OpenAI encoding, via tiktoken (``context`` extra).

    tiktoken reads its vocabulary from ``TIKTOKEN_CACHE_DIR`` or downloads it once; offline
    machines need the file cached beforehand.

    Args:
        encoding: a tiktoken encoding name, e.g. ``"cl100k_base"`` or ``"o200k_base"``.

    Raises:
        MissingDependencyError: tiktoken is not installed.
        ConfigError: the encoding is unknown or its vocabulary cannot be loaded.
    """
    tiktoken = require("tiktoken", extra="context")
    try:
        enc = tiktoken.get_encoding(encoding)
    except (ValueError, OSError) as exc:
        raise ConfigError(
            f"cannot load tiktoken encoding {encoding!r} ({exc}); use a known name such as "
            "'cl100k_base' and make sure its vocabulary is cached (TIKTOKEN_CACHE_DIR) "
            "or downloadable"
        ) from exc

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    count.__name__ = f"tiktoken:{encoding}"
    return count


def select_counter(counter: str | TokenCounter | None) -> TokenCounter:
    """Resolve a counter given by name (``"estimate"``, ``"tiktoken"``, ``"tiktoken:<enc>"``).

    A callable passes through; ``None`` means the estimate.

    Raises:
        ConfigError: an unknown counter name.
        MissingDependencyError: tiktoken was asked for and is not installed.
    """
    if counter is None or counter == "estimate":
        return estimate_tokens
    if callable(counter):
        return counter
    if counter == "tiktoken":
        return tiktoken_counter()
    if isinstance(counter, str) and counter.startswith("tiktoken:"):
        return tiktoken_counter(counter.split(":", 1)[1])
    raise ConfigError(
        f"unknown token counter {counter!r}; use 'estimate', 'tiktoken', "
        "'tiktoken:<encoding>' or a callable"
    )
