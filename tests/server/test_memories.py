"""Writes and single memories over REST: add, get, neighbours, delete, forget."""

from __future__ import annotations

from typing import Any

from engramdb.service import MemoryService

FREEZE = "Alice moved the deploy freeze to Friday."


def test_add_one_text_answers_201_with_each_chunk_decision(client: Any) -> None:
    r = client.post(
        "/v1/memories",
        json={
            "text": FREEZE,
            "namespace": "alice",
            "source": "slack",
            "meta": {"team": "infra"},
            "event_time": "2024-05-02T10:00:00Z",
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert body == {
        "namespace": "alice",
        "added": 1,
        "exact": 0,
        "near": 0,
        "skipped": 0,
        "memories": [{"id": body["memories"][0]["id"], "decision": "new", "input": 0}],
    }
    again = client.post("/v1/memories", json={"text": FREEZE, "namespace": "alice"}).json()
    assert again["exact"] == 1
    assert again["memories"][0]["decision"] == "exact"


def test_add_items_in_one_transaction_with_epoch_and_iso_times(client: Any) -> None:
    items = [
        {"text": "The release train leaves on Tuesdays.", "event_time": 1714644000},
        {"text": "Budget review moved to Lisbon.", "event_time": "2024-05-02T10:00:00+02:00"},
        {"text": "Naive times are UTC.", "event_time": "2024-05-02T10:00:00"},
    ]
    r = client.post("/v1/memories", json={"items": items})
    assert r.status_code == 201
    body = r.json()
    assert body["namespace"] == "default"
    assert [m["input"] for m in body["memories"]] == [0, 1, 2]
    times = [client.get(f"/v1/memories/{m['id']}").json()["event_time"] for m in body["memories"]]
    assert times == [1714644000.0, 1714636800.0, 1714644000.0]


def test_get_memory_has_the_documented_shape(client: Any) -> None:
    added = client.post(
        "/v1/memories", json={"text": FREEZE, "source": "slack", "meta": {"team": "infra"}}
    ).json()
    memory_id = added["memories"][0]["id"]
    memory = client.get(f"/v1/memories/{memory_id}").json()
    assert set(memory) == {
        "id",
        "namespace",
        "text",
        "source",
        "position",
        "event_time",
        "ingest_time",
        "meta",
        "count",
        "sightings",
    }
    assert memory["text"] == FREEZE
    assert memory["meta"] == {"team": "infra"}
    assert memory["sightings"][0]["kind"] == "origin"
    assert set(memory["position"]) == {"document", "ordinal", "start", "end"}


def test_unknown_memory_is_404_in_the_envelope(client: Any) -> None:
    r = client.get("/v1/memories/424242")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "NotFound"
    assert r.json()["error"]["message"] == "no memory with id 424242"
    assert client.delete("/v1/memories/424242").status_code == 404
    assert client.get("/v1/memories/424242/neighbours").status_code == 404


def test_ids_beyond_64_bits_or_negative_are_422(client: Any) -> None:
    for bad in ("18446744073709551616", "-1", "abc", "1.5"):
        r = client.get(f"/v1/memories/{bad}")
        assert r.status_code == 422, bad
        assert r.json()["error"]["type"] == "Validation"


def test_delete_forgets_one_memory(client: Any) -> None:
    memory_id = client.post("/v1/memories", json={"text": FREEZE}).json()["memories"][0]["id"]
    assert client.delete(f"/v1/memories/{memory_id}").json() == {"forgotten": 1}
    assert client.get(f"/v1/memories/{memory_id}").status_code == 404


def test_forget_by_source_and_by_filter(client: Any) -> None:
    client.post(
        "/v1/memories",
        json={
            "items": [{"text": "one note", "source": "slack"}, {"text": "two", "source": "wiki"}]
        },
    )
    client.post("/v1/memories", json={"text": "three notes", "meta": {"team": "infra"}})
    assert client.post("/v1/forget", json={"source": "slack"}).json() == {"forgotten": 1}
    r = client.post("/v1/forget", json={"where": {"team": "infra"}, "namespace": "default"})
    assert r.json() == {"forgotten": 1}
    assert client.get("/v1/stats").json()["memories"] == 1


def test_forget_needs_exactly_one_criterion(client: Any) -> None:
    for body in ({}, {"source": "a", "where": {"x": 1}}):
        r = client.post("/v1/forget", json=body)
        assert r.status_code == 422
        assert "exactly one of source and where" in r.json()["error"]["message"]
    r = client.post("/v1/forget", json={"where": {"$bogus": 1}})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "InvalidFilter"


def test_neighbours_without_the_graph_are_empty(client: Any) -> None:
    memory_id = client.post("/v1/memories", json={"text": FREEZE}).json()["memories"][0]["id"]
    r = client.get(f"/v1/memories/{memory_id}/neighbours", params={"k": 5})
    assert r.json() == {"graph": False, "neighbours": []}
    assert client.get(f"/v1/memories/{memory_id}/neighbours?k=0").status_code == 422


def test_neighbours_share_phrases_when_the_graph_is_on(
    make_client: Any, service: MemoryService, monkeypatch: Any
) -> None:
    client = make_client()
    memory_id = client.post("/v1/memories", json={"text": FREEZE}).json()["memories"][0]["id"]
    other = client.post("/v1/memories", json={"text": "The deploy freeze ends soon."}).json()
    other_id = other["memories"][0]["id"]
    record = service.get(service.authenticate(None), other_id)
    monkeypatch.setattr(type(service), "graph", property(lambda self: True))
    monkeypatch.setattr(
        service, "neighbours", lambda scope, mid, k=10: [(record, ("deploy freeze",))]
    )
    r = client.get(f"/v1/memories/{memory_id}/neighbours")
    assert r.json() == {
        "graph": True,
        "neighbours": [
            {"id": other_id, "text": "The deploy freeze ends soon.", "phrases": ["deploy freeze"]}
        ],
    }


def test_add_validation_errors_are_readable(client: Any) -> None:
    cases = [
        ({}, "give either text or items"),
        ({"text": FREEZE, "items": [{"text": "x"}]}, "give either text or items"),
        ({"text": "   "}, "text: String should match pattern"),
        ({"text": ""}, "text: String should have at least 1 character"),
        ({"text": FREEZE, "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"text": FREEZE, "event_time": "yesterday"}, "event_time must be ISO-8601"),
        ({"text": FREEZE, "event_time": 1e300}, "between the years 1 and 9999"),
        ({"items": []}, "items: List should have at least 1 item"),
    ]
    for body, said in cases:
        r = client.post("/v1/memories", json=body)
        assert r.status_code == 422, body
        error = r.json()["error"]
        assert error["type"] == "Validation"
        assert said in error["message"], (body, error["message"])
        assert error["details"], body


def test_top_level_fields_apply_to_items_without_their_own(client: Any) -> None:
    items = [{"text": "first note"}, {"text": "second note", "source": "wiki", "meta": {"a": 1}}]
    body = {"items": items, "source": "slack", "meta": {"team": "infra"}, "event_time": 100}
    ids = [m["id"] for m in client.post("/v1/memories", json=body).json()["memories"]]
    first, second = (client.get(f"/v1/memories/{i}").json() for i in ids)
    assert (first["source"], first["meta"], first["event_time"]) == (
        "slack",
        {"team": "infra"},
        100,
    )
    assert (second["source"], second["meta"], second["event_time"]) == ("wiki", {"a": 1}, 100)


def test_engine_refusals_are_400(client: Any) -> None:
    r = client.post("/v1/memories", json={"text": "\x00"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "InvalidInput"
    r = client.post("/v1/memories", json={"text": FREEZE, "namespace": "no spaces"})
    assert r.status_code == 422
    assert "namespace: String should match pattern" in r.json()["error"]["message"]
