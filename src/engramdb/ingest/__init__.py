"""Ingest: files and in-memory data to records, records to chunks (pure functions).

``load_path`` / ``load_records`` produce :class:`~engramdb.types.Record` objects with
normalized text; ``chunk_text`` cuts a record's text into sentence-aligned
:class:`~engramdb.types.Chunk` objects; ``content_hash`` gives the id that makes
re-ingest idempotent.

Limits on bad or extreme input: ``MAX_FILE_BYTES`` (largest file loaded),
``MAX_JSON_DEPTH`` (deepest JSON nesting), ``MAX_UNCHUNKED_CHARS`` (longest chat turn kept
as one memory) and ``MAX_CHARS_PER_TOKEN`` (a chunk spans at most ``max_tokens`` times
this many characters).
"""

from __future__ import annotations

from engramdb.ingest._records import MAX_JSON_DEPTH, MAX_UNCHUNKED_CHARS, load_records
from engramdb.ingest.chunk import MAX_CHARS_PER_TOKEN, chunk_text, estimate_tokens, split_sentences
from engramdb.ingest.ids import content_hash
from engramdb.ingest.loaders import MAX_FILE_BYTES, SUPPORTED_EXTENSIONS, load_path
from engramdb.ingest.normalize import normalize_for_hash, normalize_text
from engramdb.ingest.timeparse import parse_time

__all__ = [
    "MAX_CHARS_PER_TOKEN",
    "MAX_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_UNCHUNKED_CHARS",
    "SUPPORTED_EXTENSIONS",
    "chunk_text",
    "content_hash",
    "estimate_tokens",
    "load_path",
    "load_records",
    "normalize_for_hash",
    "normalize_text",
    "parse_time",
    "split_sentences",
]
