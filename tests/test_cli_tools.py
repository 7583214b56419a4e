"""``engram tools add`` and ``engram tools list`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from engramdb.cli import cli

DATA = Path(__file__).parent / "data" / "tools"


def _run(tmp_path: Path, config: Path, *args: str) -> Result:
    db = str(tmp_path / "m.db")
    return CliRunner().invoke(cli, [*args, "--db", db, "--config", str(config)])


def test_tools_add_and_list(tmp_path: Path, hash_config: Path) -> None:
    openai, mcp = str(DATA / "openai.json"), str(DATA / "mcp.json")
    added = _run(tmp_path, hash_config, "tools", "add", openai, mcp, "--server", "s")
    assert added.exit_code == 0, added.output
    assert "openai.json: 2 added, 0 new version(s), 0 unchanged" in added.output
    again = _run(tmp_path, hash_config, "tools", "add", openai, "--json")
    assert json.loads(again.output)[0]["added"] == 2  # no server this time: other tools

    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps({"name": "read_file", "description": "Read a file (v2)."}))
    new = _run(tmp_path, hash_config, "tools", "add", str(changed), "--server", "s")
    assert "1 new version(s)" in new.output, new.output

    listed = _run(tmp_path, hash_config, "tools", "list")
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("read_file") == 1 and "s/get_weather" in listed.output
    every = _run(tmp_path, hash_config, "tools", "list", "--versions", "--json")
    rows = [t for t in json.loads(every.output) if t["name"] == "read_file"]
    assert len(rows) == 2 and rows[0]["superseded_by"] == rows[1]["id"]


def test_tools_add_refuses_bad_files_before_writing(tmp_path: Path, hash_config: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"tools": [{"description": "nameless"}]}')
    good = str(DATA / "openai.json")
    result = _run(tmp_path, hash_config, "tools", "add", good, str(bad))
    assert result.exit_code == 1 and "bad.json: not a tool spec" in result.output
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = _run(tmp_path, hash_config, "tools", "add", str(broken))
    assert result.exit_code == 1 and "not valid JSON" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m.db").exists()  # nothing was written, not even a store
