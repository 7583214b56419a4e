"""Probe material is deterministic per seed and has the properties the probes rely on."""

from __future__ import annotations

import random

import pytest

from engramdb.eval.probes import (
    DISTANCE_BINS,
    entity_swap,
    invented_word,
    make_needles,
    name_pool,
    order_pairs,
    word_swap,
)


def test_needles_repeat_with_the_seed_and_differ_across_seeds() -> None:
    first = make_needles(random.Random(3), 10)
    assert first == make_needles(random.Random(3), 10)
    assert first != make_needles(random.Random(4), 10)


def test_needles_use_distinct_templates_and_invented_words() -> None:
    needles = make_needles(random.Random(0), 20)
    assert len({n.template for n in needles}) == 20
    assert len({n.key for n in needles}) == 20
    for needle in needles:
        # The cue shares its invented word with the fact, but is worded differently.
        assert needle.key in needle.fact and needle.key in needle.cue
        assert needle.cue != needle.fact
        others = [n.key for n in needles if n is not needle]
        assert not any(key in needle.fact or key in needle.cue for key in others)
    assert len(make_needles(random.Random(0), 30)) == 30  # templates cycle


def test_invented_word_is_capitalised_letters() -> None:
    word = invented_word(random.Random(1))
    assert word.isalpha() and word[0].isupper() and word[1:].islower()


def test_word_swap_keeps_the_words_and_changes_the_order() -> None:
    text = "Tobiah carried the lantern across the bridge at dawn."
    foil = word_swap(text, random.Random(0))
    assert foil is not None and foil != text
    assert sorted(foil.lower().rstrip(".").split()) == sorted(text.lower().rstrip(".").split())
    assert foil.split()[0] == "Tobiah"
    assert word_swap("Too short.", random.Random(0)) is None


def test_entity_swap_replaces_a_mid_sentence_name() -> None:
    text = "At dawn Maren gave the key to Corvin, who said nothing."
    foil = entity_swap(text, random.Random(0), ["Maren", "Corvin", "Lusa"])
    assert foil is not None and foil != text
    assert foil.split()[0] == "At"
    changed = [(a, b) for a, b in zip(text.split(), foil.split(), strict=True) if a != b]
    assert len(changed) == 1
    assert changed[0][0].rstrip(",") in {"Maren", "Corvin"}
    assert changed[0][1].rstrip(",") in {"Maren", "Corvin", "Lusa"}
    assert entity_swap("no names in here at all.", random.Random(0), ["Lusa"]) is None
    assert entity_swap("We met Lusa there.", random.Random(0), ["Lusa"]) is None  # no other name


def test_name_pool_keeps_frequent_mid_sentence_capitals() -> None:
    texts = ["Then Maren left.", "So Maren stayed.", "And Maren sang.", "Then Bram left."]
    assert name_pool(texts, min_count=3) == ["Maren"]
    assert name_pool(texts, min_count=1) == ["Bram", "Maren"]


@pytest.mark.parametrize("words", [300, 1000, 10_000])
def test_order_pairs_are_valid_and_balanced(words: int) -> None:
    pairs = order_pairs(random.Random(5), words, 80, (20, 50))
    assert len(pairs) == 80
    for pair in pairs:
        distance = pair.second - pair.first
        lo, hi = DISTANCE_BINS[pair.distance_bin]
        assert pair.first >= 0 and pair.second + pair.length <= words
        assert distance >= pair.length  # no overlap
        assert lo * words - 1 <= distance <= hi * words
    cells = {(p.length, p.distance_bin) for p in pairs}
    assert len(cells) == 8
    shown = sum(p.shown_first_is_first for p in pairs)
    assert 20 < shown < 60


def test_order_pairs_skip_bins_that_cannot_fit() -> None:
    pairs = order_pairs(random.Random(0), 120, 10, (50,))
    assert {p.distance_bin for p in pairs} <= {1, 2}
    assert order_pairs(random.Random(0), 60, 10, (50,)) == []
