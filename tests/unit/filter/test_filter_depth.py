"""Filters nest at most MAX_DEPTH levels: deeper is InvalidFilterError, never RecursionError."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from engramdb.errors import InvalidFilterError
from engramdb.filter import (
    MAX_DEPTH,
    And,
    Compare,
    Field,
    Filter,
    Not,
    Or,
    compile_filter,
    parse_filter,
    to_predicate,
)

LEAF: dict[str, Any] = {"team": "infra"}
ROW = {"id": 1, "namespace": "default", "meta": {"team": "infra"}}


def nots(levels: int) -> dict[str, Any]:
    """A DSL filter ``levels`` deep: ``levels - 1`` $not around one comparison."""
    node: dict[str, Any] = dict(LEAF)
    for _ in range(levels - 1):
        node = {"$not": node}
    return node


def ands(levels: int, key: str = "$and") -> dict[str, Any]:
    node: dict[str, Any] = dict(LEAF)
    for _ in range(levels - 1):
        node = {key: [node]}
    return node


def compare() -> Compare:
    return Compare(Field.parse("team"), "$eq", "infra")


def deep_not_tree(levels: int) -> Filter:
    node: Filter = compare()
    for _ in range(levels - 1):
        node = Not(node)
    return node


ENTRY_POINTS = [parse_filter, compile_filter, to_predicate]


def test_max_depth_is_32() -> None:
    assert MAX_DEPTH == 32


@pytest.mark.parametrize("build", [nots, ands, functools.partial(ands, key="$or")])
def test_exactly_max_depth_is_accepted(build: Any) -> None:
    parsed = parse_filter(build(MAX_DEPTH))
    sql, _ = compile_filter(parsed)
    assert sql
    expected = (MAX_DEPTH - 1) % 2 == 0 if build is nots else True
    assert to_predicate(build(MAX_DEPTH))(ROW) is expected


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 500, 100_000])
@pytest.mark.parametrize("build", [nots, ands], ids=["not", "and"])
def test_deeper_mappings_are_refused(entry: Any, levels: int, build: Any) -> None:
    with pytest.raises(InvalidFilterError, match=rf"more than {MAX_DEPTH} levels.*MAX_DEPTH"):
        entry(build(levels))


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 100_000])
def test_deeper_trees_built_directly_are_refused(entry: Any, levels: int) -> None:
    tree = deep_not_tree(levels)
    with pytest.raises(InvalidFilterError, match=str(MAX_DEPTH)):
        entry(tree)
    assert parse_filter(deep_not_tree(MAX_DEPTH)) == deep_not_tree(MAX_DEPTH)


def test_trees_inside_mappings_count_their_levels() -> None:
    inner = deep_not_tree(MAX_DEPTH - 1)
    assert parse_filter({"$not": inner}) == Not(inner)
    with pytest.raises(InvalidFilterError, match=str(MAX_DEPTH)):
        parse_filter({"$not": {"$not": inner}})


def test_a_mapping_with_several_conditions_is_one_more_level() -> None:
    # {"a": 1, "$not": ...} is And(a, Not(...)): one level more than the $not alone.
    inner = nots(MAX_DEPTH - 1)
    assert isinstance(parse_filter({"$not": inner}), Not)
    with pytest.raises(InvalidFilterError, match=str(MAX_DEPTH)):
        parse_filter({"x": 1, "$not": inner})
    parse_filter({"x": 1, "$not": nots(MAX_DEPTH - 2)})


def test_chains_of_and_or_stay_flat() -> None:
    leaves = [Compare(Field.parse("n"), "$eq", i) for i in range(200)]
    both: Filter = leaves[0]
    either: Filter = leaves[0]
    for leaf in leaves[1:]:
        both, either = both & leaf, either | leaf
    assert both == And(tuple(leaves))
    assert either == Or(tuple(leaves))
    assert (leaves[0] & leaves[1]) == And((leaves[0], leaves[1]))
    assert (leaves[0] | (leaves[1] & leaves[2])) == Or((leaves[0], And(tuple(leaves[1:3]))))
    assert And(()) & leaves[0] == And((And(()), leaves[0]))  # And(()) keeps its meaning
    compile_filter(both)
    assert to_predicate(either)({"meta": {"n": 150}}) is True


def test_messages_about_deep_values_stay_short() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    for bad in ({"$and": {"x": deep}}, {"x": {"$eq": deep}}, {"x": {"$in": {"y": deep}}}):
        with pytest.raises(InvalidFilterError) as info:
            parse_filter(bad)
        assert len(str(info.value)) < 300
