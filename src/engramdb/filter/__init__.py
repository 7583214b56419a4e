"""Filters on memory columns and metadata: a mapping DSL, its AST, SQL and Python forms.

``parse_filter`` turns ``{"team": {"$in": ["infra", "ml"]}}`` into a :data:`Filter`;
``compile_filter`` turns that into an SQLite ``WHERE`` fragment with ``?`` parameters, and
``to_predicate`` into a Python function with exactly the same meaning (see
:mod:`engramdb.filter.expr` for the rules). Filters nest at most :data:`MAX_DEPTH` levels.
"""

from __future__ import annotations

from engramdb.filter.expr import (
    COLUMNS,
    MAX_DEPTH,
    And,
    Compare,
    Field,
    Filter,
    FilterLike,
    Not,
    Op,
    Or,
    Scalar,
    parse_filter,
)
from engramdb.filter.predicate import Row, to_predicate
from engramdb.filter.sql import compile_filter

__all__ = [
    "COLUMNS",
    "MAX_DEPTH",
    "And",
    "Compare",
    "Field",
    "Filter",
    "FilterLike",
    "Not",
    "Op",
    "Or",
    "Row",
    "Scalar",
    "compile_filter",
    "parse_filter",
    "to_predicate",
]
