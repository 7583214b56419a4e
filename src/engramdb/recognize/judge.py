"""An LLM judge of facts that change, behind an OpenAI-compatible chat endpoint (``remote``).

The rule-based detector (:mod:`engramdb.recognize.facts`) finds a new value only when two
texts differ in a value span. ``"I work for Initech."`` and, later, ``"My job is at Globex
now."`` state a new value in other words; a chat model can tell. The judge is asked about
one pair of statements at a time:

* ``"supersede"``: the newer statement gives a new value of the same fact (same subject,
  same relation), so the older one no longer holds;
* ``"conflict"``: they cannot both hold, but it is not clear that the newer one replaces
  the older (either may be wrong, or the relation differs a little);
* ``"unrelated"``: another fact, an event beside an event, or the same value again.

A verdict only proposes: the engine records it as a conflict (see
:meth:`engramdb.Memory.propose_changes`) and changes no memory's validity; a person or a
program accepts it with :meth:`engramdb.Memory.supersede`.

The model is asked for a tiny JSON object (``{"verdict": ..., "reason": ...}``) at
temperature 0; a bare verdict word is accepted too. Anything else is a
:class:`~engramdb.errors.ModelError` quoting the answer: an unreadable verdict is never
guessed, and never read as "unrelated".
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from engramdb._http import JSONEndpoint, endpoint_url
from engramdb.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import httpx

__all__ = ["Judge", "LLMJudge", "Verdict", "VerdictKind", "judge_messages", "parse_verdict"]

VerdictKind = Literal["supersede", "conflict", "unrelated"]
_KINDS: tuple[str, ...] = get_args(VerdictKind)
_MAX_STATEMENT_CHARS = 1000
_MAX_REASON_CHARS = 300
_MAX_TOKENS = 80
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
_SYSTEM = (
    "You compare two statements from one long-term memory, an older and a newer one. "
    "Decide how the newer statement relates to the older one:\n"
    "- supersede: both state the same fact (same subject, same relation) and the newer one "
    "gives a new value for it, so the older one no longer holds;\n"
    "- conflict: they cannot both hold, but it is not clear that the newer one replaces "
    "the older one;\n"
    "- unrelated: anything else (another fact, two events that can both have happened, "
    "or the same value again).\n"
    'Reply with one JSON object and nothing else: {"verdict": "supersede" | "conflict" | '
    '"unrelated", "reason": "<at most 15 words>"}'
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's answer about two statements.

    Attributes:
        kind: ``"supersede"``, ``"conflict"`` or ``"unrelated"`` (module docstring).
        reason: the judge's short reason (empty when it gave none).
    """

    kind: VerdictKind
    reason: str = ""


class Judge(Protocol):
    """Anything that judges whether a newer statement replaces an older one's value."""

    def judge(self, older: str, newer: str, *, subject: str | None) -> Verdict:
        """The verdict on ``newer`` against ``older``; ``subject`` is who both speak for
        (a conversation's speaker), when known.

        Raises:
            ModelError: the judge failed or answered something that is not a verdict.
        """
        ...


def _clip(text: str) -> str:
    return " ".join(text.split())[:_MAX_STATEMENT_CHARS]


def judge_messages(older: str, newer: str, *, subject: str | None) -> list[dict[str, str]]:
    """The chat messages asking for a verdict on one pair (texts clipped to 1000 chars).

    Example:
        >>> messages = judge_messages("I work for Initech.", "I'm at Globex.", subject="Ann")
        >>> print(messages[1]["content"])
        Speaker: Ann
        Older: I work for Initech.
        Newer: I'm at Globex.
    """
    who = _clip(subject) if subject else "not given"
    user = f"Speaker: {who}\nOlder: {_clip(older)}\nNewer: {_clip(newer)}"
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(content: str) -> Verdict:
    """Read the model's answer: the JSON object (alone or in a Markdown fence) or one
    verdict word (any case, trailing punctuation allowed).

    Raises:
        ValueError: neither form, or a verdict that is not one of the three.

    Example:
        >>> parse_verdict('{"verdict": "supersede", "reason": "new employer"}')
        Verdict(kind='supersede', reason='new employer')
        >>> parse_verdict("Conflict.")
        Verdict(kind='conflict', reason='')
    """
    text = _FENCE.sub("", content.strip()).strip()
    word = text.rstrip(".!").strip().casefold()
    if word in _KINDS:
        return Verdict(kind=word, reason="")  # type: ignore[arg-type]
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError("neither a JSON object nor one verdict word") from exc
    if not isinstance(body, dict):
        raise ValueError("the JSON answer is not an object")
    kind = body.get("verdict")
    if not isinstance(kind, str) or kind.strip().casefold() not in _KINDS:
        raise ValueError(f"'verdict' must be one of {', '.join(_KINDS)}; got {kind!r}")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise ValueError(f"'reason' must be a string; got {reason!r}")
    return Verdict(
        kind=kind.strip().casefold(),  # type: ignore[arg-type]
        reason=" ".join(reason.split())[:_MAX_REASON_CHARS],
    )


class LLMJudge:
    """A :class:`Judge` asking a chat model, one request per pair, at temperature 0.

    Args:
        url: server root, ``/v1`` base or full ``/v1/chat/completions`` URL.
        model: model name sent with each request.
        api_key_env: environment variable holding the key (sent as a bearer token).
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
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url or not model or timeout <= 0:
            raise ConfigError(
                f"LLMJudge needs a url, a model and timeout > 0; got url={url!r}, "
                f"model={model!r}, timeout={timeout}"
            )
        self.url = endpoint_url(url, "chat/completions")
        self.model = model
        self.timeout = float(timeout)
        self._endpoint = JSONEndpoint(
            self.url,
            label=f"judge endpoint {self.url}",
            api_key=os.environ.get(api_key_env),
            timeout=self.timeout,
            transport=transport,
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._endpoint.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def judge(self, older: str, newer: str, *, subject: str | None) -> Verdict:
        """Ask the model whether ``newer`` replaces ``older``'s value (module docstring).

        Raises:
            ModelError: the endpoint failed, or answered something that is not a verdict
                (the message quotes the answer).
        """
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": judge_messages(older, newer, subject=subject),
            "max_tokens": _MAX_TOKENS,
            "temperature": 0,
        }
        response = self._endpoint.post(payload)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"judge endpoint {self.url} answered without choices[0].message.content: "
                f"{response.text[:200]!r}"
            ) from exc
        if not isinstance(content, str):
            raise ModelError(f"judge endpoint {self.url} answered a content that is not text")
        try:
            return parse_verdict(content)
        except ValueError as exc:
            raise ModelError(
                f"judge endpoint {self.url} answered {content[:200]!r}, which is not a verdict "
                f"({exc}); expected JSON like "
                '{"verdict": "supersede" | "conflict" | "unrelated", "reason": "..."}'
            ) from exc
