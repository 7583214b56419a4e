"""Tool arguments: pydantic models that validate a call and give the JSON schema clients see.

One model per tool is the single source of both: the schema in ``tools/list`` and the check
of ``tools/call`` arguments. The schemas are trimmed for an LLM reader: no generated titles,
and an optional argument is its plain type (leaving it out means "not given") rather than a
union with ``null``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

__all__ = ["describe_errors", "input_schema"]


class _LeanSchema(GenerateJsonSchema):
    """Pydantic's JSON schema without titles, ``null`` branches or ``default: null``."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        value = super().default_schema(schema)
        if value.get("default", 0) is None:
            del value["default"]
        return value

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        value = super().model_schema(schema)
        value.pop("title", None)
        return value


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments."""
    return model.model_json_schema(schema_generator=_LeanSchema)


def describe_errors(exc: ValidationError) -> str:
    """One line per bad argument: ``k: Input should be less than or equal to 10000``."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        lines.append(f"{where}: {error['msg']}")
    return "; ".join(lines)
