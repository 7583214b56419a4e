"""A hypothesis state machine over SPANN add/delete/search/save against a dict model.

Lists are tiny (split above 10 rows, merged below 3 live) so that splits, reassignments and
merges happen all the time. With every list probed, search must equal brute force over the
model; with few lists probed, no deleted or replaced id may ever come back.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engramdb.ann.spann import SpannConfig, SpannIndex

DIM = 8
CFG = SpannConfig(
    posting_size=4,
    posting_limit=10,
    merge_threshold=3,
    replicas=3,
    closure_eps=0.3,
    candidates=6,
    max_probes=10_000,
    prune_eps=None,
    head_index="exact",
    kmeans_iters=2,
    reassign_lists=4,
    calibration_queries=0,
)
IDS = st.lists(st.integers(0, 150), min_size=1, max_size=30)


class SpannMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng(0)
        self.model: dict[int, npt.NDArray[np.float32]] = {}
        self.dead: set[int] = set()
        self.folder = Path(tempfile.mkdtemp(prefix="spann-sm-"))
        ids = np.arange(0, 80, 2, dtype=np.int64)
        vecs = self._vectors(ids.size)
        self.index = SpannIndex.build(ids, vecs, CFG, path=self.folder / "idx")
        self.model.update(zip(ids.tolist(), vecs, strict=True))

    def _vectors(self, n: int) -> npt.NDArray[np.float32]:
        x = self.rng.standard_normal((n, DIM)).astype(np.float32)
        x[:, 0] += 1.0
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    @rule(ids=IDS)
    def add(self, ids: list[int]) -> None:
        vecs = self._vectors(len(ids))
        self.index.add(np.array(ids, dtype=np.int64), vecs)
        for i, v in zip(ids, vecs, strict=True):
            self.model[i] = v
            self.dead.discard(i)

    @rule(ids=IDS)
    def delete(self, ids: list[int]) -> None:
        expected = len(set(ids) & self.model.keys())
        assert self.index.delete(np.array(ids, dtype=np.int64)) == expected
        for i in ids:
            if self.model.pop(i, None) is not None:
                self.dead.add(i)

    @rule(k=st.integers(1, 12))
    def search_all_lists(self, k: int) -> None:
        q = self._vectors(3)
        got, scores = self.index.search(q, k)
        if not self.model:
            assert np.all(got == -1)
            return
        ids = np.array(sorted(self.model), dtype=np.int64)
        vecs = np.stack([self.model[i] for i in ids.tolist()])
        exact = q @ vecs.T
        for row, ids_row, sc_row in zip(exact, got, scores, strict=True):
            want = np.sort(row)[::-1][:k]
            found = ids_row[ids_row >= 0]
            assert found.size == min(k, ids.size)
            assert len(set(found.tolist())) == found.size
            true = row[np.searchsorted(ids, found)]
            np.testing.assert_allclose(true, want, atol=1e-5)
            np.testing.assert_allclose(sc_row[: found.size], true, atol=1e-5)

    @rule(probes=st.integers(1, 3))
    def search_few_lists(self, probes: int) -> None:
        got, _ = self.index.search(self._vectors(4), 10, max_probes=probes)
        returned = set(got[got >= 0].tolist())
        assert returned <= self.model.keys()
        assert not returned & self.dead

    @precondition(lambda self: True)
    @rule()
    def save_and_reopen(self) -> None:
        self.index.save(store_version=len(self.model))
        self.index.close()
        self.index = SpannIndex.open(self.folder / "idx")
        assert self.index.store_version == len(self.model)

    @invariant()
    def counts_match(self) -> None:
        assert len(self.index) == len(self.model)

    def teardown(self) -> None:
        self.index.close()
        shutil.rmtree(self.folder, ignore_errors=True)


TestSpannStateMachine = SpannMachine.TestCase
TestSpannStateMachine.settings = settings(max_examples=20, stateful_step_count=25, deadline=None)
