"""Clues drafted by an LLM behind an OpenAI-compatible chat endpoint (``remote`` extra).

Given a question and the passages recalled so far, the model writes either clues (MemoRAG:
short texts the evidence would contain — names, titles, facts the question implies) or the
next sub-question (IRCoT / self-ask: what must be looked up next). The next recall step
adds them to the query.

A failure never breaks recall: :meth:`LLMClues.draft` raises :class:`ModelError` and the
caller falls back to the clues drawn from the memory itself, with a
:class:`ClueWarning`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from engramdb._http import JSONEndpoint, endpoint_url
from engramdb.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import httpx

__all__ = ["ClueWarning", "LLMClues", "parse_clues"]

_MAX_PASSAGE_CHARS = 600
_MAX_CLUES = 5
_ASK = {
    "clues": (
        "Write up to 5 short clues (names, titles, dates, facts) that the passages still "
        "missing for the question would contain, one per line, nothing else."
    ),
    "question": (
        "Write the one follow-up question whose answer is still missing to answer the "
        "question, as a single line, nothing else. If nothing is missing, write NONE."
    ),
}
_SYSTEM = "You help a search engine find the evidence for a multi-step question."


class ClueWarning(UserWarning):
    """The LLM could not draft clues; the clues drawn from the memory were used instead."""


def parse_clues(content: str, *, limit: int = _MAX_CLUES) -> list[str]:
    """The clue lines of an answer: bullets and numbering stripped, empty lines and
    ``NONE`` dropped, at most ``limit``.

    Example:
        >>> parse_clues("1. Inception\\n- Christopher Nolan\\n\\nNONE")
        ['Inception', 'Christopher Nolan']
    """
    out: list[str] = []
    for line in content.splitlines():
        text = line.strip().lstrip("-*•").strip()
        head, dot, rest = text.partition(".")
        if dot and head.isdigit():
            text = rest.strip()
        if text and text.upper() != "NONE" and text not in out:
            out.append(text)
    return out[:limit]


class LLMClues:
    """Draft clues or the next sub-question with a chat model.

    Args:
        url: server root, ``/v1`` base or full ``/v1/chat/completions`` URL.
        model: model name sent with each request.
        mode: ``"clues"`` (MemoRAG) or ``"question"`` (the next sub-question).
        api_key_env: environment variable holding the key (sent as a bearer token).
        timeout: seconds per request.
        transport: an httpx transport, e.g. ``httpx.MockTransport`` in tests.

    Raises:
        MissingDependencyError: httpx is not installed (``pip install "engramdb[remote]"``).
        ConfigError: an empty url or model, an unknown mode or a timeout ``<= 0``.
    """

    name = "llm"

    def __init__(  # noqa: PLR0913 - keyword-only settings of one endpoint
        self,
        url: str,
        *,
        model: str,
        mode: Literal["clues", "question"] = "clues",
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url or not model or mode not in _ASK or timeout <= 0:
            raise ConfigError(
                "LLMClues needs a url, a model, mode 'clues' or 'question' and timeout > 0; "
                f"got url={url!r}, model={model!r}, mode={mode!r}, timeout={timeout!r}"
            )
        self.url = endpoint_url(url, "chat/completions")
        self.model = model
        self.mode = mode
        self._endpoint = JSONEndpoint(
            self.url,
            label=f"clue endpoint {self.url}",
            api_key=os.environ.get(api_key_env),
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._endpoint.close()

    def draft(self, question: str, passages: Sequence[str]) -> list[str]:
        """Clues (or one sub-question) for the next recall step; empty when the model says
        nothing is missing.

        Raises:
            ModelError: the endpoint failed, timed out or answered without text.
        """
        lines = [f"Question: {question}", "", "Passages found so far:"]
        for i, text in enumerate(passages, 1):
            lines.append(f"[{i}] {' '.join(text.split())[:_MAX_PASSAGE_CHARS]}")
        lines += ["", _ASK[self.mode]]
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": "\n".join(lines)},
            ],
            "max_tokens": 128,
            "temperature": 0,
        }
        response = self._endpoint.post(payload)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"{self.url} answered without choices[0].message.content") from exc
        if not isinstance(content, str):
            raise ModelError(f"{self.url} answered with content that is not text")
        return parse_clues(content, limit=1 if self.mode == "question" else _MAX_CLUES)
