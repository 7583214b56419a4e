"""HTTPEmbedder against httpx.MockTransport: batching, auth, parsing and every error path."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from engramdb.config import EmbedConfig
from engramdb.errors import ConfigError, InvalidInputError, ModelError

httpx = pytest.importorskip("httpx")

from engramdb._http import endpoint_url  # noqa: E402
from engramdb.embed import HTTPEmbedder  # noqa: E402

Handler = Callable[[Any], Any]


def _vectors_for(texts: list[str], dim: int = 3) -> list[list[float]]:
    # Not unit length on purpose: the client must normalise.
    return [
        [float(len(t)) + 1.0, 2.0, float(i)][:dim] + [0.5] * (dim - 3) for i, t in enumerate(texts)
    ]


def _ok(requests: list[Any], dim: int = 3) -> Handler:
    def handler(request: Any) -> Any:
        requests.append(request)
        body = json.loads(request.content)
        data = [
            {"index": i, "embedding": v} for i, v in enumerate(_vectors_for(body["input"], dim))
        ]
        return httpx.Response(200, json={"data": data})

    return handler


def _client(handler: Handler, **kwargs: Any) -> HTTPEmbedder:
    kwargs.setdefault("model", "text-embed")
    return HTTPEmbedder("http://embed.test/v1", transport=httpx.MockTransport(handler), **kwargs)


def test_batches_payload_and_normalisation() -> None:
    requests: list[Any] = []
    emb = _client(_ok(requests), batch_size=2)
    out = emb.embed_documents(["a", "bb", "ccc", "", "eeeee"])
    assert [json.loads(r.content)["input"] for r in requests] == [
        ["a", "bb"],
        ["ccc", " "],
        ["eeeee"],
    ]
    assert all(json.loads(r.content)["model"] == "text-embed" for r in requests)
    assert all(str(r.url) == "http://embed.test/v1/embeddings" for r in requests)
    assert out.shape == (5, 3) and out.dtype == np.float32
    raw = np.array(
        [[2.0, 2.0, 0.0], [3.0, 2.0, 1.0], [4.0, 2.0, 0.0], [2.0, 2.0, 1.0], [6.0, 2.0, 0.0]]
    )
    np.testing.assert_allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6)
    assert emb.dim == 3 and len(requests) == 3  # dim learned from the responses


def test_items_are_reordered_by_index() -> None:
    def handler(request: Any) -> Any:
        body = json.loads(request.content)
        data = [{"index": i, "embedding": v} for i, v in enumerate(_vectors_for(body["input"]))]
        return httpx.Response(200, json={"data": data[::-1]})

    requests: list[Any] = []
    expected = _client(_ok(requests)).embed_documents(["x", "yyyy"])
    np.testing.assert_allclose(_client(handler).embed_documents(["x", "yyyy"]), expected)


def test_dim_probe_sends_one_request() -> None:
    requests: list[Any] = []
    emb = _client(_ok(requests, dim=5))
    assert emb.dim == 5 and emb.dim == 5
    assert len(requests) == 1
    assert emb.embed_documents([]).shape == (0, 5)
    assert len(requests) == 1


def test_bearer_token_only_when_given() -> None:
    seen: list[Any] = []
    _client(_ok(seen), api_key="sk-test").embed_documents(["a"])
    _client(_ok(seen)).embed_documents(["a"])
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    assert "authorization" not in seen[1].headers


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://h:8080", "http://h:8080/v1/embeddings"),
        ("http://h:8080/", "http://h:8080/v1/embeddings"),
        ("http://h/v1", "http://h/v1/embeddings"),
        ("https://h/api/v1/embeddings", "https://h/api/v1/embeddings"),
    ],
)
def test_endpoint_forms(url: str, endpoint: str) -> None:
    assert endpoint_url(url, "embeddings") == endpoint
    chat = endpoint.removesuffix("embeddings") + "chat/completions"
    assert endpoint_url(url.replace("embeddings", "chat/completions"), "chat/completions") == chat


def test_http_error_status_and_message() -> None:
    def handler(request: Any) -> Any:
        return httpx.Response(500, json={"error": {"message": "model overloaded"}})

    with pytest.raises(ModelError, match=r"HTTP 500: model overloaded"):
        _client(handler).embed_documents(["a"])


def test_auth_error_hints_at_the_key() -> None:
    def handler(request: Any) -> Any:
        return httpx.Response(401, text="unauthorized")

    with pytest.raises(ModelError, match=r"HTTP 401: unauthorized \(check the API key\)"):
        _client(handler).embed_documents(["a"])


def test_timeout() -> None:
    def handler(request: Any) -> Any:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ModelError, match="timed out after 2.5s"):
        _client(handler, timeout=2.5).embed_documents(["a"])


def test_connection_error() -> None:
    def handler(request: Any) -> Any:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ModelError, match="cannot reach"):
        _client(handler).embed_documents(["a"])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>not json</html>", "malformed"),
        (b'{"data": "nope"}', "'data' list"),
        (b'{"data": [{"index": 0, "embedding": [1, 0]}, {"index": 1, "embedding": [1, 0]}]}',
         "of 1 items, got 2"),
        (b'{"data": [{"index": 0}]}', "'embedding'"),
        (b'{"data": [{"index": 0, "embedding": ["x", "y"]}]}', "numbers"),
        (b'{"data": [{"index": 0, "embedding": []}]}', "non-empty"),
        (b'{"data": [{"index": 0, "embedding": [0.0, 0.0]}]}', "all zeros"),
        (b"[1, 2]", "'data' list"),
    ],
)  # fmt: skip
def test_malformed_responses(body: bytes, fragment: str) -> None:
    def handler(request: Any) -> Any:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    with pytest.raises(ModelError, match="malformed") as info:
        _client(handler).embed_documents(["a"])
    assert fragment in str(info.value)


def test_dimension_change_between_batches() -> None:
    calls = [0]

    def handler(request: Any) -> Any:
        calls[0] += 1
        dim = 3 if calls[0] == 1 else 4
        n = len(json.loads(request.content)["input"])
        data = [{"index": i, "embedding": [1.0] * dim} for i in range(n)]
        return httpx.Response(200, json={"data": data})

    with pytest.raises(ModelError, match="returned 4-d vectors, expected 3-d"):
        _client(handler, batch_size=1).embed_documents(["a", "b"])


def test_rejects_non_strings_without_a_request() -> None:
    requests: list[Any] = []
    with pytest.raises(InvalidInputError, match=r"texts\[1\]"):
        _client(_ok(requests)).embed_documents(["a", 1])  # type: ignore[list-item]
    assert requests == []


@pytest.mark.parametrize("kwargs", [{"model": ""}, {"batch_size": 0}, {"timeout": 0.0}])
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _client(_ok([]), **kwargs)


def test_from_config_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_TEST_KEY", "sk-env")
    seen: list[Any] = []
    config = EmbedConfig(
        model="http", url="http://embed.test", remote_model="m", api_key_env="ENGRAM_TEST_KEY",
        batch_size=7,
    )  # fmt: skip
    with HTTPEmbedder.from_config(config, transport=httpx.MockTransport(_ok(seen))) as emb:
        emb.embed_documents(["a"])
        assert emb.batch_size == 7
        assert emb.model_id == "http:m@http://embed.test/v1/embeddings"
    assert seen[0].headers["authorization"] == "Bearer sk-env"


def test_from_config_needs_a_remote_model() -> None:
    with pytest.raises(ConfigError, match="remote_model"):
        HTTPEmbedder.from_config(EmbedConfig(model="http", url="http://embed.test"))
