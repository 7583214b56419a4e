"""The arguments of each MCP tool, as pydantic models.

A model is both the JSON schema a client lists (see :func:`engramdb.mcp._schema.input_schema`)
and the check of every call: unknown arguments are refused, bounds are enforced, and each
field's description is the model-facing documentation of that argument.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from engramdb.config import CHANNEL_GROUPS, CHANNELS, MAX_K

__all__ = [
    "MAX_BUDGET_TOKENS",
    "ContextArgs",
    "ForgetArgs",
    "RecallArgs",
    "RecognizeArgs",
    "RememberArgs",
    "StatsArgs",
]

MAX_BUDGET_TOKENS = 100_000
"""The largest ``budget_tokens`` the ``context`` tool accepts."""

# -- types shared by several tools --------------------------------------------------------------

_ARGS = ConfigDict(extra="forbid")

Query = Annotated[
    str, Field(min_length=1, description="What to look for, in natural language or keywords.")
]
K = Annotated[int, Field(ge=1, le=MAX_K, description=f"How many hits at most (1 to {MAX_K}).")]
ReadNamespace = Annotated[
    str | None,
    Field(
        min_length=1, description="Look only in this namespace (default: every one you can read)."
    ),
]
WriteNamespace = Annotated[
    str | None,
    Field(
        min_length=1,
        description="The namespace to write to (default: your first namespace).",
    ),
]
Where = Annotated[
    dict[str, Any] | None,
    Field(
        description=(
            'Filter on metadata and columns, Mongo-style: {"team": "infra"}, '
            '{"year": {"$gte": 2023}}, {"source": {"$in": ["slack", "mail"]}}, '
            '{"event_time": {"$gte": "2024-01-01T00:00:00Z"}}; operators $eq $ne $gt $gte '
            "$lt $lte $in $nin $exists $and $or $not. Columns: source, event_time, "
            "ingest_time, namespace, id; any other key is a metadata key."
        )
    ),
]
Channels = Annotated[
    str | list[str] | None,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": [*CHANNEL_GROUPS, *CHANNELS]},
                {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}},
            ]
        }
    ),
    Field(
        description=(
            "How to search: 'hybrid' (default: keywords and meaning), 'lexical' (exact "
            "words, names, codes), 'dense' (meaning), 'graph' or 'hybrid+graph' (associations; "
            "only when the store has its memory graph on), or a list of channels."
        )
    ),
]
MinRelevance = Annotated[
    float | None,
    Field(
        ge=0.0,
        le=1.0,
        description=(
            "Keep only hits whose estimated probability of being relevant is at least this "
            "(0 to 1), e.g. 0.5; fewer, surer hits."
        ),
    ),
]


# -- the arguments of each tool ----------------------------------------------------------------


class RememberArgs(BaseModel):
    model_config = _ARGS

    text: Annotated[
        str,
        Field(
            min_length=1,
            description="What to remember: one self-contained statement (who, what, when).",
        ),
    ]
    namespace: WriteNamespace = None
    source: Annotated[
        str | None,
        Field(
            min_length=1,
            description="Where it comes from, e.g. 'chat', 'slack', a file name or a URL "
            "(forget can later remove everything from one source).",
        ),
    ] = None
    meta: Annotated[
        dict[str, Any] | None,
        Field(description='Metadata as a JSON object, e.g. {"team": "infra"} (filterable).'),
    ] = None
    event_time: Annotated[
        float | str | None,
        Field(
            description="When it happened: ISO-8601 such as '2024-05-02T10:00:00Z', or UTC "
            "epoch seconds."
        ),
    ] = None


class RecallArgs(BaseModel):
    model_config = _ARGS

    query: Query
    k: K = 10
    namespace: ReadNamespace = None
    channels: Channels = None
    where: Where = None
    min_relevance: MinRelevance = None
    as_of: Annotated[
        float | str | None,
        Field(
            description="Recall the memory as it was at this time (ISO-8601 or UTC epoch "
            "seconds): only what was valid then, e.g. an old address before a move."
        ),
    ] = None
    now: Annotated[
        float | str | None,
        Field(
            description="When the question is asked (ISO-8601 or epoch seconds; default: "
            "now), for its time words: 'last week', 'in May', 'most recent'."
        ),
    ] = None
    steps: Annotated[
        int | None,
        Field(
            ge=1,
            le=5,
            description="For multi-step questions (the director of the film that won X): "
            "recall in up to this many steps, each following what the previous one found.",
        ),
    ] = None


class RecognizeArgs(BaseModel):
    model_config = _ARGS

    text: Annotated[str, Field(min_length=1, description="The text to look up.")]
    namespace: ReadNamespace = None


class ForgetArgs(BaseModel):
    model_config = _ARGS

    id: Annotated[
        int | None, Field(ge=0, description="Forget this one memory (an id from recall).")
    ] = None
    source: Annotated[
        str | None, Field(min_length=1, description="Forget every memory from this source.")
    ] = None
    where: Annotated[
        dict[str, Any] | None,
        Field(description='Forget every memory matching this filter, e.g. {"team": "infra"}.'),
    ] = None
    namespace: Annotated[
        str | None,
        Field(
            min_length=1,
            description="With source or where: only in this namespace (default: every "
            "namespace you can write).",
        ),
    ] = None


class ContextArgs(BaseModel):
    model_config = _ARGS

    query: Query
    budget_tokens: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_BUDGET_TOKENS,
            description=f"The most tokens the text may take (1 to {MAX_BUDGET_TOKENS}).",
        ),
    ] = 1000
    k: Annotated[
        int,
        Field(ge=1, le=MAX_K, description=f"How many memories to consider (1 to {MAX_K})."),
    ] = 20
    order: Annotated[
        Literal["relevance", "chronological", "edges"],
        Field(
            description="'relevance' (best first), 'chronological' (oldest first, for "
            "timelines) or 'edges' (best at the start and the end)."
        ),
    ] = "relevance"
    namespace: ReadNamespace = None
    channels: Channels = None
    where: Where = None
    min_relevance: MinRelevance = None


class StatsArgs(BaseModel):
    model_config = _ARGS
