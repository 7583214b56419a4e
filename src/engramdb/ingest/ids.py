"""Content-hash ids: the same content gets the same id, so re-ingest is idempotent."""

from __future__ import annotations

import hashlib

from engramdb.ingest.normalize import normalize_for_hash

__all__ = ["content_hash"]


def content_hash(text: str) -> str:
    """Return the SHA-256 hex digest of ``normalize_for_hash(text)`` encoded as UTF-8.

    Texts that differ only in case, Unicode compatibility forms, invisible characters
    or whitespace share a hash.

    Args:
        text: any string.

    Returns:
        64 lowercase hex characters.

    Example:
        >>> content_hash("Hello  World") == content_hash("hello world\\n")
        True
    """
    return hashlib.sha256(normalize_for_hash(text).encode("utf-8")).hexdigest()
