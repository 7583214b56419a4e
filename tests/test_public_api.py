"""The public surface: a curated, sorted __all__ whose names all exist."""

from __future__ import annotations

import engramdb


def test_all_is_sorted_and_complete() -> None:
    names = engramdb.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(engramdb, name), name
    public = {n for n in dir(engramdb) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(names), public - set(names)


def test_errors_share_one_root() -> None:
    for name in engramdb.__all__:
        obj = getattr(engramdb, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, engramdb.EngramError), name
            assert isinstance(obj.code, int) and obj.name
