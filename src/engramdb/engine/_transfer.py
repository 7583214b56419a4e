"""Export, import and backup: memories as JSON Lines, and online copies of the store file.

The file format is described in :mod:`engramdb.engine._transfer_format`.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from engramdb.embed.base import Embedder
from engramdb.engine._transfer_format import (
    Entry,
    Expect,
    LinkRow,
    entries,
    header,
    memory_dict,
    read_jsonl,
)
from engramdb.engine._validity import keys_of
from engramdb.engine._write import Writer, check_namespace
from engramdb.errors import IngestError, InvalidInputError, StoreError
from engramdb.graph.channel import Prepared
from engramdb.ingest import normalize_for_hash
from engramdb.recognize.minhash import Signature
from engramdb.store.sqlite import NewMemory, SQLiteStore, store_error
from engramdb.store.validity import outgoing_links, put_fact_keys, restore_link
from engramdb.types import ImportResult, Supersession, Vector

__all__ = ["backup", "export_ids", "export_records", "import_file", "import_numbered"]

_PAGE = 256  # memories read per snapshot by an export
_BATCH_RECORDS = 512  # records written per transaction by an import
_BATCH_BYTES = 32 * 1024 * 1024  # ... or fewer, when they are large
_ATTEMPTS = 4

# -- export ----------------------------------------------------------------------------------


def export_records(
    store: SQLiteStore, embedder: Embedder, *, namespace: str | None, vectors: bool
) -> Iterator[dict[str, Any]]:
    """The header, then every memory (of ``namespace``; all with ``None``) in id order.

    Memories are read ``_PAGE`` at a time, each page in one read snapshot that ends before
    its records are yielded (a slow consumer holds no snapshot open).
    """
    model = embedder.model_id
    yield header(namespace=namespace, model=model, dim=embedder.dim, vectors=vectors)
    after = 0
    while True:
        try:
            with store.reading():
                ids = store.page_ids(namespace, after=after, limit=_PAGE)
                page = _page(store, model, ids, vectors)
        except sqlite3.Error as exc:
            raise store_error(exc, store.path, "exporting it") from exc
        if not ids:
            return
        yield from page
        after = ids[-1]


def export_ids(store: SQLiteStore, embedder: Embedder, ids: list[int]) -> list[dict[str, Any]]:
    """Export records, with vectors, of the memories among ``ids`` (in id order), read in
    one snapshot (no header)."""
    with store.reading():
        return _page(store, embedder.model_id, sorted(ids), True)


def _page(store: SQLiteStore, model: str, ids: list[int], vectors: bool) -> list[dict[str, Any]]:
    """Export records of ``ids``; call inside a read snapshot."""
    records = store.get_many(ids)
    seen = store.sighting_rows(ids)
    links = outgoing_links(store.conn, ids)
    cached = store.cached_embeddings(model, [r.hash for r in records]) if vectors else {}
    out = []
    for record in records:
        vector = cached.get(record.hash)
        out.append(
            memory_dict(
                record,
                seen.get(record.id, []),
                model if vector is not None else None,
                vector,
                [_link_row(link, target) for link, target in links.get(record.id, [])],
            )
        )
    return out


def _link_row(link: Supersession, new_hash: str | None) -> LinkRow:
    return LinkRow(
        new_hash=new_hash,
        kind=link.kind,
        origin=link.origin,
        at=link.at,
        recorded=link.recorded,
        undone=link.undone,
        detail=dict(link.detail),
    )


# -- import ----------------------------------------------------------------------------------


class _Retry(Exception):
    """A memory the batch was to merge into was forgotten meanwhile: prepare it again."""


@dataclass(slots=True)
class _Totals:
    records: int = 0
    added: int = 0
    merged: int = 0
    sightings: int = 0
    known_sightings: int = 0
    reused: int = 0
    embedded: int = 0

    def result(self) -> ImportResult:
        return ImportResult(
            records=self.records,
            added=self.added,
            merged=self.merged,
            sightings=self.sightings,
            known_sightings=self.known_sightings,
            reused=self.reused,
            embedded=self.embedded,
        )


@dataclass(slots=True)
class _New:
    """What a memory absent from the store needs before the transaction."""

    vector: Vector
    signature: Signature
    graph_index: int  # its passage in the batch's graph extraction
    inserted: int | None = None


@dataclass(slots=True)
class _Prepared:
    new: dict[tuple[str, str], _New] = field(default_factory=dict)
    graph: Prepared | None = None


def import_numbered(
    writer: Writer,
    numbered: Iterable[tuple[int, Any]],
    *,
    namespace: str | None,
    name: str | None,
    check_first: Iterable[tuple[int, Any]] | None = None,
    keep_ids: bool = False,
) -> ImportResult:
    """Check and write ``(line number, record)`` pairs, one transaction per batch.

    ``keep_ids``: a new memory gets the id it was exported with (a cluster moving memories
    between its shards); else the store's next id.

    With ``check_first`` (the same records, read again), every record is checked before
    the first write, so a malformed one anywhere leaves the store unchanged; without it a
    malformed record fails its batch (earlier batches stay written).

    Raises:
        IngestError: a malformed record, naming ``name`` (the file) and its line.
        StoreError: other writers kept forgetting the memories a batch merged into.
    """
    if namespace is not None:
        check_namespace(namespace)
    embedder = writer.embedder
    expect = Expect(namespace, embedder.model_id, embedder.dim, time.time())
    if check_first is not None:
        for _ in entries(check_first, expect, name):
            pass
    totals = _Totals()
    batch: list[Entry] = []
    size = 0
    linked: list[tuple[str, str, tuple[LinkRow, ...]]] = []
    for entry in entries(numbered, expect, name):
        batch.append(entry)
        size += entry.size
        if entry.links:
            linked.append((entry.namespace, entry.hash, entry.links))
        if len(batch) >= _BATCH_RECORDS or size >= _BATCH_BYTES:
            _write_batch(writer, batch, totals, keep_ids)
            batch, size = [], 0
    if batch:
        _write_batch(writer, batch, totals, keep_ids)
    if linked:
        writer.queue.run(functools.partial(_restore_links, writer.store, linked))
    return totals.result()


def _restore_links(
    store: SQLiteStore, linked: list[tuple[str, str, tuple[LinkRow, ...]]], known: dict[int, Any]
) -> int:
    """After an import's last batch: the links of its memories, by content hash (a link
    whose newer memory is not in the store keeps no target, as after forgetting it)."""
    added = 0
    for namespace, digest, rows in linked:
        old = store.find_hash(namespace, digest)
        if old is None:
            continue
        for row in rows:
            new = store.find_hash(namespace, row.new_hash) if row.new_hash else None
            link = Supersession(
                id=0,
                old=old,
                new=new,
                kind=row.kind,  # type: ignore[arg-type]
                origin=row.origin,  # type: ignore[arg-type]
                at=row.at,
                recorded=row.recorded,
                undone=row.undone,
                detail=row.detail,
            )
            added += restore_link(store.conn, link)
    return added


def _write_batch(writer: Writer, batch: list[Entry], totals: _Totals, keep_ids: bool) -> None:
    for _ in range(_ATTEMPTS):
        prepared, reused, embedded = _prepare(writer, batch)
        try:
            counts = writer.queue.run(functools.partial(_write, writer, batch, prepared, keep_ids))
        except _Retry:
            continue
        writer.dense.maintain()
        totals.records += len(batch)
        totals.reused += reused
        totals.embedded += embedded
        for key in ("added", "merged", "sightings", "known_sightings"):
            setattr(totals, key, getattr(totals, key) + counts[key])
        return
    raise StoreError(
        f"this import was overtaken by other writers {_ATTEMPTS} times (the memories it "
        "matched kept being forgotten); the batches before were written, try again"
    )


def _prepare(writer: Writer, batch: list[Entry]) -> tuple[_Prepared, int, int]:
    """Vectors, MinHash signatures and graph phrases of the batch's memories that the store
    lacks (slow: runs before the transaction). Returns ``(prepared, reused, embedded)``."""
    store = writer.store
    fresh: dict[tuple[str, str], Entry] = {}
    with store.reading():
        for entry in batch:
            key = (entry.namespace, entry.hash)
            if key not in fresh and store.find_hash(*key) is None:
                fresh[key] = entry
    entries = list(fresh.values())
    vectors, reused, embedded = _vectors(writer, entries)
    prepared = _Prepared()
    for index, (key, entry) in enumerate(fresh.items()):
        signature = writer.hasher.signatures([normalize_for_hash(entry.text)])[0][1]
        prepared.new[key] = _New(vectors[entry.hash], signature, index)
    if writer.graph is not None and entries:
        prepared.graph = writer.graph.prepare([e.text for e in entries])
    return prepared, reused, embedded


def _vectors(writer: Writer, entries: list[Entry]) -> tuple[dict[str, Vector], int, int]:
    """The entries' vectors by content hash: the store's cached one (so that the dense index
    and the cache agree), else the entry's own, else embedded.

    Returns:
        ``(vectors, reused, embedded)``: the vectors, how many came from the entries, and
        how many texts were embedded.
    """
    store, embedder = writer.store, writer.embedder
    with store.reading():
        found = store.cached_embeddings(embedder.model_id, list({e.hash for e in entries}))
    reused = 0
    todo: dict[str, str] = {}
    for entry in entries:
        if entry.hash in found:
            continue
        if entry.vector is not None:
            found[entry.hash] = entry.vector
            reused += 1
        else:
            todo.setdefault(entry.hash, entry.text)
    hashes = list(todo)
    step = max(writer.config.embed.batch_size * 8, 64)
    for start in range(0, len(hashes), step):
        part = hashes[start : start + step]
        found.update(zip(part, embedder.embed_documents([todo[h] for h in part]), strict=True))
    return found, reused, len(hashes)


def _write(
    writer: Writer, batch: list[Entry], prepared: _Prepared, keep_ids: bool, known: dict[int, Any]
) -> dict[str, int]:
    """The commit step of one batch, inside the (shared) write transaction.

    Raises:
        _Retry: a memory the batch was to merge into was forgotten since :func:`_prepare`.
    """
    store = writer.store
    counts = dict.fromkeys(("added", "merged", "sightings", "known_sightings"), 0)
    for entry in batch:
        key = (entry.namespace, entry.hash)
        memory_id = store.find_hash(*key)
        merging = memory_id is not None
        if memory_id is None:
            new = prepared.new.get(key)
            if new is None:
                raise _Retry
            memory_id = new.inserted = _insert(store, entry, new, keep_ids)
            known[memory_id] = new.vector
        counts["merged" if merging else "added"] += 1
        for row in entry.sightings:
            kind = "exact" if merging and row.kind == "origin" else row.kind
            added = store.add_sighting(
                memory_id, row.sighting, kind=kind, score=row.score, now=row.seen_time
            )
            counts["sightings" if added else "known_sightings"] += 1
    inserted = [(key, new) for key, new in prepared.new.items() if new.inserted is not None]
    if inserted:
        store.put_embeddings(
            writer.embedder.model_id,
            [key[1] for key, _ in inserted],
            np.stack([new.vector for _, new in inserted]),
            replace=False,
        )
    graph = prepared.graph
    if graph is not None and writer.graph is not None and inserted:
        part = Prepared(
            extractions=tuple(graph.extractions[new.graph_index] for _, new in inserted),
            vectors=graph.vectors,
        )
        writer.graph.write([new.inserted for _, new in inserted if new.inserted], part)
    return counts


def _insert(store: SQLiteStore, entry: Entry, new: _New, keep_ids: bool) -> int:
    memory = NewMemory(
        namespace=entry.namespace,
        text=entry.text,
        hash=entry.hash,
        sighting=entry.origin,
        meta=entry.meta,
    )
    given = entry.id if keep_ids else None
    memory_id = store.insert_memory_row(memory, ingest_time=entry.ingest_time, memory_id=given)
    store.put_bands(memory_id, new.signature.bands, new.signature.to_bytes())
    put_fact_keys(store.conn, memory_id, entry.namespace, keys_of(entry.text, entry.meta))
    return memory_id


def import_file(
    writer: Writer, source: str | os.PathLike[str] | IO[bytes], *, namespace: str | None
) -> ImportResult:
    """Import a JSON Lines file (checked in full first) or a binary stream (checked batch
    by batch, as it is read once).

    Raises:
        IngestError: the file cannot be read, or a line is malformed (naming it).
    """
    if not isinstance(source, str | os.PathLike):
        name = str(getattr(source, "name", "<stream>"))
        return import_numbered(writer, read_jsonl(source, name), namespace=namespace, name=name)
    path = Path(source).expanduser()
    name = str(source)
    try:
        first, second = path.open("rb"), path.open("rb")
    except OSError as exc:
        raise IngestError(f"cannot read it: {exc.strerror or exc}", path=name) from None
    with first, second:
        return import_numbered(
            writer,
            read_jsonl(second, name),
            namespace=namespace,
            name=name,
            check_first=read_jsonl(first, name),
        )


# -- backup ----------------------------------------------------------------------------------


def backup(store: SQLiteStore, dest: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Copy the store to ``dest`` through a temporary file beside it, renamed into place.

    Raises:
        InvalidInputError: ``dest`` is the store itself, a folder, in a missing folder, or
            exists (without ``overwrite``, or with a ``-wal`` file: a store in use).
        CorruptStoreError: the copy fails its integrity check (nothing is left behind).
        StoreError: the copy could not be written.
    """
    target = Path(dest).expanduser()
    _check_target(store, target, overwrite=overwrite)
    tmp = target.with_name(f".{target.name}.backup-{uuid.uuid4().hex[:12]}")
    try:
        store.backup_to(tmp)
        _fsync(tmp)
        _place(tmp, target, overwrite=overwrite)
        _fsync(target.parent)
    except OSError as exc:
        raise StoreError(f"cannot write the backup {target}: {exc}") from exc
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            leftover.unlink(missing_ok=True)
    return target


def _check_target(store: SQLiteStore, target: Path, *, overwrite: bool) -> None:
    if not store.memory:
        source = Path(store.path).resolve()
        names = {source, Path(f"{source}-wal"), Path(f"{source}-shm")}
        if target.resolve() in names or (target.exists() and os.path.samefile(target, source)):
            raise InvalidInputError(f"cannot back up {store.path} onto itself ({target})")
    if target.is_dir():
        raise InvalidInputError(f"cannot back up to {target}: it is a folder; give a file path")
    if not target.parent.is_dir():
        raise InvalidInputError(f"cannot back up to {target}: no folder {target.parent}")
    if target.exists() and not overwrite:
        raise InvalidInputError(
            f"{target} exists; pass overwrite=True (engram backup --overwrite) to replace it"
        )
    if Path(f"{target}-wal").exists():
        raise InvalidInputError(
            f"{target} looks in use (it has a -wal file): close what has it open first"
        )


def _place(tmp: Path, target: Path, *, overwrite: bool) -> None:
    """Move the finished copy into place atomically (never over a file, unless ``overwrite``)."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target appeared meanwhile
    except FileExistsError:
        raise InvalidInputError(
            f"{target} exists; pass overwrite=True (engram backup --overwrite) to replace it"
        ) from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise
        os.replace(tmp, target)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
