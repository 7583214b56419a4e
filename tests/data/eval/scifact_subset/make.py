"""Rebuild this seeded SciFact subset from a BEIR SciFact folder:

    python tests/data/eval/scifact_subset/make.py /path/to/scifact

60 test queries drawn with seed 0, every passage they cite, and unrelated passages drawn
with seed 0 up to 400 passages in all (texts unchanged).
"""

import gzip
import json
import random
import sys
from pathlib import Path

src = Path(sys.argv[1])
out = Path(__file__).parent
opener = gzip.open if (src / "corpus.jsonl.gz").exists() else open
name = "corpus.jsonl.gz" if (src / "corpus.jsonl.gz").exists() else "corpus.jsonl"
with opener(src / name, "rt", encoding="utf-8") as f:
    corpus = [json.loads(line) for line in f]
queries = {q["_id"]: q for q in map(json.loads, (src / "queries.jsonl").open(encoding="utf-8"))}
qrels: dict[str, list[tuple[str, str]]] = {}
lines = (src / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
for line in lines[1:]:
    qid, doc, score = line.split("\t")
    qrels.setdefault(qid, []).append((doc, score))
rng = random.Random(0)
chosen = sorted(rng.sample(sorted(qrels), 60))
wanted = {doc for q in chosen for doc, _ in qrels[q]}
others = [d["_id"] for d in corpus if d["_id"] not in wanted]
wanted |= set(rng.sample(others, 400 - len(wanted)))
with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
    for d in corpus:
        if d["_id"] in wanted:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
with (out / "queries.jsonl").open("w", encoding="utf-8") as f:
    for q in chosen:
        f.write(json.dumps(queries[q], ensure_ascii=False) + "\n")
with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
    f.write("query-id\tcorpus-id\tscore\n")
    for q in chosen:
        for doc, score in qrels[q]:
            f.write(f"{q}\t{doc}\t{score}\n")
