"""The knowledge-update generator: determinism, structure, and disjoint variants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engramdb.eval.conversations import parse_session_time
from engramdb.eval.gen_updates import VARIANTS, generate, main, write
from engramdb.eval.updates import load_updates, parse_time


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    write(tmp_path / "a", generate(7))
    write(tmp_path / "b", generate(7))
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    write(tmp_path / "c", generate(8))
    assert _bytes(tmp_path / "c")["turns.jsonl"] != _bytes(tmp_path / "a")["turns.jsonl"]


def test_the_module_runs_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "engramdb.eval.gen_updates", str(out), "--seed", "7"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "truth.jsonl" in done.stdout
    write(tmp_path / "lib", generate(7))
    assert _bytes(out) == _bytes(tmp_path / "lib")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "odd"), "--people", "3"])


def _turns(rows: tuple[dict[str, Any], ...]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["conv"], r["dia_id"]): r for r in rows}


@pytest.mark.parametrize("variant", ["dev", "heldout"])
def test_structure_of_a_generated_set(variant: str) -> None:
    data = generate(3, people=6, variant=variant)
    turns = _turns(data.turns)
    convs = {r["conv"] for r in data.turns}
    assert len(convs) == 3
    relations = {r.name for r in VARIANTS[variant].relations}
    assert len(data.qa) == len(data.truth) == 6 * len(relations)
    for conv in convs:
        mine = [r for r in data.turns if r["conv"] == conv]
        assert 8 <= len({r["session"] for r in mine}) <= 12
        assert len({r["speaker"] for r in mine}) == 2
        times = [parse_session_time(r["date_time"]) for r in mine]
        assert times == sorted(times)
    for qa, truth in zip(data.qa, data.truth, strict=True):
        assert (qa["conv"], qa["qa_idx"]) == (truth["conv"], truth["qa_idx"])
        statements = [turns[(qa["conv"], t)] for t in [*truth["stale"], truth["gold"]]]
        assert qa["evidence"] == [s["dia_id"] for s in statements]
        assert 1 <= len(truth["stale"]) <= 3
        assert len({s["session"] for s in statements}) == len(statements)  # one per session
        assert truth["value"] in statements[-1]["text"] and qa["answer"] == truth["value"]
        assert all(truth["value"] not in s["text"] for s in statements[:-1])
        speaker = statements[0]["speaker"]
        assert all(s["speaker"] == speaker for s in statements) and speaker in qa["question"]
        when = [parse_session_time(s["date_time"]) for s in statements]
        as_of = parse_time(truth["as_of"])
        valid = max(i for i, t in enumerate(when) if t <= as_of)
        assert when[valid] < as_of < when[valid + 1]  # strictly between a statement and its update
        assert truth["as_of_value"] in statements[valid]["text"]
        assert truth["tags"][0] in relations
        assert truth["tags"][1] in ("same-wording", "new-wording")


def test_updates_restate_with_the_same_or_another_template() -> None:
    data = generate(1, people=8)
    turns = _turns(data.turns)
    wordings = {t["tags"][1] for t in data.truth}
    assert wordings == {"same-wording", "new-wording"}
    for truth in data.truth:
        gold = turns[(truth["conv"], truth["gold"])]["text"]
        last_stale = turns[(truth["conv"], truth["stale"][-1])]["text"]
        same = gold.split(truth["value"]) == last_stale.split(_value_in(last_stale, truth))
        assert same == (truth["tags"][1] == "same-wording"), (gold, last_stale)


def _value_in(text: str, truth: dict[str, Any]) -> str:
    """The stale value stated in ``text`` (the relation's pool value it contains)."""
    relation = next(r for r in VARIANTS["dev"].relations if r.name == truth["tags"][0])
    return max((v for v in relation.values if v in text), key=len)


def test_there_is_plenty_of_distractor_chat() -> None:
    data = generate(1, people=8)
    statements = {(t["conv"], d) for t in data.truth for d in [*t["stale"], t["gold"]]}
    others = [r for r in data.turns if (r["conv"], r["dia_id"]) not in statements]
    assert len(others) > 2 * len(statements)
    # the same relations stated about other people, and values mentioned without a change
    texts = " ".join(r["text"] for r in others)
    assert "My brother lives in" in texts or "My old roommate settled in" in texts


def _strings(variant: str) -> dict[str, set[str]]:
    chosen = VARIANTS[variant]
    fields = ("ask", "state", "change", "other", "mention", "values")
    out = {f: {s for r in chosen.relations for s in getattr(r, f)} for f in fields}
    out["names"] = set(chosen.names)
    out["chat"] = set(chosen.small_talk) | set(chosen.acks)
    return out


def test_dev_and_heldout_share_no_template_name_or_value() -> None:
    dev, held = _strings("dev"), _strings("heldout")
    everything_dev = set().union(*dev.values())
    everything_held = set().union(*held.values())
    assert everything_dev.isdisjoint(everything_held)
    assert {r.name for r in VARIANTS["dev"].relations} == {
        r.name for r in VARIANTS["heldout"].relations
    }
    for variant in VARIANTS.values():
        for relation in variant.relations:
            assert len(relation.state) >= 3 and len(relation.change) >= 2
            assert len(relation.ask) >= 2 and len(set(relation.values)) >= 8


def test_generated_sets_load_as_updates(tmp_path: Path) -> None:
    write(tmp_path, generate(2, people=4, variant="heldout"))
    data = load_updates(tmp_path)
    truth = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert len(data.questions) == len(truth) and not data.without_gold
    for item, row in zip(data.questions, truth, strict=True):
        assert item.gold == row["gold"] and item.as_of == parse_time(row["as_of"])
        assert item.valid is not None and item.valid in (*row["stale"], row["gold"])


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        generate(1, variant="test")
    with pytest.raises(ValueError, match="even number"):
        generate(1, people=5)
    with pytest.raises(ValueError, match="even number"):
        generate(1, people=100)


def test_nobody_gives_another_person_a_value_of_their_own_fact() -> None:
    data = generate(4, people=8)
    turns = _turns(data.turns)
    relations = {r.name: r for r in VARIANTS["dev"].relations}
    forbidden: dict[tuple[str, str], set[str]] = {}
    statements: set[tuple[str, str]] = set()
    for truth in data.truth:
        relation = relations[truth["tags"][0]]
        for dia_id in [*truth["stale"], truth["gold"]]:
            statements.add((truth["conv"], dia_id))
            turn = turns[(truth["conv"], dia_id)]
            value = next(v for v in relation.values if turn["text"].count(v))
            forbidden.setdefault((truth["conv"], turn["speaker"]), set()).update(
                t.format(v=value) for t in (*relation.other, *relation.mention)
            )
    fillers = [r for r in data.turns if (r["conv"], r["dia_id"]) not in statements]
    assert fillers
    assert not [r for r in fillers if r["text"] in forbidden[(r["conv"], r["speaker"])]]
