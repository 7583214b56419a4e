"""The command line over a cluster: ``engram cluster status/add-shard/flush``,
``engram serve --cluster`` and ``engram eval --cluster`` (shards in this process, and one
run on a local Ray instance)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engramdb.cli import cli
from engramdb.service import SERVICE_STORE, ClusterMemory

HASH = {"model": "hash", "dim": 64}
DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
LOCAL = ("--cluster", "local", "--cluster-backend", "local")
TEXTS = [
    "Alice moved the deploy freeze to Friday.",
    "Bob owns the release train and its Tuesday departures.",
    "The budget review moved to Lisbon in May.",
    "Carol prefers green tea over coffee in the morning.",
    "The on-call rotation changes every Monday at noon.",
    "Dave keeps the deploy checklist in the wiki.",
    "Erin books the team offsite in September.",
    "Frank's laptop is due for a battery swap.",
]


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A 2-shard cluster holding :data:`TEXTS` (namespace ``team``) under ``tmp_path/c``."""
    folder = tmp_path / "c"
    with ClusterMemory.open(
        None, root=folder, shards=2, backend="local", embed=HASH, home=False
    ) as memory:
        assert memory.add_many(TEXTS, namespace="team").added == len(TEXTS)
    return folder


def _cluster(root: Path, config: Path, *args: str) -> Result:
    command, rest = args[0], args[1:]
    return _run("cluster", command, *LOCAL, "--db-root", str(root), "--config", str(config), *rest)


# -- engram cluster ----------------------------------------------------------------------------


def test_status_lists_shards_with_their_memories(root: Path, hash_config: Path) -> None:
    shown = _cluster(root, hash_config, "status")
    assert shown.exit_code == 0, shown.output
    head, *rows = shown.stdout.strip().splitlines()
    assert head == (
        f"cluster at {root}: 2 shards (0 missing), 8 memories, routing version 1, 0 pending writes"
    )
    counts = {}
    for row in rows:
        name, count = re.fullmatch(r"\s+(shard-\d)\s+(\d+) memor(?:y|ies)", row).groups()  # type: ignore[union-attr]
        counts[name] = int(count)
    assert set(counts) == {"shard-0", "shard-1"}
    assert sum(counts.values()) == 8

    found = json.loads(_cluster(root, hash_config, "status", "--json").stdout)
    assert found["root"] == str(root)
    assert (found["version"], found["pending"], found["missing"]) == (1, 0, [])
    assert found["memories"] == 8 and found["namespaces"] == {"team": 8}
    assert {s["name"]: s["memories"] for s in found["shards"]} == counts
    assert all(s["memories"] == sum(s["namespaces"].values()) for s in found["shards"])


def test_add_shard_moves_a_share_and_keeps_every_memory(root: Path, hash_config: Path) -> None:
    added = _cluster(root, hash_config, "add-shard")
    assert added.exit_code == 0, added.output
    line = added.stdout.strip()
    found = re.fullmatch(
        r"added shard-2: 341 routing slots and (\d+) memories moved to it; "
        r"8 memories in the cluster",
        line,
    )
    assert found is not None, line
    moved = int(found.group(1))
    status = json.loads(_cluster(root, hash_config, "status", "--json").stdout)
    assert [s["name"] for s in status["shards"]] == ["shard-0", "shard-1", "shard-2"]
    assert status["shards"][2]["memories"] == moved
    assert status["memories"] == 8 and status["version"] == 2

    again = json.loads(_cluster(root, hash_config, "add-shard", "--json").stdout)
    assert set(again) == {"shard", "moved", "slots", "memories"}
    assert (again["shard"], again["slots"], again["memories"]) == ("shard-3", 256, 8)
    with ClusterMemory.open(None, root=root, backend="local", embed=HASH, home=False) as memory:
        assert memory.shards == ["shard-0", "shard-1", "shard-2", "shard-3"]
        hits = memory.recall("who moved the deploy freeze", k=1)
        assert hits[0].text == TEXTS[0]


def test_flush_with_nothing_pending(root: Path, hash_config: Path) -> None:
    flushed = _cluster(root, hash_config, "flush")
    assert flushed.exit_code == 0, flushed.output
    assert flushed.stdout.strip() == "applied 0 pending writes"
    as_json = json.loads(_cluster(root, hash_config, "flush", "--json").stdout)
    assert as_json == {"applied": 0, "pending": 0, "missing": []}


def test_cluster_commands_fail_in_one_line(tmp_path: Path, root: Path, hash_config: Path) -> None:
    nowhere = tmp_path / "nowhere"
    for command in ("status", "add-shard", "flush"):
        message = _one_line_error(_cluster(nowhere, hash_config, command))
        assert f"no cluster at {nowhere}" in message
    assert not nowhere.exists()  # nothing was created
    empty = _run("cluster", "status", "--cluster", " ", "--db-root", str(root))
    assert "cluster address" in _one_line_error(empty)
    missing = _run("cluster", "status", "--db-root", str(root))
    assert missing.exit_code == 2 and "--cluster" in missing.stderr
    assert "cluster" in _run("--help").stdout


# -- engram serve --cluster --------------------------------------------------------------------


def test_serve_cluster_usage_errors(tmp_path: Path, hash_config: Path) -> None:
    pytest.importorskip("fastapi")
    root = str(tmp_path / "c")
    no_root = _run("serve", *LOCAL, "--config", str(hash_config))
    assert no_root.exit_code == 2 and "--db-root" in no_root.stderr
    both = _run("serve", *LOCAL, "--db-root", root, "--db", str(tmp_path / "x.db"))
    assert both.exit_code == 2 and "give one of them" in both.stderr
    alone = _run("serve", "--shards", "2")
    assert alone.exit_code == 2 and "go with --cluster" in alone.stderr
    public = _run("serve", *LOCAL, "--db-root", root, "--host", "0.0.0.0")
    message = _one_line_error(public)
    assert "refusing to listen on 0.0.0.0" in message
    assert f"--db {Path(root) / SERVICE_STORE}" in message


def test_serve_cluster_answers_rest(
    tmp_path: Path, hash_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``engram serve --cluster``: the app it would serve, called in process, over a new
    3-shard cluster; keys made with ``engram keys add --db ROOT/service.db`` guard it."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    import engramdb.cli.serve as serve_module

    root = tmp_path / "c"
    seen: dict[str, Any] = {}

    def fake_run(app: Any, host: str, port: int) -> None:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            add = client.post("/v1/memories", json={"items": [{"text": t} for t in TEXTS]})
            seen["add"] = add.status_code
            seen["recall"] = client.post("/v1/recall", json={"query": "deploy freeze", "k": 1})
            seen["stats"] = client.get("/v1/stats").json()
            seen["history"] = client.get("/v1/memories/1/history")
            seen["shards"] = app.state.service.memory.shards

    monkeypatch.setattr(serve_module, "_run", fake_run)
    served = _run(
        "serve", *LOCAL, "--shards", "3", "--db-root", str(root), "--config", str(hash_config)
    )
    assert served.exit_code == 0, served.output
    assert f"cluster at {root}, 3 shard(s)" in served.stderr
    assert seen["add"] == 201
    assert seen["recall"].json()["hits"][0]["text"] == TEXTS[0]
    assert seen["stats"]["memories"] == 8 and seen["stats"]["store"]["path"] == str(root)
    assert seen["history"].status_code == 400
    assert seen["shards"] == ["shard-0", "shard-1", "shard-2"]

    keys = root / SERVICE_STORE
    made = _run("keys", "add", "alice", "-n", "default", "--db", str(keys))
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()

    def guarded(app: Any, host: str, port: int) -> None:
        with TestClient(app, base_url=f"http://{host}") as client:
            seen["anonymous"] = client.get("/v1/stats").status_code
            headers = {"Authorization": f"Bearer {key}"}
            seen["alice"] = client.get("/v1/stats", headers=headers).json()

    monkeypatch.setattr(serve_module, "_run", guarded)
    public = _run(
        "serve", *LOCAL, "--db-root", str(root), "--host", "0.0.0.0", "--config", str(hash_config)
    )
    assert public.exit_code == 0, public.output
    assert seen["anonymous"] == 401
    assert seen["alice"]["namespaces"] == {"default": 8}


# -- engram eval --cluster ---------------------------------------------------------------------


def _eval(tmp_path: Path, name: str, *args: str) -> dict[str, Any]:
    out = tmp_path / f"{name}.json"
    result = _run(
        "eval",
        str(DATA / "tiny_beir"),
        "--embedder",
        "hash",
        "--no-progress",
        "--out",
        str(out),
        *args,
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(out.read_text())
    report["markdown"] = result.stdout
    return report


def test_eval_on_two_shards_gives_the_single_store_figures(tmp_path: Path) -> None:
    one = _eval(tmp_path, "one")
    two = _eval(tmp_path, "two", *LOCAL, "--shards", "2")
    assert one["metrics"]["hybrid"]["ndcg@10"] == pytest.approx(0.9768, abs=1e-4)
    assert one["metrics"]["lexical"]["recall@10"] == pytest.approx(0.875)
    assert two["metrics"] == one["metrics"]
    assert two["series"] == one["series"]
    for channel, rows in one["per_query"].items():
        assert [r["top"] for r in two["per_query"][channel]] == [r["top"] for r in rows]
    assert one["config"]["cluster"] is None
    assert two["config"]["cluster"] == {
        "address": "local",
        "shards": 2,
        "backend": "local",
        "db_root": None,
    }
    assert "- cluster: 2 shards at `local` (local backend)" in two["markdown"]
    assert "- cluster:" not in one["markdown"]


def test_eval_keeps_a_given_db_root(tmp_path: Path) -> None:
    root = tmp_path / "kept"
    report = _eval(tmp_path, "kept", *LOCAL, "--shards", "3", "--db-root", str(root))
    assert report["config"]["cluster"]["shards"] == 3
    assert report["config"]["cluster"]["db_root"] == str(root)
    assert (root / "catalog.db").is_file()
    assert not (root / SERVICE_STORE).exists()  # the harness needs no keys
    hashed = {"model": "hash"}  # --embedder hash: the hash embedder's default dimension
    with ClusterMemory.open(None, root=root, backend="local", embed=hashed, home=False) as memory:
        assert sum(memory.namespaces().values()) == report["ingest"]["memories"] == 12


def test_eval_cluster_option_errors(tmp_path: Path) -> None:
    beir = str(DATA / "tiny_beir")
    alpha = _run("eval", beir, "--embedder", "hash", "--no-progress", *LOCAL, "--alpha", "0.1")
    assert "not available on a cluster yet" in _one_line_error(alpha)
    with_db = _run("eval", beir, "--no-progress", *LOCAL, "--db", str(tmp_path / "x.db"))
    assert "give one of them" in _one_line_error(with_db)
    shards_alone = _run("eval", beir, "--no-progress", "--shards", "2")
    assert "go with cluster" in _one_line_error(shards_alone)


@pytest.mark.ray
def test_eval_on_ray_gives_the_single_store_figures(tmp_path: Path, ray_local: Any) -> None:
    one = _eval(tmp_path, "one")
    on_ray = _eval(tmp_path, "ray", "--cluster", "local", "--shards", "2")
    assert on_ray["metrics"] == one["metrics"]
    assert on_ray["config"]["cluster"]["backend"] == "ray"
    assert on_ray["config"]["cluster"]["shards"] == 2
    assert ray_local.is_initialized()
