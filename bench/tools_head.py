"""Does a multi-label head over the request embeddings (Tool2Vec's MLC) help tool recall?

On BFCL (``../shared/data/tools``), with the k-fold usage protocol of ``--kind tools`` (a
query's own demonstration and any with its text left out): a softmax regression from a
request's MiniLM vector to the tool names its demonstrations called, trained on the other
folds' demonstrations only, is added to the text score (dense + 0.5 x normalised BM25) with
weights 0, 0.1, 0.3 and 1. The figure is the share of queries whose top tool has a relevant
name, over all 1,150 queries. The engine ships no head: this measures whether it should.

Usage::

    PYTHONPATH=src python bench/tools_head.py --data ../shared/data/tools \
        --out bench/results/tools_head.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engramdb.config import load_config
from engramdb.embed.registry import create_embedder
from engramdb.eval.tools import FOLDS, folds_of, load_tools, train_demos
from engramdb.tools.rank import LexicalIndex
from engramdb.tools.specs import load_specs, spec_text

WEIGHTS = (0.0, 0.1, 0.3, 1.0)


def softmax_fit(
    x: np.ndarray, y: np.ndarray, classes: int, *, iters: int = 200, lr: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by gradient descent (L2 1e-3)."""
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    target = np.zeros((len(y), classes))
    target[np.arange(len(y)), y] = 1
    for _ in range(iters):
        z = x @ w + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - target) / len(y)
        w -= lr * (x.T @ grad + 1e-3 * w)
        b -= lr * grad.sum(axis=0)
    return w, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/tools"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    data = load_tools(args.data)
    docs = list(data.specs)
    specs = [load_specs(data.specs[d])[0] for d in docs]
    names = [s.name for s in specs]
    embedder = create_embedder(load_config(None).embed)
    tool_vecs = embedder.embed_documents([spec_text(s) for s in specs])
    queries = list(data.queries)
    query_vecs = embedder.embed_queries([q.text for q in queries])
    requests = {qid: r for qid, (r, _) in data.demos.items()}
    request_ids = list(requests)
    request_vecs = dict(
        zip(request_ids, embedder.embed_queries(list(requests.values())), strict=True)
    )
    lexical = LexicalIndex([spec_text(s) for s in specs])
    folds = folds_of([q.id for q in queries], FOLDS, 0)
    hits: dict[float, list[bool]] = {w: [] for w in WEIGHTS}
    for f in range(FOLDS):
        held = [q for q, g in zip(queries, folds, strict=True) if g == f]
        kept = train_demos(data, held)
        labels = sorted({c["name"] for _, _, calls in kept for c in calls})
        index = {n: j for j, n in enumerate(labels)}
        xs = [request_vecs[qid] for qid, _, calls in kept for _ in calls]
        ys = [index[c["name"]] for _, _, calls in kept for c in calls]
        w, b = softmax_fit(np.asarray(xs, dtype=np.float64), np.asarray(ys), len(labels))
        tool_class = np.array([index.get(n, -1) for n in names])
        for q in held:
            qv = query_vecs[queries.index(q)]
            bm25 = lexical.scores(q.text)
            text = tool_vecs @ qv + 0.5 * (bm25 / bm25.max() if bm25.max() > 0 else bm25)
            z = qv @ w + b
            p = np.exp(z - z.max())
            p /= p.sum()
            head = np.where(tool_class >= 0, p[np.maximum(tool_class, 0)], 0.0)
            wanted = {data.names[c] for c in q.relevant}
            for weight in WEIGHTS:
                hits[weight].append(names[int(np.argmax(text + weight * head))] in wanted)
    result = {
        "queries": len(hits[0.0]),
        "top1_name_hit": {str(w): round(float(np.mean(v)), 4) for w, v in hits.items()},
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
