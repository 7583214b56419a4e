"""Input validation shared by the embedders."""

from __future__ import annotations

from collections.abc import Sequence

from engramdb.errors import InvalidInputError

__all__ = ["check_texts"]


def check_texts(texts: Sequence[str]) -> None:
    """Check that ``texts`` is a sequence of valid Unicode strings.

    Raises:
        InvalidInputError: ``texts`` is a single str, an item is not a str, or an item holds
            a lone surrogate (it cannot be encoded as UTF-8).
    """
    if isinstance(texts, str):
        raise InvalidInputError("texts must be a sequence of strings, not a single string")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(f"texts[{i}] must be a str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidInputError(
                f"texts[{i}] is not valid Unicode ({exc.reason} at character {exc.start})"
            ) from exc
