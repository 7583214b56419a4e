"""Durability of ingest jobs: ``engram serve`` killed (SIGKILL) in the middle of a job and
started again loses nothing the job committed, shows where it stopped, resumes the job by
itself and finishes it without adding a duplicate."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from engramdb import Memory  # noqa: E402
from engramdb.service import MemoryService  # noqa: E402
from engramdb.service.jobs import BATCH  # noqa: E402

HASH = {"model": "hash", "dim": 64}
FILES = 4
LINES = 500
STARTUP_S = 60.0


def _corpus(folder: Path) -> list[Path]:
    """JSONL files of distinct made-up sentences (no near-duplicates among them)."""
    rng = random.Random(11)
    syllables = ["ka", "lo", "mi", "ra", "tu", "ne", "so", "vi", "de", "po", "fa", "gu", "zi"]
    words = ["".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(3000)]
    paths = []
    for n in range(FILES):
        path = folder / f"part-{n}.jsonl"
        lines = (
            json.dumps({"text": " ".join(rng.choices(words, k=12)) + "."}) for _ in range(LINES)
        )
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


@contextmanager
def _serving(db: Path, config: Path, log: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``engram serve --port 0`` as a subprocess; yields it and its base URL."""
    command = [sys.executable, "-m", "engramdb", "serve", "--db", str(db), "--config", str(config)]
    with open(log, "a", encoding="utf-8") as errors:
        proc = subprocess.Popen(
            [*command, "--port", "0"], stdout=subprocess.PIPE, stderr=errors, text=True
        )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + STARTUP_S
        line = ""
        while "listening on " not in line:
            assert time.monotonic() < deadline, "engram serve did not start"
            line = proc.stdout.readline()
            assert line or proc.poll() is None, log.read_text(encoding="utf-8")
        yield proc, line.split("listening on ", 1)[1].strip()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _poll(url: str, until: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(url, timeout=10).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def _texts(db: Path) -> set[str]:
    with Memory.open(db, embed=HASH) as mem:
        return {r.text for r in mem.get_many(mem.ids())}


def test_killed_server_resumes_its_job_without_losing_or_duplicating(tmp_path: Path) -> None:
    config = tmp_path / "engramdb.toml"
    config.write_text('[embed]\nmodel = "hash"\ndim = 64\n', encoding="utf-8")
    db, log = tmp_path / "served.db", tmp_path / "serve.log"
    paths = _corpus(tmp_path)

    with _serving(db, config, log) as (proc, base):
        uploads = [("files", (p.name, p.read_bytes(), "application/jsonl")) for p in paths]
        job = httpx.post(f"{base}/v1/ingest", files=uploads, timeout=60).json()
        assert job["state"] in ("queued", "running")
        running = _poll(f"{base}/v1/jobs/{job['id']}", lambda j: j["done"] > 0)
        proc.kill()  # SIGKILL: no shutdown, the job stays "running" under a dead owner
        proc.wait()
    assert running["state"] == "running", "the job finished before the kill: make it bigger"

    committed = _texts(db)
    with MemoryService.open(db, embed=HASH) as service:
        stopped = service.jobs.get(job["id"])
    assert stopped.state == "running"
    assert stopped.attempts == 1
    assert 0 < stopped.done < FILES * LINES
    assert stopped.done <= len(committed) <= stopped.done + BATCH

    with _serving(db, config, log) as (_, base):
        finished = _poll(f"{base}/v1/jobs/{job['id']}", lambda j: j["state"] != "running")
        stats = httpx.get(f"{base}/v1/stats", timeout=10).json()
    assert finished["state"] == "done", finished
    assert finished["attempts"] == 2
    assert finished["done"] == finished["records"] == FILES * LINES
    assert all(f["error"] is None for f in finished["files"])

    final = _texts(db)
    assert committed <= final
    with Memory.open(tmp_path / "direct.db", embed=HASH) as direct:
        direct.ingest(paths)
        expected = direct.stats().memories
    assert stats["memories"] == len(final) == expected
