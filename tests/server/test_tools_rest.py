"""``/v1/tools`` and ``/v1/demos``: add, list, recall, scoped to the key's namespaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parents[1] / "data" / "tools"


def test_tools_and_demos_over_rest(client: Any) -> None:
    specs = json.loads((DATA / "mcp.json").read_text())
    added = client.post("/v1/tools", json={"specs": specs, "server": "fs"})
    assert added.status_code == 201, added.text
    assert added.json()["added"] == 2
    again = client.post("/v1/tools", json={"specs": specs, "server": "fs"}).json()
    assert again["unchanged"] == 2
    tools = client.get("/v1/tools").json()["tools"]
    assert sorted(t["name"] for t in tools) == ["list_directory", "read_file"]

    demo = client.post(
        "/v1/demos",
        json={"request": "open todo.md", "calls": [{"name": "read_file", "arguments": {}}]},
    )
    assert demo.status_code == 201 and demo.json()["calls"][0]["name"] == "read_file"

    found = client.post("/v1/tools/recall", json={"request": "read the file todo.md"}).json()
    assert found["tools"][0]["name"] == "read_file" and found["abstain"] is False
    none = client.post("/v1/tools/recall", json={"request": "zebra", "min_relevance": 0.999})
    assert none.json()["abstain"] is True and none.json()["tools"] == []
    demos = client.post("/v1/demos/recall", json={"request": "open notes.md"}).json()
    assert demos["demos"][0]["request"] == "open todo.md"


def test_bad_tool_input_is_a_clear_error(client: Any) -> None:
    bad = client.post("/v1/tools", json={"specs": [{"description": "nameless"}]})
    assert bad.status_code == 400 and "not a tool spec" in bad.text
    unknown = client.post("/v1/tools/recall", json={"request": "x", "limit": 3})
    assert unknown.status_code == 422
    empty = client.post("/v1/demos", json={"request": "x"})
    assert empty.status_code == 400 and "calls or an answer" in empty.text


def test_tools_are_scoped_to_the_key(client: Any, keys: Any) -> None:
    spec = {"name": "secret_tool", "description": "Alice's private tool."}
    made = client.post("/v1/tools", json={"specs": spec}, headers=keys.alice)
    assert made.status_code == 201, made.text
    mine = client.get("/v1/tools", headers=keys.alice).json()["tools"]
    assert [(t["name"], t["namespace"]) for t in mine] == [("secret_tool", "alice")]
    assert client.get("/v1/tools", headers=keys.bob).json()["tools"] == []
    peek = client.get("/v1/tools", params={"namespace": "alice"}, headers=keys.bob)
    assert peek.json()["tools"] == []
    asked = {"request": "private tool", "namespace": "alice"}
    assert client.post("/v1/tools/recall", json=asked, headers=keys.bob).json()["tools"] == []
    refused = client.post("/v1/tools", json={"specs": spec, "namespace": "alice"}, headers=keys.bob)
    assert refused.status_code == 404
    read_only = client.post("/v1/tools", json={"specs": spec}, headers=keys.reader)
    assert read_only.status_code == 403
