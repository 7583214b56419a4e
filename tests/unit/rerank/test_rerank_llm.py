"""The LLM listwise reranker against a mock OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from engramdb.errors import ConfigError, MissingDependencyError, ModelError  # noqa: E402
from engramdb.rerank import Candidates, LLMReranker, parse_ranking  # noqa: E402
from engramdb.types import Hit, Position  # noqa: E402


def hit(i: int, text: str) -> Hit:
    return Hit(
        id=i,
        score=1.0 - i / 100,
        text=text,
        namespace="n",
        source=None,
        position=Position(document=None, ordinal=None, start=None, end=None),
        event_time=None,
        meta={},
        why={},
    )


def passages(body: dict[str, Any]) -> dict[str, str]:
    prompt = body["messages"][-1]["content"]
    return dict(re.findall(r"^\[([A-T])\] (.*)$", prompt, flags=re.M))


def server(answer: Callable[[dict[str, Any]], dict[str, Any]], seen: list[dict[str, Any]]) -> Any:
    def handle(request: Any) -> Any:
        body = json.loads(request.content)
        seen.append(body)
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, json=answer(body))

    return httpx.MockTransport(handle)


def by_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """Letter log-probabilities: higher for passages mentioning 'gold', by their number."""
    top = []
    for letter, text in passages(body).items():
        value = float(re.findall(r"\d+", text)[0]) / 100 - (0 if "gold" in text else 5)
        top.append({"token": letter, "logprob": value})
    return {
        "choices": [{"message": {"content": "A"}, "logprobs": {"content": [{"top_logprobs": top}]}}]
    }


def test_first_token_logprobs_order_the_window() -> None:
    seen: list[dict[str, Any]] = []
    hits = [hit(0, "passage 10"), hit(1, "passage 20 gold"), hit(2, "passage 30 gold")]
    reranker = LLMReranker("http://llm", model="m", transport=server(by_logprobs, seen))
    out = reranker.rerank(Candidates(query="which?", hits=hits), k=3)
    assert [h.id for h in out] == [2, 1, 0]
    assert [h.score for h in out] == sorted((h.score for h in out), reverse=True)
    assert seen[0]["max_tokens"] == 1 and seen[0]["logprobs"] is True
    assert "which?" in seen[0]["messages"][-1]["content"]


def test_sliding_window_bubbles_the_best_from_the_bottom() -> None:
    seen: list[dict[str, Any]] = []
    hits = [hit(i, f"passage {i}") for i in range(45)]
    hits[44] = hit(44, "passage 44 gold")
    reranker = LLMReranker(
        "http://llm/v1", model="m", options={"pool": 45}, transport=server(by_logprobs, seen)
    )
    out = reranker.rerank(Candidates(query="q", hits=hits), k=45)
    assert out[0].id == 44
    assert len(seen) == 4  # windows ending at 45, 35, 25, 15
    assert all(len(passages(b)) <= 20 for b in seen)


def test_generated_ranking_when_no_logprobs() -> None:
    seen: list[dict[str, Any]] = []

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        content = "A" if body.get("logprobs") else "C > A"
        return {"choices": [{"message": {"content": content}}]}

    hits = [hit(0, "x"), hit(1, "y"), hit(2, "z")]
    reranker = LLMReranker("http://llm", model="m", transport=server(answer, seen))
    out = reranker.rerank(Candidates(query="q", hits=hits), k=2)
    assert [h.id for h in out] == [2, 0]
    assert len(seen) == 2 and seen[1]["max_tokens"] > 1 and "logprobs" not in seen[1]


def test_http_errors_and_bad_bodies_raise_model_error() -> None:
    def fail(request: Any) -> Any:
        return httpx.Response(500, text="boom")

    hits = [hit(0, "x"), hit(1, "y")]
    reranker = LLMReranker("http://llm", model="m", transport=httpx.MockTransport(fail))
    with pytest.raises(ModelError, match="500"):
        reranker.rerank(Candidates(query="q", hits=hits), k=2)

    def empty(request: Any) -> Any:
        return httpx.Response(200, json={"choices": []})

    reranker = LLMReranker("http://llm", model="m", transport=httpx.MockTransport(empty))
    with pytest.raises(ModelError, match="choices"):
        reranker.rerank(Candidates(query="q", hits=hits), k=2)


def test_parse_ranking_and_bad_config() -> None:
    assert parse_ranking("B > A", 3) == [1, 0, 2]
    assert parse_ranking("nothing useful", 2) == [0, 1]
    with pytest.raises(ConfigError):
        LLMReranker("http://llm", model="m", options={"window": 30})
    with pytest.raises(ConfigError, match="unknown"):
        LLMReranker("http://llm", model="m", options={"windw": 5})


def test_missing_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError) as info:
        LLMReranker("http://llm", model="m")
    assert info.value.extra == "remote"
