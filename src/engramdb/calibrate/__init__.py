"""Calibrated relevance and abstention.

* :class:`RelevanceModel` — per-query calibration of fused scores into relevance
  probabilities (monotone within a query; coefficients shipped as JSON).
* :class:`ConformalCalibration` — a store-level threshold with coverage ≥ 1 − α on cues
  made from the store's own memories (split conformal, after CONFLARE).
"""

from __future__ import annotations

from engramdb.calibrate.conformal import (
    ConformalCalibration,
    conformal_threshold,
    is_stale,
    load_calibration,
    make_cue,
    sample_cues,
    save_calibration,
)
from engramdb.calibrate.scores import QUERY_FEATURES, RelevanceModel, fit_relevance, query_features

__all__ = [
    "QUERY_FEATURES",
    "ConformalCalibration",
    "RelevanceModel",
    "conformal_threshold",
    "fit_relevance",
    "is_stale",
    "load_calibration",
    "make_cue",
    "query_features",
    "sample_cues",
    "save_calibration",
]
