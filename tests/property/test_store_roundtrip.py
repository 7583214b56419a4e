"""Whatever is added comes back from get() unchanged (text normalised, metadata exact)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import Memory
from engramdb.ingest import normalize_text

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)
texts = st.text(min_size=1, max_size=300).filter(lambda t: normalize_text(t) != "")


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(
    text=texts,
    meta=st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=4),
    event_time=st.none() | st.floats(min_value=0, max_value=4e9),
    source=st.none() | st.text(min_size=1, max_size=40),
)
def test_add_get_roundtrip(
    text: str, meta: dict[str, Any], event_time: float | None, source: str | None
) -> None:
    with Memory.open(
        ":memory:",
        embed={"model": "hash", "dim": 16},
        chunk={"max_tokens": 10_000, "overlap_tokens": 0},
    ) as mem:
        result = mem.add(text, source=source, meta=meta, event_time=event_time)
        record = mem.get(result.ids[0])
        assert record.text == normalize_text(text)
        assert dict(record.meta) == meta
        assert record.event_time == event_time
        assert record.source == source
        assert record.count == 1
