"""The knowledge-update probe: loading truth, the statement valid as of a time, scoring."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engramdb.eval import EvalDataError, detect_kind
from engramdb.eval.runner import QueryRun
from engramdb.eval.updates import load_updates, parse_time, score_update

DATA = Path(__file__).resolve().parents[2] / "data" / "eval" / "tiny_updates"


def _copy(tmp_path: Path, truth: str | None) -> Path:
    folder = tmp_path / "updates"
    shutil.copytree(DATA, folder)
    if truth is None:
        (folder / "truth.jsonl").unlink()
    else:
        (folder / "truth.jsonl").write_text(truth, encoding="utf-8")
    return folder


def test_times_in_every_accepted_form() -> None:
    assert parse_time(1_678_000_000) == 1_678_000_000.0
    assert parse_time("2023-03-05T00:00:00+00:00") == 1_677_974_400.0
    assert parse_time("2023-03-05T00:00:00") == 1_677_974_400.0  # naive: UTC
    assert parse_time("12:00 am on 5 March, 2023") == 1_677_974_400.0
    with pytest.raises(ValueError):
        parse_time("soon")
    with pytest.raises(ValueError):
        parse_time(True)


def test_truth_gives_gold_stale_and_the_statement_valid_as_of() -> None:
    data = load_updates(DATA)
    by_id = {q.question.id: q for q in data.questions}
    city = by_id["u1#0"]
    assert (city.gold, city.stale, city.tags) == ("D2:2", ("D1:1",), ("city", "new-wording"))
    assert city.as_of == parse_time("2023-03-05T00:00:00+00:00")
    assert city.valid == "D1:1"  # on 5 March, Ann still lived in Porto
    employer = by_id["u1#1"]
    assert employer.as_of == parse_time("6:00 pm on 15 March, 2023")
    assert employer.valid == "D1:2"


def test_a_question_without_truth_takes_its_evidence_in_conversation_order() -> None:
    data = load_updates(DATA)
    team = {q.question.id: q for q in data.questions}["u1#2"]
    assert (team.gold, team.stale) == ("D3:3", ("D1:3",))  # evidence listed D3:3 first
    assert team.as_of is None and team.valid is None and team.tags == ()
    assert data.without_gold == ("u1#3",)  # no truth, no evidence
    assert [p.name for p in data.files] == ["turns.jsonl", "qa.jsonl", "truth.jsonl"]


def test_without_truth_file_every_question_uses_its_evidence(tmp_path: Path) -> None:
    folder = _copy(tmp_path, None)
    data = load_updates(folder)
    city = {q.question.id: q for q in data.questions}["u1#0"]
    assert (city.gold, city.stale, city.as_of) == ("D2:2", ("D1:1",), None)
    assert [p.name for p in data.files] == ["turns.jsonl", "qa.jsonl"]
    assert detect_kind(folder) == "locomo"
    assert detect_kind(DATA) == "updates"


def test_as_of_after_the_update_expects_the_update(tmp_path: Path) -> None:
    line = '{"conv": "u1", "qa_idx": 0, "gold": "D2:2", "stale": ["D1:1"], "as_of": 1700000000}\n'
    city = load_updates(_copy(tmp_path, line)).questions[0]
    assert city.valid == "D2:2"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"conv": "u1", "qa_idx": 9, "gold": "D2:2"}', "no question u1#9"),
        ('{"conv": "u1", "qa_idx": 0, "gold": "D7:7"}', "unknown turn id"),
        ('{"conv": "u1", "qa_idx": 0, "gold": "D2:2", "stale": ["D2:2"]}', "both gold and stale"),
        ('{"conv": "u1", "qa_idx": 0, "gold": "D2:2", "stale": "D1:1"}', "list of turn ids"),
        ('{"conv": "u1", "qa_idx": 0, "gold": "D2:2", "as_of": "later"}', "field 'as_of'"),
        (
            '{"conv": "u1", "qa_idx": 0, "gold": "D2:2", "as_of": "2020-01-01"}',
            "precedes every statement",
        ),
        ('{"conv": "u1", "qa_idx": 0}', "field 'gold'"),
    ],
)
def test_bad_truth_lines_are_refused_with_their_line(
    tmp_path: Path, line: str, message: str
) -> None:
    folder = _copy(tmp_path, "\n" + line + "\n")
    with pytest.raises(EvalDataError, match=message) as info:
        load_updates(folder)
    assert info.value.line == 2


def test_a_question_given_twice_in_truth_is_refused(tmp_path: Path) -> None:
    line = '{"conv": "u1", "qa_idx": 0, "gold": "D2:2"}\n'
    with pytest.raises(EvalDataError, match="second truth line"):
        load_updates(_copy(tmp_path, line * 2))


def test_scores_by_hand() -> None:
    run = QueryRun(ranked=("D1:1", "D3:2", "D2:2", "D2:1"), top=None, ms=1.0)
    stale_first = score_update(run, ["D1:1"], "D2:2", ["D1:1"])
    assert stale_first == {"current@1": 0.0, "stale@1": 1.0, "recall@5": 1.0, "mrr@10": 1 / 3}
    # The same recall, scored as of a time when D1:1 was the valid statement.
    as_of = score_update(run, ["D1:1"], "D1:1", ["D2:2"])
    assert as_of == {"current@1": 1.0, "stale@1": 0.0, "recall@5": 1.0, "mrr@10": 1.0}
    # A top hit that merged two turns counts for both.
    merged = score_update(run, ["D1:1", "D2:2"], "D2:2", ["D1:1"])
    assert merged["current@1"] == 1.0 and merged["stale@1"] == 1.0
    missing = score_update(QueryRun(ranked=("D3:2",), top=None, ms=1.0), ["D3:2"], "D2:2", [])
    assert missing == {"current@1": 0.0, "stale@1": 0.0, "recall@5": 0.0, "mrr@10": 0.0}
