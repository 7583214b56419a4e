"""Query understanding for recall, without a language model: what a question says about
time and whom it names.

``parse_time_intent`` reads a question's temporal expressions ("last week", "in May 2023",
"the first time", "before the trip") into a :class:`TimeIntent` resolved against a
reference time; ``find_speakers`` finds the known speakers a question names ("Caroline's",
"Mel"). Both are pure functions of their arguments.
"""

from __future__ import annotations

from engramdb.query.speakers import find_speakers
from engramdb.query.temporal import Order, Relation, TimeIntent, parse_time_intent

__all__ = ["Order", "Relation", "TimeIntent", "find_speakers", "parse_time_intent"]
