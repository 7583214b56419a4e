"""Facts that change: the value-change rules on an oracle set of pairs, and fact keys that
find every pair the rules link."""

from __future__ import annotations

import pytest

from engramdb.recognize.facts import fact_keys, value_change
from engramdb.recognize.near import values_differ

# (older text, newer text, expected kind: "supersede", "conflict" or None)
PAIRS = [
    ("Alice lives in Porto.", "Alice lives in Lisbon.", "supersede"),
    ("Alice was born in London.", "Alice was born in Paris.", "supersede"),
    ("born in London", "born in Paris", "supersede"),
    ("The deploy freeze is on Friday.", "The deploy freeze is on Thursday.", "supersede"),
    ("The team has 12 people.", "The team has 15 people.", "supersede"),
    ("Alice: I live in Porto.", "Alice: I live in Lisbon.", "supersede"),
    ("Bob: my manager is Carla Diaz", "Bob: my manager is Dana Wu", "supersede"),
    ("The rent is $1200 a month.", "The rent is $1350 a month.", "supersede"),
    ("Release 3.11 ships on 2024-05-02", "Release 3.11 ships on 2024-05-09", "supersede"),
    ("Alice: my favourite food is sushi", "Alice: my favourite food is ramen", "supersede"),
    ("the light is red", "the light is green", "supersede"),
    ("I'm reading a novel now", "I'm reading a comic now", "supersede"),
    ("I visited the museum", "I visited the zoo", "conflict"),
    ("Tara: We ordered 5 pizzas for the party.", "Tara: We ordered 10 pizzas.", None),
    (
        "Tara: We ordered 5 pizzas for the party.",
        "Tara: We ordered 8 pizzas for the party.",
        "conflict",
    ),
    ("Liam: Morgan and I are together.", "Liam: Riley and I are together.", None),
    ("Liam: I am with Morgan now.", "Liam: I am with Riley now.", "supersede"),
    ("Morgan and I are together.", "Riley and I are together.", None),
    ("Alice: I met Alex at the gym.", "Alice: I met Morgan at the gym.", "conflict"),
    ("We walked to the lake", "We walked to the river", "conflict"),
    ("Carol: I went to the park yesterday", "Carol: I went to the beach yesterday", "conflict"),
    ("The server in rack two is healthy", "The server in rack two is not healthy", None),
    ("ticket number 11 is closed", "ticket number 111 is closed", None),
    ("Room 4 has a projector", "Room 5 has a projector", None),
    ("memory 4 with words w4 and v4", "memory 39 with words w4 and v4", None),
    ("Alice lives in Porto.", "Bob lives in Porto.", None),
    ("Alice: I live in Porto.", "Bob: I live in Lisbon.", None),
    ("Alice lives in Porto.", "Alice lives in Porto.", None),
    ("Alice lives in Porto.", "alice lives in porto", None),
    ("The meeting is on Tuesday.", "The meeting is on Tuesday at the office.", None),
    ("Alice lives in Porto with her sister.", "Alice lives in Lisbon with her brother.", None),
    ("I love hiking in the mountains.", "I love swimming in the sea.", None),
    ("The deploy freeze moves to Friday", "The deploy freeze moves to next Thursday", "conflict"),
]


@pytest.mark.parametrize(("old", "new", "kind"), PAIRS)
def test_value_change_oracle(old: str, new: str, kind: str | None) -> None:
    change = value_change(old, new)
    assert (change.kind if change else None) == kind
    if kind is not None:
        assert set(fact_keys(old)) & set(fact_keys(new)), "the keys must find the pair"
        assert values_differ(old, new), "a value change is never a near duplicate"


def test_the_change_names_both_values() -> None:
    change = value_change("Alice lives in Porto.", "Alice lives in Lisbon.")
    assert change is not None and (change.old, change.new) == ("porto", "lisbon")


def test_texts_without_a_relation_have_no_key() -> None:
    assert fact_keys("Porto") == ()
    assert fact_keys("Alice Porto 12") == ()
    assert fact_keys("") == ()


def test_keys_are_deterministic_bytes() -> None:
    keys = fact_keys("The deploy freeze is on Friday.")
    assert keys == fact_keys("The deploy freeze is on Friday.")
    assert all(isinstance(k, bytes) and len(k) == 12 for k in keys)
