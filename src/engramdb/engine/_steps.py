"""Recall in steps: iterative multi-hop recall, with clues drawn from the memory (or an LLM).

Step 1 is an ordinary recall. Each later step forms its query from what the previous step
found, using the clues asked for:

* ``"phrases"`` (graph): bridge phrases — the graph's phrase nodes in the confident hits,
  weighted by specificity (:func:`~engramdb.retrieve.prf.bridge_phrases`) — become new
  PPR seeds beside the question's own, and are added to the lexical and dense query text;
* ``"terms"``: RM3 expansion terms of the hits for the lexical channel
  (:func:`~engramdb.retrieve.prf.rm3_terms`);
* ``"centroid"``: the dense query moved toward the hits' centroid (Rocchio,
  :func:`~engramdb.retrieve.prf.rocchio`);
* ``"llm"``: clues (or the next sub-question) drafted by a chat model
  (:class:`~engramdb.retrieve.clues.LLMClues`); when it fails, the memory's own clues are
  used instead, with a :class:`~engramdb.retrieve.clues.ClueWarning`.

The hits that feed the clues are the previous step's top ``feedback`` new hits, each
weighted by its calibrated relevance. Recall stops after ``steps`` steps, when no clue can
be formed, or when a step adds nothing confident: no hit in its top ``window`` that earlier
steps had not found in theirs reaches relevance ``confident``. Such a step is not kept.

The steps' rankings fuse by reciprocal rank into one deduplicated ranking. Each hit's
``why`` holds the channel scores of the step that ranked it best, and under ``"step"`` a
:class:`~engramdb.types.ChannelScore` whose ``rank`` is that step's number, ``score`` the
hit's fused score there and ``phrases`` the bridge phrases (or clue words) it contains
that led the step to it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engramdb.calibrate import RelevanceModel
from engramdb.config import EngineConfig
from engramdb.engine._read import Reader, ReadOptions, StoreLookups, _runs, build_hits
from engramdb.engine._views import DenseView
from engramdb.errors import ConfigError, InvalidInputError, ModelError
from engramdb.graph.recall import GraphIndex
from engramdb.retrieve.clues import ClueWarning, LLMClues
from engramdb.retrieve.fusion import fuse
from engramdb.retrieve.prf import Bridge, bridge_phrases, rm3_terms, rocchio, words
from engramdb.types import ChannelScore, Hit, Hits, Matrix

__all__ = ["CLUES", "MAX_STEPS", "StepPlan", "check_steps", "make_plan", "recall_in_steps"]

MAX_STEPS = 5
"""The most steps one recall may take."""
CLUES = ("phrases", "terms", "centroid", "llm")
"""The clue kinds a step can add to the query."""

Run = list[tuple[int, float]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepPlan:
    """How to recall in steps.

    Attributes:
        steps: the most steps (1: a plain recall).
        clues: the clue kinds (see :data:`CLUES`).
        confident: the calibrated relevance a new hit needs for its step to count.
        window: the top of a step's ranking that is checked for new confident hits.
        feedback: how many of a step's new hits feed the next step's clues.
        bridges: bridge phrases added per step.
        terms: RM3 terms added per step.
        beta: the Rocchio step toward the hits' centroid.
        step_weight: each later step's weight in the fusion of steps (step 1 weighs 1).
        bridge_weight: the factor of a bridge phrase's seed weight.
        lead: each step's top new hits that lead the fused ranking, in step order,
            before the rest (fused by reciprocal rank).
        drafter: the LLM that drafts clues (``"llm"``).

    The defaults were picked on the first half of the MuSiQue sample (``bench/steps.py
    --tune``; the engine's RelevanceModel is SciFact's, and a confidence above 0 cut
    recall there, so a step is dropped only when its top ``window`` holds no new hit).
    """

    steps: int = 1
    clues: tuple[str, ...] = ("phrases", "terms")
    confident: float = 0.0
    window: int = 10
    feedback: int = 3
    bridges: int = 3
    terms: int = 10
    beta: float = 0.5
    step_weight: float = 1.0
    bridge_weight: float = 1.0
    lead: int = 3
    drafter: LLMClues | None = None


def check_steps(
    steps: object, clues: Sequence[str] | str | None, *, graph: bool
) -> tuple[int, tuple[str, ...]]:
    """Validate recall's ``steps`` and ``clues`` (``graph``: whether the memory has a graph).

    ``clues=None`` means ``"phrases"`` and ``"terms"`` when the memory has a graph, else
    ``"terms"``; clues given with ``steps=None`` mean two steps.

    Returns:
        ``(steps, clues)``.

    Raises:
        InvalidInputError: steps not in ``1..MAX_STEPS``, an unknown clue, or ``"phrases"``
            without a graph.
    """
    if steps is None:
        steps = 1 if clues is None else 2
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise InvalidInputError(f"steps must be an integer in 1..{MAX_STEPS}, got {steps!r}")
    if clues is None:
        return steps, ("phrases", "terms") if graph else ("terms",)
    names = clues.split(",") if isinstance(clues, str) else list(clues)
    kinds = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    unknown = [n for n in kinds if n not in CLUES]
    if unknown or not kinds:
        raise InvalidInputError(
            f"unknown clue(s) {', '.join(unknown) or '(none)'}; valid: {', '.join(CLUES)}"
        )
    if "phrases" in kinds and not graph:
        raise InvalidInputError(
            "clue 'phrases' needs the memory graph: open the Memory with graph={'enabled': True}"
        )
    return steps, kinds


def make_plan(
    steps: object,
    clues: Sequence[str] | str | None,
    *,
    graph: bool,
    config: EngineConfig,
) -> StepPlan:
    """The plan of a recall's ``steps`` and ``clues`` (see :func:`check_steps`; ``graph``:
    whether the memory has a graph); clue
    ``"llm"`` drafts with the chat endpoint of ``graph.llm_url`` / ``graph.llm_model``.

    Raises:
        InvalidInputError: see :func:`check_steps`.
        ConfigError: clue ``"llm"`` without ``graph.llm_url`` and ``graph.llm_model``.
        MissingDependencyError: clue ``"llm"`` without httpx installed.
    """
    n, kinds = check_steps(steps, clues, graph=graph)
    drafter = None
    if "llm" in kinds and n > 1:
        cfg = config.graph
        if not cfg.llm_url or not cfg.llm_model:
            raise ConfigError(
                "clue 'llm' needs a chat endpoint: set graph.llm_url and graph.llm_model"
            )
        drafter = LLMClues(
            cfg.llm_url,
            model=cfg.llm_model,
            api_key_env=cfg.llm_api_key_env,
            timeout=cfg.llm_timeout,
        )
    return StepPlan(steps=n, clues=kinds, drafter=drafter)


@dataclass(slots=True)
class _Query:
    """One query's state across steps."""

    text: str
    vector: Any = None
    seeds: dict[int, float] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)
    words: set[str] = field(default_factory=set)
    steps: list[Hits] = field(default_factory=list)
    bridges: list[tuple[str, ...]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    active: bool = True


@dataclass(slots=True)
class _Next:
    """The next step's query for one active query."""

    text: str
    vector: Any
    seeds: dict[int, float]
    clue: tuple[str, ...]


class _Stepper:
    """Runs the steps of a batch of queries over one read snapshot."""

    def __init__(  # noqa: PLR0913 - the parts of one recall
        self,
        reader: Reader,
        view: DenseView,
        channels: tuple[str, ...],
        condition: tuple[str | None, list[object]],
        depth: int,
        validity: ReadOptions,
        plan: StepPlan,
        model: RelevanceModel,
    ) -> None:
        self.reader, self.view, self.channels = reader, view, channels
        self.sql, self.params = condition
        self.depth, self.validity, self.plan, self.model = depth, validity, plan, model
        vector = "graph" in channels or "dense" in channels
        self.allow = reader._allow(view, self.sql, self.params) if vector else None
        self.index: GraphIndex | None = None
        self.seeding = "graph" in channels
        if reader.graph is not None and (self.seeding or {"phrases", "llm"} & set(plan.clues)):
            self.index = reader.graph.index(reader.store.data_version)
        self.lookups = StoreLookups(reader.store, self.sql, self.params)

    # -- one step ------------------------------------------------------------------------

    def search(self, texts: Sequence[str], vectors: Matrix | None, seeds: Sequence[Any]) -> Any:
        """Each channel's run for each query, and the graph's phrases per hit."""
        reader, depth = self.reader, self.depth
        per: dict[str, list[Run]] = {}
        via: list[Mapping[int, tuple[str, ...]]] = [{} for _ in texts]
        if "lexical" in self.channels:
            per["lexical"] = _runs(
                *reader.lexical.search(list(texts), depth, where=self.sql, params=self.params)
            )
        if self.index is not None and self.seeding:
            cfg = reader.config.graph
            wide = max(depth, min(len(self.view), cfg.dense_seeds))
            dense = reader._dense(self.view, texts, wide, self.allow, vectors)
            found = self.index.recall_many(
                seeds,
                dense,
                depth=depth,
                damping=cfg.damping,
                passage_weight=cfg.passage_weight,
                allow=self.allow,
            )
            per["graph"] = [list(r.run) for r in found]
            via = [r.via for r in found]
            per["dense"] = [run[:depth] for run in dense]
        elif "dense" in self.channels:
            per["dense"] = reader._dense(self.view, texts, depth, self.allow, vectors)
        out = []
        for qi, text in enumerate(texts):
            runs = {c: per[c][qi] for c in self.channels}
            out.append(
                build_hits(
                    text, runs, self.depth, via[qi], self.validity, self.lookups, self.reader.config
                )
            )
        return out

    def link(self, texts: Sequence[str]) -> list[dict[int, float]]:
        """The graph seeds of each text's phrases (as the graph channel links a query)."""
        if self.index is None or not self.seeding:
            return [{} for _ in texts]
        graph = self.reader.graph
        assert graph is not None
        cfg = graph.config
        phrases = [list(ex.phrases) for ex in graph.extractor.extract(list(texts))]
        index = self.index
        unknown = list(
            dict.fromkeys(p for ps in phrases for p in ps if index.phrase_index(p) is None)
        )
        vectors = (
            dict(zip(unknown, graph.encoder.embed_documents(unknown), strict=True))
            if unknown
            else {}
        )
        return [
            index.link(
                ps,
                vectors,
                top_k=cfg.link_top_k,
                threshold=cfg.link_threshold,
                common_weight=cfg.common_phrase_weight,
            )
            for ps in phrases
        ]

    # -- the steps -----------------------------------------------------------------------

    def run(self, queries: Sequence[str]) -> list[Hits]:
        """Every query's steps, fused."""
        vectorised = "graph" in self.channels or "dense" in self.channels
        vectors = self.reader.embedder.embed_queries(list(queries)) if vectorised else None
        seeds = self.link(queries)
        state = []
        for qi, text in enumerate(queries):
            q = _Query(text=text, seeds=seeds[qi], used=set(seeds[qi]), words=set(words(text)))
            q.vector = None if vectors is None else vectors[qi]
            state.append(q)
        for q, hits in zip(state, self.search(queries, vectors, seeds), strict=True):
            q.steps.append(hits)
            q.bridges.append(())
        for _ in range(1, self.plan.steps):
            if not self.step([q for q in state if q.active]):
                break
        return [self.merge(q) for q in state]

    def step(self, active: Sequence[_Query]) -> bool:
        """One more step for the active queries; False when none could take it."""
        planned: list[tuple[_Query, _Next]] = []
        for q in active:
            nxt = self.next_query(q)
            if nxt is None:
                q.active = False
            else:
                planned.append((q, nxt))
        if not planned:
            return False
        vectors = None
        if "graph" in self.channels or "dense" in self.channels:
            embedded = self.reader.embedder.embed_queries([n.text for _, n in planned])
            vectors = np.stack(
                [embedded[i] if n.vector is None else n.vector for i, (_, n) in enumerate(planned)]
            ).astype(np.float32)
        found = self.search([n.text for _, n in planned], vectors, [n.seeds for _, n in planned])
        for (q, n), hits in zip(planned, found, strict=True):
            if self.adds_confident(q, hits):
                q.steps.append(hits)
                q.bridges.append(n.clue)
            else:
                q.active = False
        return True

    def feedback(self, q: _Query) -> list[tuple[Hit, float]]:
        """The last step's top new hits with their calibrated relevance."""
        last = list(q.steps[-1])
        earlier = {h.id for st in q.steps[:-1] for h in st[: self.plan.window]}
        relevance = self.model.relevance(q.text, last) if last else np.zeros(0)
        fresh = [(h, float(r)) for h, r in zip(last, relevance, strict=True) if h.id not in earlier]
        return fresh[: self.plan.feedback]

    def next_query(self, q: _Query) -> _Next | None:
        """The next step's query text, seeds and vector; None when no clue can be formed."""
        feed = self.feedback(q)
        if not feed:
            return None
        plan = self.plan
        kinds = set(plan.clues)
        drafted: list[str] = []
        if "llm" in kinds:
            drafted = self.drafted(q, feed)
            if not drafted:  # the memory's own clues instead
                kinds |= {"phrases"} if self.index is not None else {"terms"}
        seeds = dict(q.seeds)
        clue = self.bridges(q, feed, seeds) if "phrases" in kinds else []
        if "terms" in kinds:
            clue += self.terms(q, feed)
        if drafted:
            for node, weight in self.link([" ".join(drafted)])[0].items():
                seeds[node] = max(seeds.get(node, 0.0), weight)
            clue += drafted
        vector = None
        if "centroid" in kinds and q.vector is not None:
            vector = rocchio(
                q.vector, self.vectors([h for h, _ in feed]), [w for _, w in feed], beta=plan.beta
            )
        if not clue and vector is None:
            return None
        return _Next(text=" ".join([q.text, *clue]), vector=vector, seeds=seeds, clue=tuple(clue))

    def bridges(
        self, q: _Query, feed: Sequence[tuple[Hit, float]], seeds: dict[int, float]
    ) -> list[str]:
        """Bridge phrases of the feedback hits, added to ``seeds``."""
        if self.index is None:
            return []
        found: list[Bridge] = bridge_phrases(
            self.index,
            [(h.id, w) for h, w in feed],
            exclude=q.used,
            n=self.plan.bridges,
            common_weight=self.reader.config.graph.common_phrase_weight,
        )
        for b in found:
            seeds[b.node] = seeds.get(b.node, 0.0) + self.plan.bridge_weight * b.weight
            q.used.add(b.node)
        return [b.phrase for b in found]

    def terms(self, q: _Query, feed: Sequence[tuple[Hit, float]]) -> list[str]:
        """RM3 terms of the feedback hits that earlier steps did not add."""
        found = rm3_terms(
            [h.text for h, _ in feed],
            [w for _, w in feed],
            pool=[h.text for h in q.steps[-1]],
            exclude=q.words,
            n=self.plan.terms,
        )
        q.words |= {t for t, _ in found}
        return [t for t, _ in found]

    def drafted(self, q: _Query, feed: Sequence[tuple[Hit, float]]) -> list[str]:
        """The LLM's clues; empty (with a warning) when it fails or drafts nothing new."""
        drafter = self.plan.drafter
        if drafter is None:
            return []
        try:
            return drafter.draft(q.text, [h.text for h, _ in feed])
        except ModelError as exc:
            warnings.warn(
                f"clue drafting failed ({exc}); using the memory's own clues",
                ClueWarning,
                stacklevel=2,
            )
            return []

    def vectors(self, hits: Sequence[Hit]) -> Matrix:
        """The stored vectors of ``hits`` (zeros where none is cached)."""
        store, embedder = self.reader.store, self.reader.embedder
        hashes = {r.id: r.hash for r in store.get_many([h.id for h in hits])}
        cached = store.cached_embeddings(embedder.model_id, list(hashes.values()))
        out = np.zeros((len(hits), embedder.dim), dtype=np.float32)
        for i, h in enumerate(hits):
            row = cached.get(hashes.get(h.id, ""))
            if row is not None and row.shape == (embedder.dim,):
                out[i] = row
        return out

    def adds_confident(self, q: _Query, hits: Hits) -> bool:
        """Whether the step's top ``window`` holds a hit earlier steps did not find there
        whose calibrated relevance reaches ``confident``."""
        window = self.plan.window
        earlier = {h.id for st in q.steps for h in st[:window]}
        top = list(hits)[:window]
        relevance = self.model.relevance(q.text, list(hits))[:window]
        return any(
            h.id not in earlier and r >= self.plan.confident
            for h, r in zip(top, relevance, strict=True)
        )

    def merge(self, q: _Query) -> Hits:
        """The steps' rankings fused by reciprocal rank, each hit explained by its best step."""
        if len(q.steps) == 1:
            return Hits(q.text, tuple(q.steps[0]))
        runs = {str(i): [(h.id, h.score) for h in st] for i, st in enumerate(q.steps, 1)}
        weights = {name: 1.0 if name == "1" else self.plan.step_weight for name in runs}
        fused = fuse(runs, method="rrf", k=self.reader.config.recall.rrf_k, weights=weights)
        best: dict[int, tuple[int, int, Hit]] = {}  # the first step with it in its window
        for number, st in enumerate(q.steps, 1):
            for rank, h in enumerate(st, 1):
                seen = best.get(h.id)
                if seen is None or (seen[1] > self.plan.window and rank < seen[1]):
                    best[h.id] = (number, rank, h)
        lead: list[int] = []
        for st in q.steps:
            fresh = [h.id for h in st if h.id not in lead][: self.plan.lead]
            lead += fresh
        if lead:
            top = fused[0][1] if fused else 1.0
            rest = [(d, s) for d, s in fused if d not in set(lead)]
            fused = [(d, top + len(lead) - i) for i, d in enumerate(lead)] + rest
        out = []
        for memory_id, score in fused[: self.depth]:
            number, _, h = best[memory_id]
            text = h.text.lower()
            led = tuple(c for c in q.bridges[number - 1] if c.lower() in text)
            step = ChannelScore(rank=number, score=h.score, phrases=led)
            out.append(replace(h, score=score, why={**h.why, "step": step}))
        return Hits(q.text, tuple(out))


def recall_in_steps(  # noqa: PLR0913 - the parts of one recall
    reader: Reader,
    queries: Sequence[str],
    *,
    k: int,
    namespace: str | None,
    where: Any,
    channels: tuple[str, ...],
    options: ReadOptions,
    plan: StepPlan,
    model: RelevanceModel,
) -> list[Hits]:
    """Recall each query in up to ``plan.steps`` steps (see the module docstring); every
    channel of every step answers from one read snapshot.

    Returns:
        One fused, deduplicated candidate list per query (at least ``k`` deep, as
        :meth:`Reader.recall_many` returns).

    Raises:
        InvalidInputError: an empty query or the graph channel asked for with the graph off.
        NotFoundError: an unknown namespace.
        InvalidFilterError: a malformed filter.
    """
    for text in queries:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"queries must be non-empty text, got {text!r}")
    if "graph" in channels and reader.graph is None:
        raise InvalidInputError("the graph channel is off: open the Memory with the graph on")
    depth = max(k, reader.config.recall.candidates)

    def steps(view: DenseView) -> list[Hits]:
        condition = reader.where(namespace, where, options.as_of)
        stepper = _Stepper(reader, view, channels, condition, depth, options, plan, model)
        return stepper.run(queries)

    return reader.dense.at_snapshot(steps)
