"""Throughput and peak RSS of the default embedder (MiniLMEmbedder).

Two workloads: the first N SciFact abstracts (title + " " + text; long passages) and short
LoCoMo chat turns. Every (workload, batch size, session variant) runs in a fresh subprocess so
that its peak RSS (``ru_maxrss``) is its own.

Usage::

    PYTHONPATH=src python bench/embedder.py                      # N=500 docs, 2000 turns
    PYTHONPATH=src python bench/embedder.py --variants lean,ort-default --out emb.json

Variants: ``lean`` is what MiniLMEmbedder does (CPU arena shrunk after every run, no memory
pattern); ``ort-default`` is onnxruntime's default options (arena and memory pattern, no
shrinking); ``no-arena`` turns both the arena and the memory pattern off.
``--max-batch-tokens`` caps the padded tokens per model call (MiniLMEmbedder's default: 2048);
pass a large value to batch by ``--batch-sizes`` alone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = ("lean", "ort-default", "no-arena")


def load_scifact(data: Path, n: int) -> list[str]:
    texts: list[str] = []
    with gzip.open(data / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(texts) >= n:
                break
    return texts


def load_turns(data: Path, n: int) -> list[str]:
    texts: list[str] = []
    with (data / "locomo" / "turns.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            texts.append(json.loads(line)["text"])
            if len(texts) >= n:
                break
    return texts


def _rss_mb(field: str = "VmRSS") -> float:
    """A memory field of /proc/self/status in MB (VmRSS: now, VmHWM: peak)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _patch_session(variant: str) -> None:
    """Swap the session and run options MiniLMEmbedder uses, for the comparison variants."""
    from engramdb.embed import onnx

    if variant == "lean":
        return
    arena = variant == "ort-default"

    def options(ort: Any, threads: int) -> Any:
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.enable_cpu_mem_arena = arena
        opts.enable_mem_pattern = arena
        opts.log_severity_level = 3
        return opts

    onnx._session_options = options
    onnx._run_options = lambda ort: ort.RunOptions()


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in this process and return it."""
    _patch_session(args.variant)
    from engramdb.embed.onnx import MiniLMEmbedder

    data = Path(args.data)
    texts = (
        load_scifact(data, args.n) if args.workload == "scifact" else load_turns(data, args.turns)
    )
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    emb = MiniLMEmbedder(
        batch_size=args.batch_size, threads=args.threads, max_batch_tokens=args.max_batch_tokens
    )
    load_s = time.perf_counter() - t0
    rss_loaded = _rss_mb()
    emb.embed_documents(texts[: args.batch_size])  # warm-up, not timed
    cpu0, t0 = _cpu_s(), time.perf_counter()
    vectors = emb.embed_documents(texts)
    elapsed, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    return {
        "workload": args.workload,
        "variant": args.variant,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "max_batch_tokens": args.max_batch_tokens,
        "texts": len(texts),
        "mean_chars": sum(map(len, texts)) / max(len(texts), 1),
        "seconds": elapsed,
        "texts_per_s": len(texts) / elapsed,
        "cpu_s": cpu,
        "texts_per_cpu_s": len(texts) / cpu,
        "load_s": load_s,
        "rss_start_mb": rss_before,
        "rss_loaded_mb": rss_loaded,
        "rss_end_mb": _rss_mb(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vm_hwm_mb": _rss_mb("VmHWM"),
        "shape": list(vectors.shape),
    }


def run_one(args: argparse.Namespace, workload: str, variant: str, batch: int) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--worker", "--workload", workload, "--variant", variant,
        "--batch-size", str(batch), "--threads", str(args.threads), "--n", str(args.n),
        "--max-batch-tokens", str(args.max_batch_tokens),
        "--turns", str(args.turns), "--data", str(args.data),
    ]  # fmt: skip
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({' '.join(cmd)}):\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'workload':<8} {'variant':<12} {'batch':>5} {'texts':>6} {'texts/s':>8} "
        f"{'texts/cpu-s':>11} {'load s':>6} {'RSS loaded MB':>13} {'peak RSS MB':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['workload']:<8} {r['variant']:<12} {r['batch_size']:>5} {r['texts']:>6} "
            f"{r['texts_per_s']:>8.1f} {r['texts_per_cpu_s']:>11.1f} {r['load_s']:>6.2f} "
            f"{r['rss_loaded_mb']:>13.0f} {r['peak_rss_mb']:>11.0f}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=500, help="SciFact documents (default 500)")
    p.add_argument("--turns", type=int, default=2000, help="LoCoMo turns (default 2000)")
    p.add_argument("--batch-sizes", default="16,32,64")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    p.add_argument("--max-batch-tokens", type=int, default=2048, help="padded tokens per call")
    p.add_argument("--variants", default="lean", help=f"comma list of {', '.join(VARIANTS)}")
    p.add_argument("--workloads", default="scifact,turns")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data folder")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workload", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="lean", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    rows = []
    for workload in args.workloads.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            for variant in variants:
                row = run_one(args, workload, variant, batch)
                rows.append(row)
                print(
                    f"{workload} {variant} batch={batch}: {row['texts_per_s']:.1f} texts/s, "
                    f"peak RSS {row['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                )
    print_table(rows)
    if args.out:
        meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "argv": sys.argv}
        args.out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
