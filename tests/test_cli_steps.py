"""``engram recall --steps/--clues`` end to end (hash embedder, graph on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engramdb.cli import cli

pytest.importorskip("spacy")

CHAIN = [
    "The Zephyr Lamp was designed at Orvalis Works.",
    "Orvalis Works was founded by Tamsin Quell.",
    "Tamsin Quell grew up in Brevik Harbor.",
    "The museum opened a new wing for modern sculpture.",
    "Rain fell over the valley for most of the week.",
    "A quiet library keeps maps of old trade routes.",
    "The orchestra rehearsed a symphony in the evening.",
    "Farmers sold apples and pears at the market square.",
    "The bridge was repainted after the winter storms.",
]


def _run(tmp_path: Path, *args: str) -> Result:
    config = tmp_path / "engramdb.toml"
    config.write_text('[embed]\nmodel = "hash"\ndim = 64\n[graph]\nenabled = true\n', "utf-8")
    db = str(tmp_path / "m.db")
    return CliRunner().invoke(cli, [*args, "--db", db, "--config", str(config)])


def _add(tmp_path: Path, texts: list[str]) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i, text in enumerate(texts):
        (notes / f"{i}.txt").write_text(text + "\n", encoding="utf-8")
    assert _run(tmp_path, "add", str(notes), "--no-progress").exit_code == 0


def test_recall_in_steps_shows_the_step_and_bridge(tmp_path: Path) -> None:
    _add(tmp_path, CHAIN)
    one = json.loads(
        _run(tmp_path, "recall", "Zephyr Lamp", "--channels", "lexical", "--json").output
    )
    assert [h["text"] for h in one["items"]] == CHAIN[:1]
    args = ("recall", "Zephyr Lamp", "--channels", "lexical", "--steps", "3")
    three = json.loads(_run(tmp_path, *args, "--json").output)
    assert sorted(h["text"] for h in three["items"]) == sorted(CHAIN[:3])
    assert {h["why"]["step"]["rank"] for h in three["items"]} == {1, 2, 3}
    human = _run(tmp_path, *args).output
    assert "step 2 via orvalis works" in human
    terms = _run(tmp_path, "recall", "Zephyr Lamp", "--channels", "lexical", "--clues", "terms")
    assert terms.exit_code == 0 and "Orvalis Works was founded" in terms.output


def test_bad_steps_and_clues_exit_cleanly(tmp_path: Path) -> None:
    _add(tmp_path, CHAIN[:1])
    bad = _run(tmp_path, "recall", "Zephyr", "--steps", "9")
    assert bad.exit_code == 2 and "--steps" in bad.output
    unknown = _run(tmp_path, "recall", "Zephyr", "--clues", "psychic")
    assert unknown.exit_code == 1 and "unknown clue" in unknown.output
