"""Where a store's SPANN index lives, its settings, and the lock that guards the folder."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engramdb.ann.spann import SpannConfig, read_manifest
from engramdb.config import AnnConfig
from engramdb.errors import ConfigError, IndexFormatError

__all__ = [
    "SUFFIX",
    "folder_lock",
    "manifest_summary",
    "spann_config",
    "spann_folder",
    "sweep_leftovers",
]

SUFFIX = ".spann"
_LAYOUT = ".v2"  # folders whose store_version is a change-log position


def spann_config(config: AnnConfig) -> SpannConfig:
    """The :class:`SpannConfig` of ``config.spann``.

    Raises:
        ConfigError: an unknown setting or a bad value.
    """
    names = [f.name for f in dataclasses.fields(SpannConfig)]
    unknown = sorted(set(config.spann) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in [ann.spann]: {', '.join(unknown)}; valid: {', '.join(names)}"
        )
    try:
        return SpannConfig(**dict(config.spann))
    except TypeError as exc:
        raise ConfigError(f"bad value in [ann.spann]: {exc}") from exc


def spann_folder(store_path: str, model_id: str) -> Path | None:
    """Where the SPANN index of ``store_path`` for ``model_id`` lives (``None`` in memory)."""
    if store_path in ("", ":memory:"):
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("._")[:64] or "model"
    digest = hashlib.blake2b(model_id.encode("utf-8"), digest_size=4).hexdigest()
    return Path(store_path + SUFFIX) / f"{slug}-{digest}{_LAYOUT}"


@contextmanager
def folder_lock(parent: Path, *, exclusive: bool) -> Iterator[None]:
    """An advisory lock on the SPANN folders of one store, across processes."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        if exclusive:
            raise
        fd = -1  # a read-only place: nobody can be writing there
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def sweep_leftovers(parent: Path) -> int:
    """Remove what killed builds and swaps left in ``parent`` (``.<name>.tmp-*``,
    ``.<name>.old-*``), when no process holds the folder lock (never waits for it).
    Returns how many were removed."""
    if not parent.is_dir():
        return 0
    try:
        fd = os.open(parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return 0
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a build or fold is running: its folders are not leftovers
            return 0
        gone = 0
        for entry in parent.iterdir():
            if entry.name.startswith(".") and (".tmp-" in entry.name or ".old-" in entry.name):
                shutil.rmtree(entry, ignore_errors=True)
                gone += 1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return gone
    finally:
        os.close(fd)


def manifest_summary(path: Path) -> dict[str, Any]:
    """A SPANN folder's manifest in brief (for a store using the flat index)."""
    try:
        manifest = read_manifest(path)
    except IndexFormatError as exc:
        return {"path": str(path), "error": str(exc)}
    return {
        "path": str(path),
        "count": manifest.get("count"),
        "store_version": manifest.get("store_version"),
    }
