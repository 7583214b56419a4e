"""Two keys, random add / recall / recognize / forget / get / delete / export / stats through
the REST API: no response to one key ever carries the other's ids or texts, and nothing one
key does removes the other's memories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from engramdb.server import create_app  # noqa: E402
from engramdb.service import MemoryService  # noqa: E402

HASH = {"model": "hash", "dim": 64}
KEYS = ("alice", "bob")
MARK = {"alice": "alfa", "bob": "bravo"}  # a word only that key's texts contain
WORDS = ["deploy", "freeze", "friday", "lisbon", "meeting", "budget", "release", "notes"]
SOURCES = ["slack", "wiki", "mail"]

words = st.lists(st.sampled_from(WORDS), min_size=2, max_size=6)


class TwoKeys(RuleBasedStateMachine):
    """The model: every memory id with its owner and the sources it was seen in."""

    added = Bundle("added")

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(_tmp_factory.mktemp("iso"))
        self.service = MemoryService.open(self.folder / "s.db", embed=HASH)
        self.headers = {
            who: {"Authorization": f"Bearer {self.service.keys.add(who, [who]).key}"}
            for who in KEYS
        }
        self.client = TestClient(create_app(self.service))
        self.owner: dict[int, str] = {}
        self.sources: dict[int, set[str]] = {}
        self.texts: dict[str, set[str]] = {who: set() for who in KEYS}
        self.serial = 0

    def teardown(self) -> None:
        self.client.close()
        self.service.close()

    # -- helpers ----------------------------------------------------------------------------

    def call(self, who: str, method: str, url: str, **kwargs: Any) -> Any:
        response = self.client.request(method, url, headers=self.headers[who], **kwargs)
        assert response.status_code < 500, response.text
        self.check_clean(who, response.text)
        return response

    def check_clean(self, who: str, body: str) -> None:
        other = "bob" if who == "alice" else "alice"
        assert MARK[other] not in body, f"{who} saw {other}'s text: {body[:300]}"
        for text in self.texts[other]:
            assert text not in body
        if not body.startswith(("{", "[")):
            return
        for line in body.splitlines():  # one JSON document, or NDJSON
            for memory_id in _ids(json.loads(line)):
                assert self.owner.get(memory_id, who) == who, f"{who} saw {other}'s id {memory_id}"

    def alive(self, memory_id: int) -> bool:
        return bool(self.sources.get(memory_id))

    # -- rules ------------------------------------------------------------------------------

    @rule(target=added, who=st.sampled_from(KEYS), body=words, source=st.sampled_from(SOURCES))
    def add(self, who: str, body: list[str], source: str) -> Any:
        self.serial += 1
        text = f"{MARK[who]}{self.serial % 5} " + " ".join(body)
        response = self.call(
            who, "POST", "/v1/memories", json={"text": text, "source": source}
        )
        assert response.status_code == 201
        self.texts[who].add(text)
        ids = [m["id"] for m in response.json()["memories"]]
        for memory_id, made in zip(ids, response.json()["memories"], strict=True):
            if made["decision"] == "new":  # ids are never handed out twice
                assert memory_id not in self.owner, f"id {memory_id} given again"
                self.owner[memory_id] = who
                self.sources[memory_id] = set()
            assert self.owner[memory_id] == who
            self.sources[memory_id].add(source)
        return multiple(*ids)

    @rule(who=st.sampled_from(KEYS), query=words, marked=st.booleans())
    def recall(self, who: str, query: list[str], marked: bool) -> None:
        other = "bob" if who == "alice" else "alice"
        text = " ".join(query) + (f" {MARK[other]}1" if marked else "")
        response = self.client.post(
            "/v1/recall", json={"query": text, "k": 20}, headers=self.headers[who]
        )
        assert response.status_code == 200, response.text
        body = response.json()
        self.check_clean(who, json.dumps(body["hits"]))  # the query itself is echoed
        for hit in body["hits"]:
            assert hit["namespace"] == who

    @rule(who=st.sampled_from(KEYS), data=st.data())
    def recognize(self, who: str, data: st.DataObject) -> None:
        other = "bob" if who == "alice" else "alice"
        pool = sorted(self.texts[other] | self.texts[who])
        if not pool:
            return
        text = data.draw(st.sampled_from(pool))
        if text in self.texts[other]:
            # checked raw: the other key's text is in the request, so only the answer counts
            response = self.client.post(
                "/v1/recognize", json={"text": text}, headers=self.headers[who]
            )
            assert response.status_code == 200
            match = response.json()["match"]
            assert match is None or (
                match["namespace"] == who and self.owner[match["id"]] == who
            )
        else:
            self.call(who, "POST", "/v1/recognize", json={"text": text})

    @rule(who=st.sampled_from(KEYS), memory_id=added)
    def get(self, who: str, memory_id: int) -> None:
        response = self.call(who, "GET", f"/v1/memories/{memory_id}")
        if self.owner[memory_id] == who and self.alive(memory_id):
            assert response.status_code == 200
        else:
            assert response.status_code == 404

    @rule(who=st.sampled_from(KEYS), memory_id=consumes(added))
    def delete(self, who: str, memory_id: int) -> None:
        response = self.call(who, "DELETE", f"/v1/memories/{memory_id}")
        if self.owner[memory_id] == who and self.alive(memory_id):
            assert response.status_code == 200
            self.sources[memory_id] = set()
        else:
            assert response.status_code == 404

    @rule(who=st.sampled_from(KEYS), source=st.sampled_from(SOURCES))
    def forget_source(self, who: str, source: str) -> None:
        response = self.call(who, "POST", "/v1/forget", json={"source": source})
        assert response.status_code == 200
        expected = 0
        for memory_id, owner in self.owner.items():
            if owner == who and source in self.sources[memory_id]:
                self.sources[memory_id].discard(source)
                expected += not self.sources[memory_id]
        assert response.json()["forgotten"] == expected

    @rule(who=st.sampled_from(KEYS))
    def export(self, who: str) -> None:
        response = self.call(who, "GET", "/v1/export")
        assert response.status_code == 200
        for line in response.text.splitlines():
            record = json.loads(line)
            if "text" in record:
                assert record["namespace"] == who

    @rule(who=st.sampled_from(KEYS))
    def stats(self, who: str) -> None:
        body = self.call(who, "GET", "/v1/stats").json()
        assert set(body["namespaces"]) <= {who}
        mine = sum(1 for i, o in self.owner.items() if o == who and self.alive(i))
        assert body["memories"] == mine

    @invariant()
    def each_key_keeps_its_memories(self) -> None:
        if not hasattr(self, "service"):
            return
        for who in KEYS:
            mine = {i for i, o in self.owner.items() if o == who and self.alive(i)}
            listed = set(self.service.memory.ids(namespace=who)) if mine else set()
            assert listed == mine


def _ids(value: Any) -> list[int]:
    """Every memory id in a JSON answer (``id`` fields of hits, memories and matches)."""
    found: list[int] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("id"), int) and ("text" in item or "decision" in item):
                found.append(item["id"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


_tmp_factory: pytest.TempPathFactory


@pytest.fixture(autouse=True)
def _tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    global _tmp_factory
    _tmp_factory = tmp_path_factory


TwoKeys.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_two_keys_never_see_each_other = TwoKeys.TestCase
