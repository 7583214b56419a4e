"""The service under load: what REST adds to a recall, throughput with concurrent clients,
recall while a bulk ingest job runs, start-up time and the server's memory, in one run.

    python bench/serve.py --quick                       # smoke run, small sizes
    python bench/serve.py                               # 10k memories, MiniLM, 10k-doc job
    python bench/serve.py --model hash --out bench/results/serve-hash.json

The store holds ``--memories`` Gutenberg texts (see bench/concurrency.py for the pool; built
once and cached under bench/cache/concurrency/); every run works on a fresh copy, with one
key, so every request is authenticated as in production. The server is ``engram serve`` in
its own process on 127.0.0.1; the clients are httpx clients with keep-alive, here.

1. Start-up: from launching ``engram serve`` to ``/healthz`` answering, and to the first
   recall answered; the server's resident memory (VmRSS) after warm-up and after the runs.
2. Added latency: ``--recalls`` hybrid recalls (k=10) through ``POST /v1/recall`` and the
   same calls in this process (``MemoryService.recall`` with the key's scope on the same
   file; the bare ``Memory.recall`` for reference), in alternating blocks of 25 so that both
   see the same machine state. Target: REST p50 - in-process p50 <= 3 ms.
3. Throughput: 1, 4 and 16 concurrent clients recalling for ``--seconds`` each: requests/s
   and p50/p99.
4. Recall during ingest: recall p99 idle against while a ``--docs``-document ingest job
   (``POST /v1/ingest``, one JSONL file) runs. Target: p99 during <= 2x idle p99.

Loops are bounded in count and time. The machine is shared and noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from concurrency import (  # type: ignore[import-not-found]
    MODELS,
    RESULTS,
    Texts,
    cached_store,
    copy_store,
    cues,
    engine_options,
    summary,
    text_pool,
)
from engramdb.service import MemoryService

K = 10
QUICK = {"memories": 2000, "docs": 1000, "recalls": 60, "seconds": 3.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_config(folder: Path, model: str) -> Path:
    config = folder / "engramdb.toml"
    embed = MODELS[model]
    lines = ["[embed]", *(f"{k} = {json.dumps(v)}" for k, v in embed.items())]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


@contextlib.contextmanager
def server(
    db: Path, config: Path, port: int, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """``engram serve`` on 127.0.0.1:port (its log, access lines included, to ``log``); yields
    the process and the seconds until /healthz answers."""
    start = time.perf_counter()
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engramdb",
                "serve",
                "--db",
                str(db),
                "--port",
                str(port),
                "--config",
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"engram serve exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("engram serve did not become ready in 120 s")
            time.sleep(0.02)
        yield proc, time.perf_counter() - start
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rest_recall(client: httpx.Client, query: str) -> float:
    start = time.perf_counter()
    response = client.post("/v1/recall", json={"query": query, "k": K})
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"recall failed: {response.status_code} {response.text[:500]}")
    return elapsed


def added_latency(
    client: httpx.Client,
    db: Path,
    model: str,
    key: str,
    queries: Sequence[str],
    n: int,
    block: int = 25,
) -> dict[str, Any]:
    """REST recalls against the same recalls in this process, in alternating blocks of
    ``block`` (call by call, each side slows the other's next call: caches, thread wake-ups).

    In this process: ``MemoryService.recall`` with the key's scope (the same call the server
    makes) and, for reference, the bare ``Memory.recall``."""
    rest: list[float] = []
    scoped: list[float] = []
    bare: list[float] = []
    with MemoryService.open(db, readonly=True, **engine_options(model, True)) as service:
        scope = service.authenticate(key)
        mem = service.memory
        for q in queries[:10]:  # warm both
            rest_recall(client, q)
            service.recall(scope, q, k=K)
        for lo in range(0, n, block):
            batch = [queries[i % len(queries)] for i in range(lo, min(lo + block, n))]
            rest += [rest_recall(client, q) for q in batch]
            for q in batch:
                t0 = time.perf_counter()
                service.recall(scope, q, k=K)
                scoped.append(time.perf_counter() - t0)
            for q in batch:
                t0 = time.perf_counter()
                mem.recall(q, k=K)
                bare.append(time.perf_counter() - t0)
    out = {
        "rest": summary(rest),
        "in_process": summary(scoped),
        "in_process_unscoped": summary(bare),
        "block": block,
    }
    out["added_p50_ms"] = out["rest"]["p50_ms"] - out["in_process"]["p50_ms"]
    out["added_p99_ms"] = out["rest"]["p99_ms"] - out["in_process"]["p99_ms"]
    return out


def throughput(
    base: str, key: str, queries: Sequence[str], clients: int, seconds: float
) -> dict[str, Any]:
    stop = time.monotonic() + seconds
    samples: list[list[float]] = [[] for _ in range(clients)]

    def work(i: int) -> None:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as c:
            j = i * 97
            while time.monotonic() < stop:
                samples[i].append(rest_recall(c, queries[j % len(queries)]))
                j += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = [s for part in samples for s in part]
    return {"clients": clients, "requests": len(flat), "rps": len(flat) / wall, **summary(flat)}


def during_ingest(
    client: httpx.Client, queries: Sequence[str], docs: Sequence[str], idle_n: int, folder: Path
) -> dict[str, Any]:
    idle = [rest_recall(client, queries[i % len(queries)]) for i in range(idle_n)]
    upload = folder / "docs.jsonl"
    upload.write_text("\n".join(json.dumps({"text": t}) for t in docs) + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    with upload.open("rb") as fh:
        response = client.post(
            "/v1/ingest", files={"files": ("docs.jsonl", fh, "application/jsonl")}
        )
    if response.status_code != 202:
        raise SystemExit(f"ingest failed: {response.status_code} {response.text[:500]}")
    job_id = response.json()["id"]
    accepted = time.perf_counter() - t0
    busy: list[float] = []
    state: dict[str, Any] = {}
    deadline = time.monotonic() + 1800
    i = 0
    while time.monotonic() < deadline:
        busy.append(rest_recall(client, queries[(idle_n + i) % len(queries)]))
        i += 1
        if i % 10 == 0:
            state = client.get(f"/v1/jobs/{job_id}").json()
            if state["state"] in ("done", "failed"):
                break
    wall = time.perf_counter() - t0
    out = {
        "docs": len(docs),
        "accepted_s": accepted,
        "job_state": state.get("state"),
        "job_done": state.get("done"),
        "job_s": wall,
        "docs_per_s": (state.get("done") or 0) / wall,
        "idle": summary(idle),
        "during": summary(busy),
    }
    out["p99_ratio"] = out["during"]["p99_ms"] / out["idle"]["p99_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="minilm")
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--recalls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, value)
    texts = Texts(text_pool(), docs=args.docs, probes=0)
    stored = texts.store(args.memories)
    queries = cues(stored, max(args.recalls, 200))
    cached = cached_store(stored, args.model, True, spann=False)
    report: dict[str, Any] = {"model": args.model, "memories": args.memories}
    with tempfile.TemporaryDirectory(prefix="engram-serve-bench-") as tmp:
        folder = Path(tmp)
        db = copy_store(cached, folder)
        with MemoryService.open(db, **engine_options(args.model, True)) as service:
            key = service.keys.add("bench", ["default"]).key
        config = write_config(folder, args.model)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with server(db, config, port, folder / "server.log") as (proc, ready_s):
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                first = rest_recall(client, queries[0])
                report["startup"] = {"healthz_s": ready_s, "first_recall_s": ready_s + first}
                report["rss_mb_warm"] = rss_mb(proc.pid)
                print(f"ready in {ready_s:.2f}s, first recall +{first:.2f}s", file=sys.stderr)
                report["latency"] = added_latency(
                    client, db, args.model, key, queries, args.recalls
                )
                print(json.dumps(report["latency"]), file=sys.stderr)
                report["throughput"] = [
                    throughput(base, key, queries, n, args.seconds) for n in (1, 4, 16)
                ]
                print(json.dumps(report["throughput"]), file=sys.stderr)
                report["ingest"] = during_ingest(
                    client, queries, texts.ingest(), args.recalls, folder
                )
                report["rss_mb_after"] = rss_mb(proc.pid)
    text = json.dumps(report, indent=2)
    print(text)
    out = args.out or RESULTS / f"serve-{args.model}-{args.memories}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
