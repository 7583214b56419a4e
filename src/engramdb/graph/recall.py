"""Associative recall: Personalized PageRank over the phrase/passage graph (HippoRAG 2 style).

The graph has one node per phrase and one per passage (memory). Edges are undirected and
weighted: phrase–phrase co-occurrence (summed counts), phrase–phrase synonyms (cosine, at
most ``max_synonyms`` per node, keeping an edge that is in either end's top list), and
passage–phrase "contains" edges (weight: the phrase's occurrences in the passage).

A query is linked to phrase nodes (its own phrases, by exact string and by embedding
similarity), each seed weighted by its link score × node specificity (1 / passages that
contain the phrase), × ``common_weight`` for phrases never seen as a named entity or proper
noun, the top ``link_top_k`` kept. Every passage is also seeded with ``passage_weight`` ×
its min-max normalised dense score. PPR (damping = probability of following an edge)
spreads the mass; passages rank by the mass they hold. With no linked phrase the channel
falls back to the dense run.

Recall runs PPR by forward push (:mod:`engramdb.graph._push`): only nodes holding more than
``epsilon`` × their weighted degree of residual seed weight are expanded, so a query costs
what its seeds' neighbourhood holds, not the whole graph, and each passage's mass (in seed
weight units) is within ``epsilon`` × its weighted degree of the exact PPR (``epsilon=0``:
power iteration, :meth:`RandomWalk.ppr`, which stays the reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from engramdb._optional import require
from engramdb.errors import InvalidInputError
from engramdb.graph._push import PushResult, PushWalk
from engramdb.graph.sqlite import GraphSnapshot

__all__ = ["PPR_EPSILON", "GraphIndex", "GraphRecall", "RandomWalk", "personalized_pagerank"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_VIA = 3
"""Phrases shown per hit in an explanation."""
PPR_EPSILON = 1e-5
"""Default push threshold (seed weight per unit of weighted degree); see GraphConfig."""


class RandomWalk:
    """The random-walk operator of a weighted graph, prepared once for many PPR runs.

    Args:
        adjacency: ``(n, n)`` scipy sparse matrix; ``W[i, j]`` is the weight of ``i → j``
            (symmetric for an undirected graph); weights must be ``>= 0``.

    Raises:
        InvalidInputError: a non-square matrix or a negative weight.
        MissingDependencyError: scipy is not installed.
    """

    def __init__(self, adjacency: object) -> None:
        sparse = require("scipy.sparse", extra="graph")
        w = sparse.csr_matrix(adjacency, dtype=np.float64)
        n = w.shape[0]
        if w.shape != (n, n):
            raise InvalidInputError(f"adjacency must be square, got {w.shape}")
        if (w.data < 0).any():
            raise InvalidInputError("adjacency weights must be non-negative")
        strength = np.asarray(w.sum(axis=1)).ravel()
        self.n = n
        self.dangling = strength == 0
        inv = np.divide(1.0, strength, out=np.zeros_like(strength), where=~self.dangling)
        self.transposed = sparse.csr_matrix(w.T.multiply(inv[np.newaxis, :]))

    def ppr(
        self, reset: npt.ArrayLike, *, damping: float = 0.5, tol: float = 1e-10, max_iter: int = 200
    ) -> FloatArray:
        """Personalized PageRank by power iteration.

        ``p = damping · Tᵀ p + (damping · dangling mass + 1 − damping) · r``, where
        ``T = D⁻¹ W`` and ``r`` is the reset vector scaled to sum 1. Mass on nodes without
        out-edges jumps back to ``r`` (networkx's convention).

        Args:
            reset: ``(n,)`` or ``(n, q)`` non-negative reset weights (one column per query).
            damping: probability of following an edge at each step.
            tol: stop when the L1 change of every column is below this.
            max_iter: iteration cap.

        Returns:
            ``(n,)`` or ``(n, q)`` float64 scores; each column sums to 1.

        Raises:
            InvalidInputError: a shape mismatch, a negative weight or an all-zero column.
        """
        r = np.asarray(reset, dtype=np.float64)
        single = r.ndim == 1
        r = r.reshape(len(r), -1)
        if r.shape[0] != self.n:
            raise InvalidInputError(f"reset has {r.shape[0]} rows, the graph {self.n} nodes")
        if (r < 0).any():
            raise InvalidInputError("reset weights must be non-negative")
        total = r.sum(axis=0)
        if (total <= 0).any():
            raise InvalidInputError("every reset column needs a positive weight")
        r = r / total
        p: FloatArray = r.copy()
        for _ in range(max_iter):
            lost = p[self.dangling].sum(axis=0)
            walked: FloatArray = np.asarray(self.transposed @ p, dtype=np.float64)
            nxt: FloatArray = damping * walked + (damping * lost + (1.0 - damping)) * r
            done = np.abs(nxt - p).sum(axis=0).max() < tol
            p = nxt
            if done:
                break
        return p[:, 0] if single else p


def personalized_pagerank(
    adjacency: object,
    reset: npt.ArrayLike,
    *,
    damping: float = 0.5,
    tol: float = 1e-10,
    max_iter: int = 200,
) -> FloatArray:
    """Personalized PageRank of one graph: ``RandomWalk(adjacency).ppr(reset, ...)``.

    Raises:
        InvalidInputError: see :class:`RandomWalk`.
        MissingDependencyError: scipy is not installed.
    """
    return RandomWalk(adjacency).ppr(reset, damping=damping, tol=tol, max_iter=max_iter)


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphRecall:
    """One query's graph recall.

    Attributes:
        run: ``(memory id, score)`` best first; scores are PPR mass (dense scores when
            ``fallback``).
        seeds: the linked phrases and their reset weights, heaviest first.
        via: per memory in ``run``, its phrases that carried the most mass (seeds first).
        fallback: no phrase linked, so ``run`` is the dense run.
    """

    run: tuple[tuple[int, float], ...]
    seeds: tuple[tuple[str, float], ...] = ()
    via: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    fallback: bool = False


def _minmax(values: FloatArray) -> FloatArray:
    if values.size == 0:
        return values
    lo, hi = float(values.min()), float(values.max())
    return np.ones_like(values) if hi == lo else (values - lo) / (hi - lo)


class GraphIndex:
    """The graph of a :class:`GraphSnapshot` as a sparse matrix, ready for PPR.

    Node indices: phrases ``0 .. P-1``, then passages ``P .. P+M-1``. A "contains" edge
    weighs the phrase's occurrences in the passage (HippoRAG's passage matrix counts).

    Args:
        snapshot: the graph's arrays.
        max_synonyms: synonym edges kept per node (an edge stays when it is in the top
            list of either end).
    """

    def __init__(self, snapshot: GraphSnapshot, *, max_synonyms: int = 100) -> None:
        sparse = require("scipy.sparse", extra="graph")
        self.snapshot = snapshot
        self.phrases = snapshot.phrases
        self.n_phrases = len(snapshot.phrases)
        self.n_passages = len(snapshot.memory_ids)
        self.memory_ids = snapshot.memory_ids
        self._phrase_index = {p: i for i, p in enumerate(snapshot.phrases)}
        self._passage_index = {int(m): i for i, m in enumerate(snapshot.memory_ids.tolist())}
        self._by_id = np.argsort(snapshot.memory_ids, kind="stable").astype(np.int64)
        n_p = self.n_phrases
        mentions = snapshot.mentions
        self.passages_per_phrase = np.bincount(mentions[:, 0], minlength=n_p).astype(np.float64)
        self.named = np.bincount(mentions[:, 0], weights=mentions[:, 3], minlength=n_p) > 0
        syn, syn_w = _cap_synonyms(snapshot.synonyms, snapshot.synonym_scores, max_synonyms)
        rows = np.concatenate([snapshot.pairs[:, 0], syn[:, 0], mentions[:, 0]])
        cols = np.concatenate([snapshot.pairs[:, 1], syn[:, 1], mentions[:, 1] + n_p])
        weights = np.concatenate(
            [snapshot.pair_weights, syn_w, mentions[:, 2].astype(np.float32)]
        ).astype(np.float64)
        n = n_p + self.n_passages
        upper = sparse.coo_matrix((weights, (rows, cols)), shape=(n, n))
        self.adjacency = sparse.csr_matrix(upper + upper.T)
        self.push = PushWalk(self.adjacency, check=False)  # symmetric by construction
        self.synonym_edges = len(syn)
        self._has_vector = bool(snapshot.vectors.size) and bool(snapshot.vectors.any())

    def __len__(self) -> int:
        return self.n_phrases + self.n_passages

    @cached_property
    def walk(self) -> RandomWalk:
        """The power-iteration operator (built on first use: recall pushes by default)."""
        return RandomWalk(self.adjacency)

    def phrase_index(self, phrase: str) -> int | None:
        """The node index of a (normalised) phrase, if it is in the graph."""
        return self._phrase_index.get(phrase)

    def link(
        self,
        phrases: Sequence[str],
        vectors: Mapping[str, npt.NDArray[np.float32]] | None = None,
        *,
        top_k: int = 5,
        threshold: float = 0.8,
        common_weight: float = 1.0,
    ) -> dict[int, float]:
        """Seed weights for a query's phrases, the ``top_k`` heaviest.

        A phrase links to the node with the same text (score 1); a phrase with no such
        node links, when ``vectors`` has its embedding, to its nearest node by cosine if
        that is at least ``threshold``. A seed weighs link score × specificity
        (1 / passages containing the phrase), times ``common_weight`` for a phrase never
        seen as a named entity or proper noun.

        Args:
            phrases: the query's normalised phrases.
            vectors: unit embeddings of (at least) the phrases without a node.
            top_k: seeds kept.
            threshold: minimum cosine for an embedding link.
            common_weight: factor for common (not named) phrases.

        Returns:
            ``{phrase node index: weight}``.
        """
        scores: dict[int, float] = {}
        fuzzy: list[npt.NDArray[np.float32]] = []
        for phrase in phrases:
            node = self._phrase_index.get(phrase)
            if node is not None:
                scores[node] = 1.0
            elif vectors is not None and phrase in vectors:
                fuzzy.append(vectors[phrase])
        if fuzzy and self._has_vector:
            sims = np.stack(fuzzy).astype(np.float32) @ self.snapshot.vectors.T
            best = sims.argmax(axis=1)
            for row, node in enumerate(best.tolist()):
                score = float(sims[row, node])
                if score >= threshold and score > scores.get(node, 0.0):
                    scores[node] = score
        weighted = {
            node: score
            / max(self.passages_per_phrase[node], 1.0)
            * (1.0 if self.named[node] else common_weight)
            for node, score in scores.items()
        }
        top = sorted(weighted.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
        return dict(top)

    def recall(  # noqa: PLR0913 - keyword-only knobs of one recall
        self,
        seeds: Mapping[int, float],
        dense: Sequence[tuple[int, float]] = (),
        *,
        depth: int = 100,
        damping: float = 0.5,
        passage_weight: float = 0.05,
        allow: npt.NDArray[np.int64] | None = None,
        epsilon: float = PPR_EPSILON,
    ) -> GraphRecall:
        """One query: see :meth:`recall_many`."""
        return self.recall_many(
            [seeds],
            [dense],
            depth=depth,
            damping=damping,
            passage_weight=passage_weight,
            allow=allow,
            epsilon=epsilon,
        )[0]

    def recall_many(  # noqa: PLR0913 - keyword-only knobs of one recall
        self,
        seeds: Sequence[Mapping[int, float]],
        dense: Sequence[Sequence[tuple[int, float]]],
        *,
        depth: int = 100,
        damping: float = 0.5,
        passage_weight: float = 0.05,
        allow: npt.NDArray[np.int64] | None = None,
        epsilon: float = PPR_EPSILON,
    ) -> list[GraphRecall]:
        """Rank passages by PPR mass from phrase seeds and dense passage seeds.

        Args:
            seeds: per query, ``{phrase node index: weight}`` (see :meth:`link`).
            dense: per query, the dense channel's ``(memory id, score)`` run; each passage
                in it is seeded with ``passage_weight`` × its min-max normalised score.
            depth: how many passages to return.
            damping: PPR damping.
            passage_weight: the dense seed factor (HippoRAG 2: 0.05).
            allow: memory ids that may be returned (a namespace or filter), or None.
            epsilon: push threshold, in units of the seed weights (a phrase seed's link
                weight, a passage's ``passage_weight`` × min-max score): each node's PPR
                mass × the query's total seed weight is within ``epsilon`` × the node's
                weighted degree of the exact value (see :mod:`engramdb.graph._push`), so
                the precision relative to one passage seed does not depend on how many
                passages the dense run seeds; 0 runs every query with seeds in one batched
                power iteration instead.

        Returns:
            One ranked run per query; the dense run (``fallback=True``) for a query with
            no seed.

        Raises:
            InvalidInputError: a negative epsilon.
        """
        if not epsilon >= 0:
            raise InvalidInputError(f"epsilon must be >= 0, got {epsilon}")
        allowed = None if allow is None else set(allow.tolist())
        live = [q for q, s in enumerate(seeds) if s and self.n_passages]
        out = [
            GraphRecall(
                run=tuple([(d, s) for d, s in run if allowed is None or d in allowed][:depth]),
                fallback=True,
            )
            for run in dense
        ]
        if not live:
            return out
        mask = None if allow is None else np.isin(self.memory_ids, allow)
        if epsilon > 0:
            for q in live:
                found = self.ppr(
                    seeds[q],
                    dense[q],
                    damping=damping,
                    passage_weight=passage_weight,
                    epsilon=epsilon,
                )
                passages = found.touched[found.touched >= self.n_phrases] - self.n_phrases
                out[q] = self._ranked(found.estimate, seeds[q], depth, mask, passages)
            return out
        reset = np.zeros((len(self), len(live)), dtype=np.float64)
        for col, q in enumerate(live):
            nodes, weights = self._reset(seeds[q], dense[q], passage_weight)
            reset[nodes, col] = weights
        mass = self.walk.ppr(reset, damping=damping, tol=1e-7)
        everything = np.arange(self.n_passages, dtype=np.int64)
        for col, q in enumerate(live):
            out[q] = self._ranked(mass[:, col], seeds[q], depth, mask, everything)
        return out

    def ppr(
        self,
        seeds: Mapping[int, float],
        dense: Sequence[tuple[int, float]] = (),
        *,
        damping: float = 0.5,
        passage_weight: float = 0.05,
        epsilon: float = PPR_EPSILON,
    ) -> PushResult:
        """The push PPR behind :meth:`recall` for one query, with its error bound.

        ``epsilon`` is in units of the seed weights (see :meth:`recall_many`), so push runs
        with ``epsilon / total seed weight`` on the reset vector scaled to sum 1; the
        result's ``bound`` is in PPR mass.

        Raises:
            InvalidInputError: no positive seed weight, or a bad damping or epsilon.
        """
        nodes, weights = self._reset(seeds, dense, passage_weight)
        total = float(weights.sum())
        if not total > 0:
            raise InvalidInputError("the query has no positive seed weight")
        return self.push.ppr_sparse(nodes, weights, damping=damping, epsilon=epsilon / total)

    def _reset(
        self, seeds: Mapping[int, float], dense: Sequence[tuple[int, float]], weight: float
    ) -> tuple[IntArray, FloatArray]:
        """One query's reset vector as (distinct node indices, weights)."""
        nodes = [np.fromiter(seeds.keys(), dtype=np.int64, count=len(seeds))]
        weights = [np.fromiter(seeds.values(), dtype=np.float64, count=len(seeds))]
        if dense and weight > 0 and self.n_passages:
            ids = np.fromiter((d for d, _ in dense), dtype=np.int64, count=len(dense))
            scores = np.fromiter((s for _, s in dense), dtype=np.float64, count=len(dense))
            by_id = self._by_id
            at = np.minimum(np.searchsorted(self.memory_ids[by_id], ids), self.n_passages - 1)
            known = self.memory_ids[by_id[at]] == ids
            if known.any():
                nodes.append(by_id[at[known]] + self.n_phrases)
                weights.append(weight * _minmax(scores[known]))
        at, where = np.unique(np.concatenate(nodes), return_inverse=True)
        summed: FloatArray = np.bincount(
            where, weights=np.concatenate(weights), minlength=at.size
        ).astype(np.float64)
        keep = summed > 0
        return at[keep], summed[keep]

    def _ranked(
        self,
        mass: FloatArray,
        seeds: Mapping[int, float],
        depth: int,
        mask: npt.NDArray[np.bool_] | None,
        candidates: IntArray,
    ) -> GraphRecall:
        """The ``depth`` best passages by mass (ties by passage order); ``candidates``: the
        passages whose mass may be non-zero, the rest following in passage order."""
        top = _top(mass[self.n_phrases + candidates], candidates, depth, mask)
        if len(top) < depth:
            free = np.ones(self.n_passages, dtype=bool)
            free[top] = False
            if mask is not None:
                free &= mask
            rest = np.flatnonzero(free)
            rest = rest[mass[self.n_phrases + rest] == 0][: depth - len(top)]
            top = np.concatenate([top, rest])
        run = tuple(
            (int(self.memory_ids[i]), float(mass[self.n_phrases + i])) for i in top.tolist()
        )
        seed_list = tuple(
            (self.phrases[n], float(w)) for n, w in sorted(seeds.items(), key=lambda kv: -kv[1])
        )
        return GraphRecall(run=run, seeds=seed_list, via=self._via_many(top, mass, seeds))

    def _phrases_of(self, memory_id: int) -> list[int]:
        node = self.n_phrases + self._passage_index[memory_id]
        a = self.adjacency
        cols = a.indices[a.indptr[node] : a.indptr[node + 1]]
        return [int(j) for j in cols if j < self.n_phrases]

    @cached_property
    def _alphabetical(self) -> IntArray:
        """Each phrase's place in sorted order of the phrase texts."""
        order = sorted(range(self.n_phrases), key=self.phrases.__getitem__)
        ranks = np.empty(self.n_phrases, dtype=np.int64)
        ranks[np.asarray(order, dtype=np.int64)] = np.arange(self.n_phrases, dtype=np.int64)
        return ranks

    def _via_many(
        self, passages: IntArray, mass: FloatArray, seeds: Mapping[int, float]
    ) -> dict[int, tuple[str, ...]]:
        """Per passage, its ``_VIA`` phrases: seeds first, then by mass, then by text."""
        a = self.adjacency
        nodes = passages + self.n_phrases
        starts = a.indptr[nodes].astype(np.int64)
        counts = a.indptr[nodes + 1] - starts
        ends = np.cumsum(counts)
        slots = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
            starts - ends + counts, counts
        )
        phrases = a.indices[slots].astype(np.int64)
        owner = np.repeat(np.arange(len(passages)), counts)
        keep = phrases < self.n_phrases
        phrases, owner = phrases[keep], owner[keep]
        not_seed = ~np.isin(phrases, np.fromiter(seeds, dtype=np.int64, count=len(seeds)))
        # ties by the phrase itself, not its node's place (which depends on the order memories
        # arrived in, or on a cluster's shards); masses compared at float32 so that the same
        # graph summed in another order ties where it ties
        heavy = -mass[phrases].astype(np.float32)
        order = np.lexsort((self._alphabetical[phrases], heavy, not_seed, owner))
        owner, phrases = owner[order], phrases[order]
        first = np.searchsorted(owner, owner, side="left")
        shown = np.arange(owner.size) - first < _VIA
        via: dict[int, list[str]] = {int(self.memory_ids[i]): [] for i in passages.tolist()}
        for o, j in zip(owner[shown].tolist(), phrases[shown].tolist(), strict=True):
            via[int(self.memory_ids[passages[o]])].append(self.phrases[j])
        return {m: tuple(v) for m, v in via.items()}

    def phrases_of(self, memory_id: int) -> list[str]:
        """The phrases a memory contains (empty for a memory not in the graph)."""
        if memory_id not in self._passage_index:
            return []
        return [self.phrases[j] for j in self._phrases_of(memory_id)]

    def path(self, a: str, b: str) -> list[str]:
        """A shortest path (fewest edges) between two phrases, through phrases and passages.

        Passage nodes appear as ``"#<memory id>"``.

        Returns:
            The nodes from ``a`` to ``b``; empty when either phrase is unknown or they are
            not connected.
        """
        csgraph = require("scipy.sparse.csgraph", extra="graph")
        start, goal = self._phrase_index.get(a), self._phrase_index.get(b)
        if start is None or goal is None:
            return []
        _, pred = csgraph.breadth_first_order(
            self.adjacency, start, directed=False, return_predecessors=True
        )
        if start != goal and pred[goal] < 0:
            return []
        nodes = [goal]
        while nodes[-1] != start:
            nodes.append(int(pred[nodes[-1]]))
        return [self._label(n) for n in reversed(nodes)]

    def _label(self, node: int) -> str:
        if node < self.n_phrases:
            return self.phrases[node]
        return f"#{int(self.memory_ids[node - self.n_phrases])}"


def _top(
    mass: FloatArray, passages: IntArray, depth: int, mask: npt.NDArray[np.bool_] | None
) -> IntArray:
    """Of ``passages`` (with their ``mass``), the ``depth`` allowed ones with positive mass,
    heaviest first, ties by passage index."""
    keep = mass > 0
    if mask is not None:
        keep &= mask[passages]
    mass, passages = mass[keep], passages[keep]
    if mass.size > depth > 0:
        floor = np.partition(mass, mass.size - depth)[mass.size - depth]
        near = mass >= floor
        mass, passages = mass[near], passages[near]
    order = np.lexsort((passages, -mass))[:depth]
    return passages[order]


def _cap_synonyms(
    pairs: npt.NDArray[np.int64], scores: npt.NDArray[np.float32], cap: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Keep an edge when it is among the ``cap`` best of either endpoint (ties by index)."""
    if len(pairs) == 0:
        return pairs.reshape(-1, 2), scores
    ends = np.concatenate([pairs[:, 0], pairs[:, 1]])
    edge = np.concatenate([np.arange(len(pairs)), np.arange(len(pairs))])
    other = np.concatenate([pairs[:, 1], pairs[:, 0]])
    s = np.concatenate([scores, scores])
    order = np.lexsort((other, -s, ends))
    ends_sorted = ends[order]
    starts = np.searchsorted(ends_sorted, ends_sorted, side="left")
    rank = np.arange(len(order)) - starts
    keep = np.zeros(len(pairs), dtype=bool)
    keep[edge[order][rank < cap]] = True
    return pairs[keep], scores[keep]
