"""LongMemEval: loading the published layout, kind detection, and scoring by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from engramdb.eval import EvalDataError, detect_kind
from engramdb.eval.datasets import first_element
from engramdb.eval.longmemeval import (
    LONGMEMEVAL_METRICS,
    load_longmemeval,
    longmemeval_means,
    longmemeval_row,
    parse_longmemeval_date,
)
from engramdb.eval.runner import QueryRun

DATA = Path(__file__).resolve().parents[2] / "data" / "longmemeval"
MINI = DATA / "mini.json"


def _rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(MINI.read_text(encoding="utf-8"))
    return rows


def _write(tmp_path: Path, rows: Any, name: str = "lme.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def test_dates_parse_as_utc() -> None:
    assert parse_longmemeval_date("2023/05/20 (Sat) 02:21") == 1684549260.0
    assert parse_longmemeval_date("2023/05/20 02:21") == 1684549260.0
    with pytest.raises(ValueError, match="unrecognised date"):
        parse_longmemeval_date("20 May 2023")


def test_identical_haystacks_are_stored_once() -> None:
    data = load_longmemeval(MINI)
    assert len(data.questions) == 6
    assert len(data.haystacks) == 3
    by_id = {q.id: q for q in data.questions}
    assert (
        by_id["lme_pet"].haystack == by_id["lme_days"].haystack == by_id["lme_kitten_abs"].haystack
    )
    assert by_id["lme_city"].haystack != by_id["lme_pet"].haystack
    haystack = data.haystacks[by_id["lme_pet"].haystack]
    assert haystack.labels[:2] == ("pets_1#0", "pets_1#1")
    assert haystack.namespace == f"longmemeval.{haystack.digest[:16]}"
    first = haystack.records[0]
    assert first.text == "user: I adopted a beagle puppy last weekend and named him Biscuit."
    assert first.event_time == parse_longmemeval_date("2023/05/01 (Mon) 10:00")
    assert first.meta == {"role": "user", "session": "pets_1", "turn": 0, "has_answer": True}
    assert [r.ordinal for r in haystack.records] == list(range(len(haystack.records)))
    assert not first.chunk


def test_answer_turns_are_the_marked_turns_of_the_questions_answer_sessions() -> None:
    by_id = {q.id: q for q in load_longmemeval(MINI).questions}
    # One haystack marks pets_1#0 and move_1#0; each question keeps those of its sessions.
    assert by_id["lme_pet"].answer_turns == ("pets_1#0",)
    assert by_id["lme_days"].answer_turns == ("pets_1#0", "move_1#0")
    assert by_id["lme_yoga"].answer_turns == ("yoga_1#1",)
    assert by_id["lme_kitten_abs"].abstention and not by_id["lme_pet"].abstention
    assert by_id["lme_pet"].date == parse_longmemeval_date("2023/05/20 (Sat) 10:00")


def test_a_folder_holding_one_json_file_is_read(tmp_path: Path) -> None:
    _write(tmp_path, _rows())
    assert detect_kind(tmp_path) == "longmemeval"
    assert len(load_longmemeval(tmp_path).questions) == 6
    _write(tmp_path, _rows(), name="other.json")
    with pytest.raises(EvalDataError, match="found 2"):
        load_longmemeval(tmp_path)


def test_kind_is_inferred_from_the_file() -> None:
    assert detect_kind(MINI) == "longmemeval"
    assert detect_kind(DATA) == "longmemeval"


def test_other_json_files_are_not_longmemeval(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="LongMemEval"):
        detect_kind(_write(tmp_path, [{"question": "x"}]))
    with pytest.raises(EvalDataError, match="LongMemEval"):
        detect_kind(_write(tmp_path, {"haystack_sessions": []}, name="obj.json"))


def test_first_element_reads_past_its_first_block(tmp_path: Path) -> None:
    big = {"haystack_sessions": [[{"role": "user", "content": "x" * 200_000}]]}
    path = _write(tmp_path, [big, {"q": 2}])
    assert first_element(path) == big
    assert first_element(path, limit=1000) is None
    assert first_element(_write(tmp_path, [], name="empty.json")) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"haystack_dates": ["2023/05/01 (Mon) 10:00"]}, "same length"),
        ({"question_date": "yesterday"}, "unrecognised date"),
        ({"question_id": ""}, "question_id"),
        ({"answer_session_ids": "pets_1"}, "answer_session_ids"),
        ({"haystack_sessions": [[{"role": "user"}]] * 4}, "string role and content"),
    ],
)
def test_malformed_questions_are_refused(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    rows = _rows()
    rows[1].update(change)
    with pytest.raises(EvalDataError, match=message):
        load_longmemeval(_write(tmp_path, rows))


def test_a_question_id_given_twice_is_refused(tmp_path: Path) -> None:
    rows = _rows()
    rows[1]["question_id"] = rows[0]["question_id"]
    with pytest.raises(EvalDataError, match="given twice"):
        load_longmemeval(_write(tmp_path, rows))


def test_unknown_answer_sessions_are_set_aside(tmp_path: Path) -> None:
    rows = _rows()
    rows[0]["answer_session_ids"] = ["pets_1", "nowhere"]
    question = load_longmemeval(_write(tmp_path, rows)).questions[0]
    assert question.answer_sessions == ("pets_1",)
    assert question.unresolved == ("nowhere",)


# -- scoring, against values worked out by hand ------------------------------------------------


def _run(*ranked: str) -> QueryRun:
    return QueryRun(ranked=ranked, top=None, ms=1.0)


def _scored(runs: dict[str, QueryRun]) -> list[dict[str, Any]]:
    data = load_longmemeval(MINI)
    return [longmemeval_row(q, runs[q.id], data.haystacks[q.haystack]) for q in data.questions]


RUNS = {
    # answer sessions pets_1 and move_1; marked turns pets_1#0 and move_1#0
    "lme_days": _run(
        "recipe_1#0", "pets_1#1", "move_1#0", "finance_1#0", "finance_1#1", "pets_1#0"
    ),
    # answer session pets_1 first: everything found
    "lme_pet": _run("pets_1#0", "pets_1#1", "recipe_1#0"),
    # answer sessions city_1 and city_2; city_2 only at rank 6
    "lme_city": _run("garden_1#0", "garden_1#1", "city_1#1", "city_1#0", "garden_1#0", "city_2#1"),
    # answer sessions gym_1, gym_2: found at 1 and 2, marked turns gym_1#0 and gym_2#0
    "lme_boulder": _run("gym_2#1", "gym_1#0", "travel_1#0"),
    # answer session yoga_1, never recalled
    "lme_yoga": _run("travel_1#0", "gym_1#0"),
    "lme_kitten_abs": _run("pets_1#0"),
}


def test_scores_of_one_question_by_hand() -> None:
    rows = {r["id"]: r for r in _scored(RUNS)}
    days = rows["lme_days"]
    assert days["recall_any@1"] == 0.0  # recipe_1 first
    assert days["recall_any@5"] == 1.0
    assert days["recall_all@5"] == 1.0 and days["recall_all@10"] == 1.0
    # sessions ranked recipe_1, pets_1, move_1, finance_1: relevant at 2 and 3
    ideal = 1 + 1 / math.log2(3)
    assert days["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    assert days["turn-recall@5"] == 0.5 and days["turn-recall@10"] == 1.0
    assert days["sessions"] == ["recipe_1", "pets_1", "move_1", "finance_1"]
    assert days["top"][0] == "recipe_1#0" and days["question_type"] == "temporal-reasoning"

    city = rows["lme_city"]  # the duplicate garden_1#0 counts once: city_2#1 is 5th
    assert city["recall_any@1"] == 0.0 and city["recall_any@5"] == 1.0
    assert city["recall_all@5"] == 1.0
    assert city["turn-recall@5"] == 0.5  # city_1#0 in, city_2#0 never
    ideal = 1 + 1 / math.log2(3)
    assert city["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)


def test_abstention_questions_have_no_ranking_scores() -> None:
    row = {r["id"]: r for r in _scored(RUNS)}["lme_kitten_abs"]
    assert row["unanswerable"] is True
    assert all(row[name] is None for name in LONGMEMEVAL_METRICS)
    assert row["top"] == ["pets_1#0"]


def test_means_overall_and_per_question_type_by_hand() -> None:
    means = longmemeval_means(_scored(RUNS))
    # recall_any@1 per answerable question: days 0, pet 1, city 0, boulder 1, yoga 0
    assert means["recall_any@1"] == pytest.approx(2 / 5)
    # recall_all@5: days 1, pet 1, city 1, boulder 1, yoga 0
    assert means["recall_all@5"] == pytest.approx(4 / 5)
    # turn-recall@10: days 1, pet 1, city 0.5, boulder 1 (gym_2#0 missing: 0.5), yoga 0
    assert means["turn-recall@10"] == pytest.approx((1 + 1 + 0.5 + 0.5 + 0) / 5)
    # single-session-user holds lme_pet and the abstention question: only lme_pet counts
    assert means["single-session-user/recall_any@1"] == 1.0
    assert means["single-session-assistant/recall_any@10"] == 0.0
    assert means["multi-session/ndcg@10"] == 1.0
    assert means["knowledge-update/recall_all@5"] == 1.0
    assert set(means) == set(LONGMEMEVAL_METRICS) | {
        f"{kind}/{name}"
        for kind in (
            "knowledge-update",
            "multi-session",
            "single-session-assistant",
            "single-session-user",
            "temporal-reasoning",
        )
        for name in LONGMEMEVAL_METRICS
    }
