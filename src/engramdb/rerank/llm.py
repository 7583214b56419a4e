"""Listwise reranking with an LLM behind an OpenAI-compatible chat endpoint (``remote`` extra).

FIRST-style scoring (Reddy et al., 2024): the prompt lists up to ``window`` candidates
labelled with single-token letters A–T and asks for the letter of the most relevant one;
one request with ``max_tokens=1`` and ``top_logprobs`` returns the first token's
log-probabilities, and candidates are sorted by the log-probability of their letter. When
the server returns no log-probabilities, a second request asks for the whole ranking
(``C > A > B …``), which is parsed; letters it omits keep their order after the listed ones.

More candidates than ``window`` are handled with the RankGPT sliding window: windows of
``window`` candidates, moved by ``step`` from the bottom of the pool to the top, so strong
candidates bubble up.

No cross-encoder is bundled: no package on PyPI carries one that loads offline.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engramdb._http import JSONEndpoint, endpoint_url
from engramdb.errors import ConfigError, ModelError
from engramdb.rerank.base import Candidates
from engramdb.types import Hit

if TYPE_CHECKING:
    import httpx

__all__ = ["LLMReranker", "parse_ranking"]

LETTERS = string.ascii_uppercase[:20]
_MAX_PASSAGE_CHARS = 1200
_SYSTEM = (
    "You rank passages by how well they answer a search query. Answer with passage letters only."
)


def parse_ranking(content: str, n: int) -> list[int]:
    """Positions ``0..n-1`` in the order the letters appear in ``content``; omitted ones last.

    Example:
        >>> parse_ranking("C > A > C > B", 4)
        [2, 0, 1, 3]
    """
    order: list[int] = []
    for ch in content:
        i = LETTERS.find(ch)
        if 0 <= i < n and i not in order:
            order.append(i)
    return order + [i for i in range(n) if i not in order]


def _prompt(query: str, hits: Sequence[Hit], ask: str) -> list[dict[str, str]]:
    lines = [f"Query: {query}", "", "Passages:"]
    for letter, h in zip(LETTERS, hits, strict=False):
        lines.append(f"[{letter}] {' '.join(h.text.split())[:_MAX_PASSAGE_CHARS]}")
    lines += ["", ask]
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


class LLMReranker:
    """Rerank the top ``pool`` candidates with a chat model (listwise, sliding window).

    Args:
        url: server root, ``/v1`` base or full ``/v1/chat/completions`` URL.
        model: model name sent with each request.
        api_key_env: environment variable holding the key (sent as a bearer token).
        options: ``window`` (≤ 20), ``step``, ``pool``, ``timeout`` (seconds),
            ``logprobs`` (try first-token log-probabilities first; default True).
        transport: an httpx transport, e.g. ``httpx.MockTransport`` in tests.

    Raises:
        MissingDependencyError: httpx is not installed (``pip install "engramdb[remote]"``).
        ConfigError: an empty url or model, or bad options.
    """

    name = "llm"
    needs_vectors = False

    def __init__(
        self,
        url: str,
        *,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        options: dict[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        opts = {"window": 20, "step": 10, "pool": 20, "timeout": 60.0, "logprobs": True}
        unknown = sorted(set(options or {}) - set(opts))
        opts.update(options or {})
        window, step, pool = int(opts["window"]), int(opts["step"]), int(opts["pool"])
        if unknown or not url or not model or not 2 <= window <= len(LETTERS):
            raise ConfigError(
                f"LLMReranker needs a url, a model and 2 <= window <= 20 (unknown options: "
                f"{unknown or 'none'}); got url={url!r}, model={model!r}, window={window}"
            )
        if not 1 <= step <= window or pool < 1 or float(opts["timeout"]) <= 0:
            raise ConfigError("LLMReranker needs 1 <= step <= window, pool >= 1, timeout > 0")
        self.url = endpoint_url(url, "chat/completions")
        self.model = model
        self.window, self.step, self.pool = window, step, pool
        self.timeout = float(opts["timeout"])
        self.logprobs = bool(opts["logprobs"])
        self._endpoint = JSONEndpoint(
            self.url,
            label=self.url,
            api_key=os.environ.get(api_key_env),
            timeout=self.timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._endpoint.close()

    def rerank(self, candidates: Candidates, *, k: int) -> list[Hit]:
        """The top ``k`` hits in the model's order; scores fall from 1 by rank.

        Raises:
            ModelError: the endpoint failed or answered something unusable.
        """
        hits = list(candidates.hits)
        head, tail = hits[: self.pool], hits[self.pool :]
        end = len(head)
        while end > 0:
            start = max(0, end - self.window)
            window = head[start:end]
            head[start:end] = [window[i] for i in self._order(candidates.query, window)]
            if start == 0:
                break
            end -= self.step
        ranked = head + tail
        n = len(ranked)
        return [replace(h, score=1.0 - i / n) for i, h in enumerate(ranked[:k])]

    def _order(self, query: str, hits: Sequence[Hit]) -> list[int]:
        """Window positions, best first."""
        if len(hits) < 2:
            return list(range(len(hits)))
        if self.logprobs:
            ask = "Which passage answers the query best? Reply with its letter only."
            body = self._post(_prompt(query, hits, ask), max_tokens=1, logprobs=True)
            scored = _first_token_scores(body, len(hits))
            if scored is not None:
                return sorted(range(len(hits)), key=lambda i: (-scored.get(i, -1e9), i))
        ask = (
            f"Rank all {len(hits)} passages from most to least relevant, "
            "as letters separated by '>', e.g. C > A > B."
        )
        body = self._post(_prompt(query, hits, ask), max_tokens=4 * len(hits), logprobs=False)
        return parse_ranking(_content(body), len(hits))

    def _post(self, messages: list[dict[str, str]], *, max_tokens: int, logprobs: bool) -> Any:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if logprobs:
            payload.update(logprobs=True, top_logprobs=len(LETTERS))
        response = self._endpoint.post(payload)
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            raise ModelError(f"{self.url} returned a body that is not JSON") from exc


def _content(body: Any) -> str:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ModelError(f"chat answer without choices[0].message.content: {exc}") from exc
    if not isinstance(content, str):
        raise ModelError("chat answer content is not a string")
    return content


def _first_token_scores(body: Any, n: int) -> dict[int, float] | None:
    """``{position: logprob}`` from the first generated token, or None when absent."""
    try:
        top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        return None
    scores: dict[int, float] = {}
    for item in top if isinstance(top, list) else []:
        if not isinstance(item, dict):
            continue
        token = str(item.get("token", "")).strip().strip("[]")
        i = LETTERS.find(token) if len(token) == 1 else -1
        if 0 <= i < n and isinstance(item.get("logprob"), (int, float)):
            scores[i] = max(scores.get(i, -1e9), float(item["logprob"]))
    return scores or None
