"""Fixtures for the MCP tests: a hash-embedder service and its HTTP endpoint.

The tests need the ``server`` extra (the ``mcp`` SDK); without it they are not collected.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb.service import MemoryService

# "mcp.server", not "mcp": with tests/ on sys.path, this folder would pass for a package "mcp".
if importlib.util.find_spec("mcp.server") is None:
    collect_ignore_glob = ["*.py"]

HASH = {"model": "hash", "dim": 64}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[MemoryService]:
    with MemoryService.open(tmp_path / "memory.db", embed=HASH) as svc:
        yield svc


@pytest.fixture
def mcp_url(service: MemoryService) -> Iterator[str]:
    """The MCP endpoint of ``service``, routed at /mcp in a minimal Starlette app."""
    from _mcp_support import http_app, serving

    with serving(http_app(service)) as base:
        yield f"{base}/mcp"
