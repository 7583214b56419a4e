"""The Python predicate on the row shapes it meets."""

from __future__ import annotations

import pytest

from engramdb.errors import InvalidFilterError, InvalidInputError
from engramdb.filter import to_predicate


def test_meta_may_be_json_text() -> None:
    keep = to_predicate({"team": "infra", "n": {"$gte": 2}})
    assert keep({"meta": '{"team": "infra", "n": 2.5}'})
    assert not keep({"meta": '{"team": "infra", "n": "3"}'})


def test_missing_columns_and_meta_read_as_null() -> None:
    assert to_predicate({"source": None, "team": None})({})
    assert not to_predicate({"source": {"$exists": True}})({"meta": {}})
    assert to_predicate({"$not": {"ordinal": {"$lt": 3}}})({"meta": None})


def test_paths_stop_at_non_objects() -> None:
    keep = to_predicate({"a.b": {"$exists": True}})
    assert keep({"meta": {"a": {"b": 0}}})
    assert not keep({"meta": {"a": ["b"]}})
    assert not keep({"meta": {"a": "b"}})
    assert not keep({"meta": {"a": {"b": None}}})


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", "3", [1]])
def test_bad_meta_raises(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="row meta"):
        to_predicate({"a": 1})({"meta": bad})


def test_invalid_filter_raises_when_built() -> None:
    with pytest.raises(InvalidFilterError):
        to_predicate({"a": {"$regex": "x"}})
