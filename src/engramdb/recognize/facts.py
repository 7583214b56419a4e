"""Facts that change: when a new text states another value of an older text's fact.

``"Alice lives in Porto."`` and ``"Alice lives in Lisbon."`` are two facts, not one seen
twice (the near-duplicate guard, :func:`~engramdb.recognize.near.values_differ`, keeps them
apart) — and the second is the first one's newer value. This module finds such pairs
without an LLM, in two steps:

1. **Candidates by key** (:func:`fact_keys`). A text is read as tokens (the near-duplicate
   tokens: words case-folded, numbers, currency signs). Runs of *value* tokens — numbers,
   names (capitalised words that are not function words), number words and currency
   signs — are replaced by one slot. The masked sequence is the
   text's first key. A short text (at most :data:`~engramdb.recognize.near.SHORT_TEXT`
   tokens) also gets, for each content word, the key with that word as a slot too, so that
   ``"the light is red"`` and ``"the light is green"`` meet. A text with fewer than
   :data:`MIN_RELATION` tokens outside its slots has no key: there is no relation to share.

2. **The change** (:func:`value_change`). The two texts' tokens are aligned; they state
   another value of one fact when exactly one span differs, it replaces at most
   :data:`MAX_VALUE` tokens with at most as many, at least :data:`MIN_RELATION` tokens and
   half of the longer text are shared, the span is not the first token, and the changed
   tokens are values by the near-duplicate rules. A span among the first two tokens or
   followed by a verb reads as the sentence's subject, and the texts as two subjects
   (``"ticket 11 is closed"`` / ``"ticket 111 is closed"``): no change. Otherwise:

   * ``"supersede"``: no negation changed, the rest of the text tells of no past event (no
     ``went``, ``yesterday``, ``ago``, no word ending in *-ed*: ``"we ordered 5 pizzas"`` /
     ``"... 10 pizzas"`` are two orders), and either every changed token is a value (a
     name, a number, a number word, a unit or a currency sign) or the rest states how
     things are now — a present-tense word (``is``, ``'m``, ``has``, ``now``):
     ``"my favourite food is ramen"`` / ``"... is goulash"``;
   * ``"conflict"``: otherwise — a statement of an event (``"I went to the park"`` /
     ``"I went to the beach"`` may be two outings), an ordinary word changed with nothing
     saying it is a state, or a negation. A conflict is recorded and shown; it never makes
     a memory invalid.

   A speaker's name before a colon that both texts start with (``"Alice: I live in
   Porto."``) is not counted as the sentence's first tokens.

Both steps are pure functions; the write path stores the keys and links the memories.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from engramdb.recognize.near import (
    _NEGATIONS,
    _NUMBER_WORDS,
    _STOP,
    SHORT_TEXT,
    _Token,
    _tokens,
    _words,
    values_differ,
)

__all__ = ["MAX_VALUE", "MIN_RELATION", "FactChange", "fact_keys", "value_change"]

MIN_RELATION = 2
"""Tokens two texts must share outside the value for a fact (subject and relation)."""
MAX_VALUE = 4
"""The longest value span, in tokens, on either side."""

_SLOT = "\x00"
_VERBS = _words(
    """
    is was are were be been has have had will would can could shall should may might must
    does did do gets got stays remains
    """
)
"""Words after which the changed span reads as the subject (``X is closed``), not a value."""
_PRESENT = _words(
    """
    is are am im its thats hes shes youre theyre has have now currently these days
    """
)
"""Words of a statement about how things are now (a state, which a new value replaces)."""
_PAST = _words(
    """
    went did had got made took saw met visited yesterday ago last once used
    """
)
"""Words of a statement about something that happened (an event, which the next does not
replace)."""


@dataclass(frozen=True, slots=True)
class FactChange:
    """How a newer text changes an older one's fact.

    Attributes:
        kind: ``"supersede"`` (the new value replaces the old) or ``"conflict"`` (they
            disagree, and which one holds is not clear from the text).
        old: the old value as written (its tokens joined by spaces).
        new: the new value.
    """

    kind: Literal["supersede", "conflict"]
    old: str
    new: str


def _is_value(token: _Token) -> bool:
    if token.kind != "word":
        return True
    return token.name or token.unit or token.key in _NUMBER_WORDS


def _masked(tokens: list[_Token]) -> list[str]:
    out: list[str] = []
    for t in tokens:
        if t.kind != "word" or t.name or t.key in _NUMBER_WORDS:
            if not out or out[-1] != _SLOT:
                out.append(_SLOT)
        else:
            out.append(t.key)
    return out


def _digest(parts: list[str], subject: str) -> bytes:
    joined = "\x01".join([subject, *parts])
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=12).digest()


def fact_keys(text: str, subject: str | None = None) -> tuple[bytes, ...]:
    """Keys under which another value of the same fact is looked for (12-byte digests).

    Two texts of the same ``subject`` that :func:`value_change` links share at least one
    key (the converse need not hold: keys only find candidates). ``subject`` is who the
    text speaks for when the text does not say it — a conversation turn's speaker: ``"I
    live in Porto."`` said by Alice and ``"I live in Lisbon."`` said by Bob share no key.

    Example:
        >>> set(fact_keys("Alice lives in Porto.")) & set(fact_keys("Alice lives in Lisbon."))
        != set()
        True
    """
    tokens = _tokens(text)
    masked = _masked(tokens)
    relation = [p for p in masked if p != _SLOT]
    if len(relation) < MIN_RELATION:
        return ()
    who = " ".join((subject or "").casefold().split())
    keys = {_digest(masked, who)}
    if len(tokens) <= SHORT_TEXT:
        for i, part in enumerate(masked):
            if part == _SLOT or part in _STOP or part in _NEGATIONS:
                continue
            one = masked[:i] + [_SLOT] + masked[i + 1 :]
            merged = [
                p for j, p in enumerate(one) if not (p == _SLOT and j and one[j - 1] == _SLOT)
            ]
            if sum(1 for p in merged if p != _SLOT) >= MIN_RELATION:
                keys.add(_digest(merged, who))
    return tuple(sorted(keys))


_SPEAKER_PREFIX = re.compile(r"^\s*([^\W\d_][\w .'-]{0,40}?):\s")


def _prefix_tokens(old: str, new: str) -> int:
    """How many tokens a speaker prefix both texts share ("Alice: ...") holds, else 0."""
    a, b = _SPEAKER_PREFIX.match(old), _SPEAKER_PREFIX.match(new)
    if a is None or b is None or a.group(1).casefold() != b.group(1).casefold():
        return 0
    return len(_tokens(a.group(1)))


def value_change(old: str, new: str) -> FactChange | None:
    """Whether ``new`` states another value of ``old``'s fact, and how (module rules).

    Example:
        >>> value_change("The deploy freeze is on Friday.", "The deploy freeze is on Thursday.")
        FactChange(kind='supersede', old='friday', new='thursday')
        >>> value_change("Alice lives in Porto.", "Bob lives in Porto.") is None
        True
    """
    a, b = _tokens(old), _tokens(new)
    keys_a, keys_b = [t.key for t in a], [t.key for t in b]
    ops = [
        op
        for op in difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False).get_opcodes()
        if op[0] != "equal"
    ]
    if len(ops) != 1:
        return None
    tag, i1, i2, j1, j2 = ops[0]
    if tag != "replace" or i2 - i1 > MAX_VALUE or j2 - j1 > MAX_VALUE or i1 == 0:
        return None
    shared = len(a) - (i2 - i1)
    if shared < MIN_RELATION or shared * 2 < max(len(a), len(b)):
        return None
    span_a, span_b = a[i1:i2], b[j1:j2]
    if not values_differ(old, new):
        return None  # a typo, a plural: the same value
    after = keys_a[i2] if i2 < len(keys_a) else None
    start = _prefix_tokens(old, new)  # "Alice: ..." (a speaker's name) is not the sentence
    if after in _VERBS or i1 < start + 2:
        return None  # the span reads as the subject: "ticket 11 is closed", "room 4 has ..."
    negated = any(t.key in _NEGATIONS for t in (*span_a, *span_b))
    strong = all(_is_value(t) for t in (*span_a, *span_b))
    rest = {t.key for t in (*a[:i1], *a[i2:])}
    event = bool(rest & _PAST) or any(k.endswith("ed") for k in rest)
    state = bool(rest & _PRESENT) and not event
    sure = (strong and not event or state) and not negated
    kind: Literal["supersede", "conflict"] = "supersede" if sure else "conflict"
    return FactChange(
        kind=kind, old=" ".join(t.key for t in span_a), new=" ".join(t.key for t in span_b)
    )
