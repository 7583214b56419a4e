"""Shared fixtures: fast in-memory stores with the deterministic hash embedder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from engramdb import Memory

settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

HASH = {"model": "hash", "dim": 64}


@pytest.fixture
def memory() -> Iterator[Memory]:
    """A fully wired in-memory Memory with the hash embedder."""
    with Memory.open(":memory:", embed=HASH) as mem:
        yield mem


@pytest.fixture
def hash_config(tmp_path: Path) -> Path:
    """A TOML config file choosing the 64-d hash embedder (for CLI tests)."""
    config = tmp_path / "engramdb.toml"
    config.write_text('[embed]\nmodel = "hash"\ndim = 64\n', encoding="utf-8")
    return config


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A store file path under tmp_path."""
    return tmp_path / "store.db"


@pytest.fixture
def open_memory(db_path: Path) -> Iterator[object]:
    """Open Memories on ``db_path`` (hash embedder); all are closed at teardown."""
    opened: list[Memory] = []

    def _open(path: Path | str = db_path, **kwargs: object) -> Memory:
        mem = Memory.open(path, embed=HASH, **kwargs)  # type: ignore[arg-type]
        opened.append(mem)
        return mem

    yield _open
    for mem in opened:
        mem.close()
