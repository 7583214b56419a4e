"""Memory.add_tools / add_demo / recall_tools / recall_demos on a hash-embedder store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import Memory, ToolFusion
from engramdb.engine._tools import MIN_DEMOS
from engramdb.errors import InvalidInputError

HASH = {"model": "hash", "dim": 64}
DATA = Path(__file__).parents[2] / "data" / "tools"


def _spec(name: str, description: str, **props: str) -> dict[str, object]:
    return {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {k: {"type": "string", "description": v} for k, v in props.items()},
        },
    }


@pytest.fixture
def mem() -> Iterator[Memory]:
    with Memory.open(":memory:", embed=HASH) as m:
        m.add_tools(json.loads((DATA / "openai.json").read_text()), server="api")
        m.add_tools(json.loads((DATA / "mcp.json").read_text()), server="fs")
        yield m


def test_identical_re_add_is_a_no_op(mem: Memory) -> None:
    before = mem.tools(versions=True)
    again = mem.add_tools(json.loads((DATA / "openai.json").read_text()), server="api")
    assert (again.added, again.unchanged, again.superseded) == (0, 2, 0)
    assert mem.tools(versions=True) == before


def test_a_changed_spec_supersedes_the_old_version(mem: Memory) -> None:
    old = next(t for t in mem.tools() if t.name == "get_weather")
    result = mem.add_tools(
        _spec("get_weather", "Weather forecast for a city, today or later.", city="City"),
        server="api",
    )
    assert (result.added, result.unchanged, result.superseded) == (0, 0, 1)
    (new_id,) = result.ids
    versions = [t for t in mem.tools(versions=True) if t.name == "get_weather"]
    assert [t.id for t in versions] == [old.id, new_id]
    assert versions[0].valid_to is not None and versions[0].superseded_by == new_id
    assert versions[1].valid_to is None
    assert [t.id for t in mem.tools() if t.name == "get_weather"] == [new_id]
    hits = mem.recall_tools("weather forecast for Paris", 5)
    assert [h.tool.id for h in hits if h.tool.name == "get_weather"] == [new_id]


def test_same_name_on_another_server_is_another_tool(mem: Memory) -> None:
    result = mem.add_tools(_spec("get_weather", "Weather from a second provider."), server="b")
    assert result.added == 1
    assert len([t for t in mem.tools() if t.name == "get_weather"]) == 2


def test_recall_tools_ranks_by_text_and_keeps_the_spec(mem: Memory) -> None:
    hits = mem.recall_tools("read the file at /etc/hosts", 2)
    assert hits[0].tool.name == "read_file" and hits[0].tool.server == "fs"
    assert hits[0].tool.parameters["required"] == ["path"]
    assert 0.0 <= hits[1].relevance <= hits[0].relevance <= 1.0
    assert hits.as_dict()["tools"][0]["name"] == "read_file"


def test_among_restricts_the_choice(mem: Memory) -> None:
    hits = mem.recall_tools("read the file at /etc/hosts", 5, among=["send_email"])
    assert [h.tool.name for h in hits] == ["send_email"]
    weather = next(t for t in mem.tools() if t.name == "get_weather")
    assert [h.tool.id for h in mem.recall_tools("x y", 5, among=[weather.id])] == [weather.id]
    with pytest.raises(InvalidInputError, match="among"):
        mem.recall_tools("x", 5, among="send_email")  # type: ignore[arg-type]


def test_min_relevance_abstains_with_a_reason(mem: Memory) -> None:
    hits = mem.recall_tools("completely unrelated words zebra", 3, min_relevance=0.999)
    assert hits.abstain and len(hits) == 0 and "no tool has relevance" in (hits.reason or "")
    assert not mem.recall_tools("read the file", 3).abstain


def test_an_empty_namespace_recalls_nothing() -> None:
    with Memory.open(":memory:", embed=HASH) as m:
        assert len(m.recall_tools("anything", 3)) == 0
        assert m.recall_tools("anything", 3, min_relevance=0.5).abstain
        assert len(m.recall_demos("anything", 3)) == 0
        assert m.tools() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"request": " "}, "non-empty request"),
        ({"request": "r"}, "calls or an answer"),
        ({"request": "r", "calls": [{"arguments": {}}]}, "needs a name"),
        ({"request": "r", "calls": [{"name": "f", "arguments": "{oops"}]}, "not valid JSON"),
        ({"request": "r", "calls": [{"name": "f", "arguments": [1]}]}, "must be an object"),
        ({"request": "r", "calls": "f()"}, "list of"),
        ({"request": "r", "calls": [{"name": "f", "server": 3}]}, "server must be a string"),
        ({"request": "r", "answer": 3}, "answer must be a string"),
        ({"request": "r", "answer": "a", "meta": {"x": object()}}, "JSON-serialisable"),
    ],
)
def test_bad_demos_raise_clear_errors(mem: Memory, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        mem.add_demo(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"k": 0}, "k must be"), ({"min_relevance": 1.5}, "min_relevance"), ({"k": True}, "k must")],
)
def test_bad_recall_arguments(mem: Memory, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        mem.recall_tools("x", **kwargs)  # type: ignore[arg-type]


def test_demos_attach_by_name_and_survive_a_new_version(mem: Memory) -> None:
    demo = mem.add_demo(
        "what's it like outside in Oslo",
        [{"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}],
    )
    assert demo.calls == ({"name": "get_weather", "arguments": {"city": "Oslo"}},)
    mem.add_demo("mail bob", [{"name": "send_email", "arguments": {}, "server": "elsewhere"}])
    counts = {t.name: t.demos for t in mem.tools()}
    assert counts["get_weather"] == 1 and counts["send_email"] == 0  # other server: not attached
    mem.add_tools(_spec("get_weather", "Weather now."), server="api")
    assert {t.name: t.demos for t in mem.tools()}["get_weather"] == 1


def test_usage_brings_a_tool_forward() -> None:
    """Two tools whose text says nothing about the requests: once enough demonstrations are
    stored, the one that past requests like this one called comes first."""
    with Memory.open(":memory:", embed=HASH) as m:
        m.add_tools([_spec("tool_a", "alpha"), _spec("tool_b", "beta")])
        topics = {"tool_a": "stock price ticker quote", "tool_b": "rain forecast umbrella sky"}
        for i in range(MIN_DEMOS):
            name = "tool_a" if i % 2 else "tool_b"
            m.add_demo(f"{topics[name]} {i}", [{"name": name, "arguments": {}}])
        assert m._tools.fusion("default").fitted_on > 0
        assert m.recall_tools("umbrella forecast for the sky", 2)[0].tool.name == "tool_b"
        assert m.recall_tools("ticker quote of the stock", 2)[0].tool.name == "tool_a"


def test_recall_demos_is_diverse() -> None:
    with Memory.open(":memory:", embed=HASH) as m:
        for city in ("Paris", "Paris", "Paris"):
            m.add_demo(f"weather in {city} tomorrow", [{"name": "get_weather", "arguments": {}}])
        m.add_demo("weather report for Rome tomorrow", [{"name": "get_weather", "arguments": {}}])
        m.add_demo("send mail to Ann", [{"name": "send_email", "arguments": {}}])
        plain = m.recall_demos("weather in Paris tomorrow", 2, lambda_=1.0)
        diverse = m.recall_demos("weather in Paris tomorrow", 2, lambda_=0.3)
        assert [h.demo.request for h in plain] == ["weather in Paris tomorrow"] * 2
        assert len({h.demo.request for h in diverse}) == 2
        assert all(0.0 <= h.relevance <= 1.0 for h in diverse)
        assert m.recall_demos("weather", 2, min_relevance=1.0).abstain
        with pytest.raises(InvalidInputError, match="lambda_"):
            m.recall_demos("weather", 2, lambda_=2.0)


def test_the_fusion_is_fitted_from_enough_demos_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    topics = ["weather", "email", "file", "invoice"]
    with Memory.open(path, embed=HASH) as m:
        m.add_tools([_spec(f"{t}_tool", f"does {t} things") for t in topics])
        assert m._tools.fusion("default").fitted_on == 0  # too few: the default
        for i in range(MIN_DEMOS):
            t = topics[i % 4]
            m.add_demo(f"please {t} number {i} now", [{"name": f"{t}_tool", "arguments": {}}])
        fitted = m._tools.fusion("default")
        assert fitted.fitted_on == MIN_DEMOS
        assert m.recall_tools("please email number 99 now", 1)[0].tool.name == "email_tool"
    with Memory.open(path, embed=HASH) as m:
        assert m._tools.fusion("default") == fitted  # read back, not refitted


def test_forgetting_demos_takes_their_usage_away() -> None:
    """Usage brings ``tool_b`` forward; forgetting its demonstrations falls back to the default
    fusion and to the text alone, exactly as before any were added."""
    with Memory.open(":memory:", embed=HASH) as m:
        m.add_tools([_spec("tool_a", "alpha"), _spec("tool_b", "beta")])
        plain = m.recall_tools("umbrella forecast for the sky", 2)
        for i in range(MIN_DEMOS):
            m.add_demo(f"rain forecast umbrella sky {i}", [{"name": "tool_b", "arguments": {}}])
        demos = m.demos()
        assert [d.request for d in demos][:2] == [
            "rain forecast umbrella sky 0",
            "rain forecast umbrella sky 1",
        ]
        assert m.fit_tool_fusion(("dense", "lexical", "matched")).fitted_on > 0
        assert m.forget_demos([d.id for d in demos] + [10**9]) == MIN_DEMOS
        assert m.demos() == [] and {t.demos for t in m.tools()} == {0}
        assert m.fit_tool_fusion(("dense", "lexical")) == ToolFusion.default()
        again = m.recall_tools("umbrella forecast for the sky", 2)
        assert [(h.tool.id, h.score) for h in again] == [(h.tool.id, h.score) for h in plain]
        with pytest.raises(InvalidInputError, match="integers"):
            m.forget_demos(["1"])  # type: ignore[list-item]
        with pytest.raises(InvalidInputError, match="features"):
            m.fit_tool_fusion(("dense", "clicks"))


def test_tool_features_rank_as_recall_tools_does(mem: Memory) -> None:
    tools, x = mem.tool_features("read the file at /etc/hosts")
    assert x.shape == (len(tools), len(ToolFusion.FEATURES)) == (len(mem.tools()), 5)
    best = tools[int(ToolFusion.default().logits(x).argmax())]
    assert best.id == mem.recall_tools("read the file at /etc/hosts", 1)[0].tool.id
