"""Which of the known speakers a question names.

A speaker is named by its full name or, for a name of several words, its first name, in any
case and with a possessive ("Caroline's", "James'"); by a common nickname of its first name
("Bob" for Robert, "Nate" for Nathan); or by a capitalised short form of its first name in
the middle of a sentence ("Mel" for Melanie, "Jo" for Joanna) when that form fits no other
speaker. Names are matched as whole words: "Mel" does not match inside "Melbourne". A name
that is also an everyday word ("Will", "May", "Mark", "Grace") counts only where it is
capitalised and not the first word of a sentence, unless it is possessive ("Will's").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from engramdb.errors import InvalidInputError

__all__ = ["find_speakers"]

# Nicknames that are not the start of the name they stand for.
_NICKNAMES: dict[str, tuple[str, ...]] = {
    "bob": ("robert",), "bobby": ("robert",), "bill": ("william",), "billy": ("william",),
    "dick": ("richard",), "rick": ("richard",), "ricky": ("richard",),
    "jim": ("james",), "jimmy": ("james",), "jack": ("john",), "johnny": ("john",),
    "ted": ("edward", "theodore"), "ned": ("edward",), "hank": ("henry",),
    "harry": ("henry",), "chuck": ("charles",), "peggy": ("margaret",),
    "maggie": ("margaret",), "meg": ("margaret",), "liz": ("elizabeth",),
    "lizzie": ("elizabeth",), "beth": ("elizabeth",), "betty": ("elizabeth",),
    "kate": ("katherine", "catherine", "kathryn"), "katie": ("katherine", "catherine"),
    "sally": ("sarah",), "molly": ("mary",), "polly": ("mary",), "dave": ("david",),
    "mike": ("michael",), "mikey": ("michael",), "tony": ("anthony",), "andy": ("andrew",),
    "drew": ("andrew",), "steve": ("steven", "stephen"), "joe": ("joseph",),
    "joey": ("joseph",), "jenny": ("jennifer",), "becky": ("rebecca",),
    "nate": ("nathan", "nathaniel"), "tommy": ("thomas",), "debbie": ("deborah", "debra"),
}  # fmt: skip
# Names that are also everyday words: they need a capital, away from a sentence's start.
_COMMON_WORDS = frozenset(
    {
        "will", "may", "mark", "bill", "rose", "grace", "hope", "joy", "faith", "june", "april",
        "august", "summer", "art", "sky", "dawn", "ray", "pat", "sue", "rich", "frank", "jack",
        "jay", "drew", "chase", "chance", "chip", "gene", "lily", "daisy", "amber", "ruby", "iris",
        "holly", "ivy", "olive", "autumn", "angel", "sunny", "hunter", "page", "reed", "cliff",
        "dean", "miles", "wade", "heather", "robin", "sandy", "ginger", "pepper", "storm", "star",
        "king", "young", "long", "love", "rob", "max", "dot", "bob", "don", "guy", "nick", "penny",
        "buck", "carol", "hazel", "violet", "pearl", "crystal", "harmony", "melody", "destiny",
        "brook", "river", "rock", "stone", "bay", "forest", "wood", "bud", "ace", "ash", "cash",
        "duke", "earl", "gray", "grey", "prince", "rusty", "sterling", "honey", "candy", "misty",
        "christian", "victor",
    }
)  # fmt: skip
# Capitalised words that look like the start of a name but are dates.
_NOT_SHORT_FORMS = frozenset(
    {
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon",
        "tue", "tues", "wed", "thu", "thur", "fri", "sat", "sun",
    }
)  # fmt: skip
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_SENTENCE_START = re.compile(r"(?:^|[.?!:;]|[\"“(])[\s\"“(]*$")


@dataclass(frozen=True, slots=True)
class _Names:
    """Every written form of the speakers, and whom each stands for."""

    pattern: re.Pattern[str] | None
    forms: dict[str, tuple[str, ...]]
    first_names: dict[str, tuple[str, ...]]


def _key(name: str) -> str:
    return " ".join(name.casefold().split())


def _add(table: dict[str, tuple[str, ...]], form: str, speaker: str) -> None:
    if speaker not in table.get(form, ()):
        table[form] = (*table.get(form, ()), speaker)


@functools.lru_cache(maxsize=64)
def _names(speakers: tuple[str, ...]) -> _Names:
    forms: dict[str, tuple[str, ...]] = {}
    first_names: dict[str, tuple[str, ...]] = {}
    for speaker in speakers:
        key = _key(speaker)
        if not key:
            continue
        first = key.split()[0]
        _add(forms, key, speaker)
        _add(forms, first, speaker)
        _add(first_names, first, speaker)
    for nick, formal in _NICKNAMES.items():
        for name in formal:
            for speaker in first_names.get(name, ()):
                if nick not in first_names:
                    _add(forms, nick, speaker)
    if not forms:
        return _Names(None, forms, first_names)
    alternation = "|".join(
        r"\s+".join(map(re.escape, form.split())) for form in sorted(forms, key=len, reverse=True)
    )
    pattern = re.compile(rf"(?<![\w'-])(?P<name>{alternation})(?P<pos>'s?|s's)?(?![\w-])", re.I)
    return _Names(pattern, forms, first_names)


def _at_sentence_start(text: str, pos: int) -> bool:
    return _SENTENCE_START.search(text, max(0, pos - 8), pos) is not None


def _is_name_use(text: str, m: re.Match[str]) -> bool:
    """Whether an everyday word here is a name: capitalised, not starting a sentence
    (a possessive may)."""
    word = m["name"]
    if _key(word) not in _COMMON_WORDS:
        return True
    if not word[:1].isupper():
        return False
    return bool(m["pos"]) or not _at_sentence_start(text, m.start())


def _short_form(text: str, m: re.Match[str], names: _Names) -> tuple[str, ...]:
    """The speaker a capitalised short form ("Mel") stands for, if exactly one fits."""
    word = m[0].removesuffix("'s")
    if not word.istitle() or len(word) < 2 or _at_sentence_start(text, m.start()):
        return ()
    key = word.casefold()
    if key in _NOT_SHORT_FORMS or key in names.forms:
        return ()
    fits = [n for n in names.first_names if n.startswith(key) and len(n) > len(key)]
    return names.first_names[fits[0]] if len(fits) == 1 else ()


def find_speakers(query: str, speakers: Sequence[str]) -> tuple[str, ...]:
    """The known speakers a question names, in the order it first names them.

    Args:
        query: the question.
        speakers: the known speakers' names as stored ("Caroline", "Melanie Smith").

    Returns:
        Each named speaker once, spelled as in ``speakers``. A first name or nickname
        shared by several speakers names all of them.

    Raises:
        InvalidInputError: ``query`` or a speaker name is not a string.

    Example:
        >>> find_speakers("What did Mel and Caroline's mom bake?", ["Caroline", "Melanie"])
        ('Melanie', 'Caroline')
    """
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, not {type(query).__name__}")
    if isinstance(speakers, str) or any(not isinstance(s, str) for s in speakers):
        raise InvalidInputError("speakers must be a sequence of strings")
    names = _names(tuple(speakers))
    if names.pattern is None:
        return ()
    text = query.replace("\u2019", "'")
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for m in names.pattern.finditer(text):
        if _is_name_use(text, m):
            found.extend((m.start(), s) for s in names.forms[_key(m["name"])])
            taken.append(m.span())
    j = 0  # both run in text order: the first taken span not yet passed
    for m in _WORD.finditer(text):
        while j < len(taken) and taken[j][1] <= m.start():
            j += 1
        if j == len(taken) or m.start() < taken[j][0]:
            found.extend((m.start(), s) for s in _short_form(text, m, names))
    ordered = sorted(found, key=lambda hit: hit[0])
    return tuple(dict.fromkeys(s for _, s in ordered))
