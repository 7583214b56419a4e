"""Cached vectors for the benchmarks: real MiniLM embeddings of Gutenberg text, synthetic sets.

Real vectors are embedded once, in shards of ``SHARD`` texts, and cached as
``bench/cache/<name>/shard_NNN.npy``; an interrupted run resumes at the first missing shard.

    python bench/_vectors.py --gutenberg 201000      # embed (resumable), then print the shape
    python bench/_vectors.py --mix 1001000           # the scale set: paragraphs, sentences, pairs

The first ``QUERIES`` texts are the held-out queries and the rest the base set, so any prefix of
shards is a usable (smaller) data set while embedding is still running.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

CACHE = Path(__file__).resolve().parent / "cache"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gutenberg"
SRC = Path(__file__).resolve().parents[1] / "src"
SHARD = 2_000
QUERIES = 1_000
DIM = 384


def _read_jsonl(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)["text"].strip()


def gutenberg_texts(n_total: int, seed: int = 0) -> list[str]:
    """``n_total`` distinct Gutenberg texts, shuffled: every paragraph, topped up with sentences
    drawn at random from the rest."""
    paragraphs = list(dict.fromkeys(t for t in _read_jsonl(DATA / "paragraphs.jsonl.gz") if t))
    rng = np.random.default_rng(seed)
    pool = paragraphs[:n_total]
    if len(pool) < n_total:
        have = set(pool)
        extra = [
            t
            for t in dict.fromkeys(_read_jsonl(DATA / "sentences.jsonl.gz"))
            if t and t not in have
        ]
        need = n_total - len(pool)
        if need > len(extra):
            raise SystemExit(f"only {len(pool) + len(extra)} distinct texts, {n_total} asked")
        pool += [extra[i] for i in np.sort(rng.choice(len(extra), size=need, replace=False))]
    return [pool[i] for i in rng.permutation(len(pool))]


def _read_sentences(path: Path) -> Iterator[tuple[str, int, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            yield row["book"], int(row["para"]), row["text"].strip()


def gutenberg_mix(n_total: int, seed: int = 0) -> list[str]:
    """``n_total`` distinct Gutenberg texts of every length, shuffled: every paragraph and every
    sentence (about 740k), topped up with pairs of adjacent sentences of one book drawn at
    random. The scale set of ``bench/scale.py``; ``bench/ann.py --real mix`` uses a prefix."""
    pool = list(dict.fromkeys(t for t in _read_jsonl(DATA / "paragraphs.jsonl.gz") if t))
    have = set(pool)
    rows = list(_read_sentences(DATA / "sentences.jsonl.gz"))
    for _, _, text in rows:
        if text and text not in have:
            have.add(text)
            pool.append(text)
    rng = np.random.default_rng(seed)
    if len(pool) < n_total:
        pairs = [
            f"{a[2]} {b[2]}"
            for a, b in zip(rows, rows[1:], strict=False)
            if a[0] == b[0] and a[2] and b[2]
        ]
        pairs = [t for t in dict.fromkeys(pairs) if t not in have]
        need = n_total - len(pool)
        if need > len(pairs):
            raise SystemExit(f"only {len(pool) + len(pairs)} distinct texts, {n_total} asked")
        pool += [pairs[i] for i in np.sort(rng.choice(len(pairs), size=need, replace=False))]
    pool = pool[:n_total] if len(pool) > n_total else pool
    return [pool[i] for i in rng.permutation(len(pool))]


def _embedder(threads: int) -> Callable[[Sequence[str]], npt.NDArray[np.float32]]:
    """The default model's document embedding function (engramdb's MiniLM int8 ONNX)."""
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    from engramdb.embed.onnx import MiniLMEmbedder

    return MiniLMEmbedder(threads=threads).embed_documents


def embed_shard(
    embed: Callable[[Sequence[str]], npt.NDArray[np.float32]], texts: Sequence[str]
) -> npt.NDArray[np.float32]:
    """Embed ``texts``; rows come back in input order."""
    return np.asarray(embed(list(texts)), dtype=np.float32)


def gutenberg_vectors(n_total: int, *, threads: int = 2, embed: bool = True) -> np.ndarray:
    """The cached ``(n_total, 384)`` vectors; embeds missing shards when ``embed``, else returns
    the prefix of shards cached so far."""
    return cached_vectors("gutenberg", gutenberg_texts(n_total), threads=threads, embed=embed)


def mix_vectors(
    n_total: int, *, limit: int | None = None, threads: int = 2, embed: bool = True
) -> np.ndarray:
    """The cached vectors of :func:`gutenberg_mix` (``n_total``), the first ``limit`` only when
    given (only their shards are embedded)."""
    return cached_vectors("mix", gutenberg_mix(n_total), threads=threads, embed=embed, limit=limit)


def cache_folder(name: str, texts: Sequence[str]) -> Path:
    """Where the vectors of ``texts`` are cached: shard ``s`` holds rows
    ``[s * SHARD, (s + 1) * SHARD)`` as ``shard_{s:03d}.npy``."""
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    return CACHE / f"{name}-{len(texts)}-{key}"


def cached_vectors(
    name: str,
    texts: Sequence[str],
    *,
    threads: int = 2,
    embed: bool = True,
    limit: int | None = None,
) -> np.ndarray:
    """Vectors of ``texts`` (the first ``limit``), cached in shards under a key of all texts."""
    n_total = len(texts)
    folder = cache_folder(name, texts)
    n_total = min(n_total, limit) if limit else n_total
    folder.mkdir(parents=True, exist_ok=True)
    shards = []
    model = None
    for s, start in enumerate(range(0, n_total, SHARD)):
        path = folder / f"shard_{s:03d}.npy"
        if not path.exists():
            if not embed:
                print(f"{path} missing: using the {start} vectors cached so far", file=sys.stderr)
                break
            model = model or _embedder(threads)
            t0 = time.perf_counter()
            vecs = embed_shard(model, texts[start : start + SHARD])
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, vecs)
            os.replace(tmp, path)
            print(f"{path.name}: {len(vecs)} in {time.perf_counter() - t0:.0f}s", flush=True)
        shards.append(np.load(path))
    return np.concatenate(shards)[:n_total]


def synthetic(n: int, dim: int = DIM, *, seed: int = 0, clusters: int = 0) -> np.ndarray:
    """Unit vectors with Zipf-sized clusters around a shared low-rank component.

    Cluster centres live near a random 32-d subspace plus a common offset, so that the data is
    neither isotropic nor trivially separable; cluster sizes follow a Zipf-like law.
    """
    rng = np.random.default_rng(seed)
    clusters = clusters or max(16, n // 500)
    basis = rng.standard_normal((32, dim)).astype(np.float32)
    common = rng.standard_normal(dim).astype(np.float32)
    common *= 1.5 / np.linalg.norm(common)
    centres = rng.standard_normal((clusters, 32)).astype(np.float32) @ basis / np.sqrt(32)
    centres += 0.5 * rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres += common
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    label = rng.choice(clusters, size=n, p=weights / weights.sum())
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        lab = label[start : start + step]
        noise = rng.standard_normal((lab.shape[0], dim)).astype(np.float32)
        scale = rng.uniform(0.9, 1.6, size=(lab.shape[0], 1)).astype(np.float32)
        block = centres[lab] + scale * noise / np.sqrt(dim) * 1.6
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + step] = block
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gutenberg", type=int, default=201_000)
    parser.add_argument("--mix", type=int, default=0, help="embed the scale set of this size")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.mix:
        vecs = mix_vectors(args.mix, threads=args.threads)
    else:
        vecs = gutenberg_vectors(args.gutenberg, threads=args.threads)
    print(vecs.shape, vecs.dtype, file=sys.stderr)


if __name__ == "__main__":
    main()
