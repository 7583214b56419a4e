"""create_embedder and the embed package's public surface."""

from __future__ import annotations

import pytest

import engramdb.embed
from engramdb.config import EmbedConfig
from engramdb.embed import EMBEDDERS, Embedder, HashEmbedder, create_embedder
from engramdb.errors import ConfigError


def test_all_is_sorted_and_importable() -> None:
    names = engramdb.embed.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(engramdb.embed, name)


def test_hash() -> None:
    emb = create_embedder(EmbedConfig(model="hash", dim=24))
    assert isinstance(emb, HashEmbedder) and emb.dim == 24
    assert isinstance(emb, Embedder)


def test_http(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("httpx")
    from engramdb.embed import HTTPEmbedder

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    emb = create_embedder(EmbedConfig(model="http", url="http://embed.test", remote_model="m"))
    assert isinstance(emb, HTTPEmbedder)
    assert emb.url == "http://embed.test/v1/embeddings"
    emb.close()


@pytest.mark.model
def test_default_is_the_real_model() -> None:
    from engramdb.embed import MiniLMEmbedder

    emb = create_embedder(EmbedConfig())
    assert isinstance(emb, MiniLMEmbedder) and emb.dim == 384


def test_every_config_name_is_registered() -> None:
    assert set(EMBEDDERS) == {"minilm-int8", "hash", "http"}


def test_unknown_name() -> None:
    config = EmbedConfig(model="hash")
    object.__setattr__(config, "model", "word2vec")  # bypass validation to reach the registry
    with pytest.raises(ConfigError, match="unknown embedder 'word2vec'"):
        create_embedder(config)
