"""Clues drawn from the memory itself: pseudo-relevance feedback and bridge phrases.

Each function reads the hits a recall found (their texts, vectors or graph phrases) and
returns what the next recall should add to the query:

* :func:`rm3_terms` — RM3-style expansion terms for the lexical channel: the relevance
  model ``P(t | R) = Σ_D P(D | q) · P(t | D)`` over the top hits (``P(D | q)``: the hits'
  weights, ``P(t | D)``: term frequency over document length), times the term's inverse
  document frequency in the candidate pool so that words every candidate shares do not
  crowd out the distinctive ones;
* :func:`rocchio` — the dense query moved toward the centroid of the top hits' vectors;
* :func:`bridge_phrases` — the graph's phrase nodes the top hits contain, weighted by
  specificity (1 / passages containing the phrase) and the hit's weight; phrases found in
  one passage only are left out, since they lead nowhere but back to that passage.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engramdb.graph.recall import GraphIndex

__all__ = ["Bridge", "bridge_phrases", "rm3_terms", "rocchio", "words"]

_WORD_RE = re.compile(r"[^\W_]+")
_STOP_WORDS = (
    "a about after all also an and any are as at be been before being but by can could "
    "did do does during for from had has have he her his how i if in into is it its "
    "me more most my no not of on one only or other our out over she so some such than "
    "that the their them then there these they this those through to under until up "
    "very was we were what when where which while who whom why will with would you your"
)
_STOP = frozenset(_STOP_WORDS.split())


def words(text: str) -> list[str]:
    """Lower-cased content words of ``text`` in order (stop words and 1-letter words out)."""
    return [w for w in _WORD_RE.findall(text.lower()) if len(w) > 1 and w not in _STOP]


def rm3_terms(
    texts: Sequence[str],
    weights: Sequence[float],
    *,
    pool: Sequence[str] = (),
    exclude: Collection[str] = (),
    n: int = 10,
) -> list[tuple[str, float]]:
    """The ``n`` best expansion terms of the top hits, heaviest first.

    Args:
        texts: the feedback hits' texts.
        weights: each hit's weight (e.g. its calibrated relevance); non-negative.
        pool: texts of the whole candidate list, for the inverse document frequency
            (default: ``texts``).
        exclude: terms to leave out (the query's own words).
        n: how many terms.

    Returns:
        ``(term, weight)`` pairs; weights sum to 1 (empty when no term qualifies).
    """
    docs = list(pool) or list(texts)
    df: Counter[str] = Counter()
    for text in docs:
        df.update(set(words(text)))
    total = len(docs)
    score: dict[str, float] = {}
    for text, weight in zip(texts, weights, strict=True):
        terms = words(text)
        if not terms or weight <= 0:
            continue
        for term, tf in Counter(terms).items():
            if term not in exclude:
                idf = math.log(1.0 + total / max(df.get(term, 0), 1))
                score[term] = score.get(term, 0.0) + weight * tf / len(terms) * idf
    best = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    mass = sum(w for _, w in best)
    return [(t, w / mass) for t, w in best] if mass > 0 else []


def rocchio(
    query: npt.NDArray[np.float32],
    vectors: npt.NDArray[np.float32],
    weights: Sequence[float],
    *,
    beta: float = 0.5,
) -> npt.NDArray[np.float32]:
    """``normalise(q + beta · Σ w_i v_i / Σ w_i)``: the query moved toward the hits.

    Args:
        query: ``(d,)`` unit query vector.
        vectors: ``(m, d)`` the feedback hits' unit vectors (zero rows are skipped).
        weights: each hit's weight; non-negative.
        beta: how far to move (0 keeps the query).

    Returns:
        ``(d,)`` unit float32 vector (the query itself when no hit has a vector).
    """
    w = np.asarray(weights, dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float64).reshape(len(w), -1)
    usable = (np.abs(v).sum(axis=1) > 0) & (w > 0)
    q = np.asarray(query, dtype=np.float64)
    if not usable.any() or beta <= 0:
        return np.asarray(query, dtype=np.float32)
    centroid = (w[usable, None] * v[usable]).sum(axis=0) / w[usable].sum()
    moved = q + beta * centroid
    norm = float(np.linalg.norm(moved))
    return np.asarray(moved / norm if norm > 0 else q, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Bridge:
    """A phrase that links a hit to other passages.

    Attributes:
        phrase: the phrase (a node of the graph).
        node: its node index in the :class:`GraphIndex`.
        weight: specificity × the weight of the hit(s) containing it.
        source: the memory id of the heaviest hit that contains it.
    """

    phrase: str
    node: int
    weight: float
    source: int


def bridge_phrases(
    index: GraphIndex,
    hits: Sequence[tuple[int, float]],
    *,
    exclude: Collection[int] = (),
    n: int = 5,
    common_weight: float = 1.0,
) -> list[Bridge]:
    """The ``n`` heaviest bridge phrases of the hits, heaviest first.

    A phrase weighs ``Σ_h w_h / passages(phrase)`` over the hits that contain it, times
    ``common_weight`` when it was never seen as a named entity or proper noun. Phrases in
    only one passage (no bridge) and the nodes in ``exclude`` (the query's seeds, earlier
    bridges) are left out.

    Args:
        index: the graph.
        hits: ``(memory id, weight)`` of the feedback hits.
        exclude: phrase node indices to leave out.
        n: how many phrases.
        common_weight: factor for common (not named) phrases.
    """
    score: dict[int, float] = {}
    source: dict[int, tuple[float, int]] = {}
    for memory_id, weight in hits:
        if weight <= 0:
            continue
        for phrase in index.phrases_of(memory_id):
            node = index.phrase_index(phrase)
            if node is None or node in exclude:
                continue
            passages = float(index.passages_per_phrase[node])
            if passages < 2:
                continue
            factor = 1.0 if index.named[node] else common_weight
            score[node] = score.get(node, 0.0) + weight * factor / passages
            if weight > source.get(node, (-1.0, 0))[0]:
                source[node] = (weight, memory_id)
    best = sorted(score.items(), key=lambda kv: (-kv[1], index.phrases[kv[0]]))[:n]
    return [Bridge(index.phrases[node], node, w, source[node][1]) for node, w in best]
