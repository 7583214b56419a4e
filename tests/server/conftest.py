"""Fixtures for the REST server: a service on a store file with the hash embedder, the app
in-process (TestClient, lifespan on) and keys for several callers.

The tests need the ``server`` extra; without it they are not collected.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _server_support import HASH, bearer

from engramdb.service import MemoryService

if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[MemoryService]:
    """A service on a fresh store file (no keys: every request has every namespace)."""
    with MemoryService.open(tmp_path / "store.db", embed=HASH) as svc:
        yield svc


@pytest.fixture
def make_client(service: MemoryService) -> Iterator[Callable[..., Any]]:
    """Open TestClients on ``service`` (lifespan on); all are closed at teardown."""
    from fastapi.testclient import TestClient

    from engramdb.server import ServerSettings, create_app

    opened: list[TestClient] = []

    def _make(settings: ServerSettings | None = None, **kwargs: Any) -> TestClient:
        kwargs.setdefault("base_url", "http://127.0.0.1")  # a loopback Host, as a local client
        client = TestClient(create_app(service, settings), **kwargs)
        client.__enter__()
        opened.append(client)
        return client

    yield _make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    """The app over ``service`` with default settings."""
    return make_client()


@dataclass(frozen=True)
class Keys:
    """Headers of each caller: ``alice`` (alice + shared), ``bob`` (bob), ``reader``
    (shared, read-only), ``revoked`` (a revoked key) and ``bad`` (an unknown key)."""

    alice: dict[str, str]
    bob: dict[str, str]
    reader: dict[str, str]
    revoked: dict[str, str]
    bad: dict[str, str]


@pytest.fixture
def keys(service: MemoryService) -> Keys:
    """Keys in the store: from now on every /v1 request needs one."""
    ring = service.keys
    gone = ring.add("gone", ["alice"]).key
    ring.revoke("gone")
    return Keys(
        alice=bearer(ring.add("alice", ["alice", "shared"]).key),
        bob=bearer(ring.add("bob", ["bob"]).key),
        reader=bearer(ring.add("reader", ["shared"], read_only=True).key),
        revoked=bearer(gone),
        bad=bearer("egm_" + "x" * 43),
    )
