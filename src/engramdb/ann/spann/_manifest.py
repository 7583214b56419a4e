"""The index folder's manifest and in-memory arrays, committed atomically.

Layout of an index folder::

    manifest.json          format, version, counts, store_version, config, calibration, files
    vectors.f32            posting rows (see _postings)
    entries.i64
    state.g<N>.npz         the in-memory arrays of checkpoint N (heads, directory, id maps)
    heads.g<N>.hnsw        the head graph, when one is used
    wal.g<N>.log           the commits since checkpoint N (see _wal)

A checkpoint writes the generation's arrays under a new name, fsyncs it and the posting
files, then replaces ``manifest.json`` (write, fsync, ``os.replace``, fsync the folder). The
manifest names every file of the checkpoint with its size and CRC-32, so a reader either sees
a complete checkpoint or raises :class:`IndexFormatError`; the log after it is checked record
by record. :func:`read_manifest` reports the state after the last committed record.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engramdb.ann.spann._wal import last_commit, log_name
from engramdb.errors import IndexFormatError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "commit",
    "load_arrays",
    "read_checkpoint",
    "read_manifest",
]

FORMAT = "engramdb.spann"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"


def _crc(path: Path) -> int:
    crc = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_npz(path: Path, arrays: dict[str, npt.NDArray[Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def commit(
    folder: Path,
    manifest: dict[str, Any],
    arrays: dict[str, npt.NDArray[Any]],
    extra: tuple[str, ...] = (),
    keep: tuple[str, ...] = (),
) -> None:
    """Write ``arrays`` as generation ``manifest["generation"]`` and publish the manifest.

    Args:
        folder: the index folder (posting files already synced by the caller).
        manifest: the manifest without its ``files`` entry.
        arrays: name → array, written together as ``state.g<N>.npz``.
        extra: other files of this generation, already written and synced (the head graph);
            they are checksummed into the manifest too.
        keep: files of older generations to keep (the log a lagging reader may still
            follow); the others are removed once the manifest is published.
    """
    gen = int(manifest["generation"])
    path = folder / f"state.g{gen}.npz"
    _write_npz(path, arrays)
    files: dict[str, dict[str, int]] = {
        path.name: {"size": path.stat().st_size, "crc32": _crc(path)}
    }
    for name in extra:
        files[name] = {"size": (folder / name).stat().st_size, "crc32": _crc(folder / name)}
    body = dict(manifest, files=files)
    tmp = folder / (MANIFEST + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(body, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MANIFEST)
    _fsync_dir(folder)
    for old in folder.glob("*.g*.*"):
        if old.name not in files and old.name not in keep:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of the index at ``folder`` as of its last commit (cheap: reads no arrays;
    ``generation``, ``store_version``, ``count``, ``vids`` and ``end`` come from the last
    whole log record when there is one, ``checkpoint`` names the checkpoint under it; opening
    the index also checks the posting rows of the records, see :mod:`._wal`).

    Raises:
        IndexFormatError: no readable manifest, or another format or version.
    """
    manifest = read_checkpoint(folder)
    gen = int(manifest["generation"])
    last = last_commit(Path(folder) / log_name(gen), after=gen)
    return manifest if last is None else dict(manifest, **last)


def read_checkpoint(folder: str | Path) -> dict[str, Any]:
    """The manifest of the last checkpoint of the index at ``folder`` (``generation`` is the
    checkpoint's).

    Raises:
        IndexFormatError: no readable manifest, or another format or version.
    """
    root = Path(folder)
    try:
        manifest: dict[str, Any] = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"cannot read the SPANN manifest in {root}: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"{root} holds {manifest.get('format')!r} v{manifest.get('format_version')}, "
            f"expected {FORMAT!r} v{FORMAT_VERSION}; rebuild the index"
        )
    manifest.setdefault("checkpoint", manifest.get("generation"))
    return manifest


def load_arrays(folder: Path, manifest: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Check every file the manifest names and load the arrays ``names`` of its generation.

    Raises:
        IndexFormatError: a file is missing, has another size or CRC-32 (torn or corrupt).
    """
    files: dict[str, dict[str, int]] = manifest.get("files", {})
    for fname, meta in files.items():
        path = folder / fname
        try:
            ok = path.stat().st_size == meta["size"] and _crc(path) == meta["crc32"]
        except OSError as exc:
            raise IndexFormatError(f"{path} is missing ({exc}); rebuild the index") from exc
        if not ok:
            raise IndexFormatError(f"{path} does not match its checksum; the index is corrupt")
    path = folder / f"state.g{manifest['generation']}.npz"
    if path.name not in files:
        raise IndexFormatError(f"the manifest in {folder} does not list {path.name}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in names}
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFormatError(f"cannot read {path}: {exc}") from exc
