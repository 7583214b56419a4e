"""A missing optional dependency gives MissingDependencyError naming the extra."""

from __future__ import annotations

import sys

import pytest

from engramdb import EmbedConfig, MissingDependencyError
from engramdb._optional import require
from engramdb.embed import create_embedder


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError, match=r"engramdb\[remote\]") as info:
        require("httpx", extra="remote")
    assert info.value.extra == "remote" and isinstance(info.value, ImportError)


def test_http_embedder_without_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError, match="remote"):
        create_embedder(EmbedConfig(model="http", url="http://127.0.0.1:9/v1", remote_model="m"))
