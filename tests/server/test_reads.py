"""Reads over REST: recall, recognize, context, stats, whoami, export, healthz."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engramdb._version import __version__
from engramdb.config import MAX_K

NOTES = [
    {"text": "Alice moved the deploy freeze to Friday.", "source": "slack", "meta": {"t": "a"}},
    {"text": "Bob booked the budget meeting in Lisbon.", "source": "mail", "meta": {"t": "b"}},
    {"text": "The release notes mention the new search page.", "source": "wiki"},
]


@pytest.fixture
def filled(client: Any) -> Any:
    assert client.post("/v1/memories", json={"items": NOTES, "namespace": "work"}).status_code
    return client


def test_recall_answers_hits_with_why(filled: Any) -> None:
    r = filled.post("/v1/recall", json={"query": "when is the deploy freeze?", "k": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "when is the deploy freeze?"
    assert body["abstain"] is False
    assert body["reason"] is None
    top = body["hits"][0]
    assert top["text"] == NOTES[0]["text"]
    assert top["namespace"] == "work"
    assert top["source"] == "slack"
    assert set(top["why"]) <= {"lexical", "dense", "graph"}
    assert {"rank", "score", "phrases"} == set(top["why"]["lexical"])
    assert len(body["hits"]) <= 2


def test_recall_options_filter_and_namespace(filled: Any) -> None:
    r = filled.post("/v1/recall", json={"query": "meeting", "where": {"t": "b"}, "k": 5})
    assert [h["source"] for h in r.json()["hits"]] == ["mail"]
    r = filled.post("/v1/recall", json={"query": "meeting", "namespace": "elsewhere"})
    assert r.json()["hits"] == []
    r = filled.post("/v1/recall", json={"query": "freeze", "channels": "lexical"})
    assert set(r.json()["hits"][0]["why"]) == {"lexical"}
    r = filled.post("/v1/recall", json={"query": "freeze", "channels": ["lexical", "dense"]})
    assert r.status_code == 200
    r = filled.post("/v1/recall", json={"query": "freeze", "min_relevance": 0.999999})
    assert r.status_code == 200
    assert r.json()["abstain"] in (True, False)


def test_recall_bad_input_is_4xx(filled: Any) -> None:
    cases = [
        ({"query": ""}, 422),
        ({"query": "x", "k": 0}, 422),
        ({"query": "x", "k": MAX_K + 1}, 422),
        ({"query": "x", "k": 2**70}, 422),
        ({"query": "x", "coverage": 1.0}, 422),
        ({"query": "x", "rerank": "bogus"}, 422),
        ({"query": "x", "channels": "telepathy"}, 422),
        ({"query": "x", "channels": "graph"}, 400),
        ({"query": "x", "coverage": 0.9}, 400),
        ({"query": "x", "where": {"$or": "no"}}, 400),
        ({"query": "x", "where": {"id": {"$gt": 2**62}}}, 200),
    ]
    for body, status in cases:
        r = filled.post("/v1/recall", json=body)
        assert r.status_code == status, (body, r.json())


def test_deeply_nested_filters_are_4xx(filled: Any) -> None:
    where: dict[str, Any] = {"t": "a"}
    for _ in range(20):
        where = {"$and": [where]}
    assert filled.post("/v1/recall", json={"query": "x", "where": where}).status_code == 200
    for _ in range(20):
        where = {"$and": [where]}
    r = filled.post("/v1/recall", json={"query": "x", "where": where})
    assert r.status_code == 422
    assert "nested deeper than 64 levels" in r.json()["error"]["message"]
    deeper = "[" * 5000 + "]" * 5000
    r = filled.post(
        "/v1/recall",
        content=f'{{"query": "x", "where": {{"a": {deeper}}}}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert "nested deeper" in r.json()["error"]["message"]


def test_recognize_exact_near_new(filled: Any) -> None:
    exact = filled.post("/v1/recognize", json={"text": NOTES[0]["text"]}).json()
    assert exact["kind"] == "exact"
    assert exact["match"]["text"] == NOTES[0]["text"]
    new = filled.post("/v1/recognize", json={"text": "Something never said."}).json()
    assert new["kind"] == "new"
    assert new["match"] is None
    elsewhere = filled.post(
        "/v1/recognize", json={"text": NOTES[0]["text"], "namespace": "other"}
    ).json()
    assert elsewhere["kind"] == "new"


def test_context_is_packed_and_cited(filled: Any) -> None:
    r = filled.post(
        "/v1/context",
        json={"query": "deploy freeze", "budget_tokens": 200, "order": "edges", "k": 3},
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {
        "query",
        "order",
        "budget_tokens",
        "tokens",
        "counter",
        "text",
        "blocks",
        "dropped",
    }
    assert body["query"] == "deploy freeze"
    assert body["order"] == "edges"
    assert 0 < body["tokens"] <= 200
    assert body["blocks"][0]["citation"]["label"]
    assert "[1]" in body["text"]
    r = filled.post("/v1/context", json={"query": "x", "budget_tokens": 0})
    assert r.status_code == 422
    r = filled.post("/v1/context", json={"query": "x", "order": "random"})
    assert r.status_code == 422


def test_stats_without_keys_include_the_store(filled: Any) -> None:
    body = filled.get("/v1/stats").json()
    assert body["namespaces"] == {"work": 3}
    assert body["memories"] == 3
    assert body["embedder"].startswith("hash")
    assert body["store"]["memories"] == 3
    assert body["store"]["lexical"]["rows"] == 3
    assert body["store"]["dense"]["count"] == 3


def test_whoami_without_keys(client: Any) -> None:
    assert client.get("/v1/whoami").json() == {
        "key": None,
        "namespaces": None,
        "write": True,
        "keys_required": False,
    }


def test_export_streams_ndjson(filled: Any) -> None:
    r = filled.get("/v1/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    texts = {line.get("text") for line in lines}
    assert {n["text"] for n in NOTES} <= texts
    with_vectors = filled.get("/v1/export", params={"namespace": "work", "vectors": "true"})
    assert with_vectors.status_code == 200
    assert len(with_vectors.text) > len(r.text) + 3 * 64  # a 64-d vector per memory


def test_export_of_many_memories_comes_in_several_chunks(client: Any) -> None:
    items = [
        {"text": f"note {i}: " + " ".join(_words(i, 40)), "meta": {"pad": "x" * 3000}}
        for i in range(40)
    ]
    client.post("/v1/memories", json={"items": items, "namespace": "bulk"})
    with client.stream("GET", "/v1/export", params={"namespace": "bulk"}) as r:
        lines = b"".join(r.iter_bytes()).decode().splitlines()
    assert sum(1 for line in lines if '"text"' in line) == 40
    assert sum(len(line) for line in lines) > 2 * 64 * 1024  # more than one chunk


def _words(seed: int, n: int) -> list[str]:
    vocabulary = [w for note in NOTES for w in note["text"].lower().rstrip(".").split()]
    state = seed * 7919 + 1
    out = []
    for _ in range(n):
        state = (state * 1103515245 + 12345) % 2**31
        out.append(vocabulary[state % len(vocabulary)])
    return out


def test_healthz_and_openapi(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "version": __version__}
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/v1/memories",
        "/v1/memories/{memory_id}",
        "/v1/memories/{memory_id}/neighbours",
        "/v1/memories/{memory_id}/history",
        "/v1/memories/{memory_id}/supersede",
        "/v1/forget",
        "/v1/recall",
        "/v1/recognize",
        "/v1/context",
        "/v1/stats",
        "/v1/whoami",
        "/v1/ingest",
        "/v1/jobs/{job_id}",
        "/v1/jobs",
        "/v1/export",
        "/v1/tools",
        "/v1/tools/recall",
        "/v1/demos",
        "/v1/demos/recall",
        "/healthz",
    } == paths
    recall = schema["paths"]["/v1/recall"]["post"]
    for status in ("400", "401", "403", "404", "413", "422", "500"):
        ref = recall["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorEnvelope")
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_index_statistics_with_numpy_values_serialise() -> None:
    import numpy as np

    from engramdb.server.models import IndexStatsOut

    stats = IndexStatsOut.model_validate(
        {
            "kind": "spann",
            "configured": "auto",
            "spann_threshold": 10,
            "count": 1,
            "memories": 1,
            "pending": 0,
            "data_version": 1,
            "log_seq": 1,
            "store_version": 1,
            "stale": False,
            "path": None,
            "last_build": None,
            "spann": {"count": np.int64(3), "sizes": {"p50": np.float32(0.5)}, "v": np.arange(2)},
        }
    )
    assert json.loads(stats.model_dump_json())["spann"] == {
        "count": 3,
        "sizes": {"p50": 0.5},
        "v": [0, 1],
    }
