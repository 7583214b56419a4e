"""A process killed (SIGKILL) while it ingests, crosses the SPANN threshold, folds or rebuilds
the dense index: the store it leaves opens sound, keeps every batch that returned (whole),
and the same ingest run again ends exactly where a clean run does."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _concurrency_support import (
    BATCH_SIZE,
    BATCHES,
    CONFIG_TOML,
    crash_batch,
    file_problems,
    index_problems,
    ingest,
    open_memory,
    texts_of,
)

HERE = Path(__file__).parent
CHILD = HERE / "_ingest_child.py"
FOLDING = 16  # fold the change log after 16 changes (the engine's own: 2048)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The memories' texts after one uninterrupted ingest of the whole corpus."""
    path = tmp_path_factory.mktemp("clean") / "store.db"
    with open_memory(path, "flat") as mem:
        ingest(mem, range(BATCHES))
        texts = texts_of(mem)
    assert len(texts) == BATCHES * BATCH_SIZE
    return texts


def run_and_kill(command: list[str], trigger: Callable[[], bool], delay: float) -> int:
    """Run ``command``; ``delay`` seconds after ``trigger()`` holds, SIGKILL it (unless it
    ended by then). Its return code (``-9`` when killed)."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=HERE
    ) as proc:
        deadline = time.monotonic() + 20
        while proc.poll() is None and not trigger() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGKILL), out
    return proc.returncode


def lines(log: Path, at_least: int) -> Callable[[], bool]:
    """Whether ``log`` holds ``at_least`` lines."""
    return lambda: log.exists() and log.read_text().count("\n") >= at_least


def building(path: Path) -> Callable[[], bool]:
    """Whether a SPANN build's work folder exists beside the index of store ``path``."""
    folder = Path(f"{path}.spann")

    def check() -> bool:
        try:
            return any(".tmp-" in p.name for p in folder.iterdir())
        except OSError:  # not there yet
            return False

    return check


def check_after_crash(path: Path, kind: str, log: Path, clean: set[str]) -> None:
    """The killed store: sound; whole batches only, every logged one; a rerun ends clean."""
    assert not file_problems(path)
    logged = {int(line.split()[1]) for line in log.read_text().splitlines() if "batch" in line}
    with open_memory(path, kind) as mem:
        assert not index_problems(mem)
        stored = texts_of(mem)
        for b in range(BATCHES):
            have = sum(record["text"] in stored for record in crash_batch(b))
            assert have in (0, BATCH_SIZE), f"batch {b} is partly stored: {have}/{BATCH_SIZE}"
            assert b not in logged or have == BATCH_SIZE, f"batch {b} returned but is lost"
        ingest(mem, range(BATCHES))
        assert texts_of(mem) == clean
        assert mem.stats().memories == len(clean)
        assert not index_problems(mem)
        if kind == "spann":
            assert mem.dense_index.kind == "spann"
    assert not file_problems(path)


@pytest.mark.parametrize(
    ("kind", "seed"),
    [("flat", 0), ("flat", 1), ("flat", 2), ("spann", 0), ("spann", 1), ("spann", 2)],
)
def test_a_killed_ingest_leaves_whole_batches_and_reruns_clean(
    tmp_path: Path, kind: str, seed: int, clean: set[str]
) -> None:
    """Batches of 25, killed during a random one; with SPANN the store crosses the
    threshold (50) at the third batch, and every later batch folds into the folder."""
    path, log = tmp_path / "store.db", tmp_path / "log"
    fold = str(FOLDING) if kind == "spann" else "-"
    command = [sys.executable, str(CHILD), "ingest", str(path), kind, str(log), fold]
    rng = random.Random(f"{kind}{seed}")
    run_and_kill(command, lines(log, rng.randrange(BATCHES)), rng.uniform(0.0, 0.06))
    check_after_crash(path, kind, log, clean)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_process_killed_while_rebuilding_the_index_leaves_a_sound_store(
    tmp_path: Path, seed: int, clean: set[str]
) -> None:
    """Batches 4-7 each followed by a rebuild, then rebuilds: killed after a random step,
    or (seed 1) as soon as a rebuild's work folder appears."""
    path, log = tmp_path / "store.db", tmp_path / "log"
    with open_memory(path, "spann") as mem:
        ingest(mem, range(4))
        assert mem.dense_index.kind == "spann"
    command = [sys.executable, str(CHILD), "rebuild", str(path), "spann", str(log), "-"]
    rng = random.Random(f"rebuild{seed}")
    trigger = lines(log, rng.randrange(12)) if seed == 0 else building(path)
    run_and_kill(command, trigger, rng.uniform(0.0, 0.02))
    log.write_text(log.read_text() + "".join(f"batch {b}\n" for b in range(4)))
    check_after_crash(path, "spann", log, clean)


@pytest.mark.parametrize("delay", [0.0, 0.004])
def test_a_killed_engram_index_rebuild_leaves_a_sound_store(
    tmp_path: Path, delay: float, clean: set[str]
) -> None:
    """``engram index rebuild`` killed once its build's work folder appears (or just after)."""
    path, log, config = tmp_path / "store.db", tmp_path / "log", tmp_path / "engramdb.toml"
    config.write_text(CONFIG_TOML, encoding="utf-8")
    with open_memory(path, "spann") as mem:
        ingest(mem, range(6))
        assert mem.dense_index.kind == "spann"
    log.write_text("".join(f"batch {b}\n" for b in range(6)))
    command = [sys.executable, "-m", "engramdb", "index", "rebuild", "--db", str(path)]
    run_and_kill([*command, "--config", str(config)], building(path), delay)
    check_after_crash(path, "spann", log, clean)
