"""Conversations as first-class memories: add_turns keeps order, speakers, sessions, times."""

from __future__ import annotations

import pytest

from engramdb import Memory, Turn
from engramdb.errors import InvalidInputError

HASH = {"model": "hash", "dim": 32}


def test_turns_keep_order_speaker_role_session_and_time() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        first = mem.add_turns(
            [
                {"speaker": "Ann", "role": "user", "text": "I adopted a cat named Miso."},
                Turn(speaker="Bot", role="assistant", text="What a lovely name!"),
            ],
            conversation="ann",
            session=1,
            session_time="2024-05-02T10:00:00Z",
            namespace="chats",
        )
        later = mem.add_turns(
            [{"speaker": "Ann", "text": "Miso likes the balcony.", "time": 1714900000}],
            conversation="ann",
            session="2",
            namespace="chats",
        )
        records = mem.get_many([*first.ids, *later.ids])
        assert [r.position.ordinal for r in records] == [0, 1, 2]
        assert {r.position.document for r in records} == {"ann"}
        assert records[0].meta == {
            "conversation": "ann",
            "speaker": "Ann",
            "role": "user",
            "session": "1",
            "session_time": 1714644000.0,
        }
        assert records[0].event_time == 1714644000.0 and records[2].event_time == 1714900000
        assert records[2].meta["session"] == "2"
        other = mem.add_turns(["Hello."], conversation="bo", namespace="chats")
        assert mem.get(other.ids[0]).position.ordinal == 0


@pytest.mark.parametrize(
    ("turns", "message"),
    [
        ([{"speaker": "Ann"}], "text must be a non-empty string"),
        ([{"text": "hi", "speeker": "Ann"}], "unknown field"),
        ([{"text": "hi", "time": "tomorrow-ish"}], "time must be ISO-8601"),
        ([{"text": "hi", "speaker": 3.5}], "speaker must be a string"),
        ([42], "give a Turn"),
    ],
)
def test_bad_turns_are_refused_and_nothing_is_written(turns: list[object], message: str) -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        with pytest.raises(InvalidInputError, match=message):
            mem.add_turns([{"text": "fine"}, *turns], conversation="c")  # type: ignore[list-item]
        assert mem.stats().memories == 0


def test_a_conversation_needs_an_id_and_turns() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        with pytest.raises(InvalidInputError, match="conversation"):
            mem.add_turns(["hi"], conversation=" ")
        with pytest.raises(InvalidInputError, match="no turns"):
            mem.add_turns([], conversation="c")


def test_context_packs_a_turn_with_its_round_in_its_session() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        mem.add_turns(
            [
                {"speaker": "Bo", "text": "Where did you adopt the cat?", "session": 1},
                {"speaker": "Ann", "text": "At the shelter on Elm Street.", "session": 1},
                {"speaker": "Bo", "text": "Lovely.", "session": 1},
                {"speaker": "Ann", "text": "Unrelated remark in session two.", "session": 2},
            ],
            conversation="c",
        )
        hit = [h for h in mem.recall("shelter Elm Street", k=1, channels="lexical")]
        packed = mem.context(hit, budget_tokens=200)
        (block,) = packed.blocks
        assert block.text.splitlines() == [
            "Where did you adopt the cat?",
            "At the shelter on Elm Street.",
            "Lovely.",
        ]
        assert block.ids[0] == hit[0].id and packed.dropped == ()
        alone = mem.context(hit, budget_tokens=200, neighbours=0)
        assert alone.blocks[0].text == "At the shelter on Elm Street."
        tight = mem.context(hit, budget_tokens=alone.tokens + 2)
        assert tight.blocks[0].text == "At the shelter on Elm Street." and tight.dropped == ()
        with pytest.raises(InvalidInputError, match="neighbours"):
            mem.context(hit, neighbours=9)


def test_same_conversation_id_in_two_namespaces_are_two_conversations() -> None:
    with Memory.open(":memory:", embed=HASH) as mem:
        for namespace, words in (("a", "apples"), ("b", "bananas")):
            mem.add_turns(
                [
                    {"speaker": "Ann", "text": f"Do you like {words}?"},
                    {"speaker": "Bo", "text": "Yes, very much."},
                ],
                conversation="chat",
                namespace=namespace,
            )
        hits = mem.recall("Do you like apples", k=4, channels="lexical")
        # the reply of namespace a follows its question, never namespace b's turns
        assert hits[0].namespace == "a" and hits[0].text == "Do you like apples?"
        ranked = [(h.namespace, h.text) for h in hits]
        assert ("a", "Yes, very much.") in ranked[:2]
