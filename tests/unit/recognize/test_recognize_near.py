"""values_differ against hand-labelled pairs; best_near against a brute-force oracle."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.ingest import normalize_for_hash
from engramdb.recognize import NearMatch, best_near, scan_near, values_differ
from engramdb.recognize.minhash import jaccard, shingles

THRESHOLD = 0.8  # recognize.near_threshold
SHINGLE = 5  # recognize.shingle
PROPERTY = settings(derandomize=True, deadline=None, max_examples=200)


def grams(text: str) -> frozenset[str]:
    """Shingles as the write path makes them."""
    return shingles(normalize_for_hash(text), SHINGLE)


def near(a: str, b: str) -> NearMatch[int] | None:
    return best_near(a, grams(a), [(1, b, grams(b))], threshold=THRESHOLD)


LONG = (
    "The quarterly planning meeting covered the migration of the billing service, the hiring "
    "plan for the platform team and the budget for the next two quarters. Everyone agreed that "
    "the migration should finish before the end of the summer, and that the on-call rotation "
    "needs another engineer before it can expand."
)
LONG_SWAPPED = (
    "Everyone agreed that the migration should finish before the end of the summer, and that "
    "the on-call rotation needs another engineer before it can expand. The quarterly planning "
    "meeting covered the migration of the billing service, the hiring plan for the platform "
    "team and the budget for the next two quarters."
)
APPEAL = (
    "Under the tenancy agreement the landlord must return the deposit within {n} days after "
    "the keys are handed back, minus any deductions for damage listed in the final inspection "
    "report that both parties sign."
)
VAULT = (
    "After the incident review the team rotated every shared credential, and the new passphrase "
    "for the staging database is '{q}', stored only in the vault that the security group "
    "manages."
)
HANDOVER = (
    "On Friday afternoon {name} handed over the incident notes to the night shift, explained "
    "which alerts were noisy and which ones needed a call to the database team, and left a "
    "short checklist for the weekend."
)

# (a, b): the texts state different values and must stay two memories.
KEEP_APART = [
    # numbers, money, percent, units
    ("ticket number 11 is closed", "ticket number 111 is closed"),
    ("The invoice total is 1,250 dollars", "The invoice total is 1,520 dollars"),
    ("Room 204 is on the second floor", "Room 205 is on the second floor"),
    ("The dosage is 2.5 mg twice a day", "The dosage is 25 mg twice a day"),
    ("Interest rate rose to 4.5% this quarter", "Interest rate rose to 5.4% this quarter"),
    ("Alice paid $40 for the concert tickets", "Alice paid \u20ac40 for the concert tickets"),
    ("The rent is \u00a31,200 per month", "The rent is \u00a31,250 per month"),
    ("The trail is 12 km long", "The trail is 12 miles long"),
    ("The freezer is set to -18 degrees", "The freezer is set to 18 degrees"),
    ("Bob has three children", "Bob has four children"),
    ("The gate changed from 12 to 14", "The gate changed from 14 to 12"),
    (APPEAL.format(n=14), APPEAL.format(n=21)),
    # versions
    ("Upgraded the server to Python 3.11", "Upgraded the server to Python 3.12"),
    ("Deployed release v2.3.1 to production", "Deployed release v2.3.2 to production"),
    ("The API moved to version 2", "The API moved to version 3"),
    # dates and times
    ("The contract was signed on 2024-03-05", "The contract was signed on 2024-05-03"),
    ("Her birthday is March 14", "Her birthday is March 15"),
    ("The standup starts at 9:30 every weekday", "The standup starts at 10:30 every weekday"),
    ("The train leaves at 5pm", "The train leaves at 5am"),
    ("The review is on Monday", "The review is on Thursday"),
    # names and places
    ("born in London", "born in Paris"),
    ("she lives in rome", "she lives in oslo"),
    (
        "Alice is the project lead for the billing team",
        "Carol is the project lead for the billing team",
    ),
    (
        "The quarterly report was sent to Maria yesterday",
        "The quarterly report was sent to Marie yesterday",
    ),
    ("Anna booked the flight to Lisbon", "Anne booked the flight to Lisbon"),
    ("Jon reviewed the pull request", "John reviewed the pull request"),
    ("Alice paid Bob for the groceries", "Bob paid Alice for the groceries"),
    (
        "The company moved its headquarters from Berlin to Munich last year",
        "The company moved its headquarters from Berlin to Hamburg last year",
    ),
    (
        "Switched the analytics database from PostgreSQL to MySQL",
        "Switched the analytics database from PostgreSQL to SQLite",
    ),
    (HANDOVER.format(name="Okafor"), HANDOVER.format(name="Okonkwo")),
    # quoted values
    ("The wifi password is 'bluebird'", "The wifi password is 'redbird'"),
    (VAULT.format(q="amber falcon"), VAULT.format(q="silver falcon")),
    # a value span: one content word in a short text (no negation involved)
    ("The light is red", "The light is green"),
    ("The user prefers dark mode", "The user prefers light mode"),
    ("Ticket 42 is closed", "Ticket 42 is open"),
    ("Favourite drink is coffee", "Favourite drink is tea"),
    ("The cat sleeps on the sofa", "The dog sleeps on the sofa"),
    ("Allergic to peanuts", "Allergic to shellfish"),
    ("Bob wants a window seat on the flight", "Bob wants an aisle seat on the flight"),
    ("the backup job runs nightly", "the backup job runs weekly"),
    # negation
    ("The deployment is blocked by the audit", "The deployment is not blocked by the audit"),
    # long text: a number word changed
    (LONG, LONG.replace("two quarters", "three quarters")),
]

# (a, b): the same memory, written differently; must not count as different values.
MERGE = [
    # casing, whitespace, punctuation
    ("Born in London", "born in london"),
    ("The meeting is  on\nTuesday", "The meeting is on Tuesday"),
    ("Ticket 11 is closed.", "ticket 11 is closed!!"),
    ("Remember: call the bank, then the landlord", "Remember call the bank then the landlord"),
    ("HE SAID THE OFFICE IS IN OSLO", "He said the office is in Oslo"),
    (
        "Miss Martha Clifford c/o P. O. Dolphin's Barn Lane Dublin.",
        "Miss? MaRTHa Clifford c/O P. o. Dolphin's, Barn Lane DublIN.",
    ),
    ('He said "see you at noon" and left', "He said \u201csee you at noon\u201d and left"),
    # typos
    ("The meeting is on Tuesday afternoon", "The meeting is on Tuesday aftenroon"),
    ("Remember to renew the passport", "Remember to renew the pasport"),
    ("The meeting is on Tuesday", "The meeting is on Tuesdya"),
    ("Celia went to the market", "Celai went to the market"),
    ("Jonathan reviewed the pull request", "Jonathon reviewed the pull request"),
    ("The wifi password is 'bluebird'", "The wifi password is 'bluebrid'"),
    ("I don't drink coffee", "I dont drink coffee"),
    ("I'm allergic to peanuts", "I am allergic to peanuts"),
    # spelling of the same value
    ("The invoice total is 1,250 dollars", "The invoice total is 1250 dollars"),
    ("The standup starts at 10:30", "The standup starts at 10.30"),
    ("The trail is 12km long", "The trail is 12 km long"),
    ("The office is on the 5th floor", "The office is on the 5 floor"),
    ("Bring the ticket for the concert", "Bring the tickets for the concert"),
    ("e-mail the report to finance", "email the report to finance"),
    ("The icecream shop opens at 9", "The ice cream shop opens at 9"),
    # long texts: a repeated paragraph with a small edit
    (LONG, LONG.replace("migration of", "migraton of")),
    (LONG, LONG.replace("needs another engineer", "needs one more engineer")),
    (LONG, LONG.replace("the budget", "budget").replace("summer,", "summer")),
    (LONG, LONG_SWAPPED),
    (LONG, LONG.replace("planning meeting", "planing meeting").replace("  ", " ")),
    (APPEAL.format(n=14), APPEAL.format(n=14).replace("deductions", "deductons")),
    (HANDOVER.format(name="Okafor"), HANDOVER.format(name="Okafor").replace("noisy", "flaky")),
    (VAULT.format(q="amber falcon"), VAULT.format(q="amber falcon").replace("every", "each")),
]

# Merge pairs that are real near-duplicates by shingles too: best_near must merge them.
NEAR_DUPLICATES = [pair for pair in MERGE if jaccard(grams(pair[0]), grams(pair[1])) >= 0.8]


@pytest.mark.parametrize(("a", "b"), KEEP_APART)
def test_keep_apart(a: str, b: str) -> None:
    assert values_differ(a, b)
    assert values_differ(b, a)


@pytest.mark.parametrize(("a", "b"), MERGE)
def test_merge(a: str, b: str) -> None:
    assert not values_differ(a, b)
    assert not values_differ(b, a)


def test_oracle_is_large_enough() -> None:
    assert len(KEEP_APART) + len(MERGE) >= 40
    assert len(NEAR_DUPLICATES) >= 15
    # The guard matters: most keep-apart pairs look alike to Jaccard.
    alike = [p for p in KEEP_APART if jaccard(grams(p[0]), grams(p[1])) >= 0.6]
    assert len(alike) >= 15


@pytest.mark.parametrize(("a", "b"), NEAR_DUPLICATES)
def test_near_duplicates_merge(a: str, b: str) -> None:
    found = near(a, b)
    assert found is not None
    assert found.key == 1
    assert found.score == jaccard(grams(a), grams(b))


@pytest.mark.parametrize(("a", "b"), KEEP_APART)
def test_keep_apart_never_merges(a: str, b: str) -> None:
    assert near(a, b) is None


def test_numbered_tickets_never_merge() -> None:
    texts = [f"ticket number {i} is closed" for i in range(1, 1001)]
    sets = [grams(t) for t in texts]
    alike = [
        (i, j)
        for i, j in itertools.combinations(range(len(texts)), 2)
        if jaccard(sets[i], sets[j]) >= THRESHOLD
    ]
    assert len(alike) >= 9  # Jaccard alone merges some (11 and 111, ...)
    for i, j in alike:
        assert best_near(texts[i], sets[i], [(j, texts[j], sets[j])], threshold=THRESHOLD) is None
        assert best_near(texts[j], sets[j], [(i, texts[i], sets[i])], threshold=THRESHOLD) is None


def test_numbered_tickets_written_one_by_one_stay_apart() -> None:
    stored: list[tuple[int, str, frozenset[str]]] = []
    for i in range(1, 1001):
        text = f"ticket number {i} is closed"
        g = grams(text)
        candidates = [c for c in stored if jaccard(g, c[2]) >= 0.5]  # what LSH bands surface
        assert best_near(text, g, candidates, threshold=THRESHOLD) is None
        stored.append((i, text, g))


def test_tie_break_prefers_smaller_key() -> None:
    text = "The meeting is on Tuesday"
    same = [(k, "the meeting is on tuesday", grams("the meeting is on tuesday")) for k in (9, 3, 5)]
    assert best_near(text, grams(text), same, threshold=THRESHOLD) == NearMatch(3, 1.0)
    # Tuple keys: stored memories (0, id) before batch items (1, index) on equal scores.
    mixed = [((1, 0), same[0][1], same[0][2]), ((0, 42), same[0][1], same[0][2])]
    assert best_near(text, grams(text), mixed, threshold=THRESHOLD) == NearMatch((0, 42), 1.0)


def test_higher_score_wins_and_value_clash_is_skipped() -> None:
    text = "Ticket 42 is closed, the release manager told the support team on Friday"
    exact = text.lower()
    typo = text.replace("release", "relaese")
    clash = text.replace("42", "43")
    cands = [(1, typo, grams(typo)), (2, clash, grams(clash)), (3, exact, grams(exact))]
    assert best_near(text, grams(text), cands, threshold=THRESHOLD) == NearMatch(3, 1.0)
    scan = scan_near(text, grams(text), cands[:2], threshold=THRESHOLD)
    assert scan.top is not None and scan.top.key == 2  # Jaccard alone picks the clash
    assert scan.match is not None and scan.match.key == 1
    assert scan.best == scan.match


def test_threshold_is_inclusive_and_below_is_reported() -> None:
    text = "The meeting is on Tuesday afternoon"
    other = "The meeting is on Tuesday aftenroon"
    score = jaccard(grams(text), grams(other))
    cands = [(1, other, grams(other))]
    assert best_near(text, grams(text), cands, threshold=score) == NearMatch(1, score)
    scan = scan_near(text, grams(text), cands, threshold=min(1.0, score + 0.01))
    assert scan.match is None
    assert scan.best == NearMatch(1, score)


def test_no_candidates() -> None:
    none: list[tuple[int, str, frozenset[str]]] = []
    scan = scan_near("anything", grams("anything"), none, threshold=THRESHOLD)
    assert scan.match is None and scan.best is None and scan.top is None
    clash = "ticket number 111 is closed"
    only = [(1, clash, grams(clash))]
    text = "ticket number 11 is closed"
    scan = scan_near(text, grams(text), only, threshold=THRESHOLD)
    assert scan.match is None and scan.best is None
    assert scan.top is not None and scan.top.score >= THRESHOLD


# -- property: one answer whatever the candidate order, equal to a brute-force oracle -----------

_POOL = [
    *(t for pair in KEEP_APART[:20] for t in pair),
    *(t for pair in MERGE[:12] for t in pair),
    *(f"ticket number {i} is closed" for i in (1, 11, 111, 12, 21)),
]


def _oracle(text: str, candidates: list[tuple[int, str, frozenset[str]]]) -> NearMatch[int] | None:
    g = grams(text)
    allowed = [
        (jaccard(g, cg), key)
        for key, other, cg in candidates
        if jaccard(g, cg) >= THRESHOLD and not values_differ(text, other)
    ]
    if not allowed:
        return None
    score, key = max(allowed, key=lambda row: (row[0], -row[1]))
    return NearMatch(key, score)


@PROPERTY
@given(
    query=st.sampled_from(_POOL),
    picks=st.lists(st.sampled_from(_POOL), max_size=12),
    keys=st.lists(st.integers(0, 10_000), min_size=12, max_size=12, unique=True),
    data=st.data(),
)
def test_best_near_ignores_candidate_order(
    query: str, picks: list[str], keys: list[int], data: st.DataObject
) -> None:
    candidates = [(k, t, grams(t)) for k, t in zip(keys, picks, strict=False)]
    shuffled = data.draw(st.permutations(candidates))
    expected = _oracle(query, candidates)
    assert best_near(query, grams(query), candidates, threshold=THRESHOLD) == expected
    assert best_near(query, grams(query), shuffled, threshold=THRESHOLD) == expected
    assert best_near(query, grams(query), iter(shuffled), threshold=THRESHOLD) == expected
    assert scan_near(query, grams(query), shuffled, threshold=THRESHOLD).match == expected


@PROPERTY
@given(a=st.sampled_from(_POOL), b=st.sampled_from(_POOL))
def test_values_differ_is_symmetric_and_irreflexive(a: str, b: str) -> None:
    assert values_differ(a, b) == values_differ(b, a)
    assert not values_differ(a, a)


# -- property: casing, whitespace and punctuation never make values differ ----------------------

_TEXTS = sorted({t for pair in KEEP_APART + MERGE for t in pair})
_MARKS = ",.;:!?"


def _noisy(text: str, draw: st.DataObject) -> str:
    out = []
    for i, ch in enumerate(text):
        near_digit = any(c.isdigit() for c in text[max(0, i - 1) : i + 2])
        op = draw.draw(st.sampled_from(["keep"] * 6 + ["case", "space", "mark"]))
        if ch.isspace() and op == "space":
            out.append(draw.draw(st.sampled_from(["  ", "\n", "\t ", " \n\n"])))
        elif ch in _MARKS and op == "mark" and not near_digit:
            continue  # a mark dropped
        elif ch == " " and op == "mark" and not near_digit:
            out.append(draw.draw(st.sampled_from(_MARKS)) + " ")
        elif op == "case":
            out.append(ch.swapcase() if draw.draw(st.booleans()) else ch.upper())
        else:
            out.append(ch)
    return "".join(out)


@PROPERTY
@given(text=st.sampled_from(_TEXTS), data=st.data())
def test_casing_whitespace_and_punctuation_never_differ(text: str, data: st.DataObject) -> None:
    noisy = _noisy(text, data)
    assert not values_differ(text, noisy), noisy
