"""engram export, import and backup end to end (hash embedder through a config file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engramdb import Memory
from engramdb.cli import cli

HASH = {"model": "hash", "dim": 64}


@pytest.fixture
def env(tmp_path: Path, hash_config: Path) -> dict[str, str]:
    db = tmp_path / "m.db"
    with Memory.open(db, embed=HASH) as mem:
        mem.add("Alice moved the deploy freeze to Friday.", source="slack", meta={"team": "a"})
        mem.add("Alice moved the deploy freeze to Friday.", source="email", event_time=5.0)
        mem.add("Cats sleep most of the day.", source="cats.txt", namespace="pets")
    return {"db": str(db), "config": str(hash_config), "dir": str(tmp_path)}


def run(
    env: dict[str, str], *args: str, db: str | None = None, stdin: bytes | None = None
) -> Result:
    return CliRunner().invoke(
        cli, [*args, "--db", db or env["db"], "--config", env["config"]], input=stdin
    )


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_import_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    result = run(env, "export", str(out), "--vectors")
    assert result.exit_code == 0, result.output
    assert "exported 2 memories" in result.output
    rows = _lines(out)
    assert rows[0]["format"] == "engramdb.export" and rows[0]["vectors"] is True
    assert [r["namespace"] for r in rows[1:]] == ["default", "pets"]
    assert all("embedding" in r for r in rows[1:])

    restored = str(tmp_path / "restored.db")
    imported = run(env, "import", str(out), "--json", db=restored)
    assert imported.exit_code == 0, imported.output
    summary = json.loads(imported.output)
    assert summary["added"] == 2 and summary["sightings"] == 3 and summary["reused"] == 2

    again = run(env, "import", str(out), db=restored)
    assert again.exit_code == 0, again.output
    assert "0 added, 2 merged; 0 sightings added, 3 already there" in again.output
    with Memory.open(restored, embed=HASH, create=False) as mem:
        freeze = mem.get(mem.ids(namespace="default")[0])
        assert [s.source for s in freeze.sightings] == ["slack", "email"]
        assert freeze.meta == {"team": "a"} and freeze.sightings[1].event_time == 5.0


def test_export_one_namespace_to_stdout_and_import_from_stdin(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = run(env, "export", "-", "--namespace", "pets")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 2 and rows[1]["text"] == "Cats sleep most of the day."

    restored = str(tmp_path / "restored.db")
    imported = run(env, "import", "-", "-n", "animals", db=restored, stdin=result.stdout_bytes)
    assert imported.exit_code == 0, imported.output
    assert "imported 1 memories: 1 added" in imported.output
    with Memory.open(restored, embed=HASH, create=False) as mem:
        assert mem.namespaces() == {"animals": 1}


def test_export_of_an_unknown_namespace_fails_and_writes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "none.jsonl"
    result = run(env, "export", str(out), "--namespace", "nope")
    assert result.exit_code == 1
    assert "unknown namespace 'nope'" in result.output
    assert not out.exists()


def test_import_reports_the_bad_line_and_writes_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"namespace": "x", "text": "fine"}\n{"namespace": "x", "text": "", "meta": {}}\n',
        encoding="utf-8",
    )
    restored = tmp_path / "restored.db"
    result = run(env, "import", str(bad), db=str(restored))
    assert result.exit_code == 1
    assert f"{bad}:2: 'text' must be a non-empty string [Ingest]" in result.output
    with Memory.open(restored, embed=HASH, create=False) as mem:
        assert mem.ids() == []


def test_import_of_a_missing_file_creates_no_store(env: dict[str, str], tmp_path: Path) -> None:
    restored = tmp_path / "restored.db"
    result = run(env, "import", str(tmp_path / "nope.jsonl"), db=str(restored))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not restored.exists()


def test_backup_and_overwrite(env: dict[str, str], tmp_path: Path) -> None:
    dest = tmp_path / "copy.db"
    result = run(env, "backup", str(dest))
    assert result.exit_code == 0, result.output
    assert f"backed up to {dest}" in result.output
    with Memory.open(dest, embed=HASH, create=False) as mem:
        assert mem.check() == [] and len(mem.ids()) == 2

    refused = run(env, "backup", str(dest))
    assert refused.exit_code == 1 and "--overwrite" in refused.output
    assert run(env, "backup", str(dest), "--overwrite").exit_code == 0
    onto_itself = run(env, "backup", env["db"], "--overwrite")
    assert onto_itself.exit_code == 1 and "onto itself" in onto_itself.output


def test_backup_of_a_missing_store_creates_nothing(env: dict[str, str], tmp_path: Path) -> None:
    result = run(env, "backup", str(tmp_path / "copy.db"), db=str(tmp_path / "missing.db"))
    assert result.exit_code == 1 and "no store at" in result.output
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "copy.db").exists()
