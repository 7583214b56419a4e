"""An embedder backed by an OpenAI-compatible ``/v1/embeddings`` endpoint (``remote`` extra)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from engramdb._http import JSONEndpoint, endpoint_url
from engramdb.embed._texts import check_texts
from engramdb.errors import ConfigError, ModelError
from engramdb.types import Matrix

if TYPE_CHECKING:
    import httpx

    from engramdb.config import EmbedConfig

__all__ = ["HTTPEmbedder"]

logger = logging.getLogger(__name__)

_PROBE_TEXT = "dimension probe"


def _parse_vectors(body: Any, expected: int) -> Matrix:
    """Turn an OpenAI-style response body into an ``(expected, d)`` float32 matrix.

    Raises:
        ValueError: the body does not have that shape.
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        got = len(data) if isinstance(data, list) else "no"
        raise ValueError(f"expected a 'data' list of {expected} items, got {got}")
    if not all(isinstance(item, dict) and "embedding" in item for item in data):
        raise ValueError("every item of 'data' must be an object with an 'embedding'")
    if all(isinstance(item.get("index"), int) for item in data):
        data = sorted(data, key=lambda item: int(item["index"]))
    try:
        matrix = np.array([item["embedding"] for item in data], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"embeddings are not equal-length lists of numbers ({exc})") from exc
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError("embeddings are not equal-length, non-empty lists of numbers")
    if not np.isfinite(matrix).all():
        raise ValueError("embeddings contain NaN or infinity")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("an embedding is all zeros")
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


class HTTPEmbedder:
    """Embeds through an OpenAI-compatible ``POST /v1/embeddings`` endpoint.

    Texts are sent in batches of ``batch_size``; vectors are L2-normalised here whatever the
    server returns. The dimension is learned from the first response (reading :attr:`dim`
    before any call sends one probe request). Empty strings are sent as a single space,
    because OpenAI's endpoint rejects empty inputs.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Create the client (no request is sent yet).

        Args:
            url: the server root, its ``/v1`` base, or the full ``/v1/embeddings`` URL.
            model: the model name sent with each request.
            api_key: sent as a bearer token when given.
            batch_size: texts per request.
            timeout: seconds per request.
            transport: an httpx transport, e.g. ``httpx.MockTransport`` in tests.

        Raises:
            MissingDependencyError: httpx is not installed (``pip install "engramdb[remote]"``).
            ConfigError: an empty url or model, ``batch_size < 1`` or ``timeout <= 0``.
        """
        if not url or not model or batch_size < 1 or timeout <= 0:
            raise ConfigError(
                "HTTPEmbedder needs a url, a model, batch_size >= 1 and timeout > 0; got "
                f"url={url!r}, model={model!r}, batch_size={batch_size}, timeout={timeout}"
            )
        self.url = endpoint_url(url, "embeddings")
        self.model = model
        self.batch_size = batch_size
        self.timeout = timeout
        self.model_id = f"http:{model}@{self.url}"
        self._endpoint = JSONEndpoint(
            self.url,
            label=f"embedding endpoint {self.url}",
            api_key=api_key,
            timeout=timeout,
            transport=transport,
        )
        self._dim: int | None = None

    @classmethod
    def from_config(
        cls, config: EmbedConfig, *, transport: httpx.BaseTransport | None = None
    ) -> HTTPEmbedder:
        """Build from an :class:`~engramdb.config.EmbedConfig`; the key comes from the env.

        Raises:
            ConfigError: ``url`` or ``remote_model`` is not set.
            MissingDependencyError: httpx is not installed.
        """
        if not config.url or not config.remote_model:
            raise ConfigError("embed.url and embed.remote_model are required for model='http'")
        return cls(
            config.url,
            model=config.remote_model,
            api_key=os.environ.get(config.api_key_env) or None,
            batch_size=config.batch_size,
            transport=transport,
        )

    @property
    def dim(self) -> int:
        """The vector dimension; sends one probe request if no call has been made yet.

        Raises:
            ModelError: the probe request failed.
        """
        if self._dim is None:
            self._dim = int(self._post([_PROBE_TEXT]).shape[1])
        return self._dim

    @dim.setter
    def dim(self, value: int) -> None:
        self._dim = value

    def embed_documents(self, texts: Sequence[str]) -> Matrix:
        """Embed texts; returns ``(len(texts), dim)`` float32 unit rows in input order.

        Raises:
            InvalidInputError: ``texts`` is a str or holds a non-str or invalid-Unicode item.
            ModelError: an HTTP error status, a timeout, a network error, a malformed
                response, or a dimension that differs from earlier responses.
        """
        check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        parts = [
            self._post([t or " " for t in texts[i : i + self.batch_size]])
            for i in range(0, len(texts), self.batch_size)
        ]
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> Matrix:
        """Embed queries (the same request as documents).

        Raises:
            InvalidInputError: ``texts`` is a str or holds a non-str or invalid-Unicode item.
            ModelError: see :meth:`embed_documents`.
        """
        return self.embed_documents(texts)

    def _post(self, batch: list[str]) -> Matrix:
        response = self._endpoint.post({"model": self.model, "input": batch})
        try:
            vectors = _parse_vectors(response.json(), len(batch))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise ModelError(
                f"embedding endpoint {self.url} returned a malformed response: {exc}"
            ) from exc
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise ModelError(
                f"embedding endpoint {self.url} returned {vectors.shape[1]}-d vectors, "
                f"expected {self._dim}-d"
            )
        self._dim = int(vectors.shape[1])
        return vectors

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._endpoint.close()

    def __enter__(self) -> HTTPEmbedder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
