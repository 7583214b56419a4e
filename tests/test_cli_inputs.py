"""Hostile and mistyped input to the engram CLI: a usage error or one line, never a traceback.

Covers -k bounds, queries that start with "-", --db paths with no store or a file for a
folder, damaged store files, unexpected OS/SQLite/recursion/memory errors, and --where
filters nested too deeply. All with the hash embedder (the ``hash_config`` fixture).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engramdb import Memory
from engramdb.cli import cli
from engramdb.config import MAX_K
from engramdb.filter import MAX_DEPTH

DASH_NOTE = "-v2 flag turns on the new parser."
NOTES = [
    DASH_NOTE,
    "Alice moved the deploy freeze to Friday.",
    "Cats sleep most of the day.",
    "The river floods every spring near the old mill.",
]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def run(env: dict[str, str], *args: str) -> Result:
    return invoke(*args, "--db", env["db"], "--config", env["config"])


def assert_one_line_error(result: Result, *needles: str) -> None:
    """Exit 1, a single ``Error: ...`` line, no traceback, and each needle in the message."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def config(hash_config: Path) -> str:
    return str(hash_config)


@pytest.fixture
def env(tmp_path: Path, config: str) -> dict[str, str]:
    """A store with NOTES, added through the CLI."""
    notes = tmp_path / "notes"
    notes.mkdir()
    for i, text in enumerate(NOTES):
        (notes / f"n{i}.txt").write_text(text + "\n", encoding="utf-8")
    e = {"db": str(tmp_path / "m.db"), "config": config, "notes": str(notes)}
    added = run(e, "add", str(notes), "--no-progress")
    assert added.exit_code == 0, added.output
    return e


# -- 1. -k is bounded: 1..MAX_K -------------------------------------------------------------

K_COMMANDS = [("recall", "x"), ("context", "x"), ("graph", "neighbors", "x")]


@pytest.mark.parametrize("command", K_COMMANDS, ids=lambda c: " ".join(c[:-1]))
@pytest.mark.parametrize(
    "k", ["0", "-1", str(MAX_K + 1), "1000000000", "9223372036854775808", "99" * 40]
)
def test_k_out_of_range_is_a_usage_error(command: tuple[str, ...], k: str, config: str) -> None:
    # No store is opened (or created): click refuses the value first.
    result = invoke(*command, "-k", k, "--db", "/nonexistent/m.db", "--config", config)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '-k'" in result.stderr
    assert f"1<=x<={MAX_K}" in result.stderr
    assert "Traceback" not in result.output


def test_k_at_the_bounds_is_accepted(env: dict[str, str]) -> None:
    for k in ("1", str(MAX_K)):
        result = run(env, "recall", "river", "-k", k, "--json")
        assert result.exit_code == 0, result.output
        assert 1 <= len(json.loads(result.stdout)["items"]) <= int(k)
    context = run(env, "context", "river", "-k", str(MAX_K))
    assert context.exit_code == 0, context.output


def test_help_shows_the_k_range() -> None:
    for command in (("recall",), ("context",), ("graph", "neighbors")):
        out = invoke(*command, "--help").output
        assert "-k INTEGER RANGE" in out and f"1<=x<={MAX_K}" in out


# -- 2. queries that start with "-" ------------------------------------------------------------


def recall_texts(env: dict[str, str], *args: str) -> list[str]:
    result = run(env, "recall", *args, "--json")
    assert result.exit_code == 0, result.output
    return [hit["text"] for hit in json.loads(result.stdout)["items"]]


def test_dash_query_with_options_before_and_after(env: dict[str, str]) -> None:
    after = recall_texts(env, "-v2 flag", "-k", "1")
    before = recall_texts(env, "-k", "1", "-v2 flag")
    assert after == before == [DASH_NOTE]
    assert recall_texts(env, "-k1", "-v2 flag") == [DASH_NOTE]  # a number glued to -k
    assert recall_texts(env, "-v2 flag", "-k", "2", "--where", '{"$not": {"x": 1}}')[0] == (
        DASH_NOTE
    )
    classic = invoke(
        "recall",
        "-k",
        "1",
        "--json",
        "--db",
        env["db"],
        "--config",
        env["config"],
        "--",
        "-v2 flag",
    )
    assert [hit["text"] for hit in json.loads(classic.stdout)["items"]] == [DASH_NOTE]


def test_dash_query_human_output_and_other_queries(env: dict[str, str]) -> None:
    result = run(env, "recall", "-k", "1", "-v2 flag")
    assert result.exit_code == 0 and DASH_NOTE in result.output
    for query in ("-5 degrees", "-kitten", "-nope", "-"):
        result = run(env, "recall", query, "-k", "2")
        assert result.exit_code == 0, (query, result.output)


def test_dash_text_to_recognize(env: dict[str, str]) -> None:
    for args in ((DASH_NOTE, "--json"), ("--json", DASH_NOTE)):
        result = run(env, "recognize", *args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["kind"] == "exact"


def test_dash_query_to_context(env: dict[str, str]) -> None:
    for args in (("-v2 flag", "-k", "1"), ("-k", "1", "-v2 flag")):
        result = run(env, "context", *args, "--json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["query"] == "-v2 flag"
        assert [block["text"] for block in data["blocks"]] == [DASH_NOTE]


def test_real_options_and_typos_still_parse_as_options(env: dict[str, str]) -> None:
    missing_value = invoke("recall", "-v2 flag", "--db", env["db"], "-k")
    assert missing_value.exit_code == 2 and "requires an argument" in missing_value.stderr
    typo = run(env, "recall", "-v2 flag", "--jsn")
    assert typo.exit_code == 2 and "No such option" in typo.stderr
    no_query = run(env, "recall", "-k", "3")
    assert no_query.exit_code == 2 and "Missing argument" in no_query.stderr
    extra = run(env, "recall", "-v2 flag", "-other")
    assert extra.exit_code == 2 and "unexpected extra argument" in extra.stderr


# -- 3. read verbs never create a store ------------------------------------------------------

READ_VERBS = [
    ("stats",),
    ("recall", "x"),
    ("recognize", "x"),
    ("context", "x"),
    ("get", "1"),
    ("index", "stats"),
    ("graph", "stats"),
    ("graph", "neighbors", "x"),
    ("graph", "path", "a", "b"),
]


@pytest.mark.parametrize("verb", READ_VERBS, ids=" ".join)
def test_read_verb_on_a_missing_store_fails_and_creates_nothing(
    verb: tuple[str, ...], tmp_path: Path, config: str
) -> None:
    db = tmp_path / "typo" / "mem.db"
    result = invoke(*verb, "--db", str(db), "--config", config)
    assert_one_line_error(result, "no store at", str(db), "StoreNotFound")
    assert not db.exists() and not db.parent.exists()


def test_read_verb_on_the_missing_default_store(
    tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENGRAMDB_HOME", str(tmp_path / "home"))
    assert_one_line_error(invoke("recall", "x", "--config", config), "no store at")
    assert not (tmp_path / "home").exists()


def test_add_still_creates_the_store(tmp_path: Path, config: str) -> None:
    notes = tmp_path / "n.txt"
    notes.write_text("Cats sleep most of the day.\n", encoding="utf-8")
    db = tmp_path / "new" / "folder" / "mem.db"
    added = invoke("add", str(notes), "--no-progress", "--db", str(db), "--config", config)
    assert added.exit_code == 0 and "added 1" in added.output
    stats = invoke("stats", "--json", "--db", str(db), "--config", config)
    assert json.loads(stats.output)["memories"] == 1


# -- 4. no traceback reaches the user --------------------------------------------------------


def damage(path: Path, offset: int, size: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xa5" * size)


def test_damaged_store_is_one_line(env: dict[str, str]) -> None:
    db = Path(env["db"])
    assert db.stat().st_size > 8192 + 16384
    damage(db, 8192, 16384)
    for verb in (("stats",), ("recall", "river"), ("recognize", "river"), ("get", "1")):
        assert_one_line_error(run(env, *verb))


def test_damage_anywhere_is_never_a_traceback(env: dict[str, str], tmp_path: Path) -> None:
    good = Path(env["db"]).read_bytes()
    db = tmp_path / "damaged.db"
    failures = 0
    for offset in range(8192, len(good), 4096):
        db.write_bytes(good)
        damage(db, offset, 4096)
        for verb in (("stats", "--json"), ("recall", "river")):
            result = run({**env, "db": str(db)}, *verb)
            if result.exit_code == 0:
                continue
            failures += 1
            assert_one_line_error(result)
    assert failures > 0  # some pages matter


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (sqlite3.OperationalError("disk I/O error"), "disk I/O error"),
        (PermissionError(13, "Permission denied", "/x/m.db"), "Permission denied"),
        (OSError(28, "No space left on device"), "No space left"),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply"),
        (MemoryError(), "out of memory"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else "",
)
def test_unexpected_errors_are_one_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, error: BaseException, needle: str
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(Memory, "stats", fail)
    monkeypatch.setattr(Memory, "recall", fail)
    for verb in (("stats",), ("recall", "river")):
        assert_one_line_error(run(env, *verb), needle, type(error).__name__)


def test_closed_stdout_ends_quietly(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(Memory, "stats", fail)
    result = run(env, "stats")
    assert result.exit_code == 1 and result.output == ""


def engram(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engramdb", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_traceback_only_with_vv(tmp_path: Path, config: str) -> None:
    db = str(tmp_path / "typo" / "mem.db")
    quiet = engram("stats", "--db", db, "--config", config)
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert quiet.stderr.strip().splitlines() == [
        f"Error: no store at {db}; check the path (--db), or add memories to create one "
        "[StoreNotFound]"
    ]
    loud = engram("-vv", "stats", "--db", db, "--config", config)
    assert loud.returncode == 1
    assert "Traceback" in loud.stderr and "StoreNotFoundError" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("Error: no store at")


# -- 5. --where nested too deeply ------------------------------------------------------------


def nested_not(depth: int) -> str:
    return '{"$not": ' * depth + '{"speaker": "Alice"}' + "}" * depth


def nested_and(depth: int) -> str:
    return '{"$and": [' * depth + '{"speaker": "Alice"}' + "]}" * depth


@pytest.mark.parametrize("where", [nested_not(500), nested_and(500), nested_not(100_000)])
@pytest.mark.parametrize("verb", [("recall", "x"), ("context", "x"), ("forget",)], ids=" ".join)
def test_deep_where_is_one_line(
    verb: tuple[str, ...], where: str, tmp_path: Path, config: str
) -> None:
    db = tmp_path / "m.db"
    result = invoke(*verb, "--where", where, "--db", str(db), "--config", config)
    assert_one_line_error(result, str(MAX_DEPTH), "InvalidFilter")
    assert not db.exists()  # refused before any store is opened


def test_where_at_the_depth_limit_is_accepted(env: dict[str, str]) -> None:
    # MAX_DEPTH - 1 $not around one comparison: exactly MAX_DEPTH levels (an even count of
    # $not, so it means speaker = Alice, which no note has).
    depth = MAX_DEPTH - 1 if (MAX_DEPTH - 1) % 2 == 0 else MAX_DEPTH - 2
    result = run(env, "recall", "river", "--where", nested_not(depth), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["items"] == []
    too_deep = run(env, "recall", "river", "--where", nested_not(MAX_DEPTH))
    assert_one_line_error(too_deep, str(MAX_DEPTH))


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ('["speaker"]', "got an array"),
        ('"Alice"', "got a string"),
        ("1" * 5000, "JSON"),  # too many digits for int(): a ValueError, not a decode error
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_where_json_is_one_line(where: str, needle: str, tmp_path: Path, config: str) -> None:
    result = invoke(
        "recall", "x", "--where", where, "--db", str(tmp_path / "m.db"), "--config", config
    )
    assert_one_line_error(result, needle, "InvalidFilter")


# -- 6. a --db whose folder is a file ---------------------------------------------------------


@pytest.mark.parametrize(
    "verb",
    [("stats",), ("recall", "x"), ("graph", "stats"), ("add", "NOTE", "--no-progress")],
    ids=lambda v: v[0] if len(v) < 3 else "add",
)
def test_db_under_a_file_is_one_line(verb: tuple[str, ...], tmp_path: Path, config: str) -> None:
    (tmp_path / "notes.txt").write_text("not a folder\n", encoding="utf-8")
    note = tmp_path / "note.md"
    note.write_text("Cats sleep most of the day.\n", encoding="utf-8")
    args = [str(note) if a == "NOTE" else a for a in verb]
    db = tmp_path / "notes.txt" / "mem.db"
    result = invoke(*args, "--db", str(db), "--config", config)
    assert_one_line_error(result, "is a file", "NotAStore")
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "not a folder\n"
