"""Arguments of the ``recall_tools`` and ``recall_demos`` MCP tools."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from engramdb.mcp._arguments import _ARGS, MinRelevance, ReadNamespace

__all__ = ["RecallDemosArgs", "RecallToolsArgs"]

Request = Annotated[
    str,
    Field(min_length=1, description="The request to serve, in the user's words."),
]


class RecallToolsArgs(BaseModel):
    model_config = _ARGS

    request: Request
    k: Annotated[int, Field(ge=1, le=50, description="How many tools at most (1 to 50).")] = 5
    namespace: ReadNamespace = None
    min_relevance: MinRelevance = None
    among: Annotated[
        list[int | str] | None,
        Field(description="Choose only among these tools (ids or names), e.g. those available."),
    ] = None


class RecallDemosArgs(BaseModel):
    model_config = _ARGS

    request: Request
    k: Annotated[int, Field(ge=1, le=20, description="How many examples at most (1 to 20).")] = 3
    namespace: ReadNamespace = None
    min_relevance: MinRelevance = None
    diversity: Annotated[
        float,
        Field(
            ge=0.0,
            le=1.0,
            description="0 keeps the most similar examples, higher values favour different ones.",
        ),
    ] = 0.3
