"""Facts that change over REST: recall as_of / include_superseded, history, supersede and
undo, within a key's scope."""

from __future__ import annotations

from typing import Any

from conftest import Keys


def _add(client: Any, headers: dict[str, str], namespace: str) -> list[int]:
    items = [
        {"text": "Alice lives in Porto.", "event_time": "2023-01-01T00:00:00Z"},
        {"text": "Alice lives in Lisbon.", "event_time": "2023-06-01T00:00:00Z"},
    ]
    r = client.post("/v1/memories", json={"items": items, "namespace": namespace}, headers=headers)
    assert r.status_code == 201, r.text
    return [m["id"] for m in r.json()["memories"]]


def test_recall_history_supersede_and_undo(client: Any, keys: Keys) -> None:
    porto, lisbon = _add(client, keys.alice, "alice")
    body = {"query": "where does Alice live", "namespace": "alice", "k": 2}
    hits = client.post("/v1/recall", json=body, headers=keys.alice).json()["hits"]
    assert [h["id"] for h in hits] == [lisbon, porto]
    assert hits[1]["valid_to"] is not None and hits[1]["relations"][0]["new"] == lisbon
    old = client.post(
        "/v1/recall", json={**body, "as_of": "2023-03-01T00:00:00Z"}, headers=keys.alice
    ).json()["hits"]
    assert [h["id"] for h in old] == [porto]

    history = client.get(f"/v1/memories/{porto}/history", headers=keys.alice).json()
    assert [v["id"] for v in history["versions"]] == [porto, lisbon]
    assert history["links"][0]["detail"] == {"old_value": "porto", "new_value": "lisbon"}

    undone = client.delete(f"/v1/memories/{porto}/supersede", headers=keys.alice)
    assert undone.status_code == 200 and undone.json()["undone"] is not None
    again = client.delete(f"/v1/memories/{porto}/supersede", headers=keys.alice)
    assert again.status_code == 404
    made = client.post(
        f"/v1/memories/{porto}/supersede", json={"new": lisbon, "at": 1}, headers=keys.alice
    )
    assert made.status_code == 200 and made.json()["origin"] == "manual"
    cycle = client.post(f"/v1/memories/{lisbon}/supersede", json={"new": porto}, headers=keys.alice)
    assert cycle.status_code == 400 and "cycle" in cycle.json()["error"]["message"]


def test_history_and_supersede_stay_in_scope(client: Any, keys: Keys) -> None:
    porto, lisbon = _add(client, keys.alice, "alice")
    assert client.get(f"/v1/memories/{porto}/history", headers=keys.bob).status_code == 404
    r = client.post(f"/v1/memories/{porto}/supersede", json={"new": lisbon}, headers=keys.bob)
    assert r.status_code == 404
    shared = _add(client, keys.alice, "shared")
    r = client.delete(f"/v1/memories/{shared[0]}/supersede", headers=keys.reader)
    assert r.status_code == 403
    bad = client.post("/v1/recall", json={"query": "x", "as_of": "soon"}, headers=keys.alice)
    assert bad.status_code == 422
