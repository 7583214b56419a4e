"""A seeded generator of knowledge-update data sets (``--kind updates``).

``python -m engramdb.eval.gen_updates OUT_DIR --seed N [--people P] [--variant dev|heldout]``
writes ``turns.jsonl``, ``qa.jsonl`` and ``truth.jsonl`` (see :mod:`engramdb.eval.updates`):
conversations of two speakers over 8-12 dated sessions, in which facts about each speaker
(the city they live in, their employer, their partner, their favourite food, the date of
a scheduled event, the size of their team) are stated and then changed one to three times
in later sessions, amid small talk, the same kinds of facts about other people, and
mentions of other cities, companies and dates that change nothing. One question per
speaker and fact asks for the current value; its gold is the turn of the latest value.

An update restates the fact either with the template of the statement it overrides (only
the value differs: tag ``same-wording``) or with another one (``new-wording``). The
``dev`` and ``heldout`` variants share no template, name or value, so that figures on
``heldout`` measure phrasing never seen while developing on ``dev``. The same seed and
options always give the same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["VARIANTS", "GeneratedSet", "Relation", "Variant", "generate", "main", "write"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Relation:
    """One kind of changing fact: how it is asked, stated, changed and echoed.

    ``{name}`` is the person asked about, ``{v}`` the value.
    """

    name: str
    ask: tuple[str, ...]
    state: tuple[str, ...]
    change: tuple[str, ...]
    other: tuple[str, ...]
    mention: tuple[str, ...]
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """Everything a variant draws from: people, relations, chat lines."""

    names: tuple[str, ...]
    relations: tuple[Relation, ...]
    small_talk: tuple[str, ...]
    acks: tuple[str, ...]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _rel(name: str, *parts: Sequence[str]) -> Relation:
    ask, state, change, other, mention, values = (tuple(p) for p in parts)
    return Relation(
        name=name, ask=ask, state=state, change=change, other=other, mention=mention, values=values
    )


_DEV = Variant(
    names=_words(
        "Alice Bob Carla Dmitri Elena Farid Greta Hugo Ines Jonas Keiko Liam Maya Nikhil "
        "Olga Pablo Quinn Rosa Stefan Tara Umar Vera Wes Yusuf"
    ),
    relations=(
        _rel(
            "city",
            ["Where does {name} live?", "Which city does {name} live in?"],
            ["I live in {v}.", "I'm based in {v} these days.", "Home for me is {v} now."],
            ["I just moved to {v}.", "We packed everything up and relocated to {v}."],
            ["My brother lives in {v}.", "My old roommate settled in {v}."],
            ["We had a layover in {v} once, nice airport.", "There's a food festival in {v}."],
            _words("Porto Lisbon Lyon Krakow Valencia Utrecht Gothenburg Bologna Leeds Graz"),
        ),
        _rel(
            "employer",
            ["Who does {name} work for now?", "Which company does {name} work at?"],
            ["I work for {v}.", "I'm employed at {v}.", "My job is at {v}."],
            ["I started a new job at {v}.", "I handed in my notice, I'm joining {v}."],
            ["My cousin works for {v}.", "My neighbour got hired by {v}."],
            ["{v} was in the news again today.", "I read that {v} is opening an office nearby."],
            [
                "Globex",
                "Initech",
                "Umbrella Labs",
                "Hooli",
                "Vandelay Industries",
                "Stark Freight",
                "Wayne Analytics",
                "Acme Robotics",
                "Soylent Foods",
                "Cyberdyne",
            ],
        ),
        _rel(
            "partner",
            ["What is the name of {name}'s partner?", "Who is {name} dating?"],
            ["My partner is {v}.", "I'm in a relationship with {v}.", "{v} and I are together."],
            ["I've started seeing someone new, {v}.", "Things ended with my ex, I'm with {v} now."],
            ["My sister is dating {v}.", "My best friend's partner is {v}."],
            ["I bumped into someone called {v} at the gym.", "{v} from the book club says hi."],
            _words("Sam Jordan Robin Alex Casey Morgan Jamie Taylor Drew Riley"),
        ),
        _rel(
            "food",
            ["What is {name}'s favourite food?", "Which dish does {name} like best?"],
            [
                "My favourite food is {v}.",
                "I could eat {v} every day.",
                "Nothing beats {v} for me.",
            ],
            [
                "I've gone off my old favourite, {v} is my new obsession.",
                "These days {v} is the dish I crave most.",
            ],
            ["My dad's favourite food is {v}.", "My coworker is obsessed with {v}."],
            ["There's a new {v} place near the station.", "I saw a documentary about {v}."],
            _words("ramen paella lasagna pho tacos risotto dumplings falafel goulash sushi"),
        ),
        _rel(
            "deadline",
            [
                "When is {name}'s deploy freeze?",
                "When does the deploy freeze of {name}'s team start?",
            ],
            [
                "Our deploy freeze starts on {v}.",
                "The deploy freeze is scheduled for {v}.",
                "We go into the deploy freeze on {v}.",
            ],
            [
                "Heads up, the deploy freeze got moved to {v}.",
                "Management pushed the deploy freeze to {v}.",
            ],
            [
                "The other team's deploy freeze is on {v}.",
                "My friend's company freezes deploys on {v}.",
            ],
            ["{v} is my cousin's birthday.", "The gym closes for renovation on {v}."],
            [
                "March 3",
                "March 17",
                "April 2",
                "April 21",
                "May 5",
                "May 19",
                "June 9",
                "June 30",
            ],
        ),
        _rel(
            "team-size",
            ["How many people are on {name}'s team?", "How big is {name}'s team?"],
            ["My team has {v} people.", "There are {v} of us on my team.", "We're a team of {v}."],
            ["After the reorg my team has {v} people.", "We're {v} people on the team now."],
            ["My sister manages a team of {v}.", "The design team has {v} people."],
            ["I ran {v} kilometres this morning.", "We ordered {v} pizzas for the party."],
            [str(n) for n in range(3, 12)],
        ),
    ),
    small_talk=(
        "How was your weekend?",
        "Pretty quiet, mostly reading on the balcony.",
        "The weather has been awful lately.",
        "I finally finished that series everyone talks about.",
        "Did you catch the match last night?",
        "I'm trying to drink less coffee, it's not going well.",
        "My plants are finally growing again.",
        "I need a holiday, honestly.",
        "Have you tried the new bakery on the corner?",
        "I've been going to bed way too late.",
        "My phone screen cracked again.",
        "We should play board games again soon.",
    ),
    acks=(
        "Oh wow, that's a big change!",
        "Good to know, thanks for telling me.",
        "Really? I didn't see that coming.",
        "That sounds exciting.",
        "Noted!",
    ),
)

_HELDOUT = Variant(
    names=_words(
        "Amara Bruno Chloe Diego Esther Felix Gwen Hamid Ivy Jakob Kira Luca Mina Nora Oscar "
        "Priya Rafael Sofia Theo Uma Viktor Wendy Xavier Zara"
    ),
    relations=(
        _rel(
            "city",
            ["In which city is {name} living?", "What city is {name}'s home?"],
            ["My flat is in {v}.", "I've been living in {v} for a while.", "I call {v} home."],
            ["Big news: I relocated to {v}.", "The move went fine, I'm settled in {v} now."],
            ["My aunt resides in {v}.", "A college friend of mine lives in {v}."],
            ["Flights to {v} are cheap this season.", "I watched a travel show about {v}."],
            _words("Seville Antwerp Tallinn Bergen Marseille Ljubljana Cork Basel Turin Brno"),
        ),
        _rel(
            "employer",
            ["What company is {name} employed by?", "Where does {name} have a job now?"],
            ["I'm on staff at {v}.", "{v} pays my salary.", "I've got a position at {v}."],
            ["I accepted an offer from {v}.", "New chapter: my first week at {v} went well."],
            ["My uncle is on staff at {v}.", "A friend from school just got an offer from {v}."],
            ["{v} sponsored the marathon.", "Apparently {v} shares went up."],
            [
                "Tyrell Systems",
                "Aperture Works",
                "Massive Dynamic",
                "Oscorp",
                "Wonka Logistics",
                "Gringotts Finance",
                "Monarch Media",
                "Pied Piper",
                "Duff Brewing",
                "Nakatomi Trading",
            ],
        ),
        _rel(
            "partner",
            ["Who is {name}'s partner?", "Who is {name} seeing?"],
            ["I've been seeing {v}.", "{v} is my partner.", "Me and {v} are a couple."],
            ["I met someone, {v}, and we're together now.", "We broke up; I'm now with {v}."],
            ["My brother married {v}.", "My roommate is seeing {v}."],
            ["A guy named {v} fixed my bike.", "{v} from accounting sent cookies."],
            _words("Avery Blake Cameron Dana Emerson Finley Harper Kendall Logan Parker"),
        ),
        _rel(
            "food",
            ["What dish does {name} love most?", "What's {name}'s top food?"],
            [
                "{v} is my all-time favourite dish.",
                "Give me {v} and I'm happy.",
                "I'd pick {v} over anything else.",
            ],
            ["My tastes changed, now I'm all about {v}.", "I've discovered {v}, my favourite now."],
            ["My mum adores {v}.", "My flatmate cooks {v} every week."],
            ["The canteen served {v} today.", "I found a cookbook full of {v} recipes."],
            _words(
                "biryani moussaka pierogi ceviche shakshuka gnocchi bibimbap empanadas laksa tagine"
            ),
        ),
        _rel(
            "deadline",
            ["When is {name}'s budget review?", "What date is the budget review for {name}?"],
            [
                "The budget review is on {v}.",
                "We present the budget review on {v}.",
                "Mark {v}, that's our budget review.",
            ],
            [
                "The budget review was rescheduled to {v}.",
                "Finance bumped our budget review to {v}.",
            ],
            ["My partner's budget review is on {v}.", "The sales team's budget review is on {v}."],
            ["The concert is on {v}.", "My dentist appointment is on {v}."],
            [
                "July 8",
                "July 22",
                "August 4",
                "August 26",
                "September 10",
                "September 29",
                "October 14",
                "November 3",
            ],
        ),
        _rel(
            "team-size",
            ["How many members does {name}'s team have?", "What's the headcount of {name}'s team?"],
            [
                "We're {v} engineers in my group.",
                "Headcount in my group is {v}.",
                "My group is {v} strong.",
            ],
            [
                "Headcount changed, my group is {v} now.",
                "With the new hires we're at {v} in my group.",
            ],
            ["My friend's startup has {v} employees.", "The support group has {v} members."],
            ["I read {v} books this year.", "The bus was {v} minutes late."],
            [str(n) for n in range(12, 21)],
        ),
    ),
    small_talk=(
        "Any plans for the evening?",
        "Just cooking and an early night.",
        "It rained the whole afternoon here.",
        "I started learning the guitar, my fingers hurt.",
        "Did you see the eclipse photos?",
        "My neighbours are renovating, it's so loud.",
        "I went hiking on Sunday, my legs are sore.",
        "I keep forgetting my umbrella.",
        "Have you read anything good recently?",
        "The train was packed this morning.",
        "I adopted a sourdough starter, it's demanding.",
        "We should grab lunch next week.",
    ),
    acks=(
        "No way, since when?",
        "Thanks for the update.",
        "Huh, that's news to me.",
        "Wow, how do you feel about it?",
        "Got it.",
    ),
)

VARIANTS = {"dev": _DEV, "heldout": _HELDOUT}
"""The two variants; they share no template, name or value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratedSet:
    """The rows of ``turns.jsonl``, ``qa.jsonl`` and ``truth.jsonl``."""

    turns: tuple[dict[str, Any], ...]
    qa: tuple[dict[str, Any], ...]
    truth: tuple[dict[str, Any], ...]


@dataclass(slots=True, kw_only=True)
class _Statement:
    speaker: str
    relation: Relation
    value: str
    template: str
    session: int
    wording: str
    dia_id: str = ""


def _session_times(rng: random.Random, count: int) -> list[datetime]:
    when = datetime(2023, 1, 2, tzinfo=UTC) + timedelta(days=rng.randint(0, 120))
    out = []
    for _ in range(count):
        when += timedelta(days=rng.randint(3, 20))
        out.append(when.replace(hour=rng.randint(8, 21), minute=rng.choice(range(0, 60, 5))))
    return out


def _locomo_time(when: datetime) -> str:
    hour = when.hour % 12 or 12
    half = "am" if when.hour < 12 else "pm"
    return f"{hour}:{when.minute:02d} {half} on {when.day} {when:%B}, {when.year}"


def _fact(rng: random.Random, speaker: str, relation: Relation, sessions: int) -> list[_Statement]:
    """A fact's statements: the first, then one to three updates, in distinct sessions."""
    updates = rng.randint(1, 3)
    when = sorted(rng.sample(range(sessions), updates + 1))
    values = rng.sample(relation.values, updates + 1)
    template = rng.choice(relation.state)
    out = [
        _Statement(
            speaker=speaker,
            relation=relation,
            value=values[0],
            template=template,
            session=when[0],
            wording="first",
        )
    ]
    for session, value in zip(when[1:], values[1:], strict=True):
        if rng.random() < 0.5:
            wording = "same-wording"
        else:
            wording = "new-wording"
            pool = [t for t in (*relation.change, *relation.state) if t != template]
            template = rng.choice(pool)
        out.append(
            _Statement(
                speaker=speaker,
                relation=relation,
                value=value,
                template=template,
                session=session,
                wording=wording,
            )
        )
    return out


Own = Mapping[tuple[str, str], set[str]]
"""``(speaker, relation) -> the values that speaker states of themself``."""


def _filler(
    rng: random.Random, variant: Variant, speakers: Sequence[str], own: Own
) -> tuple[str, str]:
    """Small talk, a fact about someone else, or a value mentioned in passing; a speaker
    never gives another person, or a passing mention, a value of their own fact."""
    speaker = rng.choice(speakers)
    roll = rng.random()
    if roll < 0.4:
        return speaker, rng.choice(variant.small_talk)
    relation = rng.choice(variant.relations)
    template = rng.choice(relation.other if roll < 0.7 else relation.mention)
    mine = own.get((speaker, relation.name), set())
    values = [v for v in relation.values if v not in mine] or list(relation.values)
    return speaker, template.format(v=rng.choice(values))


def _session_turns(
    rng: random.Random,
    variant: Variant,
    speakers: Sequence[str],
    facts: Sequence[_Statement],
    own: Own,
) -> list[tuple[str, str, _Statement | None]]:
    blocks: list[list[tuple[str, str, _Statement | None]]] = []
    for fact in facts:
        block: list[tuple[str, str, _Statement | None]] = [
            (fact.speaker, fact.template.format(v=fact.value), fact)
        ]
        if rng.random() < 0.4:
            other = next(s for s in speakers if s != fact.speaker)
            block.append((other, rng.choice(variant.acks), None))
        blocks.append(block)
    for _ in range(rng.randint(6, 10)):
        speaker, text = _filler(rng, variant, speakers, own)
        blocks.append([(speaker, text, None)])
    rng.shuffle(blocks)
    return [turn for block in blocks for turn in block]


def _conversation(
    rng: random.Random, variant: Variant, conv: str, speakers: Sequence[str]
) -> tuple[list[dict[str, Any]], list[list[_Statement]], list[datetime]]:
    count = rng.randint(8, 12)
    times = _session_times(rng, count)
    facts = [_fact(rng, s, r, count) for s in speakers for r in variant.relations]
    own: dict[tuple[str, str], set[str]] = {}
    for st in (st for fact in facts for st in fact):
        own.setdefault((st.speaker, st.relation.name), set()).add(st.value)
    turns: list[dict[str, Any]] = []
    for session in range(count):
        here = [st for fact in facts for st in fact if st.session == session]
        for index, (speaker, text, statement) in enumerate(
            _session_turns(rng, variant, speakers, here, own), 1
        ):
            dia_id = f"D{session + 1}:{index}"
            if statement is not None:
                statement.dia_id = dia_id
            turns.append(
                {
                    "conv": conv,
                    "session": session + 1,
                    "date_time": _locomo_time(times[session]),
                    "dia_id": dia_id,
                    "speaker": speaker,
                    "text": text,
                }
            )
    return turns, facts, times


def _question(
    rng: random.Random, conv: str, idx: int, fact: Sequence[_Statement], times: Sequence[datetime]
) -> tuple[dict[str, Any], dict[str, Any]]:
    gold = fact[-1]
    relation = gold.relation
    qa = {
        "conv": conv,
        "qa_idx": idx,
        "question": rng.choice(relation.ask).format(name=gold.speaker),
        "answer": gold.value,
        "category": 4,
        "evidence": [st.dia_id for st in fact],
    }
    pick = rng.randrange(len(fact) - 1)
    before, after = times[fact[pick].session], times[fact[pick + 1].session]
    as_of = before + (after - before) / 2
    truth = {
        "conv": conv,
        "qa_idx": idx,
        "gold": gold.dia_id,
        "stale": [st.dia_id for st in fact[:-1]],
        "as_of": as_of.isoformat(),
        "as_of_value": fact[pick].value,
        "value": gold.value,
        "tags": [relation.name, gold.wording],
    }
    return qa, truth


def generate(seed: int, *, people: int = 8, variant: str = "dev") -> GeneratedSet:
    """A knowledge-update data set: ``people // 2`` conversations of two speakers.

    Raises:
        ValueError: an unknown variant, or ``people`` odd, below 2 or above the variant's
            names.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    chosen = VARIANTS[variant]
    if people < 2 or people % 2 or people > len(chosen.names):
        raise ValueError(
            f"people must be an even number from 2 to {len(chosen.names)}, got {people}"
        )
    rng = random.Random(f"gen_updates/{variant}/{seed}")
    names = rng.sample(chosen.names, people)
    turns: list[dict[str, Any]] = []
    qa: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    for number in range(people // 2):
        conv = f"{variant}-{number + 1}"
        conv_turns, facts, times = _conversation(
            rng, chosen, conv, names[2 * number : 2 * number + 2]
        )
        turns += conv_turns
        for idx, fact in enumerate(facts):
            q, t = _question(rng, conv, idx, fact, times)
            qa.append(q)
            truth.append(t)
    return GeneratedSet(turns=tuple(turns), qa=tuple(qa), truth=tuple(truth))


def write(out_dir: str | Path, data: GeneratedSet) -> list[Path]:
    """Write the three files into ``out_dir`` (created if missing); returns their paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (("turns", data.turns), ("qa", data.qa), ("truth", data.truth)):
        path = folder / f"{name}.jsonl"
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m engramdb.eval.gen_updates OUT_DIR --seed N``."""
    parser = argparse.ArgumentParser(
        prog="python -m engramdb.eval.gen_updates",
        description="Write a seeded knowledge-update data set (turns.jsonl, qa.jsonl, "
        "truth.jsonl) for `engram eval --kind updates`.",
    )
    parser.add_argument("out_dir", help="folder to write into")
    parser.add_argument("--seed", type=int, default=0, help="seed of every choice (default 0)")
    parser.add_argument("--people", type=int, default=8, help="speakers, two per conversation")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="dev")
    args = parser.parse_args(argv)
    try:
        data = generate(args.seed, people=args.people, variant=args.variant)
    except ValueError as exc:
        parser.error(str(exc))
    for path in write(args.out_dir, data):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
