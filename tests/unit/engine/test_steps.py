"""Recall in steps: the bridge logic on a chain corpus, stop conditions, clues, LLM fallbacks."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from engramdb import Hits, Memory
from engramdb.engine._read import ReadOptions
from engramdb.engine._steps import StepPlan, check_steps, recall_in_steps
from engramdb.errors import ConfigError, InvalidInputError
from engramdb.retrieve.prf import bridge_phrases, rm3_terms, rocchio

pytest.importorskip("spacy")

HASH = {"model": "hash", "dim": 64}
CHAIN = [
    "The Zephyr Lamp was designed at Orvalis Works.",
    "Orvalis Works was founded by Tamsin Quell.",
    "Tamsin Quell grew up in Brevik Harbor.",
    "Brevik Harbor lies beside the Kallenmoor Sea.",
]
"""Hop k shares no word with the question; only hop k-1 names it."""
FILLER = [
    "The museum opened a new wing for modern sculpture.",
    "Rain fell over the valley for most of the week.",
    "A quiet library keeps maps of old trade routes.",
    "The orchestra rehearsed a symphony in the evening.",
    "Farmers sold apples and pears at the market square.",
    "The bridge was repainted after the winter storms.",
]
QUESTION = "Zephyr Lamp"


@pytest.fixture(scope="module")
def chain() -> Iterator[Memory]:
    with Memory.open(":memory:", embed=HASH, graph={"enabled": True}) as mem:
        mem.add_many(CHAIN + FILLER)
        yield mem


def _texts(hits: Any) -> list[str]:
    return [h.text for h in hits]


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_each_step_reaches_exactly_one_more_hop(chain: Memory, steps: int) -> None:
    hits = chain.recall(QUESTION, k=10, channels="lexical", steps=steps)
    assert sorted(_texts(hits)) == sorted(CHAIN[:steps])
    assert _texts(hits)[0] == CHAIN[0]


def test_why_names_the_step_and_the_bridge(chain: Memory) -> None:
    hits = chain.recall(QUESTION, k=10, channels="lexical", steps=3, clues="phrases")
    why = {h.text: h.why["step"] for h in hits}
    assert (why[CHAIN[0]].rank, why[CHAIN[0]].phrases) == (1, ())
    assert (why[CHAIN[1]].rank, why[CHAIN[1]].phrases) == (2, ("orvalis works",))
    assert (why[CHAIN[2]].rank, why[CHAIN[2]].phrases) == (3, ("tamsin quell",))
    assert all("lexical" in h.why for h in hits)


def test_one_step_is_a_plain_recall(chain: Memory) -> None:
    plain = chain.recall(QUESTION, k=10, channels="hybrid+graph")
    one = chain.recall(QUESTION, k=10, channels="hybrid+graph", steps=1)
    assert [(h.id, h.score) for h in plain] == [(h.id, h.score) for h in one]
    assert all("step" not in h.why for h in one)


def test_bridges_follow_the_chain(chain: Memory) -> None:
    index = chain.graph.index()
    ids = {h.text: h.id for h in chain.recall(QUESTION, k=10, channels="lexical", steps=4)}
    first = bridge_phrases(index, [(ids[CHAIN[0]], 1.0)])
    assert [(b.phrase, b.weight, b.source) for b in first] == [
        ("orvalis works", 0.5, ids[CHAIN[0]])  # in 2 passages; "zephyr lamp" is in one
    ]
    node = index.phrase_index("orvalis works")
    assert node is not None
    used = {node}
    assert [b.phrase for b in bridge_phrases(index, [(ids[CHAIN[1]], 1.0)], exclude=used)] == [
        "tamsin quell"
    ]
    assert bridge_phrases(index, [(ids[CHAIN[1]], 0.0)]) == []


def test_graph_channel_recalls_in_steps(chain: Memory) -> None:
    hits = chain.recall(QUESTION, k=3, channels="graph", steps=3)
    assert _texts(hits) == CHAIN[:3]
    assert all("graph" in h.why for h in hits)


def test_steps_stop_when_no_bridge_is_left() -> None:
    with Memory.open(":memory:", embed=HASH, graph={"enabled": True}) as mem:
        mem.add_many(["The Zephyr Lamp glows.", *FILLER])
        hits = mem.recall(QUESTION, k=10, channels="lexical", steps=3)
        assert _texts(hits) == ["The Zephyr Lamp glows."]
        assert "step" not in hits[0].why


def _plan_recall(mem: Memory, plan: StepPlan, channels: tuple[str, ...] = ("lexical",)) -> Hits:
    pools = recall_in_steps(
        mem._reader,
        [QUESTION],
        k=10,
        namespace=None,
        where=None,
        channels=channels,
        options=ReadOptions(),
        plan=plan,
        model=mem.relevance_model,
    )
    return pools[0]


def test_steps_stop_when_a_step_adds_nothing_confident(chain: Memory) -> None:
    assert _texts(_plan_recall(chain, StepPlan(steps=4, confident=1.01))) == [CHAIN[0]]
    assert len(_plan_recall(chain, StepPlan(steps=4, confident=0.0))) == 4


def test_terms_clue_expands_the_lexical_query(chain: Memory) -> None:
    hits = chain.recall(QUESTION, k=10, channels="lexical", clues="terms")
    assert sorted(_texts(hits)) == sorted(CHAIN[:2])  # clues alone mean two steps
    assert hits[1].why["step"].phrases


def test_centroid_clue_drives_the_next_dense_search(
    chain: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = chain.recall(CHAIN[2], k=1, channels="lexical")[0]
    vector = chain._vectors_for([target])[0]
    calls: list[tuple[int, list[float]]] = []

    def spy(query: Any, vectors: Any, weights: Any, *, beta: float) -> Any:
        calls.append((len(vectors), list(weights)))
        assert beta == StepPlan().beta
        return vector  # the next step searches with this vector

    monkeypatch.setattr("engramdb.engine._steps.rocchio", spy)
    plan = StepPlan(steps=2, clues=("centroid",), window=2, lead=1)  # 10 memories fit 1 window
    hits = _plan_recall(chain, plan, channels=("dense",))
    assert calls and calls[0][0] == plan.feedback
    assert target.text in _texts(hits[:2])
    assert next(h for h in hits if h.id == target.id).why["step"].rank == 2


def test_bad_steps_and_clues_are_clear_errors(chain: Memory) -> None:
    for bad in (0, 6, 1.5, True):
        with pytest.raises(InvalidInputError, match="steps must be"):
            chain.recall(QUESTION, steps=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown clue"):
        chain.recall(QUESTION, steps=2, clues="psychic")
    with pytest.raises(InvalidInputError, match="needs the memory graph"):
        check_steps(2, "phrases", graph=False)
    assert check_steps(None, None, graph=False) == (1, ("terms",))
    assert check_steps(None, "terms,centroid", graph=True) == (2, ("terms", "centroid"))
    with pytest.raises(ConfigError, match="llm_url"):
        chain.recall(QUESTION, steps=2, clues="llm")


# -- the LLM path, against a local stub server ---------------------------------------------


class _Stub(BaseHTTPRequestHandler):
    mode = "ok"
    answer = "Tamsin Quell"
    seen: list[dict[str, Any]] = []  # noqa: RUF012 - shared with the test

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        if self.mode == "slow":
            time.sleep(1.0)
        if self.mode == "http500":
            self._reply(500, b'{"error": {"message": "boom"}}')
        elif self.mode == "malformed":
            self._reply(200, b'{"choices": []}')
        else:
            answer = {"choices": [{"message": {"role": "assistant", "content": self.answer}}]}
            self._reply(200, json.dumps(answer).encode())

    def _reply(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    pytest.importorskip("httpx")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _llm_memory(url: str) -> Memory:
    mem = Memory.open(
        ":memory:",
        embed=HASH,
        graph={"enabled": True, "llm_url": url, "llm_model": "tiny", "llm_timeout": 0.3},
    )
    mem.add_many(CHAIN + FILLER)
    return mem


def test_llm_clues_lead_the_next_step(stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Stub, "mode", "ok")
    monkeypatch.setattr(_Stub, "answer", "1. Brevik Harbor")
    with _llm_memory(stub) as mem, warnings.catch_warnings():
        warnings.simplefilter("error")
        hits = mem.recall(QUESTION, k=10, channels="lexical", steps=2, clues="llm")
    # the model named hops 3-4 straight away: the memory's own bridge (hop 2) is not used
    assert sorted(_texts(hits)) == sorted([CHAIN[0], CHAIN[2], CHAIN[3]])
    assert all(h.why["step"].phrases == ("Brevik Harbor",) for h in hits[1:])
    sent = _Stub.seen[0]
    assert sent["model"] == "tiny" and sent["temperature"] == 0
    assert QUESTION in sent["messages"][1]["content"]
    assert CHAIN[0] in sent["messages"][1]["content"]


@pytest.mark.parametrize("mode", ["http500", "malformed", "slow"])
def test_llm_failures_fall_back_to_bridges_with_a_warning(
    stub: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Stub, "mode", mode)
    with _llm_memory(stub) as mem, pytest.warns(UserWarning, match="clue drafting failed"):
        hits = mem.recall(QUESTION, k=10, channels="lexical", steps=2, clues="llm")
    assert sorted(_texts(hits)) == sorted(CHAIN[:2])
    assert hits[1].why["step"].phrases == ("orvalis works",)


def test_llm_with_nothing_to_add_falls_back_too(stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Stub, "answer", "NONE")
    with _llm_memory(stub) as mem:
        hits = mem.recall(QUESTION, k=10, channels="lexical", steps=2, clues="llm")
    assert sorted(_texts(hits)) == sorted(CHAIN[:2])


def test_rocchio_and_rm3_oracles() -> None:
    q = np.asarray([1.0, 0.0], dtype=np.float32)
    v = np.asarray([[0.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    moved = rocchio(q, v, [1.0, 1.0], beta=1.0)
    assert np.allclose(moved, [2**-0.5, 2**-0.5])
    assert np.allclose(rocchio(q, v, [0.0, 0.0]), q)
    # P(t|R) = Σ w_D tf/|D| × idf: "quell" is in the heavier hit only
    terms = rm3_terms(["tamsin quell quell", "tamsin harbor"], [0.9, 0.1], exclude={"tamsin"}, n=2)
    assert [t for t, _ in terms] == ["quell", "harbor"]
    assert sum(w for _, w in terms) == pytest.approx(1.0)


def test_llm_clue_modes_and_settings() -> None:
    httpx = pytest.importorskip("httpx")
    from engramdb.retrieve.clues import LLMClues, parse_clues

    asked: list[str] = []

    def handler(request: Any) -> Any:
        asked.append(json.loads(request.content)["messages"][1]["content"])
        answer = "Who founded Orvalis Works?\nWhere was that person born?"
        return httpx.Response(200, json={"choices": [{"message": {"content": answer}}]})

    drafter = LLMClues(
        "http://x", model="m", mode="question", transport=httpx.MockTransport(handler)
    )
    assert drafter.draft("q?", ["passage one"]) == ["Who founded Orvalis Works?"]
    assert "follow-up question" in asked[0] and "[1] passage one" in asked[0]
    drafter.close()
    assert parse_clues("* a\n2. b\n\nnone\na") == ["a", "b"]
    for bad in ({"url": ""}, {"mode": "poem"}, {"timeout": 0}):
        settings: dict[str, Any] = {"url": "http://x", "model": "m", **bad}
        with pytest.raises(ConfigError, match="LLMClues needs"):
            LLMClues(settings.pop("url"), **settings)
