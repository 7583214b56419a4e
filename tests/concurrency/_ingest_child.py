"""The process test_crash.py kills: ``python _ingest_child.py MODE STORE KIND LOG FOLD_MIN``.

MODE ``ingest`` adds every batch of the crash corpus; ``rebuild`` adds the batches from 4 on
with a dense-index rebuild after each, then keeps rebuilding. After each step that returned
it appends a line to LOG (flushed and fsynced). It prints ``ready`` once the store is open.
"""

from __future__ import annotations

import sys

from _concurrency_support import BATCHES, ingest, logged, open_memory, set_fold_min


def main(mode: str, path: str, kind: str, log_path: str, fold_min: str) -> None:
    set_fold_min(None if fold_min == "-" else int(fold_min))
    with open_memory(path, kind) as mem, open(log_path, "a", encoding="utf-8") as log:
        print("ready", flush=True)
        if mode == "ingest":
            ingest(mem, range(BATCHES), log)
            return
        for b in range(4, BATCHES):
            ingest(mem, [b], log)
            mem.dense_index.rebuild()
            logged(log, "rebuild")
        for _ in range(200):
            mem.dense_index.rebuild()
            logged(log, "rebuild")


if __name__ == "__main__":
    main(*sys.argv[1:6])
