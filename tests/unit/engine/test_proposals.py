"""Memory.propose_changes: a judge proposes facts that change; nothing becomes invalid."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from engramdb import Memory
from engramdb.engine import _proposals
from engramdb.errors import InvalidInputError, ModelError, StoreError
from engramdb.recognize.judge import Verdict, VerdictKind

NOTES = [
    "Ann painted the kitchen door green.",
    "The garden needs water after the heatwave.",
    "Our cat sleeps on the warm windowsill.",
    "Ann booked train tickets to Vienna.",
    "The printer on floor two is jammed again.",
    "Bob fixed the leaking tap upstairs.",
    "We ordered pizza for the team lunch.",
    "The library closes early on Fridays.",
    "My sister plays the cello in an orchestra.",
    "The meeting notes are in the shared folder.",
    "Snow is forecast for the mountain pass.",
]
"""Notes the write-time rules link to none of the others."""


class FakeJudge:
    """Answers with ``decide(older, newer)``; remembers every question."""

    def __init__(self, decide: Callable[[str, str], VerdictKind] | None = None) -> None:
        self.decide = decide or (lambda _older, _newer: "supersede")
        self.asked: list[tuple[str, str, str | None]] = []

    def judge(self, older: str, newer: str, *, subject: str | None) -> Verdict:
        self.asked.append((older, newer, subject))
        return Verdict(self.decide(older, newer), f"{older} -> {newer}")


@pytest.fixture
def mem() -> Iterator[Memory]:
    with Memory.open(":memory:", embed={"model": "hash", "dim": 32}) as m:
        yield m


def _add(mem: Memory, text: str, speaker: str | None, day: int, namespace: str = "default") -> int:
    meta = {"speaker": speaker} if speaker is not None else {}
    result = mem.add(text, meta=meta, event_time=86_400.0 * day, namespace=namespace)
    return result.ids[0]


def _valid_to(mem: Memory) -> dict[int, float | None]:
    return {r.id: r.valid_to for r in mem.get_many(mem.ids())}


def _cosines(mem: Memory, ids: list[int]) -> dict[frozenset[int], float]:
    """Brute force: the cosine of every pair, from the cached vectors (the oracle)."""
    records = mem.get_many(ids)
    cached = mem.store.cached_embeddings(mem.embedder.model_id, [r.hash for r in records])
    vec = {r.id: cached[r.hash] / np.linalg.norm(cached[r.hash]) for r in records}
    return {frozenset((a, b)): float(vec[a] @ vec[b]) for a, b in itertools.combinations(ids, 2)}


def test_only_pairs_of_one_speaker_are_asked_older_first(mem: Memory) -> None:
    texts = {
        _add(mem, "I work for Initech.", "Ann", 1): ("Ann", 1),
        _add(mem, "My job is at Globex now.", "Ann", 9): ("Ann", 9),
        _add(mem, "I have a red bicycle.", "Ann", 5): ("Ann", 5),
        _add(mem, "I work at a bakery.", "Bob", 3): ("Bob", 3),
        _add(mem, "The bakery closed down.", None, 4): (None, 4),
        _add(mem, "Nobody works on Sundays.", None, 2): (None, 2),
        _add(mem, "Bob's bakery is great.", "Bob", 7): ("Bob", 7),
    }
    judge = FakeJudge(lambda _o, _n: "unrelated")
    assert mem.propose_changes(judge, min_similarity=-1.0) == []
    by_text = {r.text: texts[r.id] for r in mem.get_many(mem.ids())}
    asked = {(o, n) for o, n, _ in judge.asked}
    expected = {
        (a, b)
        for a, b in itertools.permutations(by_text, 2)
        if by_text[a][0] == by_text[b][0] and by_text[a][1] < by_text[b][1]
    }
    assert asked == expected  # 3 of Ann, 1 of Bob, 1 without speaker
    assert len(judge.asked) == 5
    assert {s for *_, s in judge.asked} == {"Ann", "Bob", None}
    assert all(by_text[o][0] == s for o, _, s in judge.asked)


def test_proposals_are_conflicts_and_never_change_validity(mem: Memory) -> None:
    old = _add(mem, "I work for Initech.", "Ann", 1)
    new = _add(mem, "My job is at Globex now.", "Ann", 9)
    other = _add(mem, "I have a red bicycle.", "Ann", 5)
    before = _valid_to(mem)
    count = len(mem.ids())

    def decide(older: str, newer: str) -> VerdictKind:
        if "Initech" not in older:
            return "unrelated"
        return "supersede" if "Globex" in newer else "conflict"

    links = mem.propose_changes(FakeJudge(decide), min_similarity=-1.0)
    assert _valid_to(mem) == before and all(v is None for v in before.values())
    assert len(mem.ids()) == count
    by_pair = {(link.old, link.new): link for link in links}
    assert set(by_pair) == {(old, new), (old, other)}  # (other, new) judged unrelated
    for link in links:
        assert link.kind == "conflict" and link.origin == "judge" and link.undone is None
        assert link.at == mem.get(link.new).valid_from
    assert by_pair[(old, new)].detail == {
        "proposal": "supersede",
        "reason": "I work for Initech. -> My job is at Globex now.",
    }
    assert by_pair[(old, other)].detail["proposal"] == "conflict"
    assert {link.id for link in mem.history(old).links} == {link.id for link in links}
    hits = mem.recall("where does Ann work", k=5)
    assert all(h.valid_to is None for h in hits)


def test_accepting_a_proposal_with_supersede_resolves_it(mem: Memory) -> None:
    old = _add(mem, "I work for Initech.", "Ann", 1)
    new = _add(mem, "My job is at Globex now.", "Ann", 9)
    (proposal,) = mem.propose_changes(FakeJudge(), min_similarity=-1.0)
    accepted = mem.supersede(proposal.old, proposal.new)
    assert (accepted.old, accepted.new, accepted.kind) == (old, new, "supersede")
    assert mem.get(old).valid_to == mem.get(new).valid_from
    links = {link.id: link for link in mem.history(old).links}
    assert links[proposal.id].undone is not None and links[accepted.id].undone is None


def test_linked_and_superseded_memories_are_not_asked_again(mem: Memory) -> None:
    a = _add(mem, "I work for Initech.", "Ann", 1)
    b = _add(mem, "My job is at Globex now.", "Ann", 9)
    c = _add(mem, "I have a red bicycle.", "Ann", 5)
    d = _add(mem, "I have a blue car.", "Ann", 6)
    e = _add(mem, "I sold the car.", "Ann", 8)
    mem.supersede(c, d)
    mem.unsupersede(c)  # an undone link still joins c and d
    mem.supersede(a, e)  # a is no longer valid: not asked at all
    judge = FakeJudge()
    first = mem.propose_changes(judge, min_similarity=-1.0)
    texts = {r.id: r.text for r in mem.get_many([a, b, c, d, e])}
    asked = {frozenset((o, n)) for o, n, _ in judge.asked}
    ids = {t: i for i, t in texts.items()}
    asked_ids = {frozenset(ids[t] for t in pair) for pair in asked}
    assert asked_ids == {frozenset(p) for p in [(b, c), (b, d), (b, e), (c, e), (d, e)]}
    assert {frozenset((link.old, link.new)) for link in first} == asked_ids
    again = FakeJudge()
    assert mem.propose_changes(again, min_similarity=-1.0) == []
    assert again.asked == []  # every pair is linked now


def test_auto_conflicts_are_not_asked(mem: Memory) -> None:
    went = _add(mem, "I went to the park with Max.", "Ann", 1)
    beach = _add(mem, "I went to the beach with Max.", "Ann", 2)
    assert [link.kind for link in mem.history(went).links] == ["conflict"]
    judge = FakeJudge()
    assert mem.propose_changes(judge, min_similarity=-1.0) == []
    assert judge.asked == [] and mem.get(beach).valid_to is None


def test_the_most_similar_pairs_come_first_within_the_limit(mem: Memory) -> None:
    texts = [
        "I work for Initech as an engineer.",
        "My job is at Globex these days.",
        "Our office moved to the harbour district.",
        "I live in a small flat near the river.",
        "My flat is small and cold in winter.",
        "I have a red bicycle with a basket.",
        "My bicycle got a new chain last week.",
        "Tea is my favourite drink in the morning.",
    ]
    ids = [_add(mem, t, "Ann", day) for day, t in enumerate(texts)]
    assert not any(mem.history(i).links for i in ids)  # the rules linked none of them
    cosine = _cosines(mem, ids)
    order = sorted(cosine, key=lambda p: -cosine[p])
    threshold = cosine[order[12]]  # a similarity that some pairs pass and others miss
    judge = FakeJudge(lambda _o, _n: "conflict")
    links = mem.propose_changes(judge, limit=4, min_similarity=threshold)
    assert len(judge.asked) == 4 == len(links)
    assert [frozenset((link.old, link.new)) for link in links] == order[:4]
    everything = FakeJudge(lambda _o, _n: "unrelated")
    mem.propose_changes(everything, limit=1000, min_similarity=threshold)
    by_text = {t: i for i, t in zip(ids, texts, strict=True)}
    asked = [frozenset((by_text[o], by_text[n])) for o, n, _ in everything.asked]
    passing = [p for p in order[4:] if cosine[p] >= threshold - 1e-6]
    assert sorted(asked, key=sorted) == sorted(passing, key=sorted)
    assert [cosine[p] for p in asked] == sorted((cosine[p] for p in asked), reverse=True)


def test_other_namespaces_are_left_alone(mem: Memory) -> None:
    _add(mem, "I work for Initech.", "Ann", 1, namespace="work")
    _add(mem, "My job is at Globex now.", "Ann", 9, namespace="work")
    _add(mem, "I live in Porto.", "Ann", 2)
    judge = FakeJudge()
    assert mem.propose_changes(judge, min_similarity=-1.0) == []
    assert judge.asked == []
    assert len(mem.propose_changes(judge, namespace="work", min_similarity=-1.0)) == 1


def test_a_failing_judge_keeps_the_proposals_made_before(mem: Memory) -> None:
    for day, text in enumerate(["I work for Initech.", "My job is at Globex.", "I'm at Hooli."]):
        _add(mem, text, "Ann", day)

    class Flaky(FakeJudge):
        def judge(self, older: str, newer: str, *, subject: str | None) -> Verdict:
            if len(self.asked) == 2:
                raise ModelError("judge endpoint timed out after 60.0s")
            return super().judge(older, newer, subject=subject)

    with pytest.raises(ModelError, match=r"timed out.*after 2 of 3 pairs; the 2 proposal"):
        mem.propose_changes(Flaky(), min_similarity=-1.0)
    links = mem.history(mem.ids()[0]).links
    assert len(links) == 2 and all(link.origin == "judge" for link in links)


def test_a_judge_answering_no_verdict_is_an_error(mem: Memory) -> None:
    _add(mem, "I work for Initech.", "Ann", 1)
    _add(mem, "My job is at Globex.", "Ann", 2)

    class Wrong:
        def judge(self, older: str, newer: str, *, subject: str | None) -> Verdict:
            return Verdict("maybe", "")  # type: ignore[arg-type]

    with pytest.raises(ModelError, match="not a Verdict"):
        mem.propose_changes(Wrong(), min_similarity=-1.0)


@pytest.mark.parametrize(
    ("limit", "min_similarity"), [(0, 0.5), (-3, 0.5), (True, 0.5), (5, 1.5), (5, -2.0)]
)
def test_bad_options_are_refused_before_asking(
    mem: Memory, limit: int, min_similarity: float
) -> None:
    judge = FakeJudge()
    with pytest.raises(InvalidInputError):
        mem.propose_changes(judge, limit=limit, min_similarity=min_similarity)
    assert judge.asked == []


def test_a_namespace_too_big_to_compare_is_refused(
    mem: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day, text in enumerate(NOTES[:4]):
        _add(mem, text, "Ann", day)
    monkeypatch.setattr(_proposals, "MAX_COMPARED", 3)
    with pytest.raises(InvalidInputError, match="4 valid memories.*at most 3"):
        mem.propose_changes(FakeJudge())


def test_blocks_find_the_same_pairs_as_one_block(
    mem: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for day, text in enumerate(NOTES):
        _add(mem, text, "Ann", day)
    assert all(r.valid_to is None for r in mem.get_many(mem.ids()))
    whole = _proposals.candidate_pairs(
        mem.store, mem.embedder.model_id, namespace="default", limit=20, min_similarity=-1.0
    )
    monkeypatch.setattr(_proposals, "_BLOCK", 3)
    blocked = _proposals.candidate_pairs(
        mem.store, mem.embedder.model_id, namespace="default", limit=20, min_similarity=-1.0
    )
    assert len(whole) == 20
    assert [(p.older, p.newer) for p in blocked] == [(p.older, p.newer) for p in whole]
    assert [p.similarity for p in blocked] == pytest.approx([p.similarity for p in whole])


def test_a_read_only_store_is_refused_before_asking(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with Memory.open(path, embed={"model": "hash", "dim": 32}) as mem:
        _add(mem, "I work for Initech.", "Ann", 1)
        _add(mem, "My job is at Globex.", "Ann", 2)
    judge = FakeJudge()
    readonly = Memory.open(path, embed={"model": "hash", "dim": 32}, readonly=True)
    with readonly as mem, pytest.raises(StoreError):
        mem.propose_changes(judge, min_similarity=-1.0)
    assert judge.asked == []


def test_the_limit_counts_pairs_of_every_speaker(mem: Memory) -> None:
    for day, text in enumerate(NOTES):
        _add(mem, text, "Ann" if day % 2 else "Bob", day)
    cosine = _cosines(mem, mem.ids())
    speaker = {r.id: r.meta["speaker"] for r in mem.get_many(mem.ids())}
    same = sorted(
        (p for p in cosine if len({speaker[i] for i in p}) == 1), key=lambda p: -cosine[p]
    )
    judge = FakeJudge(lambda _o, _n: "conflict")
    links = mem.propose_changes(judge, limit=3, min_similarity=-1.0)
    assert len(judge.asked) == 3
    assert [frozenset((link.old, link.new)) for link in links] == same[:3]


def test_record_checks_again_what_changed_while_the_judge_was_asked(mem: Memory) -> None:
    ids = [_add(mem, text, "Ann", day) for day, text in enumerate(NOTES[:6])]
    pairs = _proposals.candidate_pairs(
        mem.store, mem.embedder.model_id, namespace="default", limit=100, min_similarity=-1.0
    )
    judged = [(p, Verdict("supersede", "")) for p in pairs]
    mem.forget(ids=[ids[0]])
    mem.supersede(ids[1], ids[2])  # ids[1] invalid now; ids[1]-ids[2] linked
    mem.supersede(ids[3], ids[4])
    mem.unsupersede(ids[3])  # ids[3]-ids[4] linked (undone), both valid
    with mem.store.atomic():
        made = _proposals.record(mem.store, judged, now=0.0)
    gone = {ids[0], ids[1]}
    expected = {
        frozenset((p.older, p.newer))
        for p in pairs
        if not {p.older, p.newer} & gone and {p.older, p.newer} != {ids[3], ids[4]}
    }
    assert {frozenset((link.old, link.new)) for link in made} == expected
    assert len(expected) == 5  # of ids[2..5]: 6 pairs, less ids[3]-ids[4]
    with mem.store.atomic():
        assert _proposals.record(mem.store, judged, now=0.0) == []  # all linked now


def test_pairs_judged_unrelated_are_not_asked_again(mem: Memory) -> None:
    a = "I work for Initech."
    _add(mem, a, "Ann", 1)
    _add(mem, "My job is at Globex now.", "Ann", 9)
    _add(mem, "I have a red bicycle.", "Ann", 5)
    first = FakeJudge(lambda _o, _n: "unrelated")
    assert mem.propose_changes(first, limit=1, min_similarity=-1.0) == []
    (seen,) = {frozenset((o, n)) for o, n, _ in first.asked}
    second = FakeJudge(lambda _o, _n: "unrelated")
    mem.propose_changes(second, min_similarity=-1.0)
    asked = {frozenset((o, n)) for o, n, _ in second.asked}
    assert seen not in asked and len(asked) == 2
    third = FakeJudge(lambda _o, _n: "unrelated")
    mem.propose_changes(third, min_similarity=-1.0)
    assert third.asked == []
    (a_id,) = [r.id for r in mem.get_many(mem.ids()) if r.text == a]
    mem.forget(ids=[a_id])
    _add(mem, a, "Ann", 1)  # the same text again is a new memory: asked anew
    fourth = FakeJudge(lambda _o, _n: "unrelated")
    mem.propose_changes(fourth, min_similarity=-1.0)
    assert {frozenset((o, n)) for o, n, _ in fourth.asked} == {p for p in {seen, *asked} if a in p}
