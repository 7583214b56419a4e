"""``engram eval``: runs, files written, comparison, error messages and exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from engramdb.cli import cli
from engramdb.cli.eval import KIND_CHOICES
from engramdb.eval import KINDS

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["eval", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_kind_choices_match_the_library() -> None:
    assert KIND_CHOICES == KINDS


def test_run_writes_json_and_markdown(tmp_path: Path) -> None:
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    code, stdout, stderr = _invoke(
        str(DATA / "tiny_beir"),
        "--embedder",
        "hash",
        "--channels",
        "lexical,hybrid",
        "--no-progress",
        "--out",
        str(out),
        "--markdown",
        str(md),
    )
    assert code == 0, stderr
    assert "| metric | lexical | hybrid |" in stdout
    report = json.loads(out.read_text())
    assert set(report["metrics"]) == {"lexical", "hybrid"}
    assert "ndcg@10" in report["metrics"]["lexical"]
    assert report["config"]["channels"] == ["lexical", "hybrid"]
    assert md.read_text().startswith("## engram eval: beir on tiny_beir")
    assert f"wrote {out}" in stderr


def test_explicit_run_subcommand_and_probe_options(tmp_path: Path) -> None:
    out = tmp_path / "needle.json"
    code, _, stderr = _invoke(
        "run",
        str(DATA / "tiny_books"),
        "--kind",
        "needle",
        "--sizes",
        "20",
        "--seed",
        "3",
        "--channels",
        "lexical",
        "--embedder",
        "hash",
        "--no-progress",
        "--out",
        str(out),
    )
    assert code == 0, stderr
    report = json.loads(out.read_text())
    assert report["config"]["sizes"] == [20] and report["config"]["seed"] == 3


def test_progress_bars_do_not_break_the_run() -> None:
    code, stdout, stderr = _invoke(
        str(DATA / "tiny_multihop"), "--embedder", "hash", "--limit", "2"
    )
    assert code == 0, stderr
    assert "all-recall@5" in stdout


def test_compare_shows_deltas(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path, channels in ((a, "lexical"), (b, "lexical,dense")):
        code, _, stderr = _invoke(
            str(DATA / "tiny_beir"),
            "--embedder",
            "hash",
            "--channels",
            channels,
            "--no-progress",
            "--out",
            str(path),
        )
        assert code == 0, stderr
    code, stdout, _ = _invoke("compare", str(a), str(b))
    assert code == 0
    assert "| channel | metric | a | b | Δ |" in stdout
    assert "| lexical | ndcg@10 |" in stdout and "+0.0000 |" in stdout
    assert "| dense | ndcg@10 | – |" in stdout


def test_bad_data_set_exits_1_naming_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "one"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "one?"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    code, _, stderr = _invoke(str(folder), "--embedder", "hash", "--no-progress")
    assert code == 1
    assert "test.tsv:2: unknown corpus id 'd2'" in stderr
    assert "[EvalData]" in stderr


def test_books_without_kind_ask_for_a_probe() -> None:
    code, _, stderr = _invoke(str(DATA / "tiny_books"), "--embedder", "hash", "--no-progress")
    assert code == 1
    assert "choose a probe with --kind (needle, sort, recognition, retention)" in stderr


def test_bad_sizes_and_channels_are_usage_errors() -> None:
    code, _, stderr = _invoke(str(DATA / "tiny_books"), "--kind", "needle", "--sizes", "ten")
    assert code == 2 and "comma-separated integers" in stderr
    code, _, stderr = _invoke(
        str(DATA / "tiny_beir"), "--channels", "lexical,graf", "--no-progress"
    )
    assert code == 1 and "unknown channel(s) graf" in stderr


def test_compare_rejects_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{}")
    code, _, stderr = _invoke("compare", str(path), str(path))
    assert code == 1 and "not an eval report" in stderr


@pytest.mark.parametrize(
    ("args", "files"),
    [
        (["tiny_beir"], {"recall_at_k.png", "latency.png"}),
        (["tiny_books", "--kind", "needle", "--sizes", "20"], {"latency.png", "needle_grid.png"}),
        (
            ["tiny_books", "--kind", "sort", "--sizes", "300", "--limit", "4"],
            {"latency.png", "sort.png"},
        ),
        (
            ["tiny_books", "--kind", "retention", "--limit", "4", "--sizes", "3,10"],
            {"latency.png", "retention.png"},
        ),
    ],
)
def test_plots_are_written(tmp_path: Path, args: list[str], files: set[str]) -> None:
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    code, _, stderr = _invoke(
        str(DATA / args[0]), *args[1:], "--embedder", "hash", "--no-progress", "--plots", str(plots)
    )
    assert code == 0, stderr
    assert {p.name for p in plots.iterdir()} == files
    for name in files:
        assert (plots / name).read_bytes()[:4] == b"\x89PNG"


def test_plots_without_matplotlib_exit_2_before_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, stderr = _invoke(str(DATA / "tiny_beir"), "--plots", "somewhere")
    assert code == 2
    assert 'pip install "engramdb[plots]"' in stderr


def test_a_longmemeval_file_is_a_path_the_kind_is_read_from(tmp_path: Path) -> None:
    out = tmp_path / "lme.json"
    lme = DATA.parent / "longmemeval" / "mini.json"
    code, stdout, stderr = _invoke(
        str(lme), "--embedder", "hash", "--channels", "lexical", "--no-progress", "--out", str(out)
    )
    assert code == 0, stderr
    assert stdout.startswith("## engram eval: longmemeval on mini")
    assert "Per question type" in stdout
    assert json.loads(out.read_text())["metrics"]["lexical"]["recall_any@5"] is not None


def test_updates_kind_and_a_file_that_is_no_data_set(tmp_path: Path) -> None:
    code, stdout, stderr = _invoke(
        str(DATA / "tiny_updates"), "--kind", "updates", "--embedder", "hash", "--no-progress"
    )
    assert code == 0, stderr
    assert "| current@1 |" in stdout and "| as_of/stale@1 |" in stdout
    stray = tmp_path / "notes.json"
    stray.write_text('[{"text": "hello"}]')
    code, _, stderr = _invoke(str(stray), "--embedder", "hash", "--no-progress")
    assert code == 1 and "LongMemEval" in stderr
