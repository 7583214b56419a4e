"""Postings of FTS5 rows as numpy arrays: segments read from FTS5, merged, saved and loaded.

A :class:`Segment` holds, for a set of rows (memories), everything BM25 needs about them:
each row's token count, and for each term the rows that hold it (ascending) with a
precomputed *impact*, the term weight ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl /
avgdl))`` (float32) at the mean row length of the moment the segment was made. Impacts make
a query's first pass a sum of array slices (``engramdb.lexical.impact``); the term
frequency ``tf``, recovered from the impact (the weight is strictly increasing in ``tf``;
checked exact for every posting when the segment is made, else ``tf`` is kept as an array
too), and the lengths let it score its few candidates exactly.

Tokens are FTS5's own, never a re-implementation: a store's rows are read from its FTS5
index through an ``fts5vocab`` *instance* table (:func:`read_fts5`), and new texts are
tokenized by a private in-memory FTS5 table with the same tokenizer
(:class:`FTS5Tokenizer`), so stemming and Unicode rules are SQLite's, byte for byte.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from engramdb.errors import ConfigError, IndexFormatError, StoreError
from engramdb.lexical.bm25 import K1, B, _sizes

__all__ = ["FTS5Tokenizer", "Segment", "load_segment", "merge_segments", "read_fts5"]

Ints = npt.NDArray[np.int64]
Rows = npt.NDArray[np.int32]
Counts = npt.NDArray[np.unsignedinteger]
Impacts = npt.NDArray[np.floating]

SEGMENT_FORMAT = 1
"""Bumped when a segment's files change; a segment of another format is not loaded."""

_PHRASES_KEPT = 100_000  # query terms whose tokens are remembered
_CHUNK_CHARS = 1 << 25  # group_concat text parsed per numpy call while reading FTS5
_ARRAYS = ["ids", "lengths", "offsets", "rows", "impact", "term_bytes", "term_ends"]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True, eq=False)
class Segment:
    """The postings of a set of rows (immutable; arrays may be memory-mapped files).

    Attributes:
        ids: the rows' memory ids, ascending, int64; a row's *slot* is its index here.
        lengths: tokens per row (FTS5's docsize), int32.
        terms: the terms, in ascending order (FTS5's order: by code point).
        offsets: term ``t``'s postings are ``[offsets[t], offsets[t + 1])``, int64.
        rows: each posting's slot, ascending within a term, int32.
        tf: each posting's term frequency (uint16, or uint32 when a count needs it), or
            ``None`` when every one is recovered exactly from its impact.
        impact: each posting's term weight at ``avgdl``, float32.
        avgdl: the mean row length the impacts were computed with.
        lookup: term -> its index in ``terms``.
    """

    ids: Ints
    lengths: Rows
    terms: tuple[str, ...]
    offsets: Ints
    rows: Rows
    tf: Counts | None
    impact: Impacts
    avgdl: float
    lookup: dict[str, int] = field(repr=False)

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def postings(self) -> int:
        """How many (term, row) pairs the segment holds."""
        return int(self.rows.size)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays (on disk, or in RAM when built here)."""
        arrays: list[npt.NDArray[Any]] = [self.ids, self.lengths, self.offsets, self.rows]
        arrays.append(self.impact)
        if self.tf is not None:
            arrays.append(self.tf)
        return sum(int(a.nbytes) for a in arrays) + sum(len(t) for t in self.terms)

    def frequencies(self, positions: Ints) -> Ints:
        """The term frequencies of the postings at ``positions``."""
        if self.tf is not None:
            return self.tf[positions].astype(np.int64)
        dl = self.lengths[self.rows[positions]]
        return _recover(self.impact[positions], dl, self.avgdl)

    def span(self, term: str) -> tuple[int, int]:
        """``(start, end)`` of ``term``'s postings; ``(0, 0)`` when no row holds it."""
        t = self.lookup.get(term)
        if t is None:
            return 0, 0
        return int(self.offsets[t]), int(self.offsets[t + 1])

    def find(self, term: str, slots: Rows | Ints) -> tuple[npt.NDArray[np.bool_], Ints]:
        """Where each of ``slots`` is in ``term``'s postings: ``(found, positions)``."""
        t = self.lookup.get(term)
        if t is None or slots.size == 0:
            return np.zeros(slots.size, dtype=np.bool_), np.zeros(slots.size, dtype=np.int64)
        start, end = int(self.offsets[t]), int(self.offsets[t + 1])
        rows = self.rows[start:end]
        if rows.size == 0:
            return np.zeros(slots.size, dtype=np.bool_), np.zeros(slots.size, dtype=np.int64)
        needles = slots.astype(np.int32)  # int64 needles would copy the whole list to int64
        pos = np.searchsorted(rows, needles).astype(np.int64)
        found = (pos < rows.size) & (rows[np.minimum(pos, rows.size - 1)] == needles)
        return found, pos + start

    def slots(self, ids: Ints) -> tuple[Ints, npt.NDArray[np.bool_]]:
        """Each id's slot and whether this segment holds it."""
        pos = np.searchsorted(self.ids, ids)
        pos = np.minimum(pos, max(self.ids.size - 1, 0))
        found = self.ids[pos] == ids if self.ids.size else np.zeros(ids.size, dtype=np.bool_)
        return pos.astype(np.int64), found

    def save(self, folder: Path) -> None:
        """Write the segment's files into the new folder ``folder`` (fsynced).

        Raises:
            OSError: the files cannot be written.
        """
        folder.mkdir(parents=True)
        encoded = [t.encode("utf-8") for t in self.terms]
        term_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        term_ends = np.cumsum([len(b) for b in encoded], dtype=np.int64)
        arrays = {
            "ids": self.ids,
            "lengths": self.lengths,
            "offsets": self.offsets,
            "rows": self.rows,
            "impact": self.impact,
            "term_bytes": term_bytes,
            "term_ends": term_ends,
        }
        if self.tf is not None:
            arrays["tf"] = self.tf
        for name, array in arrays.items():
            with (folder / f"{name}.npy").open("wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
        meta = {
            "format": SEGMENT_FORMAT,
            "avgdl": self.avgdl,
            "rows": len(self),
            "terms": len(self.terms),
            "postings": self.postings,
            "tf": self.tf is not None,
        }
        _write_synced(folder / "segment.json", json.dumps(meta).encode("utf-8"))
        _fsync_dir(folder)


def load_segment(folder: Path) -> Segment:
    """The segment saved in ``folder``, its arrays memory-mapped.

    Raises:
        IndexFormatError: files are missing, torn, of another format or inconsistent.
    """
    try:
        meta = json.loads((folder / "segment.json").read_text(encoding="utf-8"))
        if meta.get("format") != SEGMENT_FORMAT:
            raise IndexFormatError(f"{folder}: segment format {meta.get('format')!r}")
        # plain ndarray views of the maps: np.memmap's subclass hooks cost on every slice
        names = [*_ARRAYS, "tf"] if meta.get("tf") else _ARRAYS
        arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False).view(
                np.ndarray
            )
            for name in names
        }
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFormatError(f"{folder}: unreadable lexical segment ({exc})") from exc
    raw = bytes(arrays["term_bytes"])
    ends = arrays["term_ends"].tolist()
    starts = [0, *ends[:-1]][: len(ends)]
    terms = tuple(raw[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True))
    segment = Segment(
        ids=arrays["ids"],
        lengths=arrays["lengths"],
        terms=terms,
        offsets=arrays["offsets"],
        rows=arrays["rows"],
        tf=arrays.get("tf"),
        impact=arrays["impact"],
        avgdl=float(meta["avgdl"]),
        lookup={t: i for i, t in enumerate(terms)},
    )
    _check_shapes(segment, meta, folder)
    return segment


def _check_shapes(segment: Segment, meta: dict[str, object], folder: Path) -> None:
    n, v, p = len(segment), len(segment.terms), segment.postings
    ok = (
        (n, v, p) == (meta.get("rows"), meta.get("terms"), meta.get("postings"))
        and segment.lengths.shape == (n,)
        and segment.offsets.shape == (v + 1,)
        and (segment.tf is None or segment.tf.shape == (p,))
        and segment.impact.shape == (p,)
        and (v == 0 or int(segment.offsets[-1]) == p)
    )
    if not ok:
        raise IndexFormatError(f"{folder}: lexical segment arrays disagree with its manifest")


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- building -------------------------------------------------------------------------------


class Postings(NamedTuple):
    """Postings in term order, as read from FTS5.

    Attributes:
        terms: the distinct terms, ascending.
        counts: postings per term.
        docs: each posting's row id, ascending within a term.
        tf: each posting's term frequency (>= 1).
    """

    terms: list[str]
    counts: Ints
    docs: Ints
    tf: Ints


def build_segment(ids: Ints, lengths: Ints, postings: Postings, avgdl: float) -> Segment:
    """A segment from postings in term order.

    Args:
        ids: the rows' ids (any order; rows without tokens included).
        lengths: each row's token count.
        postings: the postings of those rows.
        avgdl: the mean row length to compute impacts with (> 0 when there are postings).

    Raises:
        StoreError: a posting names a row without a length (the two reads disagree).
    """
    terms, counts, docs, tf = postings
    order = np.argsort(ids, kind="stable")
    ids = np.ascontiguousarray(ids[order], dtype=np.int64)
    lengths32 = np.ascontiguousarray(lengths[order], dtype=np.int32)
    slots = np.searchsorted(ids, docs)
    if docs.size and (int(slots.max()) >= ids.size or not np.array_equal(ids[slots], docs)):
        raise StoreError("the lexical postings name rows that the FTS5 docsize table lacks")
    offsets = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = slots.astype(np.int32)
    dl = lengths32[rows]
    impact = _impacts(tf, dl, avgdl)
    counts_kept: Counts | None = None
    if not np.array_equal(_recover(impact, dl, avgdl), tf):
        wide = tf.size and int(tf.max()) > np.iinfo(np.uint16).max
        counts_kept = tf.astype(np.uint32 if wide else np.uint16)
    return Segment(
        ids=ids,
        lengths=lengths32,
        terms=tuple(terms),
        offsets=offsets,
        rows=rows,
        tf=counts_kept,
        impact=impact,
        avgdl=float(avgdl),
        lookup={t: i for i, t in enumerate(terms)},
    )


def _impacts(tf: Ints, dl: npt.NDArray[np.int32], avgdl: float) -> Impacts:
    f = tf.astype(np.float64)
    weights = (f * (K1 + 1.0)) / (f + K1 * (1 - B + B * dl.astype(np.float64) / avgdl))
    return weights.astype(np.float32)


def _recover(impact: Impacts, dl: npt.NDArray[np.int32], avgdl: float) -> Ints:
    """Term frequencies from impacts: ``w = tf (k1 + 1) / (tf + k1 K)`` solved for ``tf``."""
    w = impact.astype(np.float64)  # below k1 + 1 (it tends to it as tf grows)
    norm = K1 * (1 - B + B * dl.astype(np.float64) / avgdl)
    with np.errstate(divide="ignore", over="ignore"):  # float32 may round w up to k1 + 1
        tf = w * norm / (K1 + 1.0 - w)
    return np.rint(np.where(np.isfinite(tf), tf, -1.0)).astype(np.int64)


def _instances(
    rows: Iterable[tuple[str, str]],
) -> Iterator[tuple[list[str], Ints, Ints, Ints]]:
    """Chunks of ``(terms, postings per term, row ids, tf)`` from ``(term, "id,id,...")``
    rows, one id per instance (run-length counted into ``tf``)."""
    terms: list[str] = []
    parts: list[str] = []
    size = 0

    def flush() -> tuple[list[str], Ints, Ints, Ints]:
        text = ",".join(parts)
        values = np.fromstring(text, dtype=np.int64, sep=",")  # noqa: NPY201 - text mode is kept
        per_term = np.fromiter((p.count(",") + 1 for p in parts), np.int64, count=len(parts))
        if int(per_term.sum()) != values.size:
            raise StoreError("cannot parse the FTS5 instance list")
        owner = np.repeat(np.arange(len(parts), dtype=np.int64), per_term)
        if values.size > 1:
            back = (owner[1:] == owner[:-1]) & (values[1:] < values[:-1])
            if bool(back.any()):  # not in row order within a term: sort (never seen so far)
                order = np.lexsort((values, owner))
                values, owner = values[order], owner[order]
        new = np.ones(values.size, dtype=np.bool_)
        new[1:] = (values[1:] != values[:-1]) | (owner[1:] != owner[:-1])
        starts = np.flatnonzero(new)
        tf = np.diff(np.append(starts, values.size))
        counts = np.bincount(owner[starts], minlength=len(parts)).astype(np.int64)
        return terms[:], counts, values[starts], tf.astype(np.int64)

    for term, doc_list in rows:
        terms.append(term)
        parts.append(doc_list)
        size += len(doc_list)
        if size >= _CHUNK_CHARS:
            yield flush()
            terms.clear()
            parts.clear()
            size = 0
    if parts:
        yield flush()


def _postings(conn: sqlite3.Connection, vocab: str) -> Postings:
    terms: list[str] = []
    counts: list[Ints] = []
    docs: list[Ints] = []
    tfs: list[Ints] = []
    rows = conn.execute(f"SELECT term, group_concat(doc) FROM {vocab} GROUP BY term")
    for chunk_terms, chunk_counts, chunk_docs, chunk_tf in _instances(rows):
        terms += chunk_terms
        counts.append(chunk_counts)
        docs.append(chunk_docs)
        tfs.append(chunk_tf)
    empty = np.zeros(0, dtype=np.int64)
    return Postings(
        terms,
        np.concatenate(counts) if counts else empty,
        np.concatenate(docs) if docs else empty,
        np.concatenate(tfs) if tfs else empty,
    )


def _docsizes(conn: sqlite3.Connection, docsize: str) -> tuple[Ints, Ints]:
    found = conn.execute(f"SELECT id, sz FROM {docsize}").fetchall()
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ids, blobs = zip(*found, strict=True)
    return np.asarray(ids, dtype=np.int64), _sizes([bytes(b) for b in blobs])


def read_fts5(conn: sqlite3.Connection, fts_table: str, avgdl: float | None = None) -> Segment:
    """Every row of an FTS5 table as one segment, read in the connection's current snapshot.

    Reads the index through a temporary ``fts5vocab`` instance table (created on this
    connection once; a ``query_only`` connection is let create it) and the row lengths
    from the ``{fts_table}_docsize`` table. Call it inside a read transaction so both
    reads see one state.

    Args:
        conn: a connection to the database holding ``fts_table``.
        fts_table: the FTS5 table (``detail=full``, with a docsize table).
        avgdl: the mean row length for the impacts (``None``: the rows' own).

    Raises:
        StoreError: SQLite fails or the index cannot be read consistently.
    """
    vocab = _vocab_table(conn, fts_table)
    try:
        ids, lengths = _docsizes(conn, _quote(fts_table + "_docsize"))
        postings = _postings(conn, vocab)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the FTS5 index {fts_table!r}: {exc}") from exc
    if avgdl is None:
        avgdl = float(lengths.sum()) / ids.size if ids.size and lengths.sum() else 1.0
    return build_segment(ids, lengths, postings, avgdl)


def _vocab_table(conn: sqlite3.Connection, fts_table: str) -> str:
    name = f"temp.{_quote(fts_table + '_instances')}"
    spec = f"fts5vocab(main, {_quote(fts_table)}, instance)"
    (query_only,) = conn.execute("PRAGMA query_only").fetchone()
    try:
        if query_only:  # a temporary table changes no database file
            conn.execute("PRAGMA query_only = OFF")
        conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {name} USING {spec}")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the FTS5 index {fts_table!r}: {exc}") from exc
    finally:
        if query_only:
            conn.execute("PRAGMA query_only = ON")
    return name


def merge_segments(segments: Sequence[Segment], dead: Sequence[Ints], avgdl: float) -> Segment:
    """One segment holding the live rows of ``segments`` (``dead``: each one's dead slots).

    Terms keep their order (each segment's are ascending, so the merged lists need only
    a stable sort by term); impacts are recomputed at ``avgdl``.
    """
    keep_rows = [
        np.setdiff1d(np.arange(len(s)), d, assume_unique=True)
        for s, d in zip(segments, dead, strict=True)
    ]
    ids = np.concatenate([s.ids[k] for s, k in zip(segments, keep_rows, strict=True)])
    lengths = np.concatenate(
        [s.lengths[k].astype(np.int64) for s, k in zip(segments, keep_rows, strict=True)]
    )
    vocabulary = sorted(set().union(*(s.terms for s in segments)))
    position = {t: i for i, t in enumerate(vocabulary)}
    term_parts: list[Ints] = []
    doc_parts: list[Ints] = []
    tf_parts: list[Ints] = []
    for segment, d in zip(segments, dead, strict=True):
        alive = np.ones(len(segment), dtype=np.bool_)
        alive[d] = False
        owner = np.repeat(
            np.fromiter((position[t] for t in segment.terms), np.int64, count=len(segment.terms)),
            np.diff(segment.offsets),
        )
        live = alive[segment.rows]
        term_parts.append(owner[live])
        doc_parts.append(segment.ids[segment.rows[live]])
        tf_parts.append(segment.frequencies(np.flatnonzero(live)))
    term_of = np.concatenate(term_parts) if term_parts else np.zeros(0, np.int64)
    docs = np.concatenate(doc_parts) if doc_parts else np.zeros(0, np.int64)
    tf = np.concatenate(tf_parts) if tf_parts else np.zeros(0, np.int64)
    order = np.lexsort((docs, term_of))
    term_of, docs, tf = term_of[order], docs[order], tf[order]
    counts = np.bincount(term_of, minlength=len(vocabulary)).astype(np.int64)
    used = counts > 0
    vocabulary = [t for t, u in zip(vocabulary, used.tolist(), strict=True) if u]
    return build_segment(ids, lengths, Postings(vocabulary, counts[used], docs, tf), avgdl)


def new_segment_name() -> str:
    """A fresh folder name for a saved segment."""
    return f"seg-{uuid.uuid4().hex[:16]}"


# -- tokenizing new text --------------------------------------------------------------------


class FTS5Tokenizer:
    """Tokenizes texts exactly as an FTS5 table with the same tokenizer spec stores them.

    A private in-memory connection holds an FTS5 table (and its ``fts5vocab`` instance
    table) with the spec; texts are inserted, read back as postings and deleted, under a
    lock (the connection is shared by the threads of the process).

    Args:
        spec: the FTS5 tokenizer spec (``LexicalConfig.tokenizer``).

    Raises:
        ConfigError: FTS5 rejects the spec.
    """

    def __init__(self, spec: str):
        self.spec = spec
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        quoted = spec.replace("'", "''")
        try:
            self._conn.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{quoted}')")
        except sqlite3.OperationalError as exc:
            self._conn.close()
            raise ConfigError(
                f"FTS5 rejected lexical.tokenizer={spec!r}: {exc}; valid examples: "
                "'unicode61', 'unicode61 remove_diacritics 2', "
                "'porter unicode61 remove_diacritics 2', 'ascii'"
            ) from exc
        self._conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
        self._phrases: dict[str, tuple[str, ...]] = {}

    def close(self) -> None:
        """Close the private connection."""
        with self._lock:
            self._conn.close()

    def segment(self, ids: Sequence[int], texts: Sequence[str], avgdl: float) -> Segment:
        """The segment of rows ``ids`` holding ``texts``, impacts at ``avgdl``.

        Raises:
            StoreError: SQLite fails.
        """
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO t (rowid, x) VALUES (?, ?)", zip(ids, texts, strict=True)
                )
                docs, lengths = _docsizes(conn, "t_docsize")
                postings = _postings(conn, "v")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot tokenize with {self.spec!r}: {exc}") from exc
            finally:
                conn.execute("ROLLBACK")  # the table stays empty
        return build_segment(docs, lengths, postings, avgdl)

    def phrases(self, terms: Sequence[str]) -> list[tuple[str, ...]]:
        """The FTS5 tokens of each query term, as FTS5 reads the quoted term (a phrase).

        Usually one token per term (its stem, with a stemming tokenizer); more or none
        where SQLite's character tables split the term otherwise than Python's.
        """
        known = self._phrases  # replaced, never cleared, so a reader's copy stays whole
        tokens = {t: known[t] for t in dict.fromkeys(terms) if t in known}
        missing = [t for t in dict.fromkeys(terms) if t not in tokens]
        if missing:
            found: dict[int, list[tuple[int, str]]] = {}
            with self._lock:
                try:
                    self._conn.execute("BEGIN")
                    self._conn.executemany(
                        "INSERT INTO t (rowid, x) VALUES (?, ?)", enumerate(missing)
                    )
                    for doc, term, offset in self._conn.execute("SELECT doc, term, offset FROM v"):
                        found.setdefault(int(doc), []).append((int(offset), str(term)))
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot tokenize with {self.spec!r}: {exc}") from exc
                finally:
                    self._conn.execute("ROLLBACK")
                for i, term in enumerate(missing):
                    tokens[term] = tuple(t for _, t in sorted(found.get(i, [])))
                if len(self._phrases) > _PHRASES_KEPT:
                    self._phrases = {}
                self._phrases.update({t: tokens[t] for t in missing})
        return [tokens[t] for t in terms]
