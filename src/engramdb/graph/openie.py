"""LLM OpenIE for the memory graph through an OpenAI-compatible chat endpoint (``remote`` extra).

Each passage is sent alone to ``POST /v1/chat/completions`` (vLLM, llama.cpp server,
Ollama and OpenAI all serve it) with a prompt asking for named entities and
``(subject, relation, object)`` triples as JSON. Subjects, objects and entities become
phrases; each triple's subject and object form a pair.

Failures never pass silently: a timeout, a network or HTTP error, or an answer that is not
the expected JSON sends that passage to the fallback extractor (the offline spaCy one in
the engine) and emits an :class:`ExtractionWarning` saying why.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engramdb._http import JSONEndpoint, endpoint_url
from engramdb.errors import ConfigError, ModelError
from engramdb.graph.extract import Extraction, Extractor, from_phrases

if TYPE_CHECKING:
    import httpx

__all__ = ["ExtractionWarning", "OpenIEExtractor", "parse_openie"]

logger = logging.getLogger(__name__)

_SYSTEM = (
    "You extract a knowledge graph from a passage. Reply with one JSON object and nothing "
    'else: {"entities": [...], "triples": [[subject, relation, object], ...]}. '
    "Entities are the named entities, dates and key noun phrases of the passage. Every "
    "triple links two of them, subject and object preferably both entities; replace "
    "pronouns with the entity they refer to. Use the passage's own wording."
)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


class ExtractionWarning(UserWarning):
    """The LLM extractor failed on a passage; the offline extractor was used instead."""


def parse_openie(content: str) -> Extraction:
    """Turn the model's answer into an Extraction.

    Accepts the JSON object alone or inside a Markdown code fence.

    Raises:
        ValueError: not a JSON object with a ``triples`` list of 3-string lists.
    """
    body = json.loads(_FENCE.sub("", content.strip()))
    if not isinstance(body, dict) or not isinstance(body.get("triples"), list):
        raise ValueError("expected a JSON object with a 'triples' list")
    entities = body.get("entities", [])
    if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
        raise ValueError("'entities' must be a list of strings")
    groups: list[list[str]] = [[e] for e in entities]
    for triple in body["triples"]:
        if not (
            isinstance(triple, list)
            and len(triple) == 3
            and all(isinstance(t, str) for t in triple)
        ):
            raise ValueError(f"a triple must be a list of 3 strings, got {triple!r}")
        groups.append([triple[0], triple[2]])
    return from_phrases(groups, named=[p for g in groups for p in g])


class OpenIEExtractor:
    """Triples from an OpenAI-compatible chat model, falling back per passage on failure.

    Args:
        url: the server root, its ``/v1`` base or the full ``/v1/chat/completions`` URL.
        model: the model name sent with each request.
        fallback: the extractor used for passages the model fails on.
        api_key: sent as a bearer token when given.
        timeout: seconds per request.
        transport: an httpx transport, e.g. ``httpx.MockTransport`` in tests.

    Raises:
        MissingDependencyError: httpx is not installed (``pip install "engramdb[remote]"``).
        ConfigError: an empty url or model, or ``timeout <= 0``.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str,
        fallback: Extractor,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url or not model or timeout <= 0:
            raise ConfigError(
                f"OpenIEExtractor needs a url, a model and timeout > 0; got url={url!r}, "
                f"model={model!r}, timeout={timeout}"
            )
        self.url = endpoint_url(url, "chat/completions")
        self.model = model
        self.fallback = fallback
        self.timeout = timeout
        self.name = f"openie:{model}:v1+{fallback.name}"
        self._endpoint = JSONEndpoint(
            self.url, label=self.url, api_key=api_key, timeout=timeout, transport=transport
        )

    def extract(self, texts: Sequence[str]) -> list[Extraction]:
        """One Extraction per text; failed texts go to the fallback with a warning.

        Warns:
            ExtractionWarning: for each failed passage, naming the reason.
        """
        out: list[Extraction | None] = []
        failed: list[int] = []
        for i, text in enumerate(texts):
            try:
                out.append(self._extract_one(text))
            except ModelError as exc:
                warnings.warn(
                    f"LLM extraction failed for passage {i} ({exc}); used {self.fallback.name}",
                    ExtractionWarning,
                    stacklevel=2,
                )
                out.append(None)
                failed.append(i)
        if failed:
            for i, extraction in zip(
                failed, self.fallback.extract([texts[i] for i in failed]), strict=True
            ):
                out[i] = extraction
        return [e if e is not None else Extraction() for e in out]

    def _extract_one(self, text: str) -> Extraction:
        payload: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": text}],
        }
        response = self._endpoint.post(payload)
        try:
            content = response.json()["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                raise ValueError("message content is not a string")
            return parse_openie(content)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"{self.url} returned a malformed answer: {exc}") from exc

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._endpoint.close()
