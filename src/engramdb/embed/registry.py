"""Build the configured embedder: ``EmbedConfig.model`` name -> backend."""

from __future__ import annotations

from engramdb.config import EMBEDDERS, EmbedConfig
from engramdb.embed.base import Embedder
from engramdb.errors import ConfigError

__all__ = ["EMBEDDERS", "create_embedder"]

"""The names ``EmbedConfig.model`` accepts."""


def create_embedder(config: EmbedConfig) -> Embedder:
    """Create the embedder ``config.model`` names; heavy imports happen only here.

    Args:
        config: ``"minilm-int8"`` (the default model), ``"hash"`` (``HashEmbedder(config.dim)``,
            tests only) or ``"http"`` (``HTTPEmbedder``, the ``remote`` extra).

    Raises:
        ConfigError: an unknown model name, or ``"http"`` without url or remote_model.
        ModelError: the default model file is missing or corrupt.
        MissingDependencyError: ``"http"`` without httpx installed.
    """
    if config.model == "minilm-int8":
        from engramdb.embed.onnx import MiniLMEmbedder

        return MiniLMEmbedder.from_config(config)
    if config.model == "hash":
        from engramdb.embed.hashing import HashEmbedder

        return HashEmbedder(config.dim)
    if config.model == "http":
        from engramdb.embed.http import HTTPEmbedder

        return HTTPEmbedder.from_config(config)
    raise ConfigError(
        f"unknown embedder {config.model!r}; valid: {', '.join(repr(n) for n in EMBEDDERS)}"
    )
