"""``engram recall`` with --min-relevance, --coverage and --rerank (hash embedder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engramdb.cli import cli

NOTES = [
    "Alice moved the deploy freeze to Friday.",
    "Cats sleep most of the day.",
    "The deploy pipeline runs every night at two.",
    "Bob owns the release checklist for the mobile app.",
    "Our sourdough starter needs feeding twice a day.",
    "The office closes early on the last Friday of the month.",
]


@pytest.fixture
def env(tmp_path: Path, hash_config: Path) -> dict[str, str]:
    config = hash_config
    notes = tmp_path / "notes"
    notes.mkdir()
    for i, text in enumerate(NOTES):
        (notes / f"n{i}.txt").write_text(text + "\n", encoding="utf-8")
    e = {"db": str(tmp_path / "m.db"), "config": str(config)}
    assert _run(e, "add", str(notes), "--no-progress").exit_code == 0
    return e


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--db", env["db"], "--config", env["config"]])


def _json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = _run(env, "recall", *args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_json_carries_relevance_and_no_abstention_by_default(env: dict[str, str]) -> None:
    data = _json(env, "deploy freeze", "-k", "3")
    assert data["abstain"] is False and data["reason"] is None
    assert len(data["items"]) == 3
    relevance = [h["relevance"] for h in data["items"]]
    assert all(0.0 <= p <= 1.0 for p in relevance)
    assert relevance == sorted(relevance, reverse=True)


def test_min_relevance_keeps_only_hits_that_pass(env: dict[str, str]) -> None:
    every = _json(env, "deploy freeze", "-k", "6")["items"]
    cut = sorted(h["relevance"] for h in every)[len(every) // 2]
    kept = _json(env, "deploy freeze", "-k", "6", "--min-relevance", str(cut))
    assert kept["abstain"] is False
    assert [h["id"] for h in kept["items"]] == [h["id"] for h in every if h["relevance"] >= cut]


def test_min_relevance_nobody_reaches_abstains_with_a_reason(env: dict[str, str]) -> None:
    data = _json(env, "deploy freeze", "--min-relevance", "1")
    assert data["abstain"] is True and data["items"] == []
    assert "relevance threshold 1.000" in data["reason"]
    out = _run(env, "recall", "deploy freeze", "--min-relevance", "1")
    assert out.exit_code == 0
    assert out.stdout.startswith("abstained: no memory reaches the relevance threshold 1.000")
    assert "no memories matched" not in out.stdout


def test_human_output_shows_each_hits_relevance(env: dict[str, str]) -> None:
    data = _json(env, "cats", "-k", "2")
    out = _run(env, "recall", "cats", "-k", "2").stdout
    for hit in data["items"]:
        assert f"id={hit['id']}  relevance={hit['relevance']:.3f}" in out


def test_coverage_needs_engram_calibrate_first(env: dict[str, str]) -> None:
    result = _run(env, "recall", "deploy freeze", "--coverage", "0.9")
    assert result.exit_code == 1 and "engram calibrate" in result.output
    assert "Traceback" not in result.output
    done = _run(env, "calibrate", "--cues", "20")
    assert done.exit_code == 0 and done.output.startswith("calibrated '*'"), done.output
    assert _run(env, "recall", "deploy freeze", "--coverage", "0.9").exit_code == 0


def test_coverage_returns_a_conformal_set_or_abstains(env: dict[str, str]) -> None:
    assert _run(env, "calibrate").exit_code == 0
    data = _json(env, "deploy freeze", "-k", "6", "--coverage", "0.9")
    assert data["abstain"] is (data["items"] == [])
    assert (data["reason"] is None) is (not data["abstain"])
    low = _json(env, "deploy freeze", "-k", "6", "--coverage", "0.5")
    high = _json(env, "deploy freeze", "-k", "6", "--coverage", "0.99")
    assert len(high["items"]) >= len(low["items"])  # more coverage keeps more


def test_rerank_mmr(env: dict[str, str]) -> None:
    data = _json(env, "deploy freeze", "-k", "3", "--rerank", "mmr")
    assert len({h["id"] for h in data["items"]}) == 3


def test_rerank_lambdarank(env: dict[str, str]) -> None:
    pytest.importorskip("lightgbm")
    data = _json(env, "deploy freeze", "-k", "3", "--rerank", "lambdarank")
    assert len(data["items"]) == 3 and data["abstain"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--min-relevance", "1.5"), "--min-relevance"),
        (("--min-relevance", "-0.1"), "--min-relevance"),
        (("--coverage", "1"), "--coverage"),
        (("--coverage", "0"), "--coverage"),
        (("--rerank", "colbert"), "--rerank"),
    ],
)
def test_bad_precision_options_are_usage_errors(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = _run(env, "recall", "x", *args)
    assert result.exit_code == 2 and message in result.stderr
