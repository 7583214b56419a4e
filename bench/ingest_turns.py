"""Chat-turn ingest speed of this checkout next to another one's, same machine, same run.

    git worktree add /tmp/engramdb-base <rev>
    python bench/ingest_turns.py --base /tmp/engramdb-base --n 1200 --rounds 3

Turns are LoCoMo's (../shared/data/locomo/turns.jsonl), in order, added as the eval adds
them (``"<speaker>: <text>"``, the conversation as document, speaker and session in meta,
the session time as event time) with ``Memory.add_many`` into a fresh store with the default
embedder (embedding cache empty). Each round times both checkouts, each in its own process
(``PYTHONPATH=<checkout>/src``), alternating which goes first. Reports turns/s of each and
the ratio this/base (the target: at least 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "locomo" / "turns.jsonl"

_CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
from engramdb import Memory, Record
from engramdb.ingest import parse_time

rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")][: int(sys.argv[2])]
records = [
    Record(
        text=f"{r['speaker']}: {r['text']}",
        document=r["conv"],
        ordinal=i,
        event_time=parse_time(r["date_time"]),
        meta={"speaker": r["speaker"], "session": r["session"], "dia_id": r["dia_id"]},
        chunk=False,
    )
    for i, r in enumerate(rows)
]
with tempfile.TemporaryDirectory() as tmp, Memory.open(Path(tmp) / "t.db") as mem:
    mem.embedder.embed_documents(["warm up"] * 8)
    start = time.perf_counter()
    result = mem.add_many(records, namespace="turns")
    took = time.perf_counter() - start
print(json.dumps({"seconds": took, "added": result.added}))
"""


def _run(src: Path, data: Path, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(data), str(n)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", type=Path, required=True, help="the other checkout's root")
    parser.add_argument("--n", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    head, base = [], []
    for r in range(args.rounds):
        order = [("head", ROOT / "src"), ("base", args.base / "src")]
        for name, src in order if r % 2 == 0 else reversed(order):
            (head if name == "head" else base).append(_run(src, args.data, args.n))
        print(f"round {r + 1}: this {args.n / head[-1]:.1f}/s, base {args.n / base[-1]:.1f}/s")
    h, b = statistics.median(head), statistics.median(base)
    report = {"n": args.n, "this_per_s": args.n / h, "base_per_s": args.n / b, "ratio": b / h}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
