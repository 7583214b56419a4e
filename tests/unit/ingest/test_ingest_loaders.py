from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from engramdb.errors import IngestError, InvalidInputError
from engramdb.ingest import SUPPORTED_EXTENSIONS, load_path, load_records
from engramdb.types import Record

DATA = Path(__file__).parents[2] / "data" / "ingest"
MTIME = 1_700_000_000.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC).timestamp()


def write(path: Path, content: str | bytes, *, mtime: float = MTIME) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def ingest_error(path: Path | str, **kwargs: object) -> IngestError:
    with pytest.raises(IngestError) as info:
        load_path(path, **kwargs)  # type: ignore[arg-type]
    return info.value


# --- text, Markdown, HTML ------------------------------------------------------------------


def test_text_file_is_one_normalized_record() -> None:
    path = DATA / "note.txt"
    [record] = load_path(path)
    assert record.text == (
        "Meeting notes, 3 March 2024.\n\n"
        "Alice moved the deploy freeze to Friday. Bob will update the runbook."
    )
    assert record.source == str(path.resolve())
    assert record.document == record.source
    assert record.event_time == pytest.approx(path.stat().st_mtime)
    assert record.ordinal is None and record.chunk and dict(record.meta) == {}


def test_markdown_is_kept_as_text() -> None:
    [record] = load_path(DATA / "guide.md")
    assert record.text.startswith("# Release guide\n\nCut the release branch on **Monday**.")
    assert "- Run the full test suite.\n- Update the changelog." in record.text


def test_html_keeps_visible_text_and_block_structure() -> None:
    [record] = load_path(DATA / "page.html")
    assert record.meta == {"title": "Deploy freeze"}
    assert record.text == (
        "Deploy freeze\n\n"
        "The freeze starts on Friday at noon.\n\n"
        "No merges to main.\nHotfixes need approval.\n\n"
        "Questions go to #infra.\nThanks!"
    )
    for hidden in ("tracking", "color", "JavaScript"):
        assert hidden not in record.text


def test_html_without_title_or_text(tmp_path: Path) -> None:
    assert load_path(write(tmp_path / "empty.htm", "<html><script>x()</script></html>")) == []
    [record] = load_path(write(tmp_path / "t.HTML", "<p>Hi &amp; bye</p>"))
    assert record.text == "Hi & bye" and dict(record.meta) == {}


def test_text_file_event_time_is_the_mtime(tmp_path: Path) -> None:
    [record] = load_path(write(tmp_path / "a.txt", "hello", mtime=1234.5))
    assert record.event_time == 1234.5


# --- JSON and JSONL records ----------------------------------------------------------------


def test_jsonl_records_with_ids_times_and_meta() -> None:
    path = DATA / "records.jsonl"
    first, second, third = load_path(path)
    source = str(path.resolve())
    assert first == Record(
        text="The cache is rebuilt nightly.",
        source=source,
        document="doc-1",
        ordinal=None,
        event_time=utc(2024, 3, 1, 9, 30),
        meta={"id": "doc-1", "team": "infra"},
    )
    assert second.document == source and second.ordinal == 1
    assert second.event_time == 1709290800.0
    assert second.meta == {"tags": ["people"]}
    assert third.text == "Carol owns the billing service."  # "content" works as a text field
    assert third.event_time == utc(2023, 5, 8, 13, 56) and third.ordinal == 2
    assert all(r.chunk for r in (first, second, third))


def test_json_list_of_records_and_strings() -> None:
    path = DATA / "records.json"
    records = load_path(path)
    assert [r.text for r in records] == ["First note.", "Second note.", "A plain string note."]
    assert [r.ordinal for r in records] == [0, 1, 2]
    assert [dict(r.meta) for r in records] == [{"priority": 1}, {"priority": 2}, {}]
    assert all(r.event_time == pytest.approx(path.stat().st_mtime) for r in records)


def test_json_single_object(tmp_path: Path) -> None:
    [record] = load_path(write(tmp_path / "one.json", '{"text": "Solo.", "lang": "en"}'))
    assert record.text == "Solo." and record.meta == {"lang": "en"} and record.ordinal is None


def test_custom_text_field(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", '{"body": "Custom field.", "text": "other"}\n')
    [record] = load_path(path, text_field="body")
    assert record.text == "Custom field." and record.meta == {"text": "other"}


def test_blank_texts_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", '{"text": "  "}\n{"text": "kept"}\n')
    assert [(r.text, r.ordinal) for r in load_path(path)] == [("kept", 1)]


# --- chat transcripts ----------------------------------------------------------------------


def test_chat_list_of_role_content_turns() -> None:
    records = load_path(DATA / "chat.json")
    assert [r.text for r in records] == [
        "Where is the deploy runbook?",
        "It lives in the infra wiki under Deploys.",
        "Thanks!",  # content given as a list of text parts
    ]
    assert [r.ordinal for r in records] == [0, 1, 3]  # the tool-call turn has no text
    assert [r.meta["role"] for r in records] == ["user", "assistant", "user"]
    assert [r.event_time for r in records] == [
        utc(2024, 3, 1, 10, 0),
        utc(2024, 3, 1, 10, 0, 5),
        utc(2024, 3, 1, 10, 1),
    ]
    assert not any(r.chunk for r in records)
    assert all(r.document == r.source for r in records)
    assert all("timestamp" not in r.meta and "content" not in r.meta for r in records)


def test_chat_messages_object_with_id() -> None:
    first, second = load_path(DATA / "messages.json")
    assert first.document == second.document == "chat-42"
    assert first.meta == {"id": "chat-42", "title": "Lunch plans", "speaker": "Ann"}
    assert second.meta["speaker"] == "Bo"
    assert first.event_time == 1709294400.0
    assert second.event_time == 1709294460.0  # milliseconds
    assert (first.ordinal, second.ordinal) == (0, 1) and not first.chunk


def test_chat_turns_object_and_jsonl_transcripts(tmp_path: Path) -> None:
    turns = {"turns": [{"speaker": "A", "text": "One."}, {"speaker": "B", "text": "Two."}]}
    path = write(tmp_path / "c.jsonl", json.dumps(turns) + "\n" + json.dumps(turns) + "\n")
    records = load_path(path)
    source = str(path.resolve())
    assert [(r.document, r.ordinal, r.text) for r in records] == [
        (f"{source}#0", 0, "One."),
        (f"{source}#0", 1, "Two."),
        (f"{source}#1", 0, "One."),
        (f"{source}#1", 1, "Two."),
    ]
    assert all(not r.chunk for r in records)


def test_locomo_turn_rows_load_as_chat_turns_with_time() -> None:
    records = load_path(DATA / "locomo_turns.jsonl")
    assert [r.meta["dia_id"] for r in records] == ["D1:1", "D1:2", "D2:1"]
    assert [r.ordinal for r in records] == [0, 1, 2]
    assert [r.event_time for r in records] == [
        utc(2023, 5, 8, 13, 56),
        utc(2023, 5, 8, 13, 56),
        utc(2023, 6, 9, 19, 55),
    ]
    assert records[1].meta == {
        "conv": "conv-1",
        "session": 1,
        "dia_id": "D1:2",
        "speaker": "Bo",
        "image_caption": "a photo of a clay bowl",
    }
    assert not any(r.chunk for r in records)


def test_locomo_sample_file_is_rejected_with_its_fields() -> None:
    error = ingest_error(DATA / "locomo_sample.json")
    assert "item 0" in str(error)
    assert "conversation, event_summary, observation, qa, sample_id, session_summary" in str(error)


def test_records_with_speaker_but_mixed_rows_are_not_chat(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", '{"speaker": "A", "text": "x"}\n{"text": "y"}\n')
    assert [r.chunk for r in load_path(path)] == [True, True]


# --- bad input -----------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    error = ingest_error(tmp_path / "nope.txt")
    assert error.path == str(tmp_path / "nope.txt") and "no such file" in str(error)
    assert isinstance(error, InvalidInputError) and isinstance(error, ValueError)


def test_unsupported_extension_named_explicitly(tmp_path: Path) -> None:
    error = ingest_error(write(tmp_path / "data.csv", "a,b\n1,2\n"))
    assert "'.csv'" in str(error)
    assert all(ext in str(error) for ext in SUPPORTED_EXTENSIONS)
    assert "no extension" in str(ingest_error(write(tmp_path / "README", "hi")))


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "secret.txt", "hidden")

    def deny(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    error = ingest_error(path)
    assert "permission denied" in str(error) and error.path == str(path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_on_disk(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.txt", "hidden")
    path.chmod(0)
    try:
        assert "permission denied" in str(ingest_error(path))
    finally:
        path.chmod(0o600)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"text then a NUL\x00 byte",
        bytes(range(1, 32)) * 10,  # control bytes, no NUL
    ],
)
def test_binary_file(tmp_path: Path, content: bytes) -> None:
    error = ingest_error(write(tmp_path / "image.txt", content))
    assert "binary file" in str(error)


def test_invalid_utf8_reports_offset_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "latin1.txt", "first line\nsecond caf\u00e9\n".encode("latin-1"))
    error = ingest_error(path)
    assert error.line == 2
    assert "byte offset 21" in str(error) and "line 2, column 11" in str(error)
    assert "0xe9" in str(error) and "UTF-8" in str(error)


def test_utf8_bom_and_utf16_are_decoded(tmp_path: Path) -> None:
    [bom] = load_path(write(tmp_path / "bom.txt", b"\xef\xbb\xbfhello"))
    [utf16] = load_path(write(tmp_path / "u16.txt", "h\u00e9llo".encode("utf-16")))
    assert (bom.text, utf16.text) == ("hello", "h\u00e9llo")


def test_malformed_json_reports_line_and_column(tmp_path: Path) -> None:
    error = ingest_error(write(tmp_path / "bad.json", '[\n  {"text": "a"},\n  {"text": }\n]'))
    assert error.line == 3 and "line 3, column 12" in str(error) and "malformed JSON" in str(error)


def test_malformed_jsonl_reports_line(tmp_path: Path) -> None:
    error = ingest_error(write(tmp_path / "bad.jsonl", '{"text": "a"}\n\n{"text": "b",}\n'))
    assert error.line == 3 and str(error).startswith(f"{tmp_path / 'bad.jsonl'}:3: ")
    assert "column" in str(error)


def test_json_record_without_text_lists_its_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", '{"text": "ok"}\n{"title": "x", "body": "y"}\n')
    error = ingest_error(path)
    assert error.line == 2
    assert "fields: body, title" in str(error) and "'text' or 'content'" in str(error)


def test_json_item_without_text_names_the_item(tmp_path: Path) -> None:
    error = ingest_error(write(tmp_path / "r.json", '[{"text": "ok"}, {"n": 1}]'))
    assert "item 1" in str(error) and "fields: n" in str(error) and error.line is None


def test_non_string_text_field(tmp_path: Path) -> None:
    error = ingest_error(write(tmp_path / "r.jsonl", '{"text": 42}\n'))
    assert "field 'text' must be a string, got int" in str(error) and error.line == 1


def test_bad_time_field_names_field_line_and_value(tmp_path: Path) -> None:
    error = ingest_error(
        write(tmp_path / "r.jsonl", '{"text": "a"}\n{"text": "b", "time": "soon"}\n')
    )
    assert error.line == 2 and "field 'time'" in str(error) and "'soon'" in str(error)


def test_records_that_all_lack_text_are_an_error(tmp_path: Path) -> None:
    error = ingest_error(write(tmp_path / "r.jsonl", '{"text": ""}\n{"text": null}\n'))
    assert "none of the 2 records has any text" in str(error)
    chat = '[{"role": "user", "content": ""}, {"role": "assistant", "content": null}]'
    assert "has any text" in str(ingest_error(write(tmp_path / "c.json", chat)))


def test_bad_turn_inside_a_jsonl_transcript(tmp_path: Path) -> None:
    bad = {"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": 3}]}
    path = write(tmp_path / "c.jsonl", json.dumps({"messages": []}) + "\n" + json.dumps(bad))
    error = ingest_error(path)
    assert error.line == 2
    assert (
        str(error)
        == f"{path.resolve()}:2: in 'messages': item 1: field 'content' must be a string, got int"
    )


def test_unsupported_json_shapes(tmp_path: Path) -> None:
    assert "got int" in str(ingest_error(write(tmp_path / "n.json", "42")))
    assert "item 0" in str(ingest_error(write(tmp_path / "l.json", "[[1, 2]]")))
    assert "fields: none" in str(ingest_error(write(tmp_path / "o.json", "{}")))


@pytest.mark.parametrize("name", ["e.txt", "e.md", "e.html", "e.json", "e.jsonl"])
@pytest.mark.parametrize("content", ["", "  \n\n  "])
def test_empty_files_yield_no_records(tmp_path: Path, name: str, content: str) -> None:
    assert load_path(write(tmp_path / name, content)) == []


def test_empty_json_array_yields_no_records(tmp_path: Path) -> None:
    assert load_path(write(tmp_path / "e.json", "[]")) == []


# --- directories ---------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "notes"
    write(root / "b.txt", "B text.")
    write(root / "a.md", "# A")
    write(root / "sub" / "c.txt", "C text.")
    write(root / "sub" / "deep" / "d.md", "D text.")
    write(root / "drafts" / "e.txt", "E draft.")
    write(root / ".hidden.txt", "hidden file")
    write(root / ".git" / "f.txt", "hidden dir")
    write(root / "image.png", b"\x89PNG\x00")
    write(root / "table.csv", "x,y")
    return root


def texts(records: list[Record]) -> list[str]:
    return [r.text for r in records]


def test_directory_loads_recursively_in_sorted_order(tree: Path) -> None:
    records = load_path(tree)
    assert texts(records) == ["# A", "B text.", "E draft.", "C text.", "D text."]
    assert records[0].source == str((tree / "a.md").resolve())


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*.md"], [], ["# A", "D text."]),
        (["sub/*"], [], ["C text."]),
        (["sub/**"], [], ["C text.", "D text."]),
        (["**/*.md"], [], ["# A", "D text."]),
        (["sub/**/*.md"], [], ["D text."]),
        ([], ["drafts"], ["# A", "B text.", "C text.", "D text."]),
        ([], ["deep"], ["# A", "B text.", "E draft.", "C text."]),
        ([], ["*.txt"], ["# A", "D text."]),
        ([], ["sub/*.txt", "drafts/"], ["# A", "B text.", "D text."]),
        (["*.txt"], ["sub"], ["B text.", "E draft."]),
        (["[ab].*"], [], ["# A", "B text."]),
        (["?.txt"], ["[!b].txt"], ["B text."]),
    ],
)
def test_directory_include_exclude(
    tree: Path, include: list[str], exclude: list[str], expected: list[str]
) -> None:
    assert texts(load_path(tree, include=include, exclude=exclude)) == expected


def test_include_and_exclude_ignored_for_a_file(tree: Path) -> None:
    assert texts(load_path(tree / "b.txt", include=["*.md"], exclude=["*.txt"])) == ["B text."]


def test_directory_without_loadable_files(tmp_path: Path, tree: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    error = ingest_error(empty)
    assert "no loadable files" in str(error) and ".jsonl" in str(error)
    assert error.path == str(empty)
    assert "no loadable files" in str(ingest_error(tree, include=["*.csv"]))
    write(tmp_path / "only_hidden" / ".x.txt", "x")
    assert "no loadable files" in str(ingest_error(tmp_path / "only_hidden"))


def test_directory_of_empty_files_yields_no_records(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.txt", "")
    assert load_path(tmp_path / "d") == []


def test_a_bad_file_in_a_directory_names_that_file(tree: Path) -> None:
    bad = write(tree / "sub" / "bad.json", "{oops")
    error = ingest_error(tree)
    assert error.path == str(bad.resolve()) and error.line == 1


# --- in-memory records ---------------------------------------------------------------------


def test_load_records_shapes() -> None:
    assert load_records("  Just text. ") == [Record(text="Just text.")]
    [rec] = load_records({"text": "x", "id": 7, "date": "2023-05-08"}, source="api")
    assert (rec.document, rec.source, rec.event_time) == ("7", "api", utc(2023, 5, 8))
    chat = load_records({"messages": [{"role": "user", "content": "hi"}]}, source="s")
    assert chat[0].chunk is False and chat[0].meta == {"role": "user"}
    assert chat[0].event_time is None
    rows = load_records(["a", {"text": "b"}], source="s")
    assert [(r.text, r.ordinal, r.document) for r in rows] == [("a", 0, "s"), ("b", 1, "s")]


def test_load_records_time_objects_leave_meta() -> None:
    [rec] = load_records([{"text": "x", "time": dt.datetime(2023, 5, 8, tzinfo=dt.UTC)}])
    assert rec.event_time == utc(2023, 5, 8) and dict(rec.meta) == {}


def test_load_records_rejects_unserialisable_meta() -> None:
    with pytest.raises(IngestError, match="record 0: metadata is not JSON-serialisable"):
        load_records([{"text": "x", "when": dt.date(2023, 5, 8)}])
    with pytest.raises(IngestError, match="not JSON-serialisable"):
        load_records([{"text": "x", "score": float("nan")}])


def test_load_records_rejects_other_types() -> None:
    with pytest.raises(IngestError, match="got int"):
        load_records(5)
    with pytest.raises(IngestError, match="item 1: expected an object or a string, got float"):
        load_records(["ok", 1.5])
