"""The error envelope, request ids, body limits, strict JSON and the access log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from engramdb.errors import StoreError
from engramdb.server import ServerSettings
from engramdb.service import MemoryService

ENVELOPE_KEYS = {"status", "type", "message", "request_id"}


def _error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert ENVELOPE_KEYS <= set(error) <= ENVELOPE_KEYS | {"details"}
    assert error["status"] == status
    assert error["type"] == kind
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_unknown_route_is_a_404_envelope(client: Any) -> None:
    error = _error(client.get("/v1/nothing-here"), 404, "NotFound")
    assert error["message"] == "Not Found: GET /v1/nothing-here"
    _error(client.post("/v1/nothing-here", json={}), 404, "NotFound")
    _error(client.get("/no/such/file.js"), 404, "NotFound")


def test_wrong_method_is_a_405_envelope_with_allow(client: Any) -> None:
    r = client.put("/v1/memories", json={})
    _error(r, 405, "MethodNotAllowed")
    assert r.headers["allow"] == "POST"
    _error(client.delete("/v1/stats"), 405, "MethodNotAllowed")
    r = client.options("/v1/memories/7")
    _error(r, 405, "MethodNotAllowed")
    assert r.headers["allow"] == "DELETE, GET"
    _error(client.post("/healthz"), 405, "MethodNotAllowed")


def test_unexpected_exception_is_a_generic_500_with_the_traceback_logged(
    make_client: Any, service: MemoryService, monkeypatch: Any, caplog: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(service, "stats", broken)
    client = make_client()
    with caplog.at_level(logging.ERROR, logger="engramdb.server"):
        r = client.get("/v1/stats")
    error = _error(r, 500, "Internal")
    assert "secret" not in r.text
    assert error["message"] == "the server failed on this request (see its log)"
    assert any("secret internals" in (rec.exc_text or "") for rec in caplog.records)


def test_engram_errors_map_by_code_and_name(
    make_client: Any, service: MemoryService, monkeypatch: Any
) -> None:
    def closed(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("the store is read-only")

    monkeypatch.setattr(service, "stats", closed)
    error = _error(make_client().get("/v1/stats"), 500, "Store")
    assert error["message"] == "the store is read-only"


def test_validation_error_has_a_readable_message_and_details(client: Any) -> None:
    r = client.post("/v1/recall", json={"query": "", "k": "many", "bogus": 1})
    error = _error(r, 422, "Validation")
    assert "query: String should have at least 1 character" in error["message"]
    assert "k: Input should be a valid integer" in error["message"]
    assert "bogus: Extra inputs are not permitted" in error["message"]
    assert {tuple(d["loc"]) for d in error["details"]} == {
        ("body", "query"),
        ("body", "k"),
        ("body", "bogus"),
    }
    assert all(set(d) == {"loc", "msg", "type"} for d in error["details"])


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"query": NaN}', "NaN is not a JSON number"),
        (b'{"query": "x", "min_relevance": Infinity}', "Infinity is not a JSON number"),
        (b'{"query": "x", "min_relevance": 1e400}', "out of range"),
        (b'{"query": "x", "k": 123456789012345678901234567890}', "does not fit in 64 bits"),
        (b'{"query": "\\ud800"}', "unpaired surrogate"),
        (b'{"query": "caf\xe9"}', "not UTF-8"),
        (b'{"query": ', "the body is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 64 levels"),
    ],
)
def test_json_that_would_fail_later_is_422_at_the_door(client: Any, body: bytes, said: str) -> None:
    r = client.post("/v1/recall", content=body, headers={"content-type": "application/json"})
    error = _error(r, 422, "Validation")
    assert said in error["message"]


def test_non_json_content_type_is_422(client: Any) -> None:
    r = client.post("/v1/recall", content=b"query=x", headers={"content-type": "text/plain"})
    _error(r, 422, "Validation")


def test_body_over_the_limit_is_413_by_content_length(make_client: Any) -> None:
    client = make_client(ServerSettings(max_body_bytes=1000))
    r = client.post("/v1/memories", json={"text": "x" * 2000})
    error = _error(r, 413, "TooLarge")
    assert "1,000-byte limit" in error["message"]
    assert client.post("/v1/memories", json={"text": "small"}).status_code == 201


def test_body_over_the_limit_is_413_while_streaming(make_client: Any) -> None:
    client = make_client(ServerSettings(max_body_bytes=1000))

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"text": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    r = client.post("/v1/memories", content=chunks(), headers={"content-type": "application/json"})
    _error(r, 413, "TooLarge")
    assert client.get("/v1/stats").json()["memories"] == 0


def test_default_json_limit_is_8_mib(client: Any) -> None:
    r = client.post("/v1/memories", json={"text": "x" * (8 * 1024 * 1024)})
    _error(r, 413, "TooLarge")


def test_request_id_is_echoed_or_made(client: Any) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    assert r.headers["x-request-id"] == "trace-42.a:b"
    r = client.get("/v1/memories/999", headers={"X-Request-ID": "trace-43"})
    assert r.json()["error"]["request_id"] == "trace-43"
    for insane in ("", "has spaces", "x" * 200, "<script>", "-leading-dash"):
        r = client.get("/healthz", headers={"X-Request-ID": insane})
        made = r.headers["x-request-id"]
        assert made != insane
        assert len(made) == 32
    first = client.get("/healthz").headers["x-request-id"]
    assert first != client.get("/healthz").headers["x-request-id"]


def test_access_log_has_one_line_per_request_without_the_key(
    make_client: Any, service: MemoryService, caplog: Any
) -> None:
    key = service.keys.add("alice", ["alice"]).key
    client = make_client()
    with caplog.at_level(logging.INFO, logger="engramdb.access"):
        client.post(
            "/v1/memories",
            json={"text": "a secret body"},
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "req-1"},
        )
        client.get("/v1/stats")
    lines = [r.getMessage() for r in caplog.records if r.name == "engramdb.access"]
    assert len(lines) == 2
    assert lines[0].startswith("POST /v1/memories 201 ")
    assert lines[0].endswith("key=alice id=req-1")
    assert "ms key=" in lines[0]
    assert lines[1].startswith("GET /v1/stats 401 ")
    assert " key=- " in lines[1]
    assert not any(key in r.getMessage() or "secret body" in r.getMessage() for r in caplog.records)


def test_docs_and_ui_are_served_without_a_key(client: Any, keys: Any) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/healthz").status_code == 200
    index = client.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert index.headers["x-content-type-options"] == "nosniff"
    assert client.get("/v1/stats").status_code == 401


def test_ui_folder_absent_leaves_the_api_working(make_client: Any, tmp_path: Any) -> None:
    client = make_client(ServerSettings(static_dir=tmp_path / "missing"))
    _error(client.get("/"), 404, "NotFound")
    assert client.get("/healthz").status_code == 200
