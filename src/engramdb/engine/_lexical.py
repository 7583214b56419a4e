"""The engine's lexical index: FTS5 for the schema, postings arrays for the searches.

FTS5 stays the store's lexical index of record: its triggers update it in the transaction
of every write, and its ``bm25()`` defines the ranking. Searches are answered from
postings arrays instead (``engramdb.lexical.postings`` and ``engramdb.lexical.impact``),
which rank the same rows with the same doubles without scoring every matching row one by
one through SQLite's auxiliary-function interface.

The arrays follow the store as the dense index does: a :class:`PostingsView` reflects one
position of the change log (``changes``, filled by triggers in the same transaction as the
memories); a reader asks for the view of its own read snapshot, and a view behind it
catches up from the log (new memories' texts are tokenized by FTS5's own tokenizer into a
small segment; deleted ones become dead slots), never by a rebuild. Every catch-up checks
the view's row and token totals against FTS5's in the same snapshot, and rebuilds from
FTS5 if they differ, so the arrays are never silently wrong. Small segments are merged as
they pile up (the largest first when they reach a quarter of it).

A file store keeps its arrays in ``<store>.lexical/`` (segments as ``.npy`` files,
memory-mapped; a manifest naming the segments, the dead slots and the change-log position
they reflect), written when built, after a merge into the largest segment, and on close; a
manifest is replaced atomically under an exclusive lock on the folder. On open, arrays
that are missing, torn, made with another tokenizer or for another store are rebuilt from
FTS5; arrays that are merely behind catch up from the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from engramdb.config import LexicalConfig
from engramdb.engine._spann_folder import folder_lock
from engramdb.errors import IndexFormatError, StoreError
from engramdb.lexical.bm25 import TermStats
from engramdb.lexical.fts5 import FTS5Index
from engramdb.lexical.impact import PostingsView
from engramdb.lexical.postings import (
    FTS5Tokenizer,
    Segment,
    load_segment,
    merge_segments,
    new_segment_name,
    read_fts5,
)
from engramdb.lexical.searcher import PostingsSearcher
from engramdb.store.sqlite import SQLiteStore
from engramdb.types import IdMatrix, Matrix

__all__ = ["SUFFIX", "LexicalIndex", "lexical_folder"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_Ints = npt.NDArray[np.int64]

SUFFIX = ".lexical"
FORMAT = 1
"""Bumped when the folder's layout changes; a folder of another format is rebuilt."""

_HISTORY = 16  # recent views kept for readers whose snapshot is a little older
_MAX_SEGMENTS = 8
_GROWTH = 4  # a segment merges into the one before it once it is a quarter of its size
_DEAD_SHARE = 4  # a segment is rewritten once a quarter of its rows are dead
_REREAD = 50_000  # changes beyond this and the live rows: read FTS5 again, not the texts


def lexical_folder(store_path: str) -> Path | None:
    """Where the postings of ``store_path`` live (``None`` for an in-memory store)."""
    if store_path in ("", ":memory:"):
        return None
    return Path(store_path + SUFFIX)


class LexicalIndex:
    """The Memory's lexical index and its lifecycle (see the module docstring).

    Offers :class:`FTS5Index`'s ``ensure``, ``is_current``, ``search``, ``term_stats``,
    ``search_stats`` and ``stats``, with the same results.

    Args:
        store: the store.
        config: the ``[lexical]`` settings.
    """

    def __init__(self, store: SQLiteStore, config: LexicalConfig):
        self._store = store
        self.config = config
        self.fts = FTS5Index(lambda: store.conn, config)
        self.path = lexical_folder(store.path)
        self._lock = threading.RLock()
        self._views: OrderedDict[int, PostingsView] = OrderedDict()
        self._view: PostingsView | None = None
        self._tokenizer: FTS5Tokenizer | None = None
        self._searcher = PostingsSearcher(self.fts, self._tokenizer_)
        self._saved: dict[int, tuple[str, Segment]] = {}  # id(segment) -> (folder, segment)
        self._saved_seq: int | None = None
        self._unsaved_base = False  # the largest segment changed since the last save
        self._created = ""
        self.last_build: str | None = None
        self.builds = 0

    # -- schema (FTS5) ------------------------------------------------------------------

    def ensure(self) -> None:
        """Create or rebuild the FTS5 table and its triggers (:meth:`FTS5Index.ensure`)."""
        self.fts.ensure()

    def is_current(self) -> bool:
        """Whether the FTS5 index exists with the configured settings."""
        return self.fts.is_current()

    def stats(self) -> dict[str, int | str]:
        """The FTS5 index's rows and tokenizer (:meth:`FTS5Index.stats`)."""
        return self.fts.stats()

    # -- reading ------------------------------------------------------------------------

    def search(
        self,
        queries: Sequence[str],
        k: int,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> tuple[IdMatrix, Matrix]:
        """:meth:`FTS5Index.search`'s results, from the postings of the caller's snapshot."""
        found: tuple[IdMatrix, Matrix] = self._at_snapshot(
            lambda view: self._searcher.search(view, queries, k, where=where, params=params),
            lambda: self.fts.search(queries, k, where=where, params=params),
        )
        return found

    def term_stats(self, queries: Sequence[str]) -> TermStats:
        """:meth:`FTS5Index.term_stats`'s statistics, from the postings."""
        stats: TermStats = self._at_snapshot(
            lambda view: self._searcher.term_stats(view, queries),
            lambda: self.fts.term_stats(queries),
        )
        return stats

    def search_stats(  # noqa: PLR0913 - FTS5Index.search_stats's arguments
        self,
        queries: Sequence[str],
        k: int,
        stats: TermStats,
        *,
        where: str | None = None,
        params: Sequence[object] = (),
    ) -> list[list[tuple[int, float]]]:
        """:meth:`FTS5Index.search_stats`'s results, from the postings."""
        found: list[list[tuple[int, float]]] = self._at_snapshot(
            lambda view: self._searcher.search_stats(
                view, queries, k, stats, where=where, params=params
            ),
            lambda: self.fts.search_stats(queries, k, stats, where=where, params=params),
        )
        return found

    def _at_snapshot(self, read: Callable[[PostingsView], T], fallback: Callable[[], T]) -> T:
        with self._store.reading() as seq:
            view = self.view(seq)
            return fallback() if view is None else read(view)

    def view(self, seq: int) -> PostingsView | None:
        """The view at change-log position ``seq``; call inside ``store.reading()`` whose
        snapshot is at ``seq``. ``None``: none is loaded, or the snapshot is older than
        every view kept (the caller then asks FTS5)."""
        found = self._views.get(seq)  # the common case: no lock (a dict read is atomic)
        if found is not None:
            return found
        with self._lock:
            current = self._view
            if current is None:
                return None
            found = self._views.get(seq)
            if found is not None:
                return found
            if seq < current.seq:
                return None
            view = self._catch_up(current, seq)
            self._publish(view)
            if self._unsaved_base:  # a merge into the largest segment: worth keeping
                self.save()
            return view

    def _publish(self, view: PostingsView) -> None:
        if self._view is None or view.seq >= self._view.seq:
            self._view = view
        self._views[view.seq] = view
        while len(self._views) > _HISTORY:
            self._views.popitem(last=False)

    def _install(self, view: PostingsView) -> None:
        self._views.clear()
        self._view = None
        self._publish(view)

    # -- catching up ----------------------------------------------------------------------

    def _catch_up(self, view: PostingsView, seq: int) -> PostingsView:
        """``view`` brought to ``seq`` from the change log, read in the caller's snapshot
        (a rebuild from FTS5 when the log no longer reaches back, or totals disagree)."""
        if seq == view.seq:
            return view
        changes = self._store.changes_since(view.seq)
        if changes is None:
            logger.info("the change log no longer reaches position %d: rebuilding", view.seq)
            return self._rebuild(seq, "the change log no longer reaches its position")
        if changes[0].size > max(view.rows, _REREAD):  # FTS5's index read once is cheaper
            return self._rebuild(seq, "most rows changed since")
        new = self._apply(view, changes[0], changes[1], seq)
        new = self._compact(new)
        return self._checked(new, seq)

    def _apply(self, view: PostingsView, ids: _Ints, ops: _Ints, seq: int) -> PostingsView:
        """``view`` with the logged changes ``(ids, ops)``: deleted ids dead, added ids in a
        new segment (their texts read in the caller's snapshot)."""
        if ids.size == 0:
            return PostingsView(seq, view.segments, view.dead, view.rows, view.tokens)
        last: dict[int, int] = {}
        deleted: set[int] = set()
        for memory_id, op in zip(ids.tolist(), ops.tolist(), strict=True):
            last[memory_id] = op
            if op == 0:
                deleted.add(memory_id)
        touched = np.asarray(sorted(last), dtype=np.int64)
        where, slots = view.locate(touched)
        held = np.zeros(touched.size, dtype=np.bool_)
        dead = list(view.dead)
        for g, (found, slot) in enumerate(zip(where, slots, strict=True)):
            held[found] = True
            gone = np.asarray([touched[i] in deleted for i in found.tolist()], dtype=np.bool_)
            if gone.any():
                dead[g] = np.union1d(dead[g], slot[gone])
        # an id held and never deleted since is there already
        added = [
            memory_id
            for memory_id, is_held in zip(touched.tolist(), held.tolist(), strict=True)
            if last[memory_id] == 1 and (memory_id in deleted or not is_held)
        ]
        segments = list(view.segments)
        if added:
            texts = self._texts(added)
            avgdl = view.tokens / view.rows if view.rows and view.tokens else 1.0
            segment = self._tokenizer_().segment(added, texts, avgdl)
            segments.append(segment)
            dead.append(np.zeros(0, dtype=np.int64))
        return PostingsView.of(seq, segments, dead)

    def _texts(self, ids: list[int]) -> list[str]:
        rows = dict(
            self._store.conn.execute(
                f"SELECT id, {self._col()} FROM {self._table()} "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            ).fetchall()
        )
        missing = [i for i in ids if i not in rows]
        if missing:
            raise StoreError(
                f"the change log adds memories {missing[:5]} that the store does not hold"
            )
        return [str(rows[i]) for i in ids]

    def _table(self) -> str:
        return '"' + self.fts.table.replace('"', '""') + '"'

    def _col(self) -> str:
        return '"' + self.fts.column.replace('"', '""') + '"'

    def _checked(self, view: PostingsView, seq: int) -> PostingsView:
        """``view`` if its totals are FTS5's in this snapshot, else a rebuild."""
        rows, tokens = self.fts._totals()
        if (rows, tokens) == (view.rows, view.tokens):
            return view
        logger.warning(
            "the lexical postings hold %d rows and %d tokens, FTS5 %d and %d: rebuilding",
            view.rows,
            view.tokens,
            rows,
            tokens,
        )
        return self._rebuild(seq, "its totals disagreed with FTS5's")

    def _rebuild(self, seq: int, reason: str) -> PostingsView:
        """The postings read afresh from FTS5 (in the caller's snapshot at ``seq``)."""
        start = time.monotonic()
        segment = read_fts5(self._store.conn, self.fts.fts_table)
        self.last_build = reason
        self.builds += 1
        view = PostingsView.of(seq, [segment], [np.zeros(0, dtype=np.int64)])
        logger.info(
            "read the lexical postings of %s from FTS5 (%s): %d rows in %.1f s",
            self._store.path,
            reason,
            view.rows,
            time.monotonic() - start,
        )
        rows, tokens = self.fts._totals()
        if (rows, tokens) != (view.rows, view.tokens):
            raise StoreError(
                f"the FTS5 index {self.fts.fts_table!r} holds {rows} rows and {tokens} "
                f"tokens, but its postings {view.rows} and {view.tokens}: run "
                "engram check, and rebuild the lexical index"
            )
        return view

    def _compact(self, view: PostingsView) -> PostingsView:
        """Merge small segments as they pile up, and rewrite segments mostly dead."""
        segments, dead = list(view.segments), list(view.dead)
        changed = False
        while len(segments) > 1 and (
            len(segments) > _MAX_SEGMENTS
            or _live(segments[-2], dead[-2]) <= _GROWTH * _live(segments[-1], dead[-1])
        ):
            merged = self._merge(segments[-2:], dead[-2:], view)
            segments[-2:] = [merged]
            dead[-2:] = [np.zeros(0, dtype=np.int64)]
            changed = True
        for g, (segment, gone) in enumerate(zip(segments, dead, strict=True)):
            if gone.size and gone.size * _DEAD_SHARE >= len(segment):
                segments[g] = self._merge([segment], [gone], view)
                dead[g] = np.zeros(0, dtype=np.int64)
                changed = True
        if not changed:
            return view
        kept = [(s, d) for s, d in zip(segments, dead, strict=True) if len(s)]
        compacted = PostingsView.of(view.seq, [s for s, _ in kept], [d for _, d in kept])
        if compacted.segments and compacted.segments[0] is not view.segments[0]:
            self._unsaved_base = True
        return compacted

    def _merge(self, segments: list[Segment], dead: list[_Ints], view: PostingsView) -> Segment:
        avgdl = view.tokens / view.rows if view.rows and view.tokens else 1.0
        return merge_segments(segments, dead, avgdl)

    def _tokenizer_(self) -> FTS5Tokenizer:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = FTS5Tokenizer(self.config.tokenizer)
            return self._tokenizer

    # -- lifecycle --------------------------------------------------------------------------

    def load(self) -> None:
        """Load the postings (or build them from FTS5) and catch up with the store; once,
        when the Memory opens, after :meth:`ensure`."""
        with self._store.reading() as seq:
            self._created = self._store_created()
            view, reason = self._open_folder(seq)
            if view is None:
                view = self._rebuild(seq, reason)
                self._unsaved_base = True
            self._install(view)
        if self._unsaved_base or self._saved_seq != view.seq:
            self.save()

    def _store_created(self) -> str:
        row = self._store.conn.execute(
            "SELECT value FROM store_info WHERE key = 'created'"
        ).fetchone()
        return "" if row is None else str(row[0])

    def _open_folder(self, seq: int) -> tuple[PostingsView | None, str]:
        """The saved postings caught up to ``seq``, or why they must be rebuilt."""
        if self.path is None:
            return None, "an in-memory store"
        manifest_path = self.path / "manifest.json"
        if not manifest_path.is_file():
            return None, "no lexical postings yet"
        with folder_lock(self.path, exclusive=False):
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
                reason = self._unusable(manifest, seq)
                if reason is not None:
                    return None, reason
                segments = [load_segment(self.path / name) for name in manifest["segments"]]
                dead = _load_dead(self.path / manifest["dead"], manifest["dead_counts"])
            except (OSError, ValueError, KeyError, TypeError, IndexFormatError) as exc:
                return None, f"the saved postings are torn or corrupt ({exc})"
        if len(dead) != len(segments):
            return None, "the saved postings are torn (dead slots for other segments)"
        base = int(manifest["seq"])
        view = PostingsView.of(base, segments, dead)
        names = [str(name) for name in manifest["segments"]]
        self._saved = {id(s): (n, s) for s, n in zip(segments, names, strict=True)}
        self._saved_seq = base
        changes = self._store.changes_since(base)
        if changes is None:
            return None, "it is older than the store's change log reaches"
        if changes[0].size > max(view.rows, _REREAD):
            return None, "most rows changed since it was saved"
        view = self._apply(view, changes[0], changes[1], seq)
        rows, tokens = self.fts._totals()
        if (rows, tokens) != (view.rows, view.tokens):
            return None, "its totals disagree with FTS5's"
        if changes[0].size:
            logger.info(
                "caught up %d changes since the lexical postings were saved", changes[0].size
            )
        return self._compact(view), ""

    def _unusable(self, manifest: dict[str, Any], seq: int) -> str | None:
        if manifest.get("format") != FORMAT:
            return f"they have format {manifest.get('format')!r}, not {FORMAT}"
        if manifest.get("tokenizer") != self.config.tokenizer:
            return "they were made with another tokenizer"
        if manifest.get("fts_table") != self.fts.fts_table:
            return "they were made for another FTS5 table"
        if manifest.get("store_created") != self._created:
            return "they were made for another store at this path"
        base = manifest.get("seq")
        if not isinstance(base, int) or base > seq:
            return f"they reflect position {base} of a change log at {seq}"
        return None

    def save(self) -> None:
        """Write the current view into the folder (new segments, the dead slots and the
        manifest); nothing for an in-memory or read-only store."""
        if self.path is None or self._store.readonly:
            return
        with self._lock:
            view = self._view
            if view is None:
                return
            try:
                self._write(view)
            except OSError as exc:  # the next save tries again; the old manifest stands
                logger.error("cannot save the lexical postings at %s (%s)", self.path, exc)
                return
            self._saved_seq = view.seq
            self._unsaved_base = False

    def _write(self, view: PostingsView) -> None:
        assert self.path is not None
        with folder_lock(self.path, exclusive=True):
            names = []
            for segment in view.segments:
                saved = self._saved.get(id(segment))
                if saved is None or not (self.path / saved[0]).is_dir():
                    name = new_segment_name()
                    segment.save(self.path / name)
                    saved = (name, segment)
                names.append(saved[0])
            self._saved = {id(s): (n, s) for s, n in zip(view.segments, names, strict=True)}
            dead_name = f"dead-{uuid.uuid4().hex[:16]}.npy"
            dead = np.concatenate(view.dead) if view.dead else np.zeros(0, np.int64)
            with (self.path / dead_name).open("wb") as fh:
                np.save(fh, dead.astype(np.int64), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            manifest = {
                "format": FORMAT,
                "tokenizer": self.config.tokenizer,
                "fts_table": self.fts.fts_table,
                "store_created": self._created,
                "seq": view.seq,
                "rows": view.rows,
                "tokens": view.tokens,
                "segments": names,
                "dead": dead_name,
                "dead_counts": [int(d.size) for d in view.dead],
            }
            tmp = self.path / f".manifest.tmp-{uuid.uuid4().hex[:8]}"
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(json.dumps(manifest, indent=1))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / "manifest.json")
            _fsync_dir(self.path)
            keep = {*names, dead_name, "manifest.json", ".lock"}
            for entry in self.path.iterdir():
                if entry.name not in keep:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        with contextlib.suppress(OSError):
                            entry.unlink()

    def close(self) -> None:
        """Save what changed since the last save (once the store is closed: no reads run)."""
        if self._view is not None and self._view.seq != self._saved_seq:
            self.save()
        if self._tokenizer is not None:
            self._tokenizer.close()
            self._tokenizer = None
        self._views.clear()
        self._view = None

    def postings_stats(self) -> dict[str, int]:
        """The current view in numbers: rows, tokens, segments, postings and bytes."""
        view = self._view
        if view is None:
            return {"rows": 0, "tokens": 0, "segments": 0, "postings": 0, "bytes": 0}
        return {
            "rows": view.rows,
            "tokens": view.tokens,
            "segments": len(view.segments),
            "postings": sum(s.postings for s in view.segments),
            "bytes": sum(s.nbytes for s in view.segments),
        }


def _live(segment: Segment, dead: _Ints) -> int:
    return len(segment) - int(dead.size)


def _load_dead(path: Path, counts: list[int]) -> list[_Ints]:
    flat = np.load(path, allow_pickle=False)
    if int(sum(counts)) != flat.size:
        raise IndexFormatError(f"{path}: {flat.size} dead slots, the manifest says {sum(counts)}")
    out, at = [], 0
    for count in counts:
        out.append(np.asarray(flat[at : at + count], dtype=np.int64))
        at += count
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
