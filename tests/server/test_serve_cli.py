"""``engram serve`` (refusals, the missing extra) and ``engram keys`` add/list/revoke."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engramdb.cli import cli
from engramdb.service import MemoryService, is_loopback

HASH = {"model": "hash", "dim": 64}


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "engramdb.toml"
    path.write_text('[embed]\nmodel = "hash"\ndim = 64\n', encoding="utf-8")
    return str(path)


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_keys_add_list_revoke(tmp_path: Path, config: str) -> None:
    db = str(tmp_path / "team.db")
    made = _run(
        "keys", "add", "alice", "-n", "alice", "-n", "shared", "--db", db, "--config", config
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert key.startswith("egm_")
    assert "will not be shown again" in made.stderr
    bot = _run(
        "keys", "add", "ci-bot", "--namespace", "shared", "--read-only", "--json", "--db", db
    )
    info = json.loads(bot.stdout)
    assert info["name"] == "ci-bot"
    assert info["read_only"] is True
    assert info["namespaces"] == ["shared"]
    assert info["key"].startswith(info["prefix"])

    listed = _run("keys", "list", "--db", db)
    assert "alice" in listed.stdout and "ci-bot" in listed.stdout
    assert key not in listed.stdout
    assert key[:12] in listed.stdout
    assert _run("keys", "revoke", "ci-bot", "--db", db).exit_code == 0
    names = [k["name"] for k in json.loads(_run("keys", "list", "--json", "--db", db).stdout)]
    assert names == ["alice"]
    everything = json.loads(_run("keys", "list", "--revoked", "--json", "--db", db).stdout)
    assert [k["revoked"] is not None for k in everything] == [False, True]

    with MemoryService.open(db, embed=HASH) as service:
        assert service.authenticate(key).namespaces == ("alice", "shared")
        assert service.keys.list()[0].name == "alice"


def test_keys_errors_are_one_line(tmp_path: Path) -> None:
    db = str(tmp_path / "team.db")
    assert _run("keys", "add", "alice", "-n", "alice", "--db", db).exit_code == 0
    again = _run("keys", "add", "alice", "-n", "alice", "--db", db)
    assert again.exit_code == 1
    assert "exists already" in again.stderr
    missing = _run("keys", "revoke", "nobody", "--db", db)
    assert missing.exit_code == 1
    assert "no key named 'nobody'" in missing.stderr
    no_ns = _run("keys", "add", "bob", "--db", db)
    assert no_ns.exit_code == 2
    assert _run("keys", "list", "--db", str(tmp_path / "none.db")).exit_code == 1


def test_serve_refuses_a_public_host_without_keys(tmp_path: Path, config: str) -> None:
    db = tmp_path / "store.db"
    r = _run("serve", "--db", str(db), "--host", "0.0.0.0", "--config", config)
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "no key in the store" in r.stderr
    assert "engram keys add" in r.stderr
    assert not db.exists()
    with MemoryService.open(db, embed=HASH):
        pass
    r = _run("serve", "--db", str(db), "--host", "192.168.1.10", "--config", config)
    assert r.exit_code == 1
    assert "no key in the store" in r.stderr


def test_serve_runs_uvicorn_with_the_app(
    tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engramdb.cli.serve as serve

    served: list[Any] = []
    monkeypatch.setattr(serve, "_run", lambda app, host, port: served.append((app, host, port)))
    db = str(tmp_path / "store.db")
    _run("keys", "add", "alice", "-n", "alice", "--db", db, "--config", config)
    r = _run("serve", "--db", db, "--host", "0.0.0.0", "--port", "9999", "--config", config)
    assert r.exit_code == 0, r.output
    app, host, port = served[0]
    assert (host, port) == ("0.0.0.0", 9999)
    assert app.title == "engramdb"


def test_serve_without_the_server_extra_names_it(
    tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    r = _run("serve", "--db", str(tmp_path / "store.db"), "--config", config)
    assert r.exit_code == 2
    assert 'pip install "engramdb[server]"' in r.stderr


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.10", "example.com", ""]))
