"""Embedders: text -> unit-length float32 vectors.

``MiniLMEmbedder`` is the default (a real model); ``HashEmbedder`` is for fast tests only;
``HTTPEmbedder`` calls an OpenAI-compatible endpoint (``remote`` extra). Importing this package
loads neither onnxruntime, tokenizers nor httpx: each backend imports its runtime when built.
"""

from __future__ import annotations

from engramdb.embed.base import Embedder
from engramdb.embed.hashing import HashEmbedder
from engramdb.embed.http import HTTPEmbedder
from engramdb.embed.onnx import MODEL_SHA256, MiniLMEmbedder, verify_model
from engramdb.embed.registry import EMBEDDERS, create_embedder

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "HTTPEmbedder",
    "HashEmbedder",
    "MODEL_SHA256",
    "MiniLMEmbedder",
    "create_embedder",
    "verify_model",
]
