"""find_speakers: which known speakers a question names."""

from __future__ import annotations

import pytest

from engramdb.errors import InvalidInputError
from engramdb.query import find_speakers

PAIR = ["Caroline", "Melanie"]


@pytest.mark.parametrize(
    ("query", "speakers", "expected"),
    [
        ("What did Caroline research?", PAIR, ("Caroline",)),
        ("What is Caroline's identity?", PAIR, ("Caroline",)),
        ("what did caroline say?", PAIR, ("Caroline",)),
        ("Did Melanie call Caroline?", PAIR, ("Melanie", "Caroline")),
        ("What did the charity race raise awareness for?", PAIR, ()),
        # short forms and nicknames
        ("What did Mel and her kids make?", PAIR, ("Melanie",)),
        ("What did Mel’s kids paint?", PAIR, ("Melanie",)),
        ("What did Jo do on the hike?", ["Joanna", "Nate"], ("Joanna",)),
        ("What did Jo do on the hike?", ["Joanna", "Jolene"], ()),
        ("What did Bob say?", ["Robert Smith"], ("Robert Smith",)),
        ("What did Nate and Joanna watch?", ["Joanna", "Nathan"], ("Nathan", "Joanna")),
        ("What did Mel say?", ["Mel", "Melanie"], ("Mel",)),
        # whole words only
        ("Where is Melbourne?", PAIR, ()),
        ("Where is Melbourne?", ["Mel", "Caroline"], ()),
        ("Where is Johnsonville?", ["John"], ()),
        ("What did Caroline-Anne do?", ["Caroline"], ()),
        ("What did Dave do in Jan 2023?", ["Dave", "Janet"], ("Dave",)),
        # full names and their first names
        (
            "What did Melanie Smith say to John?",
            ["Melanie Smith", "John Doe"],
            ("Melanie Smith", "John Doe"),
        ),
        ("What did Melanie say?", ["Melanie Smith", "John Doe"], ("Melanie Smith",)),
        ("What did John say?", ["John Smith", "John Doe"], ("John Smith", "John Doe")),
        # possessives
        ("What did James' dog eat?", ["James", "John"], ("James",)),
        ("What was Johns's reaction?", ["John", "Tim"], ("John",)),
        # names that are everyday words
        ("Will Caroline go?", ["Will", "Caroline"], ("Caroline",)),
        ("What will Caroline do?", ["Will", "Caroline"], ("Caroline",)),
        ("What did Will say to Caroline?", ["Will", "Caroline"], ("Will", "Caroline")),
        ("Will's dog barked at whom?", ["Will"], ("Will",)),
        ("May I ask what Caroline did?", ["May", "Caroline"], ("Caroline",)),
        ("What did May bake?", ["May", "Caroline"], ("May",)),
        ("No speakers known here", [], ()),
    ],
)
def test_find_speakers(query: str, speakers: list[str], expected: tuple[str, ...]) -> None:
    assert find_speakers(query, speakers) == expected


def test_blank_names_are_ignored() -> None:
    assert find_speakers("What did Caroline say?", ["", "  ", "Caroline"]) == ("Caroline",)


@pytest.mark.parametrize(
    ("query", "speakers"),
    [(None, PAIR), ("Caroline?", "Caroline"), ("Caroline?", ["Caroline", 3])],
)
def test_bad_arguments(query: object, speakers: object) -> None:
    with pytest.raises(InvalidInputError):
        find_speakers(query, speakers)  # type: ignore[arg-type]
