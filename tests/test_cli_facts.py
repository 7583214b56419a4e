"""``engram history``, ``engram supersede`` and ``engram recall --as-of`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from engramdb.cli import cli


def _run(tmp_path: Path, config: Path, *args: str) -> Result:
    db = str(tmp_path / "m.db")
    return CliRunner().invoke(cli, [*args, "--db", db, "--config", str(config)])


def test_history_supersede_and_as_of(tmp_path: Path, hash_config: Path) -> None:
    chat = [
        {"speaker": "Alice", "time": "2023-01-01T00:00:00Z", "content": "I live in Porto."},
        {"speaker": "Bob", "time": "2023-01-02T00:00:00Z", "content": "Nice city!"},
        {"speaker": "Alice", "time": "2023-06-01T00:00:00Z", "content": "I live in Lisbon."},
    ]
    (tmp_path / "chat.json").write_text(json.dumps(chat), encoding="utf-8")
    added = _run(tmp_path, hash_config, "add", str(tmp_path / "chat.json"), "--no-progress")
    assert added.exit_code == 0, added.output

    recalled = _run(tmp_path, hash_config, "recall", "where does Alice live", "--json")
    hits = json.loads(recalled.output)["items"]
    assert hits[0]["text"] == "I live in Lisbon." and hits[-1]["text"] == "I live in Porto."
    assert hits[-1]["valid_to"] is not None and hits[-1]["relations"][0]["kind"] == "supersede"

    shown = _run(tmp_path, hash_config, "history", "1")
    assert shown.exit_code == 0, shown.output
    assert "1 superseded by 3 at 2023-06-01" in shown.output and "(porto -> lisbon)" in shown.output

    old = _run(tmp_path, hash_config, "recall", "Alice", "--as-of", "2023-03-01", "--json")
    assert {h["id"] for h in json.loads(old.output)["items"]} == {1, 2}

    undone = _run(tmp_path, hash_config, "supersede", "1", "--undo")
    assert undone.exit_code == 0 and "undone" in undone.output
    again = _run(tmp_path, hash_config, "supersede", "1", "3", "--at", "1685577600", "--json")
    assert json.loads(again.output)["origin"] == "manual"
    history = json.loads(_run(tmp_path, hash_config, "history", "3", "--json").output)
    assert [v["id"] for v in history["versions"]] == [1, 3] and len(history["links"]) == 2


def test_bad_uses_say_what_is_wrong(tmp_path: Path, hash_config: Path) -> None:
    (tmp_path / "a.txt").write_text("Alice lives in Porto.", encoding="utf-8")
    _run(tmp_path, hash_config, "add", str(tmp_path / "a.txt"), "--no-progress")
    alone = _run(tmp_path, hash_config, "supersede", "1")
    assert alone.exit_code != 0 and "give OLD and NEW" in alone.output
    missing = _run(tmp_path, hash_config, "supersede", "1", "9")
    assert missing.exit_code == 1 and "no memory with id 9" in missing.output
    bad = _run(tmp_path, hash_config, "recall", "x", "--as-of", "soon")
    assert bad.exit_code == 1 and "as_of must be ISO-8601" in bad.output
    assert "Traceback" not in bad.output + missing.output
