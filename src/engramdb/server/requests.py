"""Request bodies: what each write and read accepts, checked before the service is called.

Unknown fields are refused (a typo is a ``422``, not a silent default). Bounds that the
engine would check anyway are in the schema too (``k`` up to
:data:`engramdb.config.MAX_K`), so that clients see them in the OpenAPI document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from engramdb.config import MAX_K

__all__ = [
    "AddIn",
    "ContextIn",
    "ForgetIn",
    "MemoryItemIn",
    "RecallIn",
    "RecognizeIn",
]

_EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
MAX_ITEMS = 10_000
"""The most items one add may carry."""
MAX_BUDGET_TOKENS = 1_000_000


def _epoch(value: float | str | None) -> float | None:
    """An event time as UTC epoch seconds: a number, or an ISO-8601 string (naive: UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value[:60]!r} is not an ISO-8601 time, e.g. 2024-05-02T10:00:00Z"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        value = when.timestamp()
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("event_time must fall between the years 1 and 9999")
    return float(value)


Namespace = Annotated[str, Field(min_length=1, max_length=128, examples=["alice"])]
EventTime = Annotated[
    float | str | None,
    AfterValidator(_epoch),
    Field(
        description="UTC epoch seconds, or an ISO-8601 string.",
        examples=["2024-05-02T10:00:00Z"],
    ),
]
Meta = Annotated[dict[str, Any], Field(description="JSON metadata, e.g. {'team': 'infra'}.")]
Filter = Annotated[
    dict[str, Any],
    Field(description="A filter on columns and metadata, e.g. {'team': 'infra'}."),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MemoryItemIn(_In):
    """One text to remember."""

    text: str = Field(min_length=1)
    source: str | None = Field(default=None, min_length=1, max_length=4096)
    meta: Meta | None = None
    event_time: EventTime = None

    def record(self) -> dict[str, Any]:
        """The item as a record mapping for :meth:`MemoryService.remember`."""
        return {
            "text": self.text,
            "source": self.source,
            "meta": self.meta or {},
            "event_time": self.event_time,
        }


class AddIn(_In):
    """One text (``text`` with ``source``, ``meta``, ``event_time``) or many (``items``)."""

    text: str | None = Field(default=None, min_length=1)
    items: list[MemoryItemIn] | None = Field(default=None, min_length=1, max_length=MAX_ITEMS)
    namespace: Namespace | None = None
    source: str | None = Field(default=None, min_length=1, max_length=4096)
    meta: Meta | None = None
    event_time: EventTime = None

    @model_validator(mode="after")
    def _one_form(self) -> AddIn:
        if (self.text is None) == (self.items is None):
            raise ValueError("give either text or items")
        if self.items is not None and (
            self.source is not None or self.meta is not None or self.event_time is not None
        ):
            raise ValueError("with items, give source, meta and event_time in each item")
        return self

    def records(self) -> list[dict[str, Any]]:
        """The records to add, in order."""
        if self.items is not None:
            return [item.record() for item in self.items]
        single = MemoryItemIn.model_construct(
            text=self.text, source=self.source, meta=self.meta, event_time=self.event_time
        )
        return [single.record()]


class ForgetIn(_In):
    """Forget by source or by filter (exactly one of them)."""

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

    query: str = Field(min_length=1, max_length=100_000)
    k: int = Field(default=10, ge=1, le=MAX_K)
    namespace: Namespace | None = None
    channels: str | list[str] | None = Field(
        default=None,
        description="lexical, dense, graph, hybrid (default) or hybrid+graph; or a list.",
    )
    where: Filter | None = None
    min_relevance: float | None = Field(default=None, ge=0.0, le=1.0)
    coverage: float | None = Field(default=None, gt=0.0, lt=1.0)
    rerank: Literal["mmr", "lambdarank"] | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`MemoryService.recall` but the query."""
        return {
            "k": self.k,
            "namespace": self.namespace,
            "where": self.where,
            "channels": self.channels,
            "min_relevance": self.min_relevance,
            "coverage": self.coverage,
            "rerank": self.rerank,
        }


class ContextIn(RecallIn):
    """A recall packed into a cited context block of at most ``budget_tokens``."""

    k: int = Field(default=20, ge=1, le=MAX_K)
    budget_tokens: int = Field(default=1000, ge=1, le=MAX_BUDGET_TOKENS)
    order: Literal["relevance", "edges", "chronological"] = "relevance"


class RecognizeIn(_In):
    """Have I seen this text?"""

    text: str = Field(min_length=1, max_length=1_000_000)
    namespace: Namespace | None = None
