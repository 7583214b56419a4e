"""The REST service over a cluster (shards in this process): the verbs a cluster offers
answer as over one store; the others are a clear 400; keys and ingest jobs live in the
cluster's service store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from engramdb.server import create_app  # noqa: E402
from engramdb.service import SERVICE_STORE, ClusterMemory, MemoryService  # noqa: E402

HASH = {"model": "hash", "dim": 64}
NOTES = [
    {"text": "Alice moved the deploy freeze to Friday.", "source": "slack"},
    {"text": "Bob owns the release train and its Tuesday departures.", "source": "slack"},
    {"text": "The budget review moved to Lisbon in May.", "source": "mail"},
    {"text": "Carol prefers green tea over coffee in the morning.", "source": "mail"},
    {"text": "The on-call rotation changes every Monday at noon.", "source": "wiki"},
]
OTHER = "Dave keeps the deploy checklist in the wiki."
NOT_ON_A_CLUSTER = "is not available on a cluster yet"


def _client(service: MemoryService) -> TestClient:
    return TestClient(create_app(service), base_url="http://127.0.0.1")


def _fill(client: TestClient) -> list[int]:
    r = client.post("/v1/memories", json={"items": NOTES, "namespace": "team"})
    assert r.status_code == 201, r.text
    assert (
        client.post("/v1/memories", json={"text": OTHER, "namespace": "other"}).status_code == 201
    )
    return [m["id"] for m in r.json()["memories"]]


@pytest.fixture
def cluster_service(tmp_path: Path) -> Iterator[MemoryService]:
    """A service over a 3-shard cluster (shards in this process)."""
    memory = ClusterMemory.open(
        None, root=tmp_path / "cluster", shards=3, backend="local", embed=HASH
    )
    with MemoryService(memory) as service:
        yield service


@pytest.fixture
def client(cluster_service: MemoryService) -> Iterator[TestClient]:
    with _client(cluster_service) as c:
        yield c


@pytest.fixture
def store_client(tmp_path: Path) -> Iterator[TestClient]:
    """The same service over one store: the answers a cluster must give."""
    with MemoryService.open(tmp_path / "one.db", embed=HASH) as service, _client(service) as c:
        yield c


def _hits(client: TestClient, body: dict[str, Any]) -> list[tuple[int, str, float]]:
    r = client.post("/v1/recall", json=body)
    assert r.status_code == 200, r.text
    return [(h["id"], h["text"], round(h["score"], 9)) for h in r.json()["hits"]]


def test_add_get_recall_answer_as_one_store(client: TestClient, store_client: TestClient) -> None:
    ids = _fill(client)
    assert _fill(store_client) == ids == [1, 2, 3, 4, 5]
    shards = client.app.state.service.memory.cluster_stats().shards  # type: ignore[union-attr]
    assert sum(1 for s in shards.values() if s.memories) >= 2  # spread over shards
    for body in (
        {"query": "deploy freeze", "k": 3},
        {"query": "who moved the deploy freeze", "namespace": "team", "channels": "lexical"},
        {"query": "budget Lisbon", "where": {"source": "mail"}},
        {"query": "deploy", "namespace": "other", "channels": "dense"},
    ):
        assert _hits(client, body) == _hits(store_client, body), body
    top = _hits(client, {"query": "deploy freeze Friday", "namespace": "team", "k": 1})
    assert top[0][:2] == (1, NOTES[0]["text"])
    memory = client.get("/v1/memories/3").json()
    assert memory["text"] == NOTES[2]["text"]
    assert memory["source"] == "mail"
    assert memory["sightings"][0]["kind"] == "origin"
    missing = client.get("/v1/memories/999")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "NotFound"


def test_recognize_exact_near_new(client: TestClient) -> None:
    _fill(client)
    exact = client.post("/v1/recognize", json={"text": NOTES[1]["text"]}).json()
    assert exact["kind"] == "exact" and exact["match"]["id"] == 2
    near = client.post(
        "/v1/recognize", json={"text": "Bob owns the release train and its Tuesday departure."}
    ).json()
    assert near["kind"] == "near" and near["match"]["id"] == 2
    assert 0.5 < near["score"] < 1.0
    new = client.post("/v1/recognize", json={"text": "Something nobody ever said."}).json()
    assert new["kind"] == "new" and new["match"] is None
    elsewhere = client.post(
        "/v1/recognize", json={"text": NOTES[1]["text"], "namespace": "other"}
    ).json()
    assert elsewhere["kind"] == "new"


def test_stats_context_and_forget(client: TestClient, cluster_service: MemoryService) -> None:
    _fill(client)
    stats = client.get("/v1/stats").json()
    assert stats["namespaces"] == {"other": 1, "team": 5}
    assert stats["memories"] == 6
    assert stats["embedder"].startswith("hash")
    assert stats["store"]["memories"] == 6
    assert stats["store"]["lexical"]["rows"] == 6
    assert stats["store"]["dense"]["count"] == 6
    assert stats["store"]["path"] == str(cluster_service.memory.root)  # type: ignore[union-attr]
    packed = client.post(
        "/v1/context", json={"query": "deploy freeze", "budget_tokens": 200, "k": 3}
    ).json()
    assert "Friday" in packed["text"] and "[1]" in packed["text"]

    assert client.delete("/v1/memories/1").json() == {"forgotten": 1}
    assert client.get("/v1/memories/1").status_code == 404
    assert client.delete("/v1/memories/1").status_code == 404
    r = client.post("/v1/forget", json={"source": "mail", "namespace": "team"})
    assert r.json() == {"forgotten": 2}
    r = client.post("/v1/forget", json={"where": {"source": "wiki"}})
    assert r.json() == {"forgotten": 1}
    assert client.get("/v1/stats").json()["namespaces"] == {"other": 1, "team": 1}
    left = _hits(client, {"query": "deploy freeze release budget on-call", "k": 10})
    assert sorted(i for i, _, _ in left) == [2, 6]


def test_verbs_a_cluster_lacks_are_a_clear_400(client: TestClient) -> None:
    _fill(client)
    refused = [
        client.get("/v1/memories/1/history"),
        client.post("/v1/memories/1/supersede", json={"new": 2}),
        client.delete("/v1/memories/1/supersede"),
        client.get("/v1/export"),
        client.post("/v1/recall", json={"query": "deploy", "coverage": 0.9}),
    ]
    for r in refused:
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "InvalidInput"
        assert "cluster" in error["message"]
    assert NOT_ON_A_CLUSTER in refused[0].json()["error"]["message"]
    assert NOT_ON_A_CLUSTER in refused[3].json()["error"]["message"]
    neighbours = client.get("/v1/memories/1/neighbours").json()
    assert neighbours == {"graph": False, "neighbours": []}
    assert client.get("/v1/memories/2").status_code == 200  # the service still answers


def test_keys_live_in_the_service_store(tmp_path: Path, cluster_service: MemoryService) -> None:
    assert (tmp_path / "cluster" / SERVICE_STORE).is_file()
    alice = cluster_service.keys.add("alice", ["alice"]).key
    bob = cluster_service.keys.add("bob", ["bob"], read_only=True).key
    with _client(cluster_service) as client:
        assert client.get("/v1/stats").status_code == 401
        as_alice = {"Authorization": f"Bearer {alice}"}
        as_bob = {"Authorization": f"Bearer {bob}"}
        r = client.post("/v1/memories", json={"text": OTHER}, headers=as_alice)
        assert r.status_code == 201 and r.json()["namespace"] == "alice"
        assert client.post("/v1/memories", json={"text": OTHER}, headers=as_bob).status_code == 403
        found = client.post("/v1/recall", json={"query": "deploy checklist"}, headers=as_alice)
        assert [h["text"] for h in found.json()["hits"]] == [OTHER]
        unseen = client.post("/v1/recall", json={"query": "deploy checklist"}, headers=as_bob)
        assert unseen.json()["hits"] == []
        assert client.get("/v1/memories/1", headers=as_bob).status_code == 404
        assert client.get("/v1/stats", headers=as_bob).json()["memories"] == 0


def _wait(client: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_ingest_jobs_write_to_the_shards(client: TestClient) -> None:
    notes = (
        b"# Deploys\n\nAlice moved the deploy freeze to Friday.\n\nBob owns the release train.\n"
    )
    files = [("files", ("notes.md", notes, "text/markdown"))]
    r = client.post("/v1/ingest", files=files, data={"namespace": "team"})
    assert r.status_code == 202, r.text
    job = _wait(client, r.json()["id"])
    assert job["state"] == "done" and job["error"] is None
    assert job["done"] == job["records"] > 0
    hits = client.post("/v1/recall", json={"query": "deploy freeze", "namespace": "team"}).json()
    assert hits["hits"][0]["source"] == "notes.md"
    assert client.get("/v1/stats").json()["namespaces"]["team"] >= 1


def test_the_service_verbs_in_process(cluster_service: MemoryService) -> None:
    """What the MCP tools and the CLI call: the same verbs, without HTTP."""
    from engramdb.errors import InvalidInputError
    from engramdb.service import Scope

    scope = Scope.local()
    added = cluster_service.remember(scope, [n["text"] for n in NOTES], namespace="team")
    assert added.added == 5
    assert cluster_service.recall(scope, "deploy freeze", k=1)[0].id == 1
    assert cluster_service.stats(Scope.local("team")).memories == 5
    with pytest.raises(InvalidInputError, match=NOT_ON_A_CLUSTER):
        cluster_service.ids(scope)
    with pytest.raises(InvalidInputError, match=NOT_ON_A_CLUSTER):
        list(cluster_service.export(scope))


def test_a_cluster_opened_without_a_service_store_says_so(tmp_path: Path) -> None:
    from engramdb.errors import InvalidInputError

    with ClusterMemory.open(
        None, root=tmp_path / "c", shards=1, backend="local", embed=HASH, home=False
    ) as memory:
        with pytest.raises(InvalidInputError, match="service store"):
            MemoryService(memory, own=False)
        assert not (tmp_path / "c" / SERVICE_STORE).exists()


def test_health_and_whoami(client: TestClient) -> None:
    """``/healthz`` and ``/v1/whoami`` need nothing of the cluster."""
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/v1/whoami").json()["keys_required"] is False


def test_verbs_from_many_threads(cluster_service: MemoryService) -> None:
    """Request threads share one cluster: concurrent writes and recalls all land."""
    from concurrent.futures import ThreadPoolExecutor

    from engramdb.service import Scope

    scope = Scope.local()

    def work(i: int) -> tuple[int, int]:
        added = cluster_service.remember(scope, [f"thread {i} wrote note number {i}"])
        hits = cluster_service.recall(scope, f"note number {i}", k=3)
        return added.ids[0], len(hits)

    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(work, range(24)))
    assert sorted(i for i, _ in done) == list(range(1, 25))
    assert all(n >= 1 for _, n in done)
    assert cluster_service.stats(scope).memories == 24
