"""A store-level conformal relevance threshold, after CONFLARE (Rouzrokh et al., 2024).

Calibration pairs come from the store itself, with no LLM and no labels: a *cue* made from
part of a stored memory (a window of its words with some words dropped) should recall that
memory. For each cue, the conformity score is the relevance the engine gives its source
memory (0 when the source is not among the candidates at all). With ``n`` such scores, the
threshold for error rate ``α`` is the ``⌊(n+1)·α⌋``-th smallest score: a new cue drawn the
same way then finds its source at or above the threshold with probability ≥ 1 − α
(split-conformal; marginal over queries, and only under exchangeability: real questions
that look unlike cues get no guarantee).

The result is stored as JSON in the store's ``store_info`` table (key ``calibration``, one
entry per scope) with the ``data_version``, memory count and embedder it was made with;
:func:`is_stale` says when to recompute.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from engramdb.errors import IndexFormatError, InvalidInputError

__all__ = [
    "ConformalCalibration",
    "conformal_threshold",
    "is_stale",
    "load_calibration",
    "make_cue",
    "sample_cues",
    "save_calibration",
]

KEY = "calibration"
FORMAT = "engramdb.conformal/1"
STALE_FRACTION = 0.1
"""A calibration is stale once the scope's memory count moved by more than this fraction."""


def conformal_threshold(scores: Sequence[float], alpha: float) -> float:
    """The split-conformal lower threshold on conformity ``scores`` for error rate ``alpha``.

    Returns ``-inf`` (keep everything) when there are too few scores for ``alpha``
    (``⌊(n+1)·α⌋ < 1``).

    Raises:
        InvalidInputError: ``alpha`` outside (0, 1).

    Example:
        >>> conformal_threshold([0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.6, 0.4, 0.2], 0.2)
        0.2
    """
    if not 0.0 < alpha < 1.0:
        raise InvalidInputError(f"alpha must be in (0, 1), got {alpha!r}")
    ranked = sorted(float(s) for s in scores)
    k = math.floor((len(ranked) + 1) * alpha)
    if k < 1:
        return -math.inf
    return ranked[k - 1]


def make_cue(text: str, rng: random.Random, *, min_words: int = 5, max_words: int = 16) -> str:
    """A cue for ``text``: a random window of its words, each later word kept with p = 0.8.

    Short texts give their whole text as the cue (with the same word dropping).

    Example:
        >>> make_cue("one two three", random.Random(0))
        'one two three'
    """
    words = text.split()
    if len(words) <= min_words:
        return " ".join(words)
    size = rng.randint(min_words, min(max_words, len(words)))
    start = rng.randint(0, len(words) - size)
    window = words[start : start + size]
    kept = window[:2] + [w for w in window[2:] if rng.random() < 0.8]
    return " ".join(kept)


def sample_cues(
    memories: Sequence[tuple[int, str]], *, n: int = 200, seed: int = 0
) -> list[tuple[int, str]]:
    """``(memory id, cue)`` pairs for up to ``n`` memories drawn without replacement.

    Memories with fewer than three words are skipped (a cue from them says too little).
    """
    rng = random.Random(seed)
    pool = [(i, t) for i, t in memories if len(t.split()) >= 3]
    chosen = rng.sample(pool, min(n, len(pool)))
    return [(i, make_cue(t, rng)) for i, t in chosen]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformalCalibration:
    """The conformity scores of one scope's cue set, and what they were computed on.

    Attributes:
        scope: the namespace calibrated, or ``"*"`` for the whole store.
        scores: the sources' relevance for each cue, ascending (0 = source not found).
        found: how many cues recalled their source among the candidates.
        data_version: the store's data version at calibration time.
        memories: how many memories the scope held.
        model: the embedder's model id.
        created: when (UTC epoch seconds).
    """

    scope: str
    scores: tuple[float, ...]
    found: int
    data_version: int
    memories: int
    model: str
    created: float

    @classmethod
    def from_scores(
        cls, scores: Sequence[float], *, scope: str, data_version: int, memories: int, model: str
    ) -> ConformalCalibration:
        """Build from raw scores (any order, kept to 6 decimals); found = scores above 0."""
        ranked = tuple(sorted(round(float(s), 6) for s in scores))
        return cls(
            scope=scope,
            scores=ranked,
            found=sum(1 for s in ranked if s > 0),
            data_version=data_version,
            memories=memories,
            model=model,
            created=time.time(),
        )

    def threshold(self, alpha: float) -> float:
        """The relevance threshold for coverage ``1 − alpha`` (see :func:`conformal_threshold`).

        Raises:
            InvalidInputError: ``alpha`` outside (0, 1).
        """
        return conformal_threshold(self.scores, alpha)


def is_stale(
    cal: ConformalCalibration, *, model: str, memories: int, tolerance: float = STALE_FRACTION
) -> bool:
    """Whether to recompute: another embedder, or the memory count moved by > ``tolerance``."""
    if cal.model != model:
        return True
    return abs(memories - cal.memories) > tolerance * max(cal.memories, 1)


def _read_all(conn: sqlite3.Connection) -> dict[str, dict[str, object]]:
    row = conn.execute("SELECT value FROM store_info WHERE key = ?", (KEY,)).fetchone()
    if row is None:
        return {}
    try:
        data = json.loads(row[0])
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"store_info.{KEY} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IndexFormatError(f"store_info.{KEY} is not in format {FORMAT}")
    scopes = data.get("scopes", {})
    return scopes if isinstance(scopes, dict) else {}


def load_calibration(conn: sqlite3.Connection, scope: str) -> ConformalCalibration | None:
    """The stored calibration of ``scope``, if any.

    Raises:
        IndexFormatError: the stored calibration is malformed.
    """
    entry = _read_all(conn).get(scope)
    if entry is None:
        return None
    try:
        fields = dict(entry)
        fields["scores"] = tuple(float(s) for s in np.asarray(fields["scores"], dtype=float))
        return ConformalCalibration(**fields)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError) as exc:
        raise IndexFormatError(f"malformed calibration for scope {scope!r}: {exc}") from exc


def save_calibration(conn: sqlite3.Connection, cal: ConformalCalibration) -> None:
    """Store ``cal`` under its scope (other scopes are kept).

    Written outside a transaction on purpose: calibration is derived data and must not
    bump the store's ``data_version``.
    """
    scopes = _read_all(conn)
    scopes[cal.scope] = {**asdict(cal), "scores": list(cal.scores)}
    conn.execute(
        "INSERT OR REPLACE INTO store_info (key, value) VALUES (?, ?)",
        (KEY, json.dumps({"format": FORMAT, "scopes": scopes})),
    )
