"""One contract, every embedder: shapes, dtype, unit rows, determinism, order, edge cases."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from engramdb.embed import Embedder, HashEmbedder
from engramdb.errors import InvalidInputError

# Deliberately unsorted lengths, a duplicate, an empty string, non-ASCII and a long text, so
# that length sorting, padding and batching all happen.
TEXTS = [
    "The deploy freeze moved to Friday.",
    "",
    "ok",
    "Alice and Bob discussed the quarterly roadmap at length, covering hiring, budgets, "
    "the migration of the billing service and the on-call rotation for the holidays. " * 3,
    "Ünïcödé tëxt with emoji 🎉 and CJK 日本語",
    "ok",
    "A man is eating food.",
]


def _fake_openai(dim: int) -> Callable[..., object]:
    """A MockTransport handler: an OpenAI-style endpoint over HashEmbedder, un-normalised,
    returning the items in reverse order with their indices (clients must sort)."""
    import httpx

    backing = HashEmbedder(dim=dim)

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        vectors = backing.embed_documents(body["input"]) * 3.5
        data = [
            {"object": "embedding", "index": i, "embedding": v.tolist()}
            for i, v in enumerate(vectors)
        ]
        return httpx.Response(200, json={"object": "list", "data": data[::-1], "model": "m"})

    return handler


def _hash() -> Embedder:
    return HashEmbedder(dim=64)


def _minilm() -> Embedder:
    from engramdb.embed import MiniLMEmbedder

    # Small batches and a small token budget force several model calls per request.
    return MiniLMEmbedder(batch_size=3, max_batch_tokens=96)


def _http() -> Embedder:
    httpx = pytest.importorskip("httpx")
    from engramdb.embed import HTTPEmbedder

    transport = httpx.MockTransport(_fake_openai(48))
    return HTTPEmbedder("http://embed.test", model="m", batch_size=2, transport=transport)


FACTORIES: dict[str, Callable[[], Embedder]] = {"hash": _hash, "minilm": _minilm, "http": _http}


@pytest.fixture(
    scope="module",
    params=[
        "hash",
        pytest.param("minilm", marks=pytest.mark.model),
        "http",
    ],
)
def embedder(request: pytest.FixtureRequest) -> Iterator[Embedder]:
    emb = FACTORIES[request.param]()
    yield emb
    close = getattr(emb, "close", None)
    if close is not None:
        close()


def test_is_an_embedder(embedder: Embedder) -> None:
    assert isinstance(embedder, Embedder)
    assert isinstance(embedder.model_id, str) and embedder.model_id
    assert isinstance(embedder.dim, int) and embedder.dim >= 2


@pytest.mark.parametrize("method", ["embed_documents", "embed_queries"])
def test_shape_dtype_and_unit_rows(embedder: Embedder, method: str) -> None:
    out = getattr(embedder, method)(TEXTS)
    assert isinstance(out, np.ndarray)
    assert out.shape == (len(TEXTS), embedder.dim)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_deterministic(embedder: Embedder) -> None:
    first = embedder.embed_documents(TEXTS)
    second = embedder.embed_documents(TEXTS)
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_batch_equals_each_alone(embedder: Embedder) -> None:
    # Length sorting, padding and batching must not change any row, nor its position.
    batch = embedder.embed_documents(TEXTS)
    alone = np.vstack([embedder.embed_documents([t]) for t in TEXTS])
    np.testing.assert_allclose(batch, alone, atol=1e-4)
    reversed_batch = embedder.embed_documents(TEXTS[::-1])
    np.testing.assert_allclose(reversed_batch[::-1], batch, atol=1e-4)


def test_duplicates_get_identical_rows(embedder: Embedder) -> None:
    out = embedder.embed_documents(TEXTS)
    np.testing.assert_allclose(out[2], out[5], atol=1e-6)
    assert not np.allclose(out[0], out[6], atol=1e-3)  # different texts differ


def test_empty_list(embedder: Embedder) -> None:
    for out in (embedder.embed_documents([]), embedder.embed_queries([])):
        assert out.shape == (0, embedder.dim)
        assert out.dtype == np.float32


def test_empty_string_embeds(embedder: Embedder) -> None:
    out = embedder.embed_documents([""])
    assert out.shape == (1, embedder.dim)
    assert abs(float(np.linalg.norm(out[0])) - 1.0) < 1e-5


def test_accepts_tuples(embedder: Embedder) -> None:
    np.testing.assert_allclose(
        embedder.embed_documents(tuple(TEXTS)), embedder.embed_documents(TEXTS), atol=1e-6
    )


@pytest.mark.parametrize(
    "bad", [["ok", 3], ["ok", None], [b"bytes"], "a plain string", ["ok", "lone \ud800 surrogate"]]
)
def test_rejects_non_strings(embedder: Embedder, bad: object) -> None:
    with pytest.raises(InvalidInputError):
        embedder.embed_documents(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        embedder.embed_queries(bad)  # type: ignore[arg-type]


def test_model_id_is_stable(embedder: Embedder, request: pytest.FixtureRequest) -> None:
    twin = FACTORIES[request.node.callspec.params["embedder"]]()
    try:
        assert twin.model_id == embedder.model_id
        np.testing.assert_allclose(
            twin.embed_documents(TEXTS[:3]), embedder.embed_documents(TEXTS[:3]), atol=1e-6
        )
    finally:
        close = getattr(twin, "close", None)
        if close is not None:
            close()
