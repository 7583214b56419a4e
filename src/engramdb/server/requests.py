"""Request bodies: what each write and read accepts, checked before the service is called.

Unknown fields are refused (a typo is a ``422``, not a silent default). Bounds that the
engine would check anyway are in the schema too (``k`` up to
:data:`engramdb.config.MAX_K`), so that clients see them in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from engramdb.config import MAX_K
from engramdb.service import EARLIEST, LATEST, event_time

__all__ = [
    "AddIn",
    "ContextIn",
    "ForgetIn",
    "MemoryItemIn",
    "RecallIn",
    "SupersedeIn",
    "RecognizeIn",
]

MAX_ITEMS = 10_000
"""The most items one add may carry."""
MAX_BUDGET_TOKENS = 1_000_000


Namespace = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[\w.\-:@]+$", examples=["alice"])
]
Text = Annotated[str, Field(min_length=1, pattern=r"\S", description="Not only whitespace.")]
EventTime = Annotated[
    float | str | None,
    AfterValidator(event_time),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": EARLIEST, "maximum": LATEST},
                {"type": "string", "format": "date-time"},
                {"type": "null"},
            ],
            "description": "UTC epoch seconds, or an ISO-8601 time (naive: UTC).",
            "examples": ["2024-05-02T10:00:00Z"],
        }
    ),
]
Channel = Literal["lexical", "dense", "graph"]
Meta = Annotated[dict[str, Any], Field(description="JSON metadata, e.g. {'team': 'infra'}.")]
Filter = Annotated[
    dict[str, Any],
    Field(description="A filter on columns and metadata, e.g. {'team': 'infra'}."),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _exactly_one(*names_and_types: tuple[str, str]) -> dict[str, Any]:
    """JSON Schema: exactly one of these fields is given (and not null)."""
    return {
        "oneOf": [
            {"required": [name], "properties": {name: {"type": kind}}}
            for name, kind in names_and_types
        ]
    }


class MemoryItemIn(_In):
    """One text to remember."""

    text: Text
    source: str | None = Field(default=None, min_length=1, max_length=4096)
    meta: Meta | None = None
    event_time: EventTime = None


class AddIn(_In):
    """One text (``text``) or many (``items``); ``source``, ``meta`` and ``event_time``
    apply to the text, or to each item that has none of its own."""

    model_config = ConfigDict(
        json_schema_extra=_exactly_one(("text", "string"), ("items", "array"))
    )

    text: Text | None = None
    items: list[MemoryItemIn] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    namespace: Namespace | None = None
    source: str | None = Field(default=None, min_length=1, max_length=4096)
    meta: Meta | None = None
    event_time: EventTime = None

    @model_validator(mode="after")
    def _one_form(self) -> AddIn:
        if (self.text is None) == (self.items is None):
            raise ValueError("give either text or items")
        return self

    def records(self) -> list[dict[str, Any]]:
        """The records to add, in order, as mappings for :meth:`MemoryService.remember`."""
        items = self.items if self.items is not None else [MemoryItemIn(text=str(self.text))]
        return [
            {
                "text": item.text,
                "source": item.source if item.source is not None else self.source,
                "meta": item.meta if item.meta is not None else (self.meta or {}),
                "event_time": item.event_time if item.event_time is not None else self.event_time,
            }
            for item in items
        ]


class ForgetIn(_In):
    """Forget by source or by filter (exactly one of them)."""

    model_config = ConfigDict(
        json_schema_extra=_exactly_one(("source", "string"), ("where", "object"))
    )

    source: str | None = Field(default=None, min_length=1, max_length=4096)
    where: Filter | None = None
    namespace: Namespace | None = Field(
        default=None, description="Default: every namespace of the key."
    )

    @model_validator(mode="after")
    def _one_criterion(self) -> ForgetIn:
        if (self.source is None) == (self.where is None):
            raise ValueError("give exactly one of source and where")
        return self


class RecallIn(_In):
    """A recall: the query and what narrows and orders the hits."""

    query: Text = Field(max_length=100_000)
    k: int = Field(default=10, ge=1, le=MAX_K)
    namespace: Namespace | None = None
    channels: (
        Literal["lexical", "dense", "graph", "hybrid", "hybrid+graph"]
        | Annotated[list[Channel], Field(min_length=1, max_length=3)]
        | None
    ) = Field(
        default=None,
        description="hybrid (lexical + dense, the default), one channel, or a list of them; "
        "graph needs the memory graph on.",
    )
    where: Filter | None = None
    min_relevance: float | None = Field(default=None, ge=0.0, le=1.0)
    coverage: float | None = Field(default=None, gt=0.0, lt=1.0)
    rerank: Literal["mmr", "lambdarank"] | None = None
    as_of: EventTime = Field(
        default=None, description="Read the memory as it was then: only memories valid then."
    )
    include_superseded: bool = Field(
        default=False,
        description="Rank superseded memories where they fall (by default valid ones first).",
    )
    now: EventTime = Field(
        default=None,
        description="When the question is asked (default: the clock), for its time words.",
    )
    steps: int | None = Field(
        default=None,
        ge=1,
        le=5,
        description="Recall in up to this many steps, each adding clues from the hits so far "
        "(multi-hop questions).",
    )
    clues: list[Literal["phrases", "terms", "centroid", "llm"]] | None = Field(
        default=None,
        min_length=1,
        max_length=4,
        description="What later steps add to the query: graph bridge phrases, RM3 terms, the "
        "hits' centroid, LLM-drafted clues [default: phrases with the graph, else terms].",
    )

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`MemoryService.recall` but the query (``steps``
        and ``clues`` only when given)."""
        steps: dict[str, Any] = {"steps": self.steps} if self.steps is not None else {}
        if self.clues is not None:
            steps["clues"] = list(self.clues)
        return {
            **steps,
            "k": self.k,
            "namespace": self.namespace,
            "where": self.where,
            "channels": self.channels,
            "min_relevance": self.min_relevance,
            "coverage": self.coverage,
            "rerank": self.rerank,
            "as_of": self.as_of,
            "include_superseded": self.include_superseded,
            "now": self.now,
        }


class SupersedeIn(_In):
    """The memory that supersedes the one in the path, and from when."""

    new: int = Field(ge=0, le=2**63 - 1, description="The id of the newer memory.")
    at: EventTime = Field(
        default=None, description="When the old memory stopped being valid [default: new's time]."
    )


class ContextIn(RecallIn):
    """A recall packed into a cited context block of at most ``budget_tokens``."""

    k: int = Field(default=20, ge=1, le=MAX_K)
    budget_tokens: int = Field(default=1000, ge=1, le=MAX_BUDGET_TOKENS)
    order: Literal["relevance", "edges", "chronological"] = "relevance"


class RecognizeIn(_In):
    """Have I seen this text?"""

    text: Text = Field(max_length=1_000_000)
    namespace: Namespace | None = None
