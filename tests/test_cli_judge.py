"""``engram facts propose`` end to end, against a mock OpenAI-compatible chat endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engramdb import Memory
from engramdb.cli import cli
from engramdb.cli import judge as judge_cli
from engramdb.recognize.judge import LLMJudge

httpx = pytest.importorskip("httpx")


def _run(tmp_path: Path, config: Path, *args: str) -> Result:
    db = str(tmp_path / "m.db")
    return CliRunner().invoke(cli, [*args, "--db", db, "--config", str(config)])


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Route the command's judge to a mock server: Initech then Globex is a new value."""
    seen: list[dict[str, Any]] = []

    def handle(request: Any) -> Any:
        body = json.loads(request.content)
        seen.append(body)
        user = body["messages"][-1]["content"]
        older, newer = user.split("\nOlder: ")[1].split("\nNewer: ")
        if "Initech" in older and "Globex" in newer:
            content = '{"verdict": "supersede", "reason": "new employer"}'
        else:
            content = "unrelated"
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    def mocked(url: str, **kwargs: Any) -> LLMJudge:
        return LLMJudge(url, transport=httpx.MockTransport(handle), **kwargs)

    monkeypatch.setattr(judge_cli, "LLMJudge", mocked)
    return seen


def test_propose_records_conflicts_and_supersede_accepts(
    tmp_path: Path, hash_config: Path, asked: list[dict[str, Any]]
) -> None:
    chat = [
        {"speaker": "Ann", "time": "2021-01-01T00:00:00Z", "content": "I work for Initech."},
        {"speaker": "Bob", "time": "2021-02-01T00:00:00Z", "content": "I work for Hooli."},
        {"speaker": "Ann", "time": "2023-06-01T00:00:00Z", "content": "My job is at Globex now."},
    ]
    (tmp_path / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    added = _run(tmp_path, hash_config, "add", str(tmp_path / "chat.json"), "--no-progress")
    assert added.exit_code == 0, added.output

    shown = _run(
        tmp_path, hash_config, "facts", "propose", "--judge-url", "http://llm",
        "--model", "m", "--min-similarity", "-1",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert len(asked) == 1 and asked[0]["model"] == "m"  # Ann's two memories only
    assert "1 -> 3  supersede: new employer" in shown.output
    assert "old 1: I work for Initech." in shown.output
    assert "new 3: My job is at Globex now." in shown.output
    assert "engram supersede OLD NEW" in shown.output
    with Memory.open(tmp_path / "m.db", hash_config, readonly=True) as mem:
        assert all(r.valid_to is None for r in mem.get_many(mem.ids()))

    again = _run(
        tmp_path, hash_config, "facts", "propose", "--judge-url", "http://llm",
        "--model", "m", "--min-similarity", "-1", "--json",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(again.output) == [] and len(asked) == 1  # linked now: not asked again

    accepted = _run(tmp_path, hash_config, "supersede", "1", "3")
    assert accepted.exit_code == 0, accepted.output
    history = json.loads(_run(tmp_path, hash_config, "history", "1", "--json").output)
    kinds = {(link["kind"], link["origin"], link["undone"] is None) for link in history["links"]}
    assert kinds == {("conflict", "judge", False), ("supersede", "manual", True)}


def test_propose_json_lists_the_links(
    tmp_path: Path, hash_config: Path, asked: list[dict[str, Any]]
) -> None:
    for name, text in (("a.txt", "I work for Initech."), ("b.txt", "My job is at Globex now.")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        added = _run(tmp_path, hash_config, "add", str(tmp_path / name), "--no-progress")
        assert added.exit_code == 0, added.output
    out = _run(
        tmp_path, hash_config, "facts", "propose", "--judge-url", "http://llm/v1",
        "--model", "m", "--min-similarity", "-1", "--json",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    (link,) = json.loads(out.output)
    assert (link["old"], link["new"], link["kind"], link["origin"]) == (1, 2, "conflict", "judge")
    assert link["detail"] == {"proposal": "supersede", "reason": "new employer"}


def test_propose_refuses_bad_options_and_a_missing_store(tmp_path: Path, hash_config: Path) -> None:
    base = ["facts", "propose", "--judge-url", "http://llm", "--model", "m"]
    assert _run(tmp_path, hash_config, *base, "--limit", "0").exit_code == 2
    assert _run(tmp_path, hash_config, *base, "--min-similarity", "1.5").exit_code == 2
    assert _run(tmp_path, hash_config, "facts", "propose", "--model", "m").exit_code == 2
    missing = _run(tmp_path, hash_config, *base)
    assert missing.exit_code == 1 and "Error:" in missing.output
