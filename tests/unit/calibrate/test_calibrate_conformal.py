"""Conformal thresholds: coverage on synthetic data where the truth is known; storage."""

from __future__ import annotations

import math
import random
import sqlite3

import numpy as np
import pytest

from engramdb.calibrate import (
    ConformalCalibration,
    conformal_threshold,
    is_stale,
    load_calibration,
    make_cue,
    sample_cues,
    save_calibration,
)
from engramdb.errors import IndexFormatError, InvalidInputError


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
def test_coverage_is_at_least_one_minus_alpha_on_exchangeable_data(alpha: float) -> None:
    # Scores of the true item: a known continuous law (Beta(2, 5)). Each trial draws n
    # calibration scores and measures coverage exactly with the law's CDF on a big sample.
    rng = np.random.default_rng(0)
    n = 100
    test = np.sort(rng.beta(2, 5, size=200_000))
    coverages = []
    for _ in range(300):
        t = conformal_threshold(rng.beta(2, 5, size=n).tolist(), alpha)
        coverages.append(1.0 - np.searchsorted(test, t, side="left") / len(test))
    k = math.floor((n + 1) * alpha)
    expected = 1.0 - k / (n + 1)  # split-conformal: E[coverage] = 1 - k/(n+1) >= 1 - alpha
    assert expected >= 1 - alpha
    assert abs(float(np.mean(coverages)) - expected) < 0.01
    assert float(np.mean(coverages)) >= 1 - alpha - 0.005


def test_threshold_is_the_kth_smallest_score() -> None:
    scores = [0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.6, 0.4, 0.2]
    assert conformal_threshold(scores, 0.2) == 0.2  # floor(10 * 0.2) = 2nd smallest
    assert conformal_threshold(scores, 0.35) == 0.3


def test_too_few_scores_keep_everything() -> None:
    assert conformal_threshold([0.5] * 10, 0.05) == -math.inf


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1])
def test_bad_alpha_raises(alpha: float) -> None:
    with pytest.raises(InvalidInputError, match="alpha"):
        conformal_threshold([0.1, 0.2], alpha)


def test_cues_are_parts_of_their_memory() -> None:
    text = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    rng = random.Random(3)
    for _ in range(50):
        cue = make_cue(text, rng).split()
        assert 2 <= len(cue) <= 16
        it = iter(text.split())
        assert all(w in it for w in cue)  # an ordered sub-sequence of the text
    memories = [(i, f"memory {i} talks about item {i} at length") for i in range(30)]
    memories.append((99, "too short"))
    pairs = sample_cues(memories, n=10, seed=1)
    assert len(pairs) == 10 and len({i for i, _ in pairs}) == 10
    assert 99 not in {i for i, _ in pairs}
    assert pairs == sample_cues(memories, n=10, seed=1)


def _conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    return conn


def test_calibration_round_trips_through_store_info() -> None:
    conn = _conn()
    a = ConformalCalibration.from_scores(
        [0.3, 0.0, 0.9], scope="*", data_version=4, memories=120, model="m"
    )
    b = ConformalCalibration.from_scores([0.5], scope="work", data_version=5, memories=3, model="m")
    save_calibration(conn, a)
    save_calibration(conn, b)
    got = load_calibration(conn, "*")
    assert got is not None
    assert got.scores == (0.0, 0.3, 0.9) and got.found == 2 and got.memories == 120
    assert load_calibration(conn, "work") == b
    assert load_calibration(conn, "other") is None


def test_malformed_calibration_raises() -> None:
    conn = _conn()
    conn.execute("INSERT INTO store_info VALUES ('calibration', 'not json')")
    with pytest.raises(IndexFormatError):
        load_calibration(conn, "*")


def test_staleness_follows_model_and_size() -> None:
    cal = ConformalCalibration.from_scores(
        [0.5], scope="*", data_version=1, memories=100, model="m"
    )
    assert not is_stale(cal, model="m", memories=105)
    assert is_stale(cal, model="m", memories=111)
    assert is_stale(cal, model="other", memories=100)
