"""What tool and demonstration recall return, and what adding tools reports."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

__all__ = ["AddToolsResult", "Demo", "DemoHit", "DemoHits", "Tool", "ToolHit", "ToolHits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """A stored tool version.

    Attributes:
        id: its id (a new version of a tool gets a new id).
        namespace: where it is stored.
        name: the name a call uses.
        server: its source server ("" when unknown).
        description: what it does.
        parameters: the JSON Schema of its arguments.
        spec: the spec as it was given.
        valid_from: when this version was added (epoch seconds).
        valid_to: when a changed spec superseded it; ``None`` while current.
        superseded_by: the id of the version that replaced it.
        demos: how many demonstrations call it (by name, and server when they give one).
    """

    id: int
    namespace: str
    name: str
    server: str
    description: str
    parameters: Mapping[str, Any]
    spec: Mapping[str, Any]
    valid_from: float
    valid_to: float | None = None
    superseded_by: int | None = None
    demos: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "name": self.name,
            "server": self.server,
            "description": self.description,
            "parameters": dict(self.parameters),
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
            "superseded_by": self.superseded_by,
            "demos": self.demos,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AddToolsResult:
    """What :meth:`~engramdb.Memory.add_tools` did.

    Attributes:
        ids: the current id of each given tool, in input order.
        added: tools new to the namespace.
        unchanged: tools given again with an identical spec (nothing written).
        superseded: tools whose changed spec replaced their previous version.
    """

    ids: tuple[int, ...]
    added: int = 0
    unchanged: int = 0
    superseded: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "ids": list(self.ids),
            "added": self.added,
            "unchanged": self.unchanged,
            "superseded": self.superseded,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolHit:
    """A recalled tool: the current version of its name.

    Attributes:
        tool: the tool.
        relevance: calibrated probability that the request calls it.
        score: the fused log-odds it was ranked by.
    """

    tool: Tool
    relevance: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {**self.tool.as_dict(), "relevance": self.relevance, "score": self.score}


@dataclass(frozen=True, slots=True, kw_only=True)
class Demo:
    """A demonstration: a served request and the call(s) it led to, or its answer.

    Attributes:
        id: its id.
        namespace: where it is stored.
        request: the request.
        calls: ``[{"name", "arguments", "server"?}]`` in call order.
        answer: the answer given without a call (or beside the calls).
        meta: user fields.
        time: when it was added.
    """

    id: int
    namespace: str
    request: str
    calls: tuple[Mapping[str, Any], ...] = ()
    answer: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    time: float = 0.0

    @staticmethod
    def request_key(text: str) -> str:
        """The form in which two requests count as the same text (case and spacing folded):
        a demonstration whose request has the key of the one being asked is left out when
        tool recall is fitted, and when it is evaluated."""
        return " ".join(text.lower().split())

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "id": self.id,
            "namespace": self.namespace,
            "request": self.request,
            "calls": [dict(c) for c in self.calls],
            "answer": self.answer,
            "meta": dict(self.meta),
            "time": self.time,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoHit:
    """A recalled demonstration.

    Attributes:
        demo: the demonstration.
        relevance: calibrated probability that it calls a tool the request needs.
        score: cosine of its request and the query.
    """

    demo: Demo
    relevance: float
    score: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {**self.demo.as_dict(), "relevance": self.relevance, "score": self.score}


H = TypeVar("H", "ToolHit", "DemoHit")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ranked(Sequence[H]):
    """Recalled hits in order; ``abstain`` when ``min_relevance`` left none, with a
    ``reason``."""

    query: str
    items: tuple[H, ...]
    abstain: bool = False
    reason: str | None = None
    _key: ClassVar[str] = "items"

    def __getitem__(self, index: Any) -> Any:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[H]:
        return iter(self.items)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "query": self.query,
            self._key: [h.as_dict() for h in self.items],
            "abstain": self.abstain,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolHits(_Ranked[ToolHit]):
    """Recalled tools, best first; ``abstain`` when ``min_relevance`` left none ("no tool
    fits"), with a ``reason``."""

    _key: ClassVar[str] = "tools"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoHits(_Ranked[DemoHit]):
    """Recalled demonstrations in MMR order; ``abstain`` when ``min_relevance`` left none."""

    _key: ClassVar[str] = "demos"
