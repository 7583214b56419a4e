"""Loaders read the tiny fixtures and reject bad data sets naming the file and line."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from engramdb.errors import IngestError
from engramdb.eval.books import load_books, load_sentences
from engramdb.eval.conversations import load_locomo, parse_session_time
from engramdb.eval.datasets import (
    EvalDataError,
    checksum,
    detect_kind,
    load_beir,
    load_multihop,
    read_jsonl,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "eval"


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(DATA / name, target)
    return target


# -- BEIR -------------------------------------------------------------------------------------


def test_beir_reads_graded_qrels_in_file_order() -> None:
    data = load_beir(DATA / "tiny_beir")
    assert len(data.documents) == 12
    assert [q.id for q in data.queries] == ["q1", "q2", "q3", "q4", "q5"]  # q6 has no judgments
    assert data.queries[0].qrels == {"d3": 2, "d4": 1, "d11": 0}
    assert data.queries[4].qrels == {"d8": 0}
    assert data.documents[0].text.startswith("Copper kettles Copper kettles heat")
    assert data.documents[11].text.startswith("Wool keeps sheep")  # empty title: no leading space


def test_beir_reads_gzipped_corpus(tmp_path: Path) -> None:
    folder = _copy("tiny_beir", tmp_path)
    raw = (folder / "corpus.jsonl").read_bytes()
    (folder / "corpus.jsonl").unlink()
    (folder / "corpus.jsonl.gz").write_bytes(gzip.compress(raw))
    assert len(load_beir(folder).documents) == 12


def test_beir_missing_file_names_it(tmp_path: Path) -> None:
    folder = _copy("tiny_beir", tmp_path)
    (folder / "queries.jsonl").unlink()
    with pytest.raises(EvalDataError, match=r"missing file queries\.jsonl") as info:
        load_beir(folder)
    assert info.value.path == str(folder)
    assert isinstance(info.value, IngestError)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q1\td404\t1", r"test\.tsv:4: unknown corpus id 'd404'"),
        ("q404\td1\t1", r"test\.tsv:4: unknown query id 'q404'"),
        ("q1\td1", r"test\.tsv:4: expected 3 tab-separated fields"),
        ("q1\td1\tvery", r"test\.tsv:4: score must be an integer"),
    ],
)
def test_bad_qrels_line_is_reported_with_its_number(
    tmp_path: Path, line: str, message: str
) -> None:
    folder = _copy("tiny_beir", tmp_path)
    rows = (folder / "qrels" / "test.tsv").read_text().splitlines()
    rows.insert(3, line)
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    with pytest.raises(EvalDataError, match=message) as info:
        load_beir(folder)
    assert info.value.line == 4


def test_bad_json_line_is_reported_with_its_number(tmp_path: Path) -> None:
    folder = _copy("tiny_beir", tmp_path)
    rows = (folder / "corpus.jsonl").read_text().splitlines()
    rows[2] = '{"_id": "d3", "text": '
    (folder / "corpus.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(EvalDataError, match=r"corpus\.jsonl:3: invalid JSON"):
        load_beir(folder)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('["not", "an", "object"]', "expected a JSON object, got list"),
        ('{"title": "t", "text": "x"}', "field '_id' must be a string, got missing"),
        ('{"_id": "d1", "text": "again"}', "duplicate document id 'd1'"),
        ('{"_id": "d99", "text": 5}', "fields 'title' and 'text' must be strings"),
    ],
)
def test_bad_corpus_rows(tmp_path: Path, row: str, message: str) -> None:
    folder = _copy("tiny_beir", tmp_path)
    with (folder / "corpus.jsonl").open("a") as fh:
        fh.write(row + "\n")
    with pytest.raises(EvalDataError, match=rf"corpus\.jsonl:13: {message}"):
        load_beir(folder)


def test_read_jsonl_skips_blank_lines_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]


# -- multi-hop --------------------------------------------------------------------------------


def test_musique_supporting_paragraphs_become_qrels() -> None:
    data = load_multihop(DATA / "tiny_multihop")
    assert len(data.documents) == 8
    assert data.documents[1].text.startswith("Odile Varn\nOdile Varn was an engineer")
    assert [dict(q.qrels) for q in data.queries] == [
        {"0": 1, "1": 1},
        {"3": 1, "4": 1},
        {"3": 1, "5": 1, "7": 1},
    ]
    assert data.queries[2].meta["hops"] == 3


def test_musique_unknown_supporting_paragraph(tmp_path: Path) -> None:
    folder = _copy("tiny_multihop", tmp_path)
    questions = json.loads((folder / "tiny.json").read_text())
    questions[1]["paragraphs"][0]["paragraph_text"] = "text that is not in the corpus"
    (folder / "tiny.json").write_text(json.dumps(questions))
    with pytest.raises(
        EvalDataError, match=r"tiny\.json: question #1 \(2hop__3_4\).*not in the corpus"
    ):
        load_multihop(folder)


def test_musique_missing_questions_file(tmp_path: Path) -> None:
    folder = _copy("tiny_multihop", tmp_path)
    (folder / "tiny.json").unlink()
    with pytest.raises(EvalDataError, match=r"missing file tiny\.json"):
        load_multihop(folder)


def test_musique_corpus_that_is_not_a_list(tmp_path: Path) -> None:
    folder = _copy("tiny_multihop", tmp_path)
    (folder / "tiny_corpus.json").write_text('{"title": "x"}')
    with pytest.raises(EvalDataError, match="expected a non-empty JSON list"):
        load_multihop(folder)


def test_multihop_accepts_a_beir_view() -> None:
    assert load_multihop(DATA / "tiny_beir").queries[0].id == "q1"


# -- LoCoMo -----------------------------------------------------------------------------------


def test_locomo_turns_and_normalised_evidence() -> None:
    data = load_locomo(DATA / "tiny_locomo")
    assert len(data.turns) == 14
    first = data.turns[0]
    assert (first.conv, first.dia_id, first.speaker, first.ordinal) == ("conv-a", "D1:1", "Ann", 0)
    assert data.turns[3].image_caption == "a photo of a wooden fence"
    assert data.turns[7].ordinal == 7 and data.turns[8].ordinal == 0  # per conversation
    by_id = {q.id: q for q in data.questions}
    assert by_id["conv-a#1"].evidence == ("D1:3", "D2:1")  # "D1:3; D2:1"
    assert by_id["conv-a#2"].evidence == ("D2:2",)  # "D:2:2"
    assert by_id["conv-a#3"].evidence == ("D2:1",)  # "D2:01"
    assert by_id["conv-a#3"].unresolved == ("D9:9",)
    assert by_id["conv-a#4"].answer == "custard tarts"  # adversarial_answer
    assert by_id["conv-b#3"].evidence == ()


def test_session_time_parses_as_utc() -> None:
    assert parse_session_time("1:56 pm on 8 May, 2023") == 1683554160.0
    with pytest.raises(ValueError, match="unrecognised session time"):
        parse_session_time("yesterday")


def test_locomo_bad_time_names_the_line(tmp_path: Path) -> None:
    folder = _copy("tiny_locomo", tmp_path)
    rows = (folder / "turns.jsonl").read_text().splitlines()
    rows[4] = rows[4].replace("6:40 pm on 20 March, 2023", "sometime")
    (folder / "turns.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(EvalDataError, match=r"turns\.jsonl:5: unrecognised session time"):
        load_locomo(folder)


def test_locomo_question_about_unknown_conversation(tmp_path: Path) -> None:
    folder = _copy("tiny_locomo", tmp_path)
    with (folder / "qa.jsonl").open("a") as fh:
        fh.write(
            json.dumps(
                {"conv": "conv-z", "qa_idx": 0, "question": "?", "category": 1, "evidence": []}
            )
            + "\n"
        )
    with pytest.raises(EvalDataError, match=r"qa\.jsonl:10: unknown conversation 'conv-z'"):
        load_locomo(folder)


# -- books ------------------------------------------------------------------------------------


def test_books_in_reading_order() -> None:
    corpus = load_books(DATA / "tiny_books")
    assert corpus.titles["tb1"] == "The Lantern of Harrowmere"
    grouped = corpus.by_book()
    assert sorted(grouped) == ["tb1", "tb2", "tb3"]
    assert [p.index for p in grouped["tb2"]] == list(range(46))
    sentences, source = load_sentences(DATA / "tiny_books")
    assert source.name == "sentences.jsonl" and len(sentences) > len(corpus.paragraphs)


def test_books_out_of_order_is_rejected(tmp_path: Path) -> None:
    folder = _copy("tiny_books", tmp_path)
    rows = (folder / "paragraphs.jsonl").read_text().splitlines()
    rows[1], rows[2] = rows[2], rows[1]
    (folder / "paragraphs.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(EvalDataError, match=r"paragraphs\.jsonl:3: para 1 of book 'tb1' is out of"):
        load_books(folder)


# -- kinds and checksums ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("tiny_beir", "beir"), ("tiny_multihop", "multihop"), ("tiny_locomo", "locomo")],
)
def test_detect_kind(name: str, kind: str) -> None:
    assert detect_kind(DATA / name) == kind


def test_detect_kind_needs_a_probe_for_books_and_rejects_unknown(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match="choose a probe with --kind"):
        detect_kind(DATA / "tiny_books")
    with pytest.raises(EvalDataError, match="unknown data set layout"):
        detect_kind(tmp_path)
    with pytest.raises(EvalDataError, match="does not exist"):
        detect_kind(tmp_path / "nope")


def test_checksum_changes_with_content(tmp_path: Path) -> None:
    folder = _copy("tiny_beir", tmp_path)
    files = load_beir(folder).files
    digest, per_file = checksum(files, folder)
    assert set(per_file) == {"corpus.jsonl", "queries.jsonl", "qrels/test.tsv"}
    assert checksum(files, folder)[0] == digest
    with (folder / "queries.jsonl").open("a") as fh:
        fh.write('{"_id": "q7", "text": "one more"}\n')
    assert checksum(files, folder)[0] != digest
