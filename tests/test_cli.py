"""The engram CLI end to end (hash embedder through a config file)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engramdb.cli import cli


@pytest.fixture
def env(tmp_path: Path, hash_config: Path) -> dict[str, str]:
    config = hash_config
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "freeze.md").write_text("Alice moved the deploy freeze to Friday.\n", encoding="utf-8")
    (notes / "cats.txt").write_text("Cats sleep most of the day.\n", encoding="utf-8")
    (notes / "skip.tmp").write_text("ignored", encoding="utf-8")
    chat = [
        {"speaker": "Bob", "time": "2024-05-01T10:00:00Z", "content": "Did the freeze move?"},
        {"speaker": "Alice", "time": "2024-05-01T10:01:00Z", "content": "Yes, to Friday."},
    ]
    (tmp_path / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    return {"db": str(tmp_path / "m.db"), "config": str(config), "dir": str(tmp_path)}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", env["db"], "--config", env["config"]])


def test_add_recall_recognize_stats_forget(env: dict[str, str]) -> None:
    notes, chat = f"{env['dir']}/notes", f"{env['dir']}/chat.json"
    result = run(env, "add", notes, chat, "--namespace", "work", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "added 4" in result.output

    again = run(env, "add", notes, chat, "--namespace", "work", "--no-progress")
    assert "added 0" in again.output and "skipped 4" in again.output

    hits = json.loads(
        run(env, "recall", "deploy freeze", "-k", "2", "--namespace", "work", "--json").output
    )
    assert hits["items"][0]["text"] == "Alice moved the deploy freeze to Friday."
    assert set(hits["items"][0]["why"]) >= {"lexical"}

    speaker = json.loads(
        run(env, "recall", "freeze", "--where", '{"speaker": "Alice"}', "--json").output
    )
    assert [h["text"] for h in speaker["items"]] == ["Yes, to Friday."]
    assert speaker["items"][0]["position"]["ordinal"] == 1

    text = "alice moved the deploy freeze to friday."
    rec = json.loads(run(env, "recognize", text, "-n", "work", "--json").output)
    assert rec["kind"] == "exact"
    elsewhere = json.loads(run(env, "recognize", text, "--json").output)
    assert elsewhere["kind"] == "new" and elsewhere["match"] is None  # the default namespace

    stats = json.loads(run(env, "stats", "--json").output)
    assert stats["memories"] == 4 and stats["namespaces"] == {"work": 4}

    forgot = run(env, "forget", "--source", f"{notes}/freeze.md")
    assert forgot.exit_code == 0 and "forgot 1" in forgot.output
    assert json.loads(run(env, "stats", "--json").output)["memories"] == 3


def test_human_output(env: dict[str, str]) -> None:
    run(env, "add", f"{env['dir']}/notes", "--no-progress")
    out = run(env, "recall", "cats", "-k", "1").output
    assert "Cats sleep most of the day." in out and "why:" in out
    assert "memories" in run(env, "stats").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "/no/such/path", "--no-progress"), "no such file or directory"),
        (("recall", ""), "non-empty"),
        (("recall", "x", "--namespace", "nope"), "unknown namespace"),
        (("recall", "x", "--where", "{bad json"), "JSON"),
        (("get", "999"), "no memory with id 999"),
        (("forget",), "exactly one"),
    ],
)
def test_bad_input_exits_1_with_message(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    run(env, "add", f"{env['dir']}/notes", "--no-progress")
    result = run(env, *args)
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_not_a_store(env: dict[str, str], tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite at all, " * 20, encoding="utf-8")
    result = CliRunner().invoke(cli, ["stats", "--db", str(junk), "--config", env["config"]])
    assert result.exit_code == 1
    assert "not an engramdb store" in result.output


def test_failed_add_leaves_store_unchanged(env: dict[str, str], tmp_path: Path) -> None:
    run(env, "add", f"{env['dir']}/notes", "--no-progress")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken\n', encoding="utf-8")
    result = run(env, "add", f"{env['dir']}/chat.json", str(bad), "--no-progress")
    assert result.exit_code == 1 and "bad.jsonl:2" in result.output
    assert json.loads(run(env, "stats", "--json").output)["memories"] == 2


def test_default_db_under_engramdb_home(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGRAMDB_HOME", str(tmp_path / "home"))
    notes = f"{env['dir']}/notes"
    added = CliRunner().invoke(cli, ["add", notes, "--no-progress", "--config", env["config"]])
    assert added.exit_code == 0, added.output
    result = CliRunner().invoke(cli, ["stats", "--json", "--config", env["config"]])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["path"] == str(tmp_path / "home" / "memory.db")


def test_help_lists_commands() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in ("add", "recall", "recognize", "forget", "stats", "get"):
        assert name in out


def test_check_reports_ok_and_problems(env: dict[str, str], tmp_path: Path) -> None:
    notes = tmp_path / "c.txt"
    notes.write_text("A note about otters.\n", encoding="utf-8")
    assert run(env, "add", str(notes), "--no-progress").exit_code == 0
    ok = run(env, "check")
    assert ok.exit_code == 0 and ok.output.strip() == "ok"
    with sqlite3.connect(env["db"]) as conn:
        conn.execute("DELETE FROM memories_fts")
    bad = run(env, "check")
    assert bad.exit_code == 1 and "lexical index" in bad.output
