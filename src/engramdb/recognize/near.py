"""The near-duplicate decision: best Jaccard candidate whose values agree with the new text.

Shingle Jaccard (:func:`engramdb.recognize.minhash.jaccard`) cannot tell a typo from a new
fact: ``"ticket number 11 is closed"`` and ``"ticket number 111 is closed"`` share almost
all their shingles. :func:`values_differ` is the guard: simple token rules that say when two
texts that look alike state different values. :func:`best_near` and :func:`scan_near` are
the one decision used by the write path and by ``Memory.recognize``.

The rules of :func:`values_differ`. Texts are read as tokens: numbers, words (case-folded,
apostrophes dropped) and currency or percent signs; whitespace and other punctuation are not
tokens, so they never count. A text of at most :data:`SHORT_TEXT` tokens is *short*.

1. **Numbers.** The two texts hold different numbers (as multisets; in a short text, also in
   a different order: ``from 12 to 14`` / ``from 14 to 12``). A number is a run of digit
   groups joined by ``. , : / -`` (``3.11``, ``2024-01-05``, ``10:30``, ``-18``); separators
   are compared as one kind (``10:30`` = ``10.30``), thousands commas are dropped
   (``1,250`` = ``1250``) and an attached ordinal suffix (``5th``) is ignored.
2. **Quoted values.** Both texts quote the same number of short strings (at most
   :data:`SHORT_QUOTE` tokens) and a pair differs in a content word, beyond a typo.
3. **Changed tokens.** The token streams are aligned with :class:`difflib.SequenceMatcher`.
   Changes that are noise are set aside first: a word replaced by a typo-close word
   (:func:`_typo_close`: one edit, two in long words; stricter for names), a plural ``s``,
   words split or joined (``e-mail`` / ``email``) and words that only moved. What is left
   differs in value when it holds

   * a *name*: a capitalised word that is not a function word (``Paris``, ``NASA``);
   * a *unit*: the word right after a number (``5 km`` / ``5 mi``, ``5 pm`` / ``5 am``), or
     a currency or percent sign (``$40`` / ``\u20ac40``);
   * a *number word* (``two`` ... ``billion``) or a *negation* (``not``, ``never``, ``isn't``);
   * in a short text, any content word (not a function word): the texts are equal but for a
     value span (``the light is red`` / ``the light is green``).
4. **Moved names.** In a short text, a name that only moved
   (``Alice paid Bob`` / ``Bob paid Alice``).

In a long text a changed ordinary word, a typo, or sentences in another order do not count,
so a repeated paragraph with a small edit still merges.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from engramdb.recognize.minhash import jaccard

__all__ = [
    "SHORT_QUOTE",
    "SHORT_TEXT",
    "NearCandidate",
    "NearMatch",
    "NearScan",
    "best_near",
    "scan_near",
    "values_differ",
]

SHORT_TEXT = 15
"""A text of at most this many tokens (words, numbers, currency and percent signs) is *short*:
any changed content word in it is a changed value."""
SHORT_QUOTE = 5
"""Quoted strings of at most this many tokens are values (names, titles, passwords)."""


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)

NearCandidate: TypeAlias = tuple[K, str, frozenset[str]]
"""``(key, text, grams)``: a hashable, ordered key (memory id, batch index, or a tuple of
them), the text as stored (case kept: names are found by their capital), and its shingles."""


@dataclass(frozen=True, slots=True)
class NearMatch(Generic[K]):
    """A candidate and its exact shingle Jaccard similarity with the new text."""

    key: K
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class NearScan(Generic[K]):
    """The decision and the scores a caller reports with it.

    Attributes:
        match: the merge target: ``best`` when its score reaches the threshold, else ``None``.
        best: the highest-scoring candidate whose values agree with the new text (any score).
        top: the highest-scoring candidate, the guard ignored (what Jaccard alone would pick).
    """

    match: NearMatch[K] | None
    best: NearMatch[K] | None
    top: NearMatch[K] | None


def scan_near(
    text: str,
    grams: frozenset[str],
    candidates: Iterable[NearCandidate[K]],
    *,
    threshold: float,
) -> NearScan[K]:
    """Score every candidate and pick the best one whose values agree with ``text``.

    Candidates are ranked by Jaccard similarity of ``grams`` with theirs, higher first, then
    by smaller key; the first one for which :func:`values_differ` is false is ``best``. The
    result does not depend on the order of ``candidates`` (keys must be distinct).

    Args:
        text: the new text, case kept.
        grams: its shingles, made as the candidates' were.
        candidates: ``(key, text, grams)`` triples.
        threshold: the Jaccard similarity a merge needs (``recognize.near_threshold``).
    """
    ranked = _rank(grams, candidates)
    if not ranked:
        return NearScan(match=None, best=None, top=None)
    top = NearMatch(ranked[0][1], ranked[0][0])
    mine = _profile(text)
    for score, key, other in ranked:
        if not _differ(mine, _profile(other)):
            best = NearMatch(key, score)
            match = best if score >= threshold else None
            return NearScan(match=match, best=best, top=top)
    return NearScan(match=None, best=None, top=top)


def best_near(
    text: str,
    grams: frozenset[str],
    candidates: Iterable[NearCandidate[K]],
    *,
    threshold: float,
) -> NearMatch[K] | None:
    """The candidate ``text`` should merge into, or ``None``: the near-duplicate decision.

    The highest Jaccard similarity at or above ``threshold`` (ties: the smaller key) among
    candidates whose values agree with ``text`` (:func:`values_differ` is false). Always
    equal to ``scan_near(...).match``; this one stops at the threshold.

    Example:
        >>> from engramdb.recognize.minhash import shingles
        >>> new = "ticket number 11 is closed"
        >>> old = [(7, "ticket number 111 is closed", shingles("ticket number 111 is closed", 5))]
        >>> best_near(new, shingles(new, 5), old, threshold=0.8) is None
        True
    """
    for score, key, other in _rank(grams, candidates):
        if score < threshold:
            break
        if not _differ(_profile(text), _profile(other)):  # profiles are cached
            return NearMatch(key, score)
    return None


def _rank(
    grams: frozenset[str], candidates: Iterable[NearCandidate[K]]
) -> list[tuple[float, K, str]]:
    """``(score, key, text)`` by higher Jaccard similarity, then smaller key."""
    return sorted(
        ((jaccard(grams, other_grams), key, other) for key, other, other_grams in candidates),
        key=lambda row: (-row[0], row[1]),
    )


def values_differ(a: str, b: str) -> bool:
    """Whether two texts that look alike state different values (the module's rules).

    Example:
        >>> values_differ("born in London", "born in Paris")
        True
        >>> values_differ("The meeting is on Tuesday.", "the meeting is on tuesday")
        False
    """
    return _differ(_profile(a), _profile(b))


# -- tokens --------------------------------------------------------------------------------------

_NUM = r"(?:(?<![^\s(\[])[-\u2212])?\d+(?:[.,:/\-]\d+)*"
_WORD = r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*"
_SIGN = r"[$\u20ac\u00a3\u00a5\u20b9%]"
_TOKEN = re.compile(rf"(?P<num>{_NUM})|(?P<word>{_WORD})|(?P<sign>{_SIGN})")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_SEPARATOR = re.compile(r"[.,:/\-]")
_ORDINAL = frozenset({"st", "nd", "rd", "th"})
_QUOTED = re.compile(
    r"\u201c([^\u201c\u201d]{1,120})\u201d|\"([^\"]{1,120})\""
    r"|\u2018([^\u2018\u2019]{1,120})\u2019(?!\w)|(?<!\w)'([^']{1,120})'(?!\w)"
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words: never names (when capitalised) and never content words.
_STOP = _words(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either else ever every few for from further had has have having he her here hers herself
    him himself his how however i if in into is it its itself just let me more most my
    myself neither nor now of off on once only or other our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there these they
    this those through thus to too under until up upon us very was we were what when where
    which while who whom whose why will with would yet you your yours yourself yourselves mr
    mrs ms dr oh yes im ive id ill youre youve youll hes shes theyre theyve weve were lets
    thats theres whats
    """
)
_NUMBER_WORDS = _words(
    """
    zero two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy
    eighty ninety hundred thousand million billion trillion dozen third fourth fifth sixth
    seventh eighth ninth tenth twice half
    """
)
_NEGATIONS = _words(
    """
    not no never none nobody nothing nowhere cannot without dont doesnt didnt isnt arent
    wasnt werent cant couldnt wont wouldnt shouldnt hasnt havent hadnt mustnt neednt aint
    """
)


@dataclass(frozen=True, slots=True)
class _Token:
    key: str  # what the diff compares
    kind: str  # "num", "word" or "sign"
    name: bool  # a capitalised word that is not a function word
    unit: bool  # a word right after a number


@dataclass(frozen=True, slots=True)
class _Profile:
    tokens: tuple[_Token, ...]
    numbers: tuple[str, ...]
    number_bag: tuple[str, ...]  # sorted: compared as multisets
    quotes: tuple[tuple[_Token, ...], ...]


def _number(raw: str) -> str:
    return _SEPARATOR.sub(".", _THOUSANDS.sub("", raw.replace("\u2212", "-")))


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    number_end = -1  # where the last number ended
    for m in _TOKEN.finditer(text):
        raw = m.group()
        if m.lastgroup == "num":
            out.append(_Token(_number(raw), "num", False, False))
            number_end = m.end()
        elif m.lastgroup == "word":
            key = raw.casefold().replace("'", "").replace("\u2019", "")
            if m.start() == number_end and key in _ORDINAL:
                continue  # 5th: the suffix is part of the number
            stop = key in _STOP
            unit = not stop and out[-1:] != [] and out[-1].kind == "num"
            unit = unit and not text[number_end : m.start()].strip()
            out.append(_Token(key, "word", raw[0].isupper() and not stop, unit))
        else:
            out.append(_Token(raw, "sign", False, False))
    return out


def _quotes(text: str) -> tuple[tuple[_Token, ...], ...]:
    found = []
    for m in _QUOTED.finditer(" ".join(text.split())):
        inner = tuple(_tokens(next(g for g in m.groups() if g is not None)))
        if 0 < len(inner) <= SHORT_QUOTE:
            found.append(inner)
    return tuple(found)


@lru_cache(maxsize=256)
def _profile(text: str) -> _Profile:
    tokens = tuple(_tokens(text))
    numbers = tuple(t.key for t in tokens if t.kind == "num")
    return _Profile(
        tokens=tokens,
        numbers=numbers,
        number_bag=tuple(sorted(numbers)),
        quotes=_quotes(text),
    )


# -- rules ---------------------------------------------------------------------------------------


def _differ(a: _Profile, b: _Profile) -> bool:
    short = max(len(a.tokens), len(b.tokens)) <= SHORT_TEXT
    if a.number_bag != b.number_bag or (short and a.numbers != b.numbers):
        return True  # in a short text, order too: from 12 to 14 / from 14 to 12
    if len(a.quotes) == len(b.quotes) and any(
        _is_value(t, short=True)
        for qa, qb in zip(a.quotes, b.quotes, strict=True)
        for t in _changes(qa, qb).changed
    ):
        return True
    diff = _changes(a.tokens, b.tokens)
    if short and any(t.name for t in diff.moved):
        return True  # Alice paid Bob / Bob paid Alice
    return any(_is_value(t, short=short) for t in diff.changed)


def _is_value(token: _Token, *, short: bool) -> bool:
    if token.kind != "word":
        return True  # numbers are compared whole above; a currency or percent sign
    if token.name or token.unit or token.key in _NUMBER_WORDS or token.key in _NEGATIONS:
        return True
    return short and token.key not in _STOP


@dataclass(frozen=True, slots=True)
class _Diff:
    changed: list[_Token]  # tokens only one side has
    moved: list[_Token]  # tokens both sides have, in another place


def _changes(a: Sequence[_Token], b: Sequence[_Token]) -> _Diff:
    """What changed, once typos and split or joined words are set aside, and what moved."""
    keys_a, keys_b = [t.key for t in a], [t.key for t in b]
    matcher = difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False)
    removed: list[_Token] = []
    added: list[_Token] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        old, new = list(a[i1:i2]), list(b[j1:j2])
        if old and new and "".join(keys_a[i1:i2]) == "".join(keys_b[j1:j2]):
            continue  # e-mail / email, ice cream / icecream
        for token in list(old):
            twin = next((t for t in new if _typo_close(token, t)), None)
            if twin is not None:
                old.remove(token)
                new.remove(twin)
        removed += old
        added += new
    moved = Counter(t.key for t in removed) & Counter(t.key for t in added)
    kept_a, moved_a = _split(removed, moved)
    kept_b, moved_b = _split(added, moved)
    return _Diff(changed=kept_a + kept_b, moved=moved_a + moved_b)


def _split(tokens: list[_Token], moved: Counter[str]) -> tuple[list[_Token], list[_Token]]:
    """``tokens`` less the moved ones, and the moved ones."""
    left = Counter(moved)
    kept, gone = [], []
    for t in tokens:
        if left[t.key] > 0:
            left[t.key] -= 1
            gone.append(t)
        else:
            kept.append(t)
    return kept, gone


def _typo_close(a: _Token, b: _Token) -> bool:
    """A misspelling, not another word.

    Words: one edit when the longer has 5+ letters, two when both have 9+, or a plural ``s``.
    Names (capitalised, neither a function word) need the same first letter and an adjacent
    transposition (``Celia`` / ``Celai``), one edit when the longer has 6+ letters
    (``Edmond`` / ``Edmnd``), or two when both have 9+: ``Anna`` / ``Anne`` and ``Jon`` /
    ``John`` stay apart. Numbers and signs never are typos.
    """
    if a.kind != "word" or b.kind != "word":
        return False
    x, y = a.key, b.key
    if x + "s" == y or y + "s" == x or x + "es" == y or y + "es" == x:
        return min(len(x), len(y)) >= 3
    shortest, longest = min(len(x), len(y)), max(len(x), len(y))
    if shortest >= 9:
        return _edits(x, y, 2) <= 2
    if (a.name or b.name) and x not in _STOP and y not in _STOP:
        if x[0] != y[0] or _edits(x, y, 1) > 1:
            return False
        return longest >= 6 or _transposed(x, y)
    return longest >= 5 and _edits(x, y, 1) <= 1


def _transposed(x: str, y: str) -> bool:
    """``y`` is ``x`` with two adjacent letters swapped."""
    diff = [i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q]
    return (
        len(x) == len(y)
        and len(diff) == 2
        and diff[1] == diff[0] + 1
        and x[diff[0]] == y[diff[1]]
        and x[diff[1]] == y[diff[0]]
    )


def _edits(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (adjacent transpositions count one), capped at limit+1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        prev2, prev = prev, row
    return min(prev[len(b)], limit + 1)
