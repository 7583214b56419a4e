"""Fixtures of the cluster tests: a seeded SciFact subset, one store over it (the oracle),
and a local Ray instance shared by the tests that need one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _cluster_support import HASH, scifact_queries, scifact_records

from engramdb import Memory, Record


@pytest.fixture(scope="session")
def records() -> list[Record]:
    return scifact_records()


@pytest.fixture(scope="session")
def queries() -> list[str]:
    return scifact_queries()


@pytest.fixture(scope="session")
def one_store(records: list[Record]) -> Iterator[Memory]:
    """One store holding the subset, added in batches of 100 (as the clusters are)."""
    with Memory.open(":memory:", **HASH) as memory:
        for start in range(0, len(records), 100):
            memory.add_many(records[start : start + 100])
        yield memory


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """A local Ray instance for the tests marked ``ray`` (started once, a few seconds)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()
