"""Synthetic probe material, generated from a seed: needles, near-duplicate foils, order pairs.

Everything here is pure: the same ``random.Random`` state gives the same output.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "DEPTH_BINS",
    "DISTANCE_BINS",
    "Needle",
    "OrderPair",
    "entity_swap",
    "invented_word",
    "make_needles",
    "name_pool",
    "order_pairs",
    "word_swap",
]

DEPTH_BINS = 10
"""Needle depths are drawn uniformly within each of this many equal bins of the haystack."""

DISTANCE_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
"""Order-pair distance bins, as fractions of the excerpt length."""

# (fact, paraphrased cue). {a} is an invented name or place, {b} a second invented word,
# {n} a number, {c} a colour. The cue shares only {a} with the fact, worded differently.
_TEMPLATES: tuple[tuple[str, str], ...] = (
    (
        "The annual lantern festival in {a} was moved to the {n}th day of the harvest month.",
        "When does the town of {a} now hold its yearly celebration with lanterns?",
    ),
    (
        "{a} keeps the spare key to the observatory inside a hollow {c} book.",
        "Where does {a} hide the extra key of the star-gazing tower?",
    ),
    (
        "The ferry from {a} to the outer island now leaves at {n} o'clock every morning.",
        "What time does the morning boat depart {a} for the island?",
    ),
    (
        "The bridge over the {a} river was repainted {c} after the spring floods.",
        "What colour was the {a} crossing given once the floods had passed?",
    ),
    (
        "{a} trained a raven called {b} to fetch the newspaper each morning.",
        "Which bird did {a} teach to bring in the daily paper?",
    ),
    (
        "The password for the reading room of the {a} archive is {b}.",
        "What secret word opens the {a} archive's study hall?",
    ),
    (
        "{a} planted {n} pear trees along the northern wall of the orchard.",
        "How many fruit trees did {a} put by the orchard's north side?",
    ),
    (
        "The clock tower in {a} has been stuck at a quarter past {n} since the storm.",
        "At what hour did the tower clock of {a} stop during the tempest?",
    ),
    (
        "{a} won the county chess championship by sacrificing a {c} bishop.",
        "Which piece did {a} give up to take the regional chess title?",
    ),
    (
        "The keeper of the {a} lighthouse writes the tides in a ledger bound in {c} leather.",
        "What covers the tide journal kept at the {a} beacon?",
    ),
    (
        "{a} learned to play the cello from a travelling sailor named {b}.",
        "Who taught {a} to play a stringed instrument?",
    ),
    (
        "The bakery on {a} street sells exactly {n} loaves of rye bread before noon.",
        "How many loaves does the {a} street baker sell each morning?",
    ),
    (
        "{a} keeps her grandmother's recipes in a tin box painted with {c} swallows.",
        "What holds the old family recipes that {a} inherited?",
    ),
    (
        "The mill at {a} grinds only buckwheat on the {n}th of every month.",
        "Which grain is milled at {a} once a month?",
    ),
    (
        "Every winter {a} rows across the frozen lake to deliver letters to {b}.",
        "How does {a} bring the post over the icy water in the cold season?",
    ),
    (
        "The choir of {a} sings the evening hymn with {n} voices and no organ.",
        "How many singers perform the nightly song in {a} without accompaniment?",
    ),
    (
        "{a} repaired the broken weathervane on the chapel roof using {c} wire.",
        "What did {a} use to fix the church's wind indicator?",
    ),
    (
        "The stationmaster at {a} feeds a one-eyed fox named {b} at noon.",
        "Which animal does the railway official of {a} give lunch to?",
    ),
    (
        "{a} sold the family farm and bought a houseboat moored near the {c} bridge.",
        "Where does {a} live since giving up the farm?",
    ),
    (
        "The school in {a} rings a ship's bell instead of a hand bell at {n} o'clock.",
        "What sounds the start of lessons at the {a} schoolhouse?",
    ),
)
_COLOURS = ("cobalt", "crimson", "amber", "olive", "violet", "ivory", "scarlet", "teal")
_ONSETS = (
    "b",
    "br",
    "d",
    "f",
    "g",
    "gl",
    "k",
    "l",
    "m",
    "n",
    "p",
    "qu",
    "r",
    "s",
    "st",
    "t",
    "v",
    "z",
)
_VOWELS = ("a", "e", "i", "o", "u", "au", "ei", "ou")
_CODAS = ("", "", "n", "r", "s", "th", "x", "nd", "rk")


@dataclass(frozen=True, slots=True, kw_only=True)
class Needle:
    """A unique fact to hide in a haystack and the paraphrased cue that should find it.

    ``key`` is the invented word the fact and the cue share; ``template`` the pattern used.
    """

    fact: str
    cue: str
    key: str
    template: int


def invented_word(rng: random.Random, syllables: int = 3) -> str:
    """A pronounceable made-up word, capitalised (``"Brauveniks"``)."""
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return ("".join(parts) + rng.choice(_CODAS)).capitalize()


def make_needles(rng: random.Random, count: int) -> list[Needle]:
    """``count`` needles; templates are used without repetition until all have been used.

    Every needle gets fresh invented words, so no two needles share a distinctive term.
    """
    needles: list[Needle] = []
    used: set[str] = set()
    order: list[int] = []
    while len(needles) < count:
        if not order:
            order = rng.sample(range(len(_TEMPLATES)), len(_TEMPLATES))
        template = order.pop()
        words: list[str] = []
        while len(words) < 2:
            word = invented_word(rng)
            if word not in used:
                used.add(word)
                words.append(word)
        values = {
            "a": words[0],
            "b": words[1],
            "n": str(rng.randint(2, 19)),
            "c": rng.choice(_COLOURS),
        }
        fact, cue = _TEMPLATES[template]
        needles.append(
            Needle(
                fact=fact.format(**values),
                cue=cue.format(**values),
                key=words[0],
                template=template,
            )
        )
    return needles


# -- near-duplicate foils -----------------------------------------------------------------------

_WORD = re.compile(r"^([\"'(\[]*)([A-Za-z][A-Za-z'\-]*)([^A-Za-z]*)$")
_SENTENCE_END = (".", "!", "?", ":", ";", '"')


def word_swap(text: str, rng: random.Random) -> str | None:
    """Swap two adjacent, different words (never the first word); ``None`` if impossible."""
    tokens = text.split()
    slots = [
        i
        for i in range(1, len(tokens) - 1)
        if _WORD.match(tokens[i])
        and _WORD.match(tokens[i + 1])
        and tokens[i].lower() != tokens[i + 1].lower()
        and not tokens[i].endswith(_SENTENCE_END)
    ]
    if not slots:
        return None
    i = rng.choice(slots)
    first, second = _WORD.match(tokens[i]), _WORD.match(tokens[i + 1])
    assert first is not None and second is not None
    tokens[i] = first.group(1) + second.group(2) + first.group(3)
    tokens[i + 1] = second.group(1) + first.group(2) + second.group(3)
    return " ".join(tokens)


def _entities(tokens: Sequence[str]) -> list[int]:
    out = []
    for i in range(1, len(tokens)):
        match = _WORD.match(tokens[i])
        if (
            match
            and match.group(2)[0].isupper()
            and len(match.group(2)) >= 3
            and not match.group(2).isupper()
            and not tokens[i - 1].endswith(_SENTENCE_END)
        ):
            out.append(i)
    return out


def entity_swap(text: str, rng: random.Random, names: Sequence[str]) -> str | None:
    """Replace one capitalised, mid-sentence word (a name) with another name from ``names``.

    Returns:
        The foil, or ``None`` when the text has no such word or no other name is available.
    """
    tokens = text.split()
    slots = _entities(tokens)
    if not slots:
        return None
    i = rng.choice(slots)
    match = _WORD.match(tokens[i])
    assert match is not None
    choices = [n for n in names if n != match.group(2)]
    if not choices:
        return None
    tokens[i] = match.group(1) + rng.choice(choices) + match.group(3)
    return " ".join(tokens)


def name_pool(texts: Iterable[str], *, min_count: int = 3, size: int = 500) -> list[str]:
    """Capitalised mid-sentence words seen at least ``min_count`` times (likely names), sorted."""
    counts: Counter[str] = Counter()
    for text in texts:
        tokens = text.split()
        for i in _entities(tokens):
            match = _WORD.match(tokens[i])
            assert match is not None
            counts[match.group(2)] += 1
    common = [name for name, n in counts.most_common() if n >= min_count][:size]
    return sorted(common)


# -- order pairs (SORT) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPair:
    """Two non-overlapping segments of one excerpt, as word offsets.

    ``first`` starts before ``second``; ``shown_first_is_first`` says whether the earlier
    segment is presented as "A" (the presentation order is random).
    """

    first: int
    second: int
    length: int
    distance_bin: int
    shown_first_is_first: bool


def order_pairs(
    rng: random.Random, words: int, count: int, lengths: Sequence[int]
) -> list[OrderPair]:
    """``count`` segment pairs over an excerpt of ``words`` words, balanced over lengths and bins.

    A pair's distance ``d = second - first`` satisfies ``length <= d <= words - length`` and
    falls in its bin (:data:`DISTANCE_BINS`, fractions of ``words``); bins that cannot hold a
    pair at some length are skipped.
    """
    cells = [
        (length, b)
        for length in lengths
        for b, (lo, hi) in enumerate(DISTANCE_BINS)
        if max(length, int(lo * words)) <= min(int(hi * words), words - length)
    ]
    pairs: list[OrderPair] = []
    if not cells:
        return pairs
    for n in range(count):
        length, b = cells[n % len(cells)]
        lo, hi = DISTANCE_BINS[b]
        distance = rng.randint(max(length, int(lo * words)), min(int(hi * words), words - length))
        first = rng.randint(0, words - length - distance)
        pairs.append(
            OrderPair(
                first=first,
                second=first + distance,
                length=length,
                distance_bin=b,
                shown_first_is_first=rng.random() < 0.5,
            )
        )
    return pairs
