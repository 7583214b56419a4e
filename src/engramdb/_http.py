"""OpenAI-compatible HTTP endpoints (embeddings, chat completions): one client, JSON posts.

The remote embedder, the LLM OpenIE extractor and the LLM reranker all talk to such a
server; this module holds what they share: the URL forms accepted, the client with its
bearer key, and the mapping of transport and HTTP failures to :class:`ModelError`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from engramdb._optional import require
from engramdb.errors import ModelError

if TYPE_CHECKING:
    import httpx

__all__ = ["JSONEndpoint", "endpoint_url", "error_message"]


def endpoint_url(url: str, path: str) -> str:
    """The full URL of ``path`` (e.g. ``"embeddings"``) from a server root, a ``.../v1``
    base or the full URL itself."""
    url = url.rstrip("/")
    if url.endswith(f"/{path}"):
        return url
    if url.endswith("/v1"):
        return f"{url}/{path}"
    return f"{url}/v1/{path}"


def error_message(response: httpx.Response) -> str:
    """The server's own words for a failed request (OpenAI's ``error.message`` when given)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return json.dumps(body)[:300]


class JSONEndpoint:
    """One endpoint: POST JSON, get the response back or a :class:`ModelError`.

    Args:
        url: the full endpoint URL.
        label: how errors name it (e.g. ``"embedding endpoint <url>"``).
        api_key: sent as a bearer token when given.
        timeout: seconds per request.
        transport: an httpx transport, e.g. ``httpx.MockTransport`` in tests.

    Raises:
        MissingDependencyError: httpx is not installed (``pip install "engramdb[remote]"``).
    """

    def __init__(
        self,
        url: str,
        *,
        label: str,
        api_key: str | None,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._httpx = require("httpx", extra="remote")
        self.url, self.label, self.timeout = url, label, timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.Client = self._httpx.Client(
            headers=headers, timeout=timeout, transport=transport
        )

    def post(self, payload: dict[str, Any]) -> httpx.Response:
        """POST ``payload``; the response when its status is below 400.

        An HTTP error names the server's own message, with a key hint on 401/403.

        Raises:
            ModelError: a timeout, an unreachable server or an HTTP error status.
        """
        try:
            response = self._client.post(self.url, json=payload)
        except self._httpx.TimeoutException as exc:
            raise ModelError(f"{self.label} timed out after {self.timeout}s") from exc
        except self._httpx.HTTPError as exc:
            raise ModelError(f"cannot reach {self.label}: {exc}") from exc
        if response.status_code >= 400:
            hint = " (check the API key)" if response.status_code in (401, 403) else ""
            raise ModelError(
                f"{self.label} returned HTTP {response.status_code}: "
                f"{error_message(response)}{hint}"
            )
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
