"""Tool specs: OpenAI function/tool JSON, MCP ``tools/list`` results, plain JSON Schema.

Every form becomes a :class:`ToolSpec` (name, description, parameter schema, source server
and the original spec). Accepted shapes, alone or in a list:

* OpenAI tool ``{"type": "function", "function": {"name", "description", "parameters"}}``
  and the bare function ``{"name", "description", "parameters"}``; a wrapper
  ``{"tools": [...]}`` or ``{"functions": [...]}`` (a chat request's own fields);
* MCP tool ``{"name", "description", "inputSchema"}``, its ``tools/list`` result
  ``{"tools": [...]}`` and the JSON-RPC response ``{"result": {"tools": [...]}}``;
* JSON Schema of the arguments, named by its ``title``:
  ``{"title", "description", "type": "object", "properties": {...}}``.

A spec's :attr:`~ToolSpec.digest` covers what the tool *is* (name, description, parameters),
so re-adding the same tool is recognised whatever the key order of its JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engramdb.errors import InvalidInputError

__all__ = ["ToolSpec", "load_specs", "name_words", "spec_text"]

_MAX_TOOLS = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """One tool as an agent sees it.

    Attributes:
        name: the name a call uses.
        description: what it does ("" when the spec has none).
        parameters: the JSON Schema of its arguments (``{}`` when it takes none).
        server: where it comes from (an MCP server, an API); ``""`` when unknown.
        spec: the original spec, as given.
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    server: str = ""
    spec: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON of name, description and parameters."""
        body = {"name": self.name, "description": self.description, "parameters": self.parameters}
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _where(index: int | None) -> str:
    return "" if index is None else f"tool {index}: "


def _text(value: Any, what: str, index: int | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{_where(index)}{what} must be a string, got {type(value).__name__}"
        )
    return value.strip()


def _schema(value: Any, index: int | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"{_where(index)}the parameter schema must be a JSON object, got {type(value).__name__}"
        )
    props = value.get("properties")
    if props is not None and not isinstance(props, Mapping):
        raise InvalidInputError(
            f"{_where(index)}'properties' of the parameter schema must be an object"
        )
    return dict(value)


def _one(item: Any, index: int | None, server: str) -> ToolSpec:
    """One tool in any of the accepted shapes."""
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"{_where(index)}a tool spec must be a JSON object, got {type(item).__name__}"
        )
    body: Mapping[str, Any] = item
    if item.get("type") == "function" and "function" in item:
        inner = item["function"]
        if not isinstance(inner, Mapping):
            raise InvalidInputError(f"{_where(index)}'function' must be a JSON object")
        body = inner
    if "inputSchema" in body:  # MCP
        params: Any = body.get("inputSchema")
        name = body.get("name")
    elif "parameters" in body or "name" in body:  # OpenAI function (or BFCL's)
        params = body.get("parameters")
        name = body.get("name")
    elif body.get("type") == "object" or "properties" in body:  # JSON Schema
        params = {k: v for k, v in body.items() if k not in ("title", "description")}
        name = body.get("title")
    else:
        raise InvalidInputError(
            f"{_where(index)}not a tool spec: expected an OpenAI function or tool, an MCP tool "
            "or a JSON Schema with a title (keys: " + ", ".join(sorted(map(str, body))) + ")"
        )
    name = _text(name, "the name", index)
    if not name:
        raise InvalidInputError(
            f"{_where(index)}a tool needs a name ('name', or 'title' in a schema)"
        )
    found = item.get("server", body.get("server"))
    return ToolSpec(
        name=name,
        description=_text(body.get("description"), "the description", index),
        parameters=_schema(params, index),
        server=_text(found, "the server", index) if found is not None else server,
        spec=dict(item),
    )


def _items(data: Any) -> list[Any]:
    """The list of tools inside any accepted wrapper."""
    if isinstance(data, Mapping):
        if isinstance(data.get("result"), Mapping) and "tools" in data["result"]:
            data = data["result"]  # JSON-RPC response to tools/list
        for key in ("tools", "functions"):
            if key in data:
                inner = data[key]
                if not isinstance(inner, list):
                    raise InvalidInputError(f"'{key}' must be a list of tool specs")
                return list(inner)
        return [data]
    if isinstance(data, list):
        return list(data)
    raise InvalidInputError(
        f"tool specs must be a JSON object or a list, got {type(data).__name__}"
    )


def load_specs(data: Any, *, server: str | None = None) -> list[ToolSpec]:
    """Tool specs from parsed JSON (or a JSON string) in any accepted shape.

    Args:
        data: one spec, a list of specs, or a wrapper (``tools``, ``functions``, an MCP
            ``tools/list`` result or its JSON-RPC response); already parsed, or JSON text.
        server: the source server of tools whose spec names none.

    Raises:
        InvalidInputError: malformed JSON, no tools, a spec without a name, a parameter
            schema that is not an object, or two different specs with one server and name.
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise InvalidInputError(f"tool specs are not valid JSON: {exc}") from exc
    default = _text(server, "server", None)
    items = _items(data)
    if not items:
        raise InvalidInputError("no tool specs given")
    if len(items) > _MAX_TOOLS:
        raise InvalidInputError(f"at most {_MAX_TOOLS} tools at once, got {len(items)}")
    specs = [_one(item, i if len(items) > 1 else None, default) for i, item in enumerate(items)]
    seen: dict[tuple[str, str], str] = {}
    for spec in specs:
        key = (spec.server, spec.name)
        if seen.setdefault(key, spec.digest) != spec.digest:
            where = f" of server {spec.server!r}" if spec.server else ""
            raise InvalidInputError(
                f"two different specs for tool {spec.name!r}{where} in one call"
            )
    return specs


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[._\-/:]+")


def name_words(name: str) -> str:
    """``"math_toolkit.sumOfMultiples"`` → ``"math toolkit sum Of Multiples"``."""
    return " ".join(_SEPARATORS.sub(" ", _CAMEL.sub(" ", name)).split())


def _params(schema: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[str]:
    out: list[str] = []
    props = schema.get("properties")
    if not isinstance(props, Mapping) or depth > 3:
        return out
    for key, sub in props.items():
        name = f"{prefix}{key}"
        if not isinstance(sub, Mapping):
            out.append(name)
            continue
        desc = sub.get("description")
        out.append(f"{name}: {' '.join(desc.split())}" if isinstance(desc, str) and desc else name)
        out += _params(sub, f"{name}.", depth + 1)
        items = sub.get("items")
        if isinstance(items, Mapping):
            out += _params(items, f"{name}[].", depth + 1)
    return out


def spec_text(spec: ToolSpec) -> str:
    """The text a tool is searched by: its name's words, description and parameters
    (``name: description`` each; types and defaults left out)."""
    head = name_words(spec.name)
    parts = [f"{head}. {spec.description}" if spec.description else head]
    params = _params(spec.parameters)
    if params:
        parts.append("Parameters: " + "; ".join(params))
    return "\n".join(parts)
