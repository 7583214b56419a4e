"""``engram index stats|build|rebuild`` end to end (hash embedder, tiny SPANN settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engramdb import Memory
from engramdb.cli import cli

CONFIG = """\
[embed]
model = "hash"
dim = 32

[ann]
spann_threshold = 50

[ann.spann]
posting_size = 8
posting_limit = 24
merge_threshold = 2
max_probes = 64
prune_eps = "auto"
head_index = "exact"
calibration_queries = 0
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "engramdb.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return {"db": str(tmp_path / "m.db"), "config": str(config)}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", env["db"], "--config", env["config"]])


def fill(env: dict[str, str], n: int) -> None:
    with Memory.open(env["db"], env["config"]) as mem:
        mem.add_many([f"note {i}: the {i % 7} otters met {i * 13 % 97} herons" for i in range(n)])


def test_stats_build_rebuild_below_the_threshold(env: dict[str, str]) -> None:
    fill(env, 20)
    info = json.loads(run(env, "index", "stats", "--json").output)
    assert info["kind"] == "flat" and info["count"] == info["memories"] == 20
    assert not info["stale"] and info["configured"] == "auto"

    built = run(env, "index", "build")
    assert built.exit_code == 0, built.output
    assert "SPANN index at" in built.output and "20 vectors" in built.output

    info = json.loads(run(env, "index", "stats", "--json").output)
    assert info["kind"] == "spann" and info["count"] == 20 and info["spann"]["heads"] >= 1
    assert info["store_version"] == info["log_seq"] and not info["stale"]
    assert info["spann"]["disk_bytes"] > 0 and info["spann"]["list_size"]["max"] >= 1
    assert info["last_build"] is None  # opened as saved

    rebuilt = run(env, "index", "rebuild")
    assert rebuilt.exit_code == 0 and rebuilt.output.startswith("rebuilt SPANN index")


def test_human_stats_above_the_threshold(env: dict[str, str]) -> None:
    fill(env, 80)
    out = run(env, "index", "stats").output
    assert "SPANN index at" in out and "80 vectors" in out
    assert "memories    80" in out and "STALE" not in out and "lists" in out
    assert json.loads(run(env, "stats", "--json").output)["dense"]["kind"] == "spann"


def test_stale_index_is_rebuilt_on_open_and_says_why(env: dict[str, str]) -> None:
    fill(env, 80)
    with Memory.open(env["db"], env["config"]) as mem:
        path = mem.dense_index.path
        assert path is not None
    (path / "manifest.json").unlink()
    info = json.loads(run(env, "index", "stats", "--json").output)
    assert info["kind"] == "spann" and not info["stale"]
    assert info["last_build"].startswith("the index is torn or corrupt")
    assert "\nbuilt " not in run(env, "index", "stats").output  # repaired: opened as saved


def test_errors_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    missing = run(env, "index", "build")
    assert missing.exit_code == 1 and "no store at" in missing.output
    with Memory.open(env["db"], embed={"model": "hash", "dim": 32}):
        pass  # an empty store
    empty = run(env, "index", "build")
    assert empty.exit_code == 1 and "no memories" in empty.output
    flat = tmp_path / "flat.toml"
    flat.write_text('[embed]\nmodel = "hash"\ndim = 32\n[ann]\nkind = "flat"\n', encoding="utf-8")
    fill({"db": env["db"], "config": str(flat)}, 3)
    refused = CliRunner().invoke(cli, ["index", "build", "--db", env["db"], "--config", str(flat)])
    assert refused.exit_code == 1 and "'flat'" in refused.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[ann.spann]\nbogus = 1\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["index", "stats", "--db", env["db"], "--config", str(bad)])
    assert result.exit_code == 1 and "bogus" in result.output
