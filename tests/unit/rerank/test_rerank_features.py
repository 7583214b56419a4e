"""The learned reranker's features: hand-computed values, and what extra candidates change."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engramdb.rerank import FEATURES, candidate_features
from engramdb.rerank.features import MONOTONE, terms
from engramdb.types import ChannelScore, Hit, Position


def hit(i: int, score: float, text: str, why: dict[str, ChannelScore]) -> Hit:
    return Hit(
        id=i,
        score=score,
        text=text,
        namespace="n",
        source=None,
        position=Position(document=None, ordinal=None, start=None, end=None),
        event_time=None,
        meta={},
        why=why,
    )


def lex(rank: int, score: float) -> dict[str, ChannelScore]:
    return {"lexical": ChannelScore(rank=rank, score=score)}


def dense(rank: int, score: float) -> dict[str, ChannelScore]:
    return {"dense": ChannelScore(rank=rank, score=score)}


def fixture() -> list[Hit]:
    return [
        hit(1, 0.03, "Protein folding is fast", {**lex(1, 10.0), **dense(2, 0.8)}),
        hit(2, 0.02, "Folding rates of RNA", lex(2, 5.0)),
        hit(3, 0.01, "unrelated words here entirely and more", dense(1, 0.9)),
    ]


def columns(x: np.ndarray) -> dict[str, list[float]]:
    return {name: x[:, i].tolist() for i, name in enumerate(FEATURES)}


def test_terms_drop_stop_words_and_cut_to_five_letters() -> None:
    assert terms("What are the folding rates of proteins?") == {"foldi", "rates", "prote"}


def test_features_match_hand_computed_values() -> None:
    col = columns(candidate_features("protein folding rates", fixture()))
    expected = {
        "fused_rank_log": [math.log(2), math.log(3), math.log(4)],
        "fused_rel": [1.0, 2 / 3, 1 / 3],
        # lexical scores 10, 5: mean 7.5, std 2.5; the absent hit reads the lowest, 5
        "lexical_present": [1.0, 1.0, 0.0],
        "lexical_rank_log": [math.log(2), math.log(3), math.log(201)],
        "lexical_rel": [1.0, 0.5, 0.5],
        "lexical_z": [1.0, -1.0, -1.0],
        # dense scores 0.8, 0.9: mean 0.85, std 0.05
        "dense_present": [1.0, 0.0, 1.0],
        "dense_rank_log": [math.log(3), math.log(201), math.log(2)],
        "dense_rel": [0.8 / 0.9, 0.8 / 0.9, 1.0],
        "dense_z": [-1.0, -1.0, 1.0],
        "z_sum": [0.0, -1.0, 0.0],
        "dense_gap": [0.1, 0.1, 0.0],
        # query terms foldi (in 2 of 3 hits), prote (1), rates (1): weights log(4 / (df + .5))
        "overlap": [2 / 3, 2 / 3, 0.0],
        "overlap_idf": [
            (math.log(4 / 2.5) + math.log(4 / 1.5)) / (math.log(4 / 2.5) + 2 * math.log(4 / 1.5))
        ]
        * 2
        + [0.0],
        "overlap_rel": [1.0, 1.0, 0.0],
        # words + 1: 5, 5, 7; median 5
        "len_ratio_log": [0.0, 0.0, math.log(7 / 5)],
        "agreement": [0.1] * 3,
        "lexical_margin": [0.5] * 3,
        "dense_margin": [(0.9 - 0.8) / 0.9] * 3,
    }
    assert set(expected) == set(FEATURES)
    for name, values in expected.items():
        assert col[name] == pytest.approx(values, abs=1e-6), name


def test_features_of_the_top_hits_ignore_unrelated_candidates_below_them() -> None:
    """Unrelated memories added to the store come in as low-ranked dense candidates with no
    query word: the columns relative to the top stay the same for the hits the channels
    found; the columns normalised over the whole list move."""
    base = fixture()
    extra = [
        hit(10 + j, 0.005 - j * 1e-4, f"zebra migration season {j}", dense(3 + j, 0.5 - j / 100))
        for j in range(20)
    ]
    before = columns(candidate_features("protein folding rates", base))
    after = columns(candidate_features("protein folding rates", base + extra))
    steady = ["fused_rank_log", "fused_rel", "lexical_present", "lexical_rank_log"]
    steady += ["lexical_rel", "dense_present", "overlap", "agreement", "lexical_margin"]
    steady += ["dense_margin", "lexical_z"]  # lexical scores: the same hits found them
    for name in steady:
        assert after[name][:3] == pytest.approx(before[name], abs=1e-6), name
    for name in ("dense_rank_log", "dense_rel", "dense_gap"):  # hits 1 and 3: found by dense
        assert [after[name][i] for i in (0, 2)] == pytest.approx(
            [before[name][i] for i in (0, 2)], abs=1e-6
        ), name
    # hit 2 was not found by dense: it reads the lowest dense score, now lower
    assert after["dense_rel"][1] < before["dense_rel"][1]
    for name in ("dense_z", "z_sum", "overlap_idf"):  # normalised over the list
        assert after[name][:3] != pytest.approx(before[name], abs=1e-6), name


def test_monotone_constraints_name_real_features() -> None:
    assert set(MONOTONE) <= set(FEATURES)
    assert set(MONOTONE.values()) <= {-1, 1}


def test_degenerate_lists() -> None:
    assert candidate_features("q", []).shape == (0, len(FEATURES))
    one = columns(candidate_features("", [hit(1, 0.0, "", {})]))
    assert one["fused_rel"] == [0.0] and one["overlap"] == [0.0]
    assert one["lexical_rank_log"] == pytest.approx([math.log(201)])
    assert one["lexical_z"] == [0.0] and one["len_ratio_log"] == [0.0]
