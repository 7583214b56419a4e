"""The LLM judge of facts that change: its prompt, its parsing, and a mock chat endpoint."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from engramdb.errors import ConfigError, MissingDependencyError, ModelError
from engramdb.recognize.judge import LLMJudge, Verdict, judge_messages, parse_verdict

httpx = pytest.importorskip("httpx")


def test_messages_name_both_statements_in_order_and_the_speaker() -> None:
    system, user = judge_messages("I work for Initech.", "My job is at Globex now.", subject="Ann")
    assert system["role"] == "system" and user["role"] == "user"
    for word in ("supersede", "conflict", "unrelated", "JSON"):
        assert word in system["content"]
    assert user["content"] == (
        "Speaker: Ann\nOlder: I work for Initech.\nNewer: My job is at Globex now."
    )


def test_messages_without_speaker_and_with_long_or_ragged_text() -> None:
    _, user = judge_messages("a\n\n  b", "x" * 5000, subject=None)
    lines = user["content"].split("\n")
    assert lines[0] == "Speaker: not given"
    assert lines[1] == "Older: a b"
    assert lines[2] == "Newer: " + "x" * 1000


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"verdict": "supersede", "reason": "new job"}', Verdict("supersede", "new job")),
        ('```json\n{"verdict": "conflict", "reason": "x"}\n```', Verdict("conflict", "x")),
        ('{"verdict": " Unrelated "}', Verdict("unrelated", "")),
        ('{"verdict": "conflict", "reason": "two\\n  lines"}', Verdict("conflict", "two lines")),
        ("supersede", Verdict("supersede", "")),
        ("  Conflict.\n", Verdict("conflict", "")),
        ("UNRELATED!", Verdict("unrelated", "")),
    ],
)
def test_parse_reads_json_and_one_word(content: str, expected: Verdict) -> None:
    assert parse_verdict(content) == expected


@pytest.mark.parametrize(
    "content",
    [
        "",
        "The newer statement supersedes the older one.",
        "maybe",
        '{"verdict": "replace"}',
        '{"verdict": null}',
        '{"reason": "no verdict"}',
        '["supersede"]',
        '{"verdict": "supersede", "reason": 3}',
        "[" * 100_000,
    ],
)
def test_parse_refuses_anything_else(content: str) -> None:
    with pytest.raises(ValueError):
        parse_verdict(content)


def _server(answer: Callable[[dict[str, Any]], Any], seen: list[Any]) -> Any:
    def handle(request: Any) -> Any:
        seen.append(request)
        assert request.url.path == "/v1/chat/completions"
        return answer(json.loads(request.content))

    return httpx.MockTransport(handle)


def _chat(content: Any) -> Any:
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})


def test_judge_asks_once_at_temperature_zero_and_reads_the_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sekrit")
    seen: list[Any] = []

    def answer(body: dict[str, Any]) -> Any:
        user = body["messages"][-1]["content"]
        if "Initech" in user and "Globex" in user:
            return _chat('{"verdict": "supersede", "reason": "new employer"}')
        return _chat("unrelated")

    transport = _server(answer, seen)
    with LLMJudge("http://llm", model="m", api_key_env="JUDGE_KEY", transport=transport) as judge:
        verdict = judge.judge("I work for Initech.", "My job is at Globex now.", subject="Ann")
        other = judge.judge("I like tea.", "The sky is blue.", subject=None)
    assert verdict == Verdict("supersede", "new employer")
    assert other == Verdict("unrelated", "")
    body = json.loads(seen[0].content)
    assert body["model"] == "m" and body["temperature"] == 0 and body["max_tokens"] <= 100
    assert seen[0].headers["authorization"] == "Bearer sekrit"
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (lambda: _chat("I think the newer one wins"), "I think the newer one wins"),
        (lambda: _chat(None), "not text"),
        (lambda: httpx.Response(200, json={"id": "x"}), "choices[0].message.content"),
        (lambda: httpx.Response(200, text="<html>oops</html>"), "<html>oops"),
        (lambda: httpx.Response(500, json={"error": {"message": "model overloaded"}}), "overload"),
    ],
)
def test_judge_raises_model_error_with_the_servers_words(
    response: Callable[[], Any], words: str
) -> None:
    judge = LLMJudge("http://llm/v1", model="m", transport=_server(lambda _b: response(), []))
    with pytest.raises(ModelError) as info:
        judge.judge("a b c", "a b d", subject=None)
    assert words in str(info.value)
    judge.close()


@pytest.mark.parametrize(
    "kwargs", [{"url": "", "model": "m"}, {"url": "http://x", "model": ""}, {"timeout": 0}]
)
def test_judge_needs_url_model_and_positive_timeout(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"url": "http://x", "model": "m", **kwargs}
    with pytest.raises(ConfigError):
        LLMJudge(args.pop("url"), **args)


def test_judge_without_httpx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingDependencyError) as info:
        LLMJudge("http://x", model="m")
    assert "remote" in str(info.value)
