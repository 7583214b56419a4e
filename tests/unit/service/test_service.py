"""MemoryService: every verb stays inside its caller's scope; keys; scope rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb.errors import (
    ForbiddenError,
    InvalidFilterError,
    InvalidInputError,
    NotFoundError,
    UnauthorizedError,
)
from engramdb.service import MemoryService, Scope

HASH = {"model": "hash", "dim": 64}
ALICE = Scope("alice", ("alice", "shared"), True)
BOB = Scope("bob", ("bob",), True)
READER = Scope("reader", ("shared",), False)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[MemoryService]:
    with MemoryService.open(tmp_path / "s.db", embed=HASH) as svc:
        yield svc


@pytest.fixture
def filled(service: MemoryService) -> MemoryService:
    service.remember(
        ALICE, [{"text": "Alice moved the deploy freeze to Friday.", "source": "slack"}]
    )
    service.remember(ALICE, ["The shared wiki lives at wiki.example.org."], namespace="shared")
    service.remember(
        BOB, [{"text": "Bob's secret: the deploy freeze is a myth.", "source": "slack"}]
    )
    return service


def _texts(hits: object) -> set[str]:
    return {h.text for h in hits}  # type: ignore[attr-defined]


def test_scope_rules() -> None:
    assert ALICE.default_namespace == "alice"
    assert Scope.local().default_namespace == "default"
    assert ALICE.writable(None) == "alice"
    assert ALICE.writable("shared") == "shared"
    with pytest.raises(NotFoundError, match="'bob' not found"):
        ALICE.writable("bob")
    with pytest.raises(ForbiddenError, match="read-only"):
        READER.writable("shared")
    assert ALICE.readable(None) == ("alice", "shared")
    assert ALICE.readable("bob") == ()
    assert Scope.local().readable(None) is None
    assert Scope.local("me").readable(None) == ("me",)


def test_remember_reports_each_decision(service: MemoryService) -> None:
    first = service.remember(ALICE, ["one fact here", "another fact there"])
    again = service.remember(
        ALICE, [{"text": "one fact here", "source": "elsewhere"}, "a brand new fact"]
    )
    repeat = service.remember(ALICE, ["one fact here"])
    assert first.decisions == ("new", "new")
    assert again.decisions[0] == "exact" and again.ids[0] == first.ids[0]
    assert again.decisions[1] == "new"
    assert again.inputs == (0, 1)
    assert repeat.decisions == ("skipped",)


def test_recall_never_crosses_namespaces(filled: MemoryService) -> None:
    mine = _texts(filled.recall(ALICE, "deploy freeze", k=10))
    assert "Alice moved the deploy freeze to Friday." in mine
    assert not any("Bob" in t for t in mine)
    assert _texts(filled.recall(BOB, "deploy freeze", k=10)) == {
        "Bob's secret: the deploy freeze is a myth."
    }
    # a namespace outside the scope reads as empty, not as an error that names others
    assert len(filled.recall(ALICE, "deploy freeze", namespace="bob")) == 0
    assert len(filled.recall(ALICE, "deploy freeze", namespace="nowhere")) == 0
    assert len(filled.recall(Scope.local(), "deploy freeze", k=10)) == 3
    with pytest.raises(InvalidFilterError):
        filled.recall(ALICE, "deploy", namespace="bob", where={"$and": []})


def test_recall_with_a_filter_keeps_the_scope(filled: MemoryService) -> None:
    hits = filled.recall(ALICE, "deploy freeze", where={"source": "slack"})
    assert _texts(hits) == {"Alice moved the deploy freeze to Friday."}


def test_recognize_sees_only_the_scope(filled: MemoryService) -> None:
    bobs = "Bob's secret: the deploy freeze is a myth."
    assert filled.recognize(BOB, bobs).kind == "exact"
    assert filled.recognize(ALICE, bobs).kind != "exact"
    assert filled.recognize(ALICE, bobs, namespace="bob").kind == "new"
    assert filled.recognize(ALICE, bobs, namespace="bob").match is None
    found = filled.recognize(ALICE, "The shared wiki lives at wiki.example.org.")
    assert found.kind == "exact" and found.match is not None
    assert found.match.namespace == "shared"


def test_ids_outside_the_scope_are_not_found(filled: MemoryService) -> None:
    bob_id = filled.ids(BOB)[0]
    with pytest.raises(NotFoundError) as outside:
        filled.get(ALICE, bob_id)
    with pytest.raises(NotFoundError) as missing:
        filled.get(ALICE, 10_000)
    assert str(outside.value) == f"no memory with id {bob_id}"
    assert str(missing.value) == "no memory with id 10000"
    with pytest.raises(NotFoundError):
        filled.delete(ALICE, bob_id)
    assert filled.get(BOB, bob_id).namespace == "bob"
    filled.delete(BOB, bob_id)
    with pytest.raises(NotFoundError):
        filled.get(BOB, bob_id)


def test_forget_stays_in_the_scope(filled: MemoryService) -> None:
    # both alice and bob have a memory from "slack": alice forgetting it leaves bob's
    assert filled.forget(ALICE, source="slack") == 1
    assert len(filled.ids(BOB)) == 1
    assert filled.forget(ALICE, where={}) == 1  # the shared wiki note
    assert filled.ids(ALICE) == []
    assert len(filled.ids(BOB)) == 1
    with pytest.raises(NotFoundError):
        filled.forget(ALICE, where={}, namespace="bob")
    with pytest.raises(InvalidInputError):
        filled.forget(ALICE)
    with pytest.raises(InvalidInputError):
        filled.forget(ALICE, source="x", where={})
    with pytest.raises(InvalidFilterError):
        filled.forget(ALICE, where={"$or": []})


def test_read_only_keys_cannot_write(filled: MemoryService) -> None:
    with pytest.raises(ForbiddenError):
        filled.remember(READER, ["anything"])
    with pytest.raises(ForbiddenError):
        filled.forget(READER, source="slack")
    shared = filled.ids(READER)[0]
    with pytest.raises(ForbiddenError):
        filled.delete(READER, shared)
    assert filled.get(READER, shared).namespace == "shared"


def test_stats_count_only_the_scope(filled: MemoryService) -> None:
    mine = filled.stats(ALICE)
    assert dict(mine.namespaces) == {"alice": 1, "shared": 1}
    assert mine.memories == 2 and mine.store is None
    assert dict(filled.stats(Scope("x", ("empty",), True)).namespaces) == {}
    everything = filled.stats(Scope.local())
    assert everything.memories == 3 and everything.store is not None


def test_keys_are_hashed_scoped_and_revocable(service: MemoryService, tmp_path: Path) -> None:
    assert service.authenticate(None) == Scope.local()  # no keys: a local caller
    made = service.keys.add("alice", ["alice", "shared", "alice"])
    reader = service.keys.add("ci", ["shared"], read_only=True)
    assert made.key.startswith("egm_") and made.info.namespaces == ("alice", "shared")
    assert service.authenticate(made.key) == ALICE
    assert service.authenticate(reader.key) == Scope("ci", ("shared",), False)
    for bad in (None, "", "egm_nope", made.key + "x"):
        with pytest.raises(UnauthorizedError):
            service.authenticate(bad)
    with pytest.raises(InvalidInputError, match="exists already"):
        service.keys.add("alice", ["x"])
    with pytest.raises(InvalidInputError):
        service.keys.add("bad name!", ["x"])
    with pytest.raises(InvalidInputError):
        service.keys.add("nobody", [])
    with pytest.raises(InvalidInputError):
        service.keys.add("weird", ["no spaces allowed"])
    assert [k.name for k in service.keys.list()] == ["alice", "ci"]
    service.keys.revoke("alice")
    with pytest.raises(UnauthorizedError):
        service.authenticate(made.key)
    with pytest.raises(NotFoundError):
        service.keys.revoke("alice")
    assert [k.name for k in service.keys.list()] == ["ci"]
    assert [k.revoked is not None for k in service.keys.list(revoked=True)] == [True, False]
    again = service.keys.add("alice", ["alice"])  # the name is free again
    assert service.authenticate(again.key).namespaces == ("alice",)
    # only hashes are stored: the key itself is nowhere in the file
    service.memory.close()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*") if p.is_file())
    assert made.key.encode() not in data and again.key.encode() not in data


def test_neighbours_need_the_graph_and_the_scope(filled: MemoryService) -> None:
    alice_id = filled.ids(ALICE, namespace="alice")[0]
    assert filled.graph is False
    assert filled.neighbours(ALICE, alice_id) == []
    with pytest.raises(NotFoundError):
        filled.neighbours(BOB, alice_id)


def test_host_names_and_loopback() -> None:
    from engramdb.service import host_name, is_loopback

    assert host_name("127.0.0.1:8765") == "127.0.0.1"
    assert host_name("[::1]:80") == "::1"
    assert host_name("localhost") == "localhost"
    assert host_name("::1") == "::1"  # a bare IPv6 address has no port
    assert all(map(is_loopback, ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.10", "example.com", ""]))


def test_without_keys_only_loopback_hosts_are_served(service: MemoryService) -> None:
    assert service.authenticate(None, host="127.0.0.1:8765") == Scope.local()
    assert service.authenticate(None, host="") == Scope.local()
    with pytest.raises(ForbiddenError, match="localhost only"):
        service.authenticate(None, host="rebound.example:8765")
    key = service.keys.add("k", ["ns"]).key
    assert service.authenticate(key, host="rebound.example").namespaces == ("ns",)


def test_event_times_are_seconds_or_iso_8601() -> None:
    from engramdb.service import event_time

    assert event_time(None) is None
    assert event_time(1714644000) == 1714644000.0
    assert event_time("1714644000") == 1714644000.0
    assert event_time("2024-05-02T10:00:00Z") == 1714644000.0
    assert event_time("2024-05-02T10:00:00") == 1714644000.0  # naive: UTC
    assert event_time("2024-05-02T12:00:00+02:00") == 1714644000.0
    for bad in ("yesterday", "", float("nan"), float("inf"), 1e18, -1e12, True, [1]):
        with pytest.raises(InvalidInputError, match="event_time"):
            event_time(bad)  # type: ignore[arg-type]
