"""Tool spec loaders against fixtures: OpenAI, MCP, JSON Schema; malformed input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engramdb.errors import InvalidInputError
from engramdb.tools.specs import ToolSpec, load_specs, name_words, spec_text

DATA = Path(__file__).parents[2] / "data" / "tools"


def _load(name: str) -> object:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def test_openai_tools() -> None:
    specs = load_specs(_load("openai.json"), server="api")
    assert [s.name for s in specs] == ["get_weather", "send_email"]
    weather = specs[0]
    assert weather.description == "Current weather for a city."
    assert weather.parameters["required"] == ["city"]
    assert weather.server == "api"
    assert weather.spec["type"] == "function"  # the original spec, as given


def test_openai_bare_function_and_functions_wrapper() -> None:
    bare = {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}
    assert load_specs(bare)[0].name == "f"
    assert [s.name for s in load_specs({"functions": [bare]})] == ["f"]


def test_mcp_tools_list_result() -> None:
    specs = load_specs(_load("mcp.json"), server="fs")
    assert [s.name for s in specs] == ["read_file", "list_directory"]
    assert specs[0].parameters["properties"]["path"]["type"] == "string"
    assert {s.server for s in specs} == {"fs"}
    inner = _load("mcp.json")["result"]  # type: ignore[index]
    assert [s.name for s in load_specs(inner)] == ["read_file", "list_directory"]


def test_json_schema_named_by_title() -> None:
    (spec,) = load_specs(_load("schema.json"))
    assert spec.name == "create_invoice"
    assert spec.description == "Create an invoice for a customer."
    assert "title" not in spec.parameters and spec.parameters["required"] == ["customer"]
    text = spec_text(spec)
    assert "customer: Customer id" in text and "lines[].amount: Line amount" in text


def test_json_text_and_server_in_spec() -> None:
    specs = load_specs('[{"name": "a", "server": "s1"}, {"name": "a", "server": "s2"}]')
    assert [(s.name, s.server) for s in specs] == [("a", "s1"), ("a", "s2")]


def test_digest_ignores_key_order_but_not_content() -> None:
    a = ToolSpec(name="t", description="d", parameters={"x": 1, "y": 2})
    b = ToolSpec(name="t", description="d", parameters={"y": 2, "x": 1})
    c = ToolSpec(name="t", description="d", parameters={"x": 1, "y": 3})
    assert a.digest == b.digest != c.digest


def test_name_words() -> None:
    assert name_words("math_toolkit.sumOfMultiples") == "math toolkit sum Of Multiples"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], "no tool specs given"),
        (42, "must be a JSON object or a list"),
        ([{"description": "no name"}], "not a tool spec"),
        ({"name": "", "parameters": {}}, "needs a name"),
        ({"name": 3, "parameters": {}}, "the name must be a string"),
        ({"name": "f", "parameters": "x"}, "parameter schema must be a JSON object"),
        ({"name": "f", "parameters": {"properties": []}}, "'properties'"),
        ({"tools": {"name": "f"}}, "'tools' must be a list"),
        ([{"name": "f"}, "g"], "tool 1: a tool spec must be a JSON object"),
        ({"type": "function", "function": "f"}, "'function' must be a JSON object"),
        ([{"name": "f", "description": "a"}, {"name": "f", "description": "b"}], "two different"),
    ],
)
def test_malformed_specs_raise_clear_errors(data: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        load_specs(data)
