from __future__ import annotations

import math
import random
from collections.abc import Mapping

import pytest

from engramdb.errors import ConfigError
from engramdb.retrieve.conversation import (
    ConversationParams,
    Turn,
    as_turn,
    has_time_expression,
    rescore,
    score_turns,
)
from engramdb.retrieve.fusion import fuse

WORDS = ("painting", "camping", "yesterday", "lake", "last week", "adoption", "May", "book", "ok")


def _conversation(rng: random.Random) -> dict[int, Turn]:
    """Turns of 1-2 documents, 1-3 sessions each, with an occasional gap in the ordinals."""
    turns: dict[int, Turn] = {}
    next_id = 1
    for doc in ("conv-a", "conv-b")[: rng.randint(1, 2)]:
        ordinal = 0
        for session in range(rng.randint(1, 3)):
            for _ in range(rng.randint(1, 6)):
                if rng.random() < 0.1:
                    ordinal += 1  # a merged duplicate leaves a gap
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
                speaker = rng.choice(("Caroline", "Melanie"))
                turns[next_id] = Turn(
                    document=doc, ordinal=ordinal, speaker=speaker, session=session, text=text
                )
                next_id += 1
                ordinal += 1
    return turns


def _neighbours(
    turns: Mapping[int, Turn], ids: list[int]
) -> dict[int, tuple[int | None, int | None]]:
    """What the read path supplies: the turns at ordinal ± 1 of the same document."""
    at = {(t.document, t.ordinal): i for i, t in turns.items()}
    return {
        i: (
            at.get((turns[i].document, turns[i].ordinal - 1)),
            at.get((turns[i].document, turns[i].ordinal + 1)),
        )
        for i in ids
    }


class _Reference:
    """The formula of the module docstring, computed the long way round."""

    def __init__(self, turns: Mapping[int, Turn], p: ConversationParams):
        self.turns = turns
        self.p = p

    def adjacent(self, a: int, b: int) -> bool:  # b comes right after a
        ta, tb = self.turns[a], self.turns[b]
        return (ta.document, ta.session, ta.ordinal + 1) == (tb.document, tb.session, tb.ordinal)

    def before(self, t: int) -> int | None:
        return next((o for o in self.turns if self.adjacent(o, t)), None)

    def after(self, t: int) -> int | None:
        return next((o for o in self.turns if self.adjacent(t, o)), None)

    @staticmethod
    def normalised(run: list[tuple[int, float]], t: int) -> float:
        scores = dict(run)
        if t not in scores:
            return 0.0
        lo, hi = min(scores.values()), max(scores.values())
        return 1.0 if hi == lo else (scores[t] - lo) / (hi - lo)

    def fused(self, runs: Mapping[str, list[tuple[int, float]]], t: int) -> float:
        total = 0.0
        for channel, run in runs.items():
            if not run:
                continue
            u = self.normalised(run, t)
            if (b := self.before(t)) is not None:
                u += self.p.prev * self.normalised(run, b)
            if (a := self.after(t)) is not None:
                u += self.p.next * self.normalised(run, a)
            total += self.p.weights.get(channel, 1.0) * u
        return total

    def factor(self, query: str, t: int, median: float) -> float:
        query_words = {w.lower() for w in query.replace("?", " ").split()}
        turn = self.turns[t]
        words = {w.lower() for w in turn.text.split()}
        out = (max(1, len(turn.text.split())) / median) ** self.p.length
        if turn.speaker.lower() in query_words:
            out *= 1 + self.p.speaker
        if "when" in query_words and words & {"yesterday", "last", "may", "week"}:
            out *= 1 + self.p.temporal
        return out

    def scores(self, query: str, runs: Mapping[str, list[tuple[int, float]]]) -> dict[int, float]:
        members = {t for run in runs.values() for t, _ in run if t in self.turns}
        candidates = set(members)
        for t in members:
            candidates |= {o for o in (self.before(t), self.after(t)) if o is not None}
        if not candidates:
            return {}
        lengths = sorted(max(1, len(self.turns[t].text.split())) for t in candidates)
        mid = len(lengths) // 2
        median = lengths[mid] if len(lengths) % 2 else (lengths[mid - 1] + lengths[mid]) / 2
        fused = {t: self.fused(runs, t) * self.factor(query, t, median) for t in candidates}
        out = {}
        for t in candidates:
            key = (self.turns[t].document, self.turns[t].session)
            same = sorted(
                (
                    f
                    for o, f in fused.items()
                    if (self.turns[o].document, self.turns[o].session) == key
                ),
                reverse=True,
            )
            out[t] = (
                fused[t] + self.p.session * sum(same[: self.p.session_top]) / self.p.session_top
            )
        return out


def _random_case(seed: int):
    rng = random.Random(seed)
    turns = _conversation(rng)
    ids = list(turns)
    runs = {}
    for channel in ("lexical", "dense", "graph")[: rng.randint(1, 3)]:
        chosen = rng.sample(ids, rng.randint(0, len(ids)))
        scores = [round(rng.uniform(-1, 5), 1) for _ in chosen]  # ties happen
        runs[channel] = sorted(zip(chosen, scores, strict=True), key=lambda x: -x[1])
    params = ConversationParams(
        weights={"lexical": rng.uniform(0, 2), "dense": rng.uniform(0, 2)},
        prev=rng.uniform(0, 1),
        next=rng.uniform(0, 1),
        speaker=rng.choice((0.0, rng.uniform(0, 3))),
        temporal=rng.choice((0.0, rng.uniform(0, 3))),
        length=rng.choice((0.0, rng.uniform(0, 1))),
        session=rng.choice((0.0, rng.uniform(0, 1))),
        session_top=rng.randint(1, 3),
    )
    query = rng.choice(
        ("When did Caroline go camping?", "What did Melanie paint?", "Tell me about the lake")
    )
    members = list(dict.fromkeys(t for run in runs.values() for t, _ in run))
    return query, runs, turns, _neighbours(turns, members), params


@pytest.mark.parametrize("seed", range(200))
def test_score_turns_matches_the_formula_computed_by_brute_force(seed: int) -> None:
    query, runs, turns, neighbours, params = _random_case(seed)
    got = score_turns(query, runs, turns, neighbours, params)
    want = _Reference(turns, params).scores(query, runs)
    assert {t for t, _ in got} == set(want)
    for t, score in got:
        assert score == pytest.approx(want[t], rel=1e-9, abs=1e-12)
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    tied = [(s, t) for t, s in got]
    assert all(a[1] < b[1] for a, b in zip(tied, tied[1:], strict=False) if a[0] == b[0])


def _turn(ordinal: int, speaker: str, text: str, session: int = 1, doc: str = "c") -> Turn:
    return Turn(document=doc, ordinal=ordinal, speaker=speaker, session=session, text=text)


def test_an_answer_takes_the_score_of_the_question_before_it() -> None:
    turns = {
        1: _turn(0, "Mel", "Which book has been your favourite guide?"),
        2: _turn(1, "Caro", "Becoming Nicole, by Amy Ellis Nutt."),
        3: _turn(2, "Mel", "I should read more."),
    }
    runs = {"lexical": [(1, 3.0), (3, 0.5)]}
    params = ConversationParams(prev=0.7, next=0.0, speaker=0, temporal=0, length=0, session=0)
    scores = dict(score_turns("favourite book?", runs, turns, _neighbours(turns, [1, 3]), params))
    assert scores[2] == pytest.approx(0.7)  # found by no channel, lifted by its question
    assert scores[1] == pytest.approx(1.0)
    assert scores[3] == 0.0


def test_neighbours_never_cross_a_session_or_reach_a_non_turn() -> None:
    turns = {1: _turn(0, "A", "x", session=1), 2: _turn(1, "B", "y", session=2)}
    runs = {"lexical": [(1, 2.0), (99, 1.0)]}  # 99 is a document, not a turn
    params = ConversationParams(prev=1.0, next=1.0, speaker=0, temporal=0, length=0, session=0)
    got = score_turns("x", runs, turns, {1: (None, 2), 99: (1, None)}, params)
    assert got == [(1, 1.0)]


def test_the_speaker_the_query_names_is_preferred() -> None:
    turns = {
        1: _turn(0, "Caroline", "I went hiking."),
        2: _turn(5, "Melanie", "I went hiking."),
        3: _turn(9, "Melanie", "Nice."),
    }
    runs = {"lexical": [(2, 2.0), (1, 1.9), (3, 0.0)]}
    params = ConversationParams(speaker=1.0, temporal=0, length=0, session=0)
    ranked = score_turns("Where did Caroline go hiking?", runs, turns, {}, params)
    assert [t for t, _ in ranked] == [1, 2, 3]


def test_rescore_keeps_documents_in_their_ranks_and_the_score_profile() -> None:
    turns = {
        10: _turn(0, "Ann", "short"),
        11: _turn(1, "Bo", "the answer with many useful words in it"),
        12: _turn(5, "Ann", "another turn"),
    }
    runs = {"lexical": [(1, 9.0), (10, 5.0), (2, 4.0), (12, 3.0)], "dense": [(12, 0.9), (1, 0.2)]}
    fused = fuse(runs)
    neighbours = _neighbours(turns, [10, 12])
    out = rescore("Ann?", runs, fused, turns, neighbours, ConversationParams())
    docs_before = [(i, rank) for rank, (i, _) in enumerate(fused) if i not in turns]
    docs_after = [(i, rank) for rank, (i, _) in enumerate(out) if i not in turns]
    assert docs_after == docs_before
    assert [s for _, s in out[: len(fused)]] == [s for _, s in fused]
    assert {i for i, _ in out} == {1, 2, 10, 11, 12}  # 11: a neighbour no channel found
    assert [s for _, s in out] == sorted((s for _, s in out), reverse=True)
    order = [i for i, _ in out if i in turns]
    assert order == [t for t, _ in score_turns("Ann?", runs, turns, neighbours)]


def test_rescore_without_turns_is_the_fused_list() -> None:
    runs = {"lexical": [(1, 2.0), (2, 1.0)], "dense": [(2, 0.8), (3, 0.1)]}
    fused = fuse(runs)
    assert rescore("q", runs, fused, {}, {}) == fused
    assert rescore("q", {}, [], {}, {}) == []


def test_rescore_keeps_a_turn_of_the_fused_list_that_no_run_has() -> None:
    turns = {1: _turn(0, "A", "x"), 2: _turn(3, "B", "y")}
    out = rescore("x", {"lexical": [(1, 1.0)]}, [(2, 0.5), (1, 0.4)], turns, {})
    assert [i for i, _ in out] == [1, 2]


def test_the_speaker_prior_follows_the_names_the_query_uses() -> None:
    turns = {
        1: _turn(0, "Melanie", "we painted a bowl"),
        2: _turn(1, "Caroline", "we painted a bowl"),
    }
    runs = {"lexical": [(1, 1.0), (2, 1.0), (3, 0.0)]}
    turns[3] = _turn(2, "Caroline", "x")
    params = ConversationParams(prev=0, next=0, length=0, session=0, temporal=0, speaker=1.0)
    scores = dict(score_turns("What did Mel paint?", runs, turns, {}, params))
    assert scores[1] == 2 * scores[2]  # "Mel" names Melanie, and no one else


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I went there yesterday!", True),
        ("We moved in May 2022.", True),
        ("Last weekend was fun", True),
        ("That painting is lovely.", False),
        ("Maybe later", False),
    ],
)
def test_has_time_expression(text: str, expected: bool) -> None:
    assert has_time_expression(text) is expected


@pytest.mark.parametrize(
    "bad",
    [{"prev": -0.1}, {"speaker": math.nan}, {"weights": {"dense": -1.0}}, {"session_top": 0}],
)
def test_params_refuse_negative_weights(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ConversationParams(**bad)  # type: ignore[arg-type]


def test_as_turn_needs_a_document_an_ordinal_and_a_speaker() -> None:
    turn = as_turn("conv-1", 4, {"speaker": "Ann", "session": 2, "dia_id": "D2:1"}, "Hi")
    assert turn == Turn(document="conv-1", ordinal=4, speaker="Ann", session=2, text="Hi")
    assert as_turn("chat.json", 0, {"role": "user"}, "Hi") == Turn(
        document="chat.json", ordinal=0, speaker="user", session=None, text="Hi"
    )
    assert as_turn("notes.md", 3, {}, "a chunk of a document") is None
    assert as_turn(None, 3, {"speaker": "Ann"}, "a note") is None
    assert as_turn("conv-1", None, {"speaker": "Ann"}, "Hi") is None
    assert as_turn("conv-1", 1, {"speaker": ""}, "Hi") is None
    assert as_turn("conv-1", 1, {"speaker": "Ann", "session": [1, 2]}, "Hi") == Turn(
        document="conv-1", ordinal=1, speaker="Ann", session="[1, 2]", text="Hi"
    )
